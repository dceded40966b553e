// Where tests find the project's files, its build outputs, and the shared real-world fixtures.
#ifndef LOOM_TESTS_TEST_PATHS_H_
#define LOOM_TESTS_TEST_PATHS_H_

#include <string>

namespace loom::testing {

std::string SourceDir();    // the repository root
std::string BinaryDir();    // the build directory (where loom and the tools are)
std::string SharedFixtures();  // ../shared/fixtures beside the repository
// A fresh directory under the system temp dir, removed by nobody (tests are cheap).
std::string MakeTempDir(const std::string& prefix);

}  // namespace loom::testing

#endif  // LOOM_TESTS_TEST_PATHS_H_
