#include "common/model_config.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_paths.h"

namespace loom {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

std::string ModelDir(const std::string& config, const std::string& generation_config = "") {
  std::string dir = loom::testing::MakeTempDir("model-config-test");
  WriteText(dir + "/config.json", config);
  if (!generation_config.empty()) WriteText(dir + "/generation_config.json", generation_config);
  return dir;
}

// The config.json of meta-llama/Llama-3.2-1B, trimmed of keys Loom does not read.
constexpr char kLlama32[] = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu",
  "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
  "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256})";

// The smallest config the parser accepts: only the required fields.
constexpr char kMinimal[] = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64,
  "intermediate_size": 172, "num_hidden_layers": 2, "num_attention_heads": 8,
  "vocab_size": 512})";

ModelConfig ParseOk(const std::string& text) {
  absl::StatusOr<ModelConfig> c = ModelConfig::FromJson(text, "test/config.json");
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : ModelConfig();
}

std::string ParseError(const std::string& text) {
  absl::StatusOr<ModelConfig> c = ModelConfig::FromJson(text, "test/config.json");
  EXPECT_FALSE(c.ok());
  return c.ok() ? "" : std::string(c.status().message());
}

// kMinimal with `extra` (e.g. `"head_dim": 16`) added.
std::string Minimal(const std::string& extra) {
  std::string s = kMinimal;
  s.pop_back();
  return s + ", " + extra + "}";
}

TEST(ModelConfigTest, ParsesLlama32WithLlama3RopeScaling) {
  ModelConfig c = ParseOk(kLlama32);
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.intermediate_size, 8192);
  EXPECT_EQ(c.num_hidden_layers, 16);
  EXPECT_EQ(c.num_attention_heads, 32);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_FALSE(c.mlp_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.torch_dtype, DType::kBF16);
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_THAT(c.eos_token_ids, ElementsAre(128001));
}

TEST(ModelConfigTest, ParsesMistralWithDerivedHeadDim) {
  ModelConfig c = ParseOk(R"({"architectures": ["MistralForCausalLM"], "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "vocab_size": 32000, "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "sliding_window": null, "bos_token_id": 1,
    "eos_token_id": 2, "torch_dtype": "bfloat16", "model_type": "mistral"})");
  EXPECT_EQ(c.model_type, "mistral");
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.layer_windows, std::vector<int64_t>(32, 0));  // "sliding_window": null
}

TEST(ModelConfigTest, Qwen2AlwaysHasAttentionBias) {
  ModelConfig c = ParseOk(R"({"architectures": ["Qwen2ForCausalLM"], "hidden_size": 896,
    "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
    "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "tie_word_embeddings": true,
    "use_sliding_window": false, "bos_token_id": 151643, "eos_token_id": 151645,
    "torch_dtype": "bfloat16"})");
  EXPECT_EQ(c.model_type, "qwen2");
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.head_dim, 64);
}

TEST(ModelConfigTest, Qwen3HasQkNormAndExplicitHeadDim) {
  ModelConfig c = ParseOk(R"({"architectures": ["Qwen3ForCausalLM"], "attention_bias": false,
    "head_dim": 128, "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
    "num_attention_heads": 16, "num_key_value_heads": 8, "vocab_size": 151936,
    "max_position_embeddings": 40960, "rms_norm_eps": 1e-06, "rope_scaling": null,
    "rope_theta": 1000000, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
    "bos_token_id": 151643, "eos_token_id": 151645})");
  EXPECT_EQ(c.model_type, "qwen3");
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_FALSE(c.mlp_bias);
  EXPECT_EQ(c.head_dim, 128);  // not hidden_size / heads (64)
  EXPECT_EQ(c.rope_scaling.type, "default");
}

TEST(ModelConfigTest, AppliesDefaultsForOptionalFields) {
  ModelConfig c = ParseOk(kMinimal);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope_scaling.type, "default");
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_FALSE(c.mlp_bias);
  EXPECT_EQ(c.torch_dtype, DType::kF32);
  EXPECT_EQ(c.bos_token_id, -1);
  EXPECT_TRUE(c.eos_token_ids.empty());
}

