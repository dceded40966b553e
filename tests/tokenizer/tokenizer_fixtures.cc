#include "tests/tokenizer/tokenizer_fixtures.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>

#include "gtest/gtest.h"
#include "tests/test_paths.h"

namespace loom::testing {
namespace {

using Json = nlohmann::json;

void WriteTextFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// model.merges from a merges.txt (README "Overlay assembly").
Json MergesFromText(const std::string& text, bool pairs) {
  Json merges = Json::array();
  std::istringstream in(text);
  std::string line;
  bool first = true;
  while (std::getline(in, line)) {
    const bool header = first && line.rfind("#version", 0) == 0;
    first = false;
    if (header || line.empty()) continue;
    if (!pairs) {
      merges.push_back(line);
      continue;
    }
    const size_t space = line.find(' ');
    merges.push_back(Json::array({line.substr(0, space), line.substr(space + 1)}));
  }
  return merges;
}

Json AssembleOverlay(const std::string& overlay_path) {
  Json root = ReadJsonFile(overlay_path);
  const Json assemble = root["loom_assemble"];
  const std::string shared = SharedFixtures() + "/";
  root["model"]["vocab"] = ReadJsonFile(shared + assemble["vocab"].get<std::string>());
  root["model"]["merges"] =
      MergesFromText(ReadTextFile(shared + assemble["merges"].get<std::string>()),
                     assemble.value("merges_format", "pairs") == "pairs");
  root.erase("loom_assemble");
  return root;
}

Json ApplyPatch(const std::string& patch_path) {
  const Json patch = ReadJsonFile(patch_path);
  Json root = ReadJsonFile(SharedFixtures() + "/" + patch["base"].get<std::string>());
  Json& vocab = root["model"]["vocab"];
  for (const Json& rename : patch["vocab_rename"]) {
    vocab.erase(rename["from"].get<std::string>());
    vocab[rename["to"].get<std::string>()] = rename["id"];
  }
  Json& merges = root["model"]["merges"];
  for (const Json& replace : patch["merges_replace"]) {
    merges[replace["index"].get<size_t>()] = replace["to"];
  }
  return root;
}

std::string BuildTokenizerJson(const std::string& name) {
  const std::string dir = TokenizerDataDir() + "/" + name;
  if (std::filesystem::exists(dir + "/tokenizer.json")) return dir + "/tokenizer.json";
  Json root;
  if (std::filesystem::exists(dir + "/tokenizer.overlay.json")) {
    root = AssembleOverlay(dir + "/tokenizer.overlay.json");
  } else if (std::filesystem::exists(dir + "/tokenizer.patch.json")) {
    root = ApplyPatch(dir + "/tokenizer.patch.json");
  } else {
    return SharedFixtures() + "/tokenizers/" + name + "/tokenizer.json";
  }
  const std::string out = MakeTempDir("loom-tokenizer-" + name) + "/tokenizer.json";
  WriteTextFile(out, root.dump());
  return out;
}

}  // namespace

const std::vector<std::string>& FixtureTokenizerNames() {
  static const auto* names = new std::vector<std::string>{
      "llama2", "phi3-mini", "phi2-gpt2", "qwen2", "qwen2.5", "qwen3", "llama3", "mistral-v1"};
  return *names;
}

bool SharedFixturesPresent() {
  return std::filesystem::is_directory(SharedFixtures() + "/tokenizers");
}

std::string TokenizerDataDir() { return SourceDir() + "/tests/data/tokenizers"; }

std::string ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

Json ReadJsonFile(const std::string& path) {
  return Json::parse(ReadTextFile(path), nullptr, false);
}

std::string FixtureTokenizerJsonPath(const std::string& name) { return BuildTokenizerJson(name); }

const tokenizer::Tokenizer* FixtureTokenizer(const std::string& name) {
  static std::mutex mutex;
  static auto* loaded = new std::map<std::string, std::unique_ptr<tokenizer::Tokenizer>>();
  std::lock_guard<std::mutex> lock(mutex);
  auto it = loaded->find(name);
  if (it != loaded->end()) return it->second.get();
  const std::string path = FixtureTokenizerJsonPath(name);
  auto tokenizer = tokenizer::Tokenizer::FromFile(path);
  // Assembled files are tens of MB; do not leave one per test run in the temp dir.
  if (path.rfind(TokenizerDataDir(), 0) != 0 && path.rfind(SharedFixtures(), 0) != 0) {
    std::error_code ignored;
    std::filesystem::remove_all(std::filesystem::path(path).parent_path(), ignored);
  }
  if (!tokenizer.ok()) {
    ADD_FAILURE() << name << ": " << tokenizer.status();
    return nullptr;
  }
  return loaded->emplace(name, *std::move(tokenizer)).first->second.get();
}

}  // namespace loom::testing
