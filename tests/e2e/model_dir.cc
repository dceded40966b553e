#include "tests/e2e/model_dir.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "tests/test_paths.h"

namespace loom::testing {

std::string FixtureModelDir(const std::string& name) {
  // A name with its dtype suffix ("mistral-swa-f16") names that checkpoint; a bare one its f32.
  for (const char* suffix : {"-f32", "-bf16", "-f16", "-f16-sharded"}) {
    if (absl::EndsWith(name, suffix)) return SourceDir() + "/tests/data/models/" + name;
  }
  return SourceDir() + "/tests/data/models/" + name + "-f32";
}

HfReference ReadHfReference(const std::string& path) {
  const bool is_file = path.size() > 5 && path.compare(path.size() - 5, 5, ".json") == 0;
  std::ifstream in(is_file ? path : path + "/reference.json");
  if (!in) throw std::runtime_error("cannot read the reference of " + path);
  const nlohmann::json j = nlohmann::json::parse(in);
  HfReference ref;
  ref.dtype = j.at("dtype").get<std::string>();
  for (const auto& p : j.at("prompts")) {
    ref.prompts.push_back(p.at("prompt_ids").get<std::vector<int32_t>>());
    ref.greedy.push_back(p.at("greedy_ids").get<std::vector<int32_t>>());
    ref.last_logits.push_back(p.at("last_logits").get<std::vector<float>>());
  }
  return ref;
}

std::string FixtureModel() {
  const std::string dir = SourceDir() + "/tests/data/models/llama-gqa-f32";
  if (!std::filesystem::exists(dir + "/config.json")) {
    throw std::runtime_error("fixture model missing: " + dir);
  }
  return dir;
}

std::string TestPython() {
  const char* python = std::getenv("LOOM_PYTHON");
  if (python != nullptr && *python != '\0') return python;
  const std::string venv = BinaryDir() + "/python-client/bin/python";
  return std::filesystem::exists(venv) ? venv : "python3";
}

int RunCommand(const std::string& command, std::string* output) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[4096];
  size_t n;
  if (output) output->clear();
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) {
    if (output) output->append(buf, n);
  }
  int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string MakeModel(const std::string& flags) {
  const std::string dir = MakeTempDir("loom-model") + "/model";
  std::string out;
  const std::string cmd =
      BinaryDir() + "/tools/loom-make-model --output " + dir + " " + flags;
  if (RunCommand(cmd, &out) != 0) throw std::runtime_error(cmd + " failed: " + out);
  return dir;
}

}  // namespace loom::testing