TEST(ModelConfigTest, NullOptionalFieldsTakeDefaults) {
  ModelConfig c = ParseOk(Minimal(R"("head_dim": null, "num_key_value_heads": null,
                                     "bos_token_id": null, "eos_token_id": null)"));
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.bos_token_id, -1);
  EXPECT_TRUE(c.eos_token_ids.empty());
}

TEST(ModelConfigTest, ReadsNewerDtypeKey) {
  EXPECT_EQ(ParseOk(Minimal(R"("dtype": "float16")")).torch_dtype, DType::kF16);
}

TEST(ModelConfigTest, ParsesLinearRopeScalingWithLegacyTypeKey) {
  ModelConfig c = ParseOk(Minimal(R"("rope_scaling": {"type": "linear", "factor": 4.0})"));
  EXPECT_EQ(c.rope_scaling.type, "linear");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 4.0);
}

TEST(ModelConfigTest, ParsesRopeParametersWithTheta) {
  ModelConfig c = ParseOk(Minimal(R"("rope_parameters": {"rope_theta": 500000.0,
    "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192})"));
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 8.0);

  ModelConfig d = ParseOk(Minimal(R"("rope_parameters": {"rope_theta": 1e6,
                                     "rope_type": "default"})"));
  EXPECT_DOUBLE_EQ(d.rope_theta, 1e6);
  EXPECT_EQ(d.rope_scaling.type, "default");
}

TEST(ModelConfigTest, UnsupportedRopeTypeIsAnError) {
  std::string err =
      ParseError(Minimal(R"("rope_scaling": {"rope_type": "longrope", "factor": 4})"));
  EXPECT_THAT(err, AllOf(HasSubstr("test/config.json"), HasSubstr("rope_scaling"),
                         HasSubstr("\"longrope\""),
                         HasSubstr("supported: default, linear, llama3, yarn, dynamic")));
}

TEST(ModelConfigTest, ParsesYarnAsQwenConfigsSpellIt) {
  ModelConfig c = ParseOk(Minimal(R"("rope_scaling": {"type": "yarn", "factor": 4.0,
                                     "original_max_position_embeddings": 32768})"));
  EXPECT_EQ(c.rope_scaling.type, "yarn");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 32768);
  EXPECT_LT(c.rope_scaling.attention_factor, 0);  // derived from the factor
  EXPECT_DOUBLE_EQ(c.rope_scaling.beta_fast, 32.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.beta_slow, 1.0);
  EXPECT_TRUE(c.rope_scaling.truncate);
  EXPECT_EQ(c.MaxContextLength(), 131072);  // original × factor
  // Absent: HF's default, max_position_embeddings; a top-level value wins (Phi-3's spelling).
  EXPECT_EQ(ParseOk(Minimal(R"("rope_scaling": {"rope_type": "yarn", "factor": 2,
                               "beta_fast": 8, "attention_factor": 0.9}, "max_position_embeddings": 100)"))
                .rope_scaling.original_max_position_embeddings,
            100);
  EXPECT_EQ(ParseOk(Minimal(R"("rope_scaling": {"rope_type": "yarn", "factor": 2},
                               "original_max_position_embeddings": 64)"))
                .rope_scaling.original_max_position_embeddings,
            64);
  EXPECT_THAT(ParseError(Minimal(R"("rope_scaling": {"rope_type": "yarn", "factor": 0.5})")),
              HasSubstr("factor >= 1"));
}

