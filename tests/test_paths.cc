#include "tests/test_paths.h"

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace loom::testing {

std::string SourceDir() { return LOOM_SOURCE_DIR; }
std::string BinaryDir() { return LOOM_BINARY_DIR; }
std::string SharedFixtures() {
  return std::filesystem::weakly_canonical(LOOM_SHARED_FIXTURES).string();
}

std::string MakeTempDir(const std::string& prefix) {
  std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

}  // namespace loom::testing
