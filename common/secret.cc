#include "common/secret.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace loom {

absl::Status CheckSecret(std::string_view secret, const std::string& what) {
  if (secret.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": empty"));
  for (const char c : secret) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": only printable ASCII without spaces may be in a key"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadSecretFile(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": cannot read ", path));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat(what, ": cannot read ", path));
  std::string secret = contents.str();
  absl::StripTrailingAsciiWhitespace(&secret);
  absl::Status valid = CheckSecret(secret, absl::StrCat(what, " ", path));
  if (!valid.ok()) return valid;
  return secret;
}

bool SecretEquals(std::string_view given, std::string_view expected) {
  if (expected.empty()) return false;
  // Every byte of `given` is compared (with the expected secret repeated), so the time says
  // nothing of the expected secret but what `given` already knows: its own length.
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < given.size(); ++i) {
    diff |= static_cast<unsigned char>(given[i] ^ expected[i % expected.size()]);
  }
  // The compiler may not turn the loop into an early exit: `diff` is read once, after it.
  volatile unsigned char result = diff;
  return result == 0 && !given.empty();
}

}  // namespace loom