TEST(ModelConfigTest, ParsesDynamicNtkScaling) {
  ModelConfig c = ParseOk(Minimal(R"("rope_scaling": {"rope_type": "dynamic", "factor": 2.0},
                                     "max_position_embeddings": 64)"));
  EXPECT_EQ(c.rope_scaling.type, "dynamic");
  EXPECT_EQ(c.MaxContextLength(), 128);
}

TEST(ModelConfigTest, SlidingWindowsFollowEachArchitecturesRules) {
  // Mistral: every layer; absent means HF's 4096, null means none.
  EXPECT_EQ(ParseOk(Minimal(R"("architectures": ["MistralForCausalLM"], "sliding_window": 16)"))
                .layer_windows,
            std::vector<int64_t>(2, 16));
  EXPECT_EQ(ParseOk(Minimal(R"("architectures": ["MistralForCausalLM"])")).layer_windows,
            std::vector<int64_t>(2, 4096));
  // Llama ignores the field, as HF's Llama does.
  EXPECT_EQ(ParseOk(Minimal(R"("sliding_window": 16)")).layer_windows,
            std::vector<int64_t>(2, 0));
  // Qwen2/3: only with use_sliding_window, from max_window_layers on, or as layer_types say.
  const std::string qwen = R"("architectures": ["Qwen2ForCausalLM"], "sliding_window": 8, )";
  EXPECT_EQ(ParseOk(Minimal(qwen + R"("max_window_layers": 1)")).layer_windows,
            std::vector<int64_t>(2, 0));
  EXPECT_EQ(
      ParseOk(Minimal(qwen + R"("use_sliding_window": true, "max_window_layers": 1)")).layer_windows,
      (std::vector<int64_t>{0, 8}));
  EXPECT_EQ(ParseOk(Minimal(qwen + R"("use_sliding_window": true, "max_window_layers": 1,
                                      "layer_types": ["sliding_attention", "full_attention"])"))
                .layer_windows,
            (std::vector<int64_t>{8, 0}));
  EXPECT_THAT(ParseError(Minimal(qwen + R"("use_sliding_window": true,
                                          "layer_types": ["sliding_attention"])")),
              HasSubstr("\"layer_types\" must be a list of 2"));
  EXPECT_THAT(ParseError(Minimal(qwen + R"("use_sliding_window": true,
                                          "layer_types": ["full_attention", "chunked_attention"])")),
              AllOf(HasSubstr("\"layer_types\""), HasSubstr("chunked_attention")));
}

TEST(ModelConfigTest, BiasesFollowEachArchitecturesRules) {
  ModelConfig llama = ParseOk(Minimal(R"("attention_bias": true, "mlp_bias": true)"));
  EXPECT_TRUE(llama.qkv_bias && llama.o_bias && llama.mlp_bias);
  ModelConfig qwen3 = ParseOk(Minimal(R"("architectures": ["Qwen3ForCausalLM"],
                                         "attention_bias": true, "mlp_bias": true)"));
  EXPECT_TRUE(qwen3.qkv_bias && qwen3.o_bias);
  EXPECT_FALSE(qwen3.mlp_bias);  // HF's Qwen3 MLP has none
  ModelConfig mistral = ParseOk(Minimal(R"("architectures": ["MistralForCausalLM"],
                                           "attention_bias": true, "sliding_window": null)"));
  EXPECT_FALSE(mistral.qkv_bias || mistral.o_bias || mistral.mlp_bias);
}

TEST(ModelConfigTest, RopeScalingWithoutFactorIsAnError) {
  EXPECT_THAT(ParseError(Minimal(R"("rope_scaling": {"rope_type": "linear"})")),
              HasSubstr("needs \"factor\""));
}

TEST(ModelConfigTest, MergesGenerationConfigEosIdsInOrderWithoutDuplicates) {
  std::string dir = ModelDir(Minimal(R"("eos_token_id": [128001, 128008])"),
                             R"({"bos_token_id": 128000, "eos_token_id": [128008, 128009, 128001],
                                 "temperature": 0.6})");
  absl::StatusOr<ModelConfig> c = ModelConfig::FromModelDir(dir);
  ASSERT_FALSE(c.ok());  // ids beyond the 512-token vocabulary are refused
  EXPECT_THAT(c.status().message(), HasSubstr("outside the vocabulary"));

  dir = ModelDir(Minimal(R"("eos_token_id": 2)"), R"({"eos_token_id": [7, 2, 9]})");
  c = ModelConfig::FromModelDir(dir);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->eos_token_ids, ElementsAre(2, 7, 9));

  dir = ModelDir(Minimal(R"("eos_token_id": [3, 4])"), R"({"eos_token_id": 5})");
  c = ModelConfig::FromModelDir(dir);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->eos_token_ids, ElementsAre(3, 4, 5));
}

TEST(ModelConfigTest, MalformedGenerationConfigIsAnErrorNamingIt) {
  std::string dir = ModelDir(kMinimal, "{not json");
  absl::StatusOr<ModelConfig> c = ModelConfig::FromModelDir(dir);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr(dir + "/generation_config.json"));

  dir = ModelDir(kMinimal, R"({"eos_token_id": "2"})");
  c = ModelConfig::FromModelDir(dir);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(),
              AllOf(HasSubstr(dir + "/generation_config.json"), HasSubstr("eos_token_id")));
}

TEST(ModelConfigTest, MissingConfigFileIsNotFoundNamingIt) {
  std::string dir = loom::testing::MakeTempDir("model-config-empty");
  absl::StatusOr<ModelConfig> c = ModelConfig::FromModelDir(dir);
  EXPECT_TRUE(absl::IsNotFound(c.status()));
  EXPECT_THAT(c.status().message(), HasSubstr(dir + "/config.json"));
}

TEST(ModelConfigTest, MissingRequiredFieldIsNamed) {
  std::string dir = ModelDir(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64,
    "num_hidden_layers": 2, "num_attention_heads": 8, "vocab_size": 512})");
  absl::StatusOr<ModelConfig> c = ModelConfig::FromModelDir(dir);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(),
              AllOf(HasSubstr(dir + "/config.json"), HasSubstr("\"intermediate_size\""),
                    HasSubstr("missing")));
}

