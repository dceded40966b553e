// Broken model directories give a clear error naming the file and the problem, never a crash.
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "common/safetensors.h"
#include "tests/e2e/in_process.h"
#include "tests/e2e/model_dir.h"
#include "tests/test_paths.h"

namespace loom {
namespace {

namespace fs = std::filesystem;

std::string Error(const std::string& model) {
  EngineConfig c;
  c.load.model = model;
  c.cache.kv_cache_bytes = 4 << 20;
  auto engine = testing::StartEngine(c);
  EXPECT_FALSE(engine.ok()) << "expected " << model << " to fail";
  return engine.ok() ? "" : std::string(engine.status().message());
}

// Rewrites model.safetensors through `edit` on its (name, tensor) list.
template <typename Edit>
void RewriteWeights(const std::string& dir, Edit edit) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  {
    auto file = SafetensorsFile::Open(dir + "/model.safetensors");
    ASSERT_TRUE(file.ok()) << file.status();
    for (const auto& e : (*file)->entries()) tensors.push_back({e.name, (*file)->Get(e.name)->Clone()});
  }
  edit(tensors);
  ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", tensors).ok());
}

void ReplaceInFile(const std::string& path, const std::string& from, const std::string& to) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t at = text.find(from);
  ASSERT_NE(at, std::string::npos) << from << " not in " << path;
  text.replace(at, from.size(), to);
  std::ofstream(path) << text;
}

class BadModelTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::MakeModel("--preset tiny --dtype float32"); }
  std::string dir_;
};

TEST_F(BadModelTest, TheGoodModelLoads) {
  EngineConfig c;
  c.load.model = dir_;
  c.cache.kv_cache_bytes = 4 << 20;
  EXPECT_TRUE(testing::StartEngine(c).ok());
}

TEST_F(BadModelTest, MissingDirectoryOrConfigNamesThePath) {
  EXPECT_NE(Error(dir_ + "/nope").find(dir_ + "/nope"), std::string::npos);
  fs::remove(dir_ + "/config.json");
  EXPECT_NE(Error(dir_).find("config.json"), std::string::npos);
}

TEST_F(BadModelTest, MissingWeightsFileIsNamed) {
  fs::remove(dir_ + "/model.safetensors");
  const std::string e = Error(dir_);
  EXPECT_NE(e.find(dir_), std::string::npos) << e;
  EXPECT_NE(e.find("safetensors"), std::string::npos) << e;
}

TEST_F(BadModelTest, MissingTensorIsNamed) {
  RewriteWeights(dir_, [](auto& tensors) {
    std::erase_if(tensors, [](const auto& t) { return t.first == "model.layers.1.mlp.up_proj.weight"; });
  });
  const std::string e = Error(dir_);
  EXPECT_NE(e.find("model.layers.1.mlp.up_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("missing"), std::string::npos) << e;
}

TEST_F(BadModelTest, WrongShapeNamesTensorFileAndShapes) {
  RewriteWeights(dir_, [](auto& tensors) {
    for (auto& t : tensors) {
      if (t.first == "model.layers.0.self_attn.o_proj.weight") {
        t.second = Tensor::Empty(DType::kF32, {t.second.size(0), t.second.size(1) / 2});
      }
    }
  });
  const std::string e = Error(dir_);
  EXPECT_NE(e.find("model.layers.0.self_attn.o_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("model.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("expected shape"), std::string::npos) << e;
}

TEST_F(BadModelTest, UnexpectedTensorFromAnotherArchitectureIsRejected) {
  RewriteWeights(dir_, [](auto& tensors) {
    tensors.push_back({"model.layers.0.self_attn.q_proj.bias", Tensor::Empty(DType::kF32, {128})});
  });
  const std::string e = Error(dir_);
  EXPECT_NE(e.find("unexpected tensor model.layers.0.self_attn.q_proj.bias"), std::string::npos)
      << e;
}

TEST_F(BadModelTest, TruncatedWeightsFileIsNamed) {
  fs::resize_file(dir_ + "/model.safetensors", fs::file_size(dir_ + "/model.safetensors") - 100);
  const std::string e = Error(dir_);
  EXPECT_NE(e.find("model.safetensors"), std::string::npos) << e;
}

TEST_F(BadModelTest, UnsupportedArchitectureIsNamed) {
  ReplaceInFile(dir_ + "/config.json", "Qwen3ForCausalLM", "GPTNeoXForCausalLM");
  const std::string e = Error(dir_);
  EXPECT_NE(e.find("unsupported architecture"), std::string::npos) << e;
  EXPECT_NE(e.find("GPTNeoXForCausalLM"), std::string::npos) << e;
}

}  // namespace
}  // namespace loom
