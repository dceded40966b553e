// An HTTP client to a test server's OpenAI API ("host:port", as Server::http_address gives it).
#ifndef LOOM_TESTS_E2E_HTTP_CLIENT_H_
#define LOOM_TESTS_E2E_HTTP_CLIENT_H_

#include <httplib.h>

#include <string>
#include <vector>

#include "absl/strings/str_split.h"

namespace loom::testing {

inline httplib::Client HttpClient(const std::string& host_port) {
  const std::vector<std::string> hp = absl::StrSplit(host_port, ':');
  httplib::Client c(hp[0], std::stoi(hp[1]));
  c.set_read_timeout(120, 0);
  return c;
}

}  // namespace loom::testing

#endif  // LOOM_TESTS_E2E_HTTP_CLIENT_H_