TEST(ModelConfigTest, WrongJsonTypeIsNamed) {
  std::string text = kMinimal;
  text.replace(text.find("64"), 2, "\"64\"");
  EXPECT_THAT(ParseError(text),
              AllOf(HasSubstr("\"hidden_size\""), HasSubstr("integer"), HasSubstr("string")));
  EXPECT_THAT(ParseError(Minimal(R"("tie_word_embeddings": "yes")")),
              HasSubstr("\"tie_word_embeddings\""));
  EXPECT_THAT(ParseError(Minimal(R"("rms_norm_eps": [1])")), HasSubstr("\"rms_norm_eps\""));
  EXPECT_THAT(ParseError(Minimal(R"("torch_dtype": "int8")")), HasSubstr("\"torch_dtype\""));
  EXPECT_THAT(ParseError(Minimal(R"("eos_token_id": [1, "2"])")), HasSubstr("\"eos_token_id\""));
  EXPECT_THAT(ParseError(Minimal(R"("rope_scaling": "linear")")), HasSubstr("\"rope_scaling\""));
}

TEST(ModelConfigTest, UnsupportedArchitectureListsSupportedOnes) {
  std::string dir = ModelDir(R"({"architectures": ["GPT2LMHeadModel"], "n_embd": 768})");
  absl::StatusOr<ModelConfig> c = ModelConfig::FromModelDir(dir);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(),
              HasSubstr("unsupported architecture \"GPT2LMHeadModel\" in " + dir +
                        "/config.json (supported: LlamaForCausalLM, MistralForCausalLM, "
                        "Qwen2ForCausalLM, Qwen3ForCausalLM)"));
}

TEST(ModelConfigTest, ModelTypeStandsInForMissingArchitectures) {
  std::string text = kMinimal;
  text.replace(text.find("\"architectures\": [\"LlamaForCausalLM\"]"),
               std::string("\"architectures\": [\"LlamaForCausalLM\"]").size(),
               "\"model_type\": \"qwen3\"");
  EXPECT_EQ(ParseOk(text).architecture, "Qwen3ForCausalLM");
}

TEST(ModelConfigTest, RefusesFeaturesTheDecoderLacks) {
  EXPECT_THAT(ParseError(Minimal(R"("hidden_act": "gelu")")), HasSubstr("\"hidden_act\""));
  EXPECT_THAT(ParseError(Minimal(R"("partial_rotary_factor": 0.5)")),
              HasSubstr("\"partial_rotary_factor\""));
  EXPECT_THAT(ParseError(Minimal(R"("rope_parameters": {"rope_type": "default",
                                     "partial_rotary_factor": 0.25})")),
              HasSubstr("\"partial_rotary_factor\""));
  ParseOk(Minimal(R"("partial_rotary_factor": 1.0)"));
}

TEST(ModelConfigTest, InvalidJsonIsAnErrorNamingTheSource) {
  EXPECT_THAT(ParseError("{\"hidden_size\": "), HasSubstr("test/config.json: invalid JSON"));
  EXPECT_THAT(ParseError("[]"), HasSubstr("not a JSON object"));
}

TEST(ModelConfigTest, ValidateRejectsInconsistentShapes) {
  EXPECT_THAT(ParseError(Minimal(R"("num_key_value_heads": 3)")),
              HasSubstr("must be a multiple of num_key_value_heads"));
  EXPECT_THAT(ParseError(Minimal(R"("head_dim": 7)")), HasSubstr("head_dim must be even"));
  EXPECT_THAT(ParseError(Minimal(R"("num_hidden_layers": 0)")),
              HasSubstr("num_hidden_layers must be positive"));
  EXPECT_THAT(ParseError(Minimal(R"("rope_scaling": {"rope_type": "llama3", "factor": 8,
                                    "low_freq_factor": 4, "high_freq_factor": 4})")),
              HasSubstr("low_freq_factor < high_freq_factor"));
  EXPECT_THAT(ParseError(Minimal(R"("bos_token_id": 512)")), HasSubstr("bos_token_id 512"));

  ModelConfig c = ParseOk(kMinimal);
  EXPECT_TRUE(c.Validate().ok());
  c.num_attention_heads = 0;
  EXPECT_FALSE(c.Validate().ok());
}

// Found by the config.json fuzzer: a negative num_hidden_layers, cast to size_t, sized the
// per-layer window table (std::length_error thrown out of FromJson, ending the process), and a
// huge one allocated it; both are now refused with the field named.
TEST(ModelConfigTest, LayerCountsOutsideTheBoundAreRefusedBeforeSizingTables) {
  auto config = [](const std::string& architecture, const std::string& layers) {
    std::string text = Minimal(R"("use_sliding_window": true)");
    text.replace(text.find("LlamaForCausalLM"), 16, architecture);
    text.replace(text.find(R"("num_hidden_layers": 2)"), 22, R"("num_hidden_layers": )" + layers);
    return text;
  };
  for (const char* architecture :
       {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"}) {
    for (const char* layers : {"-1", "-2147483649", "-9223372036854775807"}) {
      EXPECT_THAT(ParseError(config(architecture, layers)),
                  HasSubstr("num_hidden_layers must be positive, got"))
          << architecture << " " << layers;
    }
    for (const char* layers : {"4097", "1000000000000", "9223372036854775807"}) {
      EXPECT_THAT(ParseError(config(architecture, layers)),
                  HasSubstr("num_hidden_layers must be at most 4096, got"))
          << architecture << " " << layers;
    }
    const ModelConfig c = ParseOk(config(architecture, "4096"));
    EXPECT_EQ(c.num_hidden_layers, 4096);
    EXPECT_EQ(c.layer_windows.size(), 4096u);
  }
}

void ExpectSameConfig(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.architecture, b.architecture);
  EXPECT_EQ(a.model_type, b.model_type);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.num_hidden_layers, b.num_hidden_layers);
  EXPECT_EQ(a.num_attention_heads, b.num_attention_heads);
  EXPECT_EQ(a.num_key_value_heads, b.num_key_value_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.rms_norm_eps, b.rms_norm_eps);  // exact: the JSON writer round-trips doubles
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.rope_scaling.type, b.rope_scaling.type);
  EXPECT_EQ(a.rope_scaling.factor, b.rope_scaling.factor);
  EXPECT_EQ(a.rope_scaling.low_freq_factor, b.rope_scaling.low_freq_factor);
  EXPECT_EQ(a.rope_scaling.high_freq_factor, b.rope_scaling.high_freq_factor);
  EXPECT_EQ(a.rope_scaling.original_max_position_embeddings,
            b.rope_scaling.original_max_position_embeddings);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.qkv_bias, b.qkv_bias);
  EXPECT_EQ(a.o_bias, b.o_bias);
  EXPECT_EQ(a.mlp_bias, b.mlp_bias);
  EXPECT_EQ(a.layer_windows, b.layer_windows);
  EXPECT_EQ(a.rope_scaling.attention_factor, b.rope_scaling.attention_factor);
  EXPECT_EQ(a.rope_scaling.beta_fast, b.rope_scaling.beta_fast);
  EXPECT_EQ(a.rope_scaling.beta_slow, b.rope_scaling.beta_slow);
  EXPECT_EQ(a.rope_scaling.truncate, b.rope_scaling.truncate);
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  EXPECT_EQ(a.torch_dtype, b.torch_dtype);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_ids, b.eos_token_ids);
}

TEST(ModelConfigTest, ToJsonRoundTripsEveryArchitectureAndRopeVariant) {
  const std::vector<std::string> configs = {
      kLlama32,
      kMinimal,
      Minimal(R"("architectures": ["MistralForCausalLM"], "rope_scaling":
                 {"type": "linear", "factor": 2.5}, "torch_dtype": "float16",
                 "eos_token_id": [2, 3], "rms_norm_eps": 1.234567e-7)"),
      Minimal(R"("architectures": ["Qwen2ForCausalLM"], "tie_word_embeddings": true)"),
      Minimal(R"("architectures": ["Qwen3ForCausalLM"], "head_dim": 32, "bos_token_id": 0)"),
      Minimal(R"("attention_bias": true, "mlp_bias": true, "rope_scaling": {"rope_type": "yarn",
                 "factor": 4, "beta_fast": 16, "attention_factor": 0.8, "truncate": false})"),
      Minimal(R"("architectures": ["MistralForCausalLM"], "sliding_window": 16,
                 "rope_scaling": {"rope_type": "dynamic", "factor": 2})"),
      Minimal(R"("architectures": ["Qwen2ForCausalLM"], "use_sliding_window": true,
                 "sliding_window": 8, "max_window_layers": 1)"),
  };
  for (const std::string& text : configs) {
    ModelConfig a = ParseOk(text);
    SCOPED_TRACE(a.architecture);
    const std::string json = a.ToJson();
    ModelConfig b = ParseOk(json);
    ExpectSameConfig(a, b);
    EXPECT_THAT(json, HasSubstr("\"architectures\": [\n    \"" + a.architecture + "\""));
    EXPECT_THAT(json, HasSubstr("\"model_type\": \"" + a.model_type + "\""));
    EXPECT_THAT(json, HasSubstr("\"torch_dtype\""));
  }
}

TEST(ModelConfigTest, ToJsonWritesRopeScalingOnlyWhenNotDefault) {
  EXPECT_THAT(ParseOk(kMinimal).ToJson(), HasSubstr("\"rope_scaling\": null"));
  EXPECT_THAT(ParseOk(kLlama32).ToJson(), HasSubstr("\"rope_type\": \"llama3\""));
}

}  // namespace
}  // namespace loom
