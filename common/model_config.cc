#include "common/model_config.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace loom {
namespace {

using json = nlohmann::json;

struct Architecture {
  const char* name;
  const char* model_type;
};
constexpr Architecture kArchitectures[] = {
    {"LlamaForCausalLM", "llama"},
    {"MistralForCausalLM", "mistral"},
    {"Qwen2ForCausalLM", "qwen2"},
    {"Qwen3ForCausalLM", "qwen3"},
};

std::string SupportedArchitectures() {
  std::vector<std::string> names;
  for (const Architecture& a : kArchitectures) names.push_back(a.name);
  return absl::StrJoin(names, ", ");
}

std::string TypeName(const json& v) { return v.type_name(); }

absl::Status FieldError(const std::string& source, const std::string& field,
                        const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": field \"", field, "\" ", what));
}

// Field readers: an absent or null field gives `fallback` (or an error when `required`); a field
// of the wrong JSON type is an error naming it. Integers accept integral floats (1024.0), which
// some hand-written configs contain.
absl::StatusOr<int64_t> IntField(const json& obj, const std::string& field,
                                 const std::string& source, bool required, int64_t fallback = 0) {
  auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) {
    if (required) return FieldError(source, field, "is required but missing");
    return fallback;
  }
  if (it->is_number_unsigned()) {
    uint64_t u = it->get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return FieldError(source, field, "is too large");
    return static_cast<int64_t>(u);
  }
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_number_float()) {
    double d = it->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e18) {
      return static_cast<int64_t>(d);
    }
  }
  return FieldError(source, field,
                    absl::StrCat("must be an integer, got ", TypeName(*it), " ", it->dump()));
}

absl::StatusOr<double> DoubleField(const json& obj, const std::string& field,
                                   const std::string& source, double fallback) {
  auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_number()) {
    return FieldError(source, field, absl::StrCat("must be a number, got ", TypeName(*it)));
  }
  return it->get<double>();
}

absl::StatusOr<bool> BoolField(const json& obj, const std::string& field, const std::string& source,
                               bool fallback) {
  auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) {
    return FieldError(source, field, absl::StrCat("must be true or false, got ", TypeName(*it)));
  }
  return it->get<bool>();
}

absl::StatusOr<std::string> StringField(const json& obj, const std::string& field,
                                        const std::string& source, const std::string& fallback) {
  auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_string()) {
    return FieldError(source, field, absl::StrCat("must be a string, got ", TypeName(*it)));
  }
  return it->get<std::string>();
}

// eos_token_id is an int or a list of ints in HF configs; appends those not already present.
absl::Status AppendTokenIds(const json& obj, const std::string& field, const std::string& source,
                            std::vector<int64_t>* ids) {
  auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  std::vector<json> items;
  if (it->is_array()) {
    items.assign(it->begin(), it->end());
  } else {
    items.push_back(*it);
  }
  for (const json& item : items) {
    if (!item.is_number_integer() || (!item.is_number_unsigned() && item.get<int64_t>() < 0) ||
        (item.is_number_unsigned() && item.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))) {
      return FieldError(source, field,
                        absl::StrCat("must be a non-negative integer or a list "
                                     "of them, got ",
                                     it->dump()));
    }
    int64_t id = item.get<int64_t>();
    if (std::find(ids->begin(), ids->end(), id) == ids->end()) ids->push_back(id);
  }
  return absl::OkStatus();
}

// Reads the rope scaling description from either spelling: the legacy "rope_scaling"
// ({"type" | "rope_type", "factor", ...}) or the newer "rope_parameters" (the same keys plus
// "rope_theta"). `field` names the object in errors.
absl::Status ParseRopeScaling(const json& obj, const std::string& field, const std::string& source,
                              RopeScalingConfig* out) {
  if (!obj.is_object()) {
    return FieldError(source, field, absl::StrCat("must be an object, got ", TypeName(obj)));
  }
  LOOM_ASSIGN_OR_RETURN(std::string legacy_type, StringField(obj, "type", source, "default"));
  LOOM_ASSIGN_OR_RETURN(std::string type, StringField(obj, "rope_type", source, legacy_type));
  RopeScalingConfig r;
  if (type == "default") {
    *out = r;
    return absl::OkStatus();
  }
  if (type != "linear" && type != "llama3") {
    return FieldError(source, field,
                      absl::StrCat("has unsupported rope type \"", type,
                                   "\" (supported: default, linear, llama3)"));
  }
  r.type = type;
  if (obj.find("factor") == obj.end()) {
    return FieldError(source, field, absl::StrCat("of type \"", type, "\" needs \"factor\""));
  }
  LOOM_ASSIGN_OR_RETURN(r.factor, DoubleField(obj, "factor", source, r.factor));
  if (type == "llama3") {
    LOOM_ASSIGN_OR_RETURN(r.low_freq_factor,
                          DoubleField(obj, "low_freq_factor", source, r.low_freq_factor));
    LOOM_ASSIGN_OR_RETURN(r.high_freq_factor,
                          DoubleField(obj, "high_freq_factor", source, r.high_freq_factor));
    LOOM_ASSIGN_OR_RETURN(r.original_max_position_embeddings,
                          IntField(obj, "original_max_position_embeddings", source, false,
                                   r.original_max_position_embeddings));
  }
  *out = r;
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::string msg = absl::StrCat("cannot read ", path, ": ", std::strerror(errno));
    return errno == ENOENT ? absl::NotFoundError(msg) : absl::InternalError(msg);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const char* HfDTypeName(DType d) {
  switch (d) {
    case DType::kBF16:
      return "bfloat16";
    case DType::kF16:
      return "float16";
    default:
      return "float32";
  }
}

}  // namespace

absl::StatusOr<ModelConfig> ModelConfig::FromJson(const std::string& json_text,
                                                  const std::string& source) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(source, ": invalid JSON"));
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  }
  ModelConfig c;

  // The architecture decides the decoder's flags; model_type alone is accepted for configs that
  // omit "architectures" (transformers resolves those the same way).
  auto arch_it = j.find("architectures");
  if (arch_it != j.end() && !arch_it->is_null()) {
    if (!arch_it->is_array() || arch_it->empty() || !(*arch_it)[0].is_string()) {
      return FieldError(source, "architectures", "must be a non-empty list of strings");
    }
    c.architecture = (*arch_it)[0].get<std::string>();
  } else {
    LOOM_ASSIGN_OR_RETURN(std::string model_type, StringField(j, "model_type", source, ""));
    for (const Architecture& a : kArchitectures) {
      if (model_type == a.model_type) c.architecture = a.name;
    }
    if (c.architecture.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": no \"architectures\" and no known \"model_type\" (supported: ",
                       SupportedArchitectures(), ")"));
    }
  }
  for (const Architecture& a : kArchitectures) {
    if (c.architecture == a.name) c.model_type = a.model_type;
  }
  if (c.model_type.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported architecture \"", c.architecture,
                                                   "\" in ", source,
                                                   " (supported: ", SupportedArchitectures(), ")"));
  }

  // The decoder implements SwiGLU MLPs without biases; anything else would load and run wrong.
  LOOM_ASSIGN_OR_RETURN(std::string act, StringField(j, "hidden_act", source, "silu"));
  if (act != "silu") {
    return FieldError(source, "hidden_act",
                      absl::StrCat("is \"", act,
                                   "\"; only \"silu\" is "
                                   "supported"));
  }
  LOOM_ASSIGN_OR_RETURN(bool mlp_bias, BoolField(j, "mlp_bias", source, false));
  if (mlp_bias) return FieldError(source, "mlp_bias", "is true; MLP biases are not supported");

  LOOM_ASSIGN_OR_RETURN(c.hidden_size, IntField(j, "hidden_size", source, true));
  LOOM_ASSIGN_OR_RETURN(c.intermediate_size, IntField(j, "intermediate_size", source, true));
  LOOM_ASSIGN_OR_RETURN(c.num_hidden_layers, IntField(j, "num_hidden_layers", source, true));
  LOOM_ASSIGN_OR_RETURN(c.num_attention_heads, IntField(j, "num_attention_heads", source, true));
  LOOM_ASSIGN_OR_RETURN(c.vocab_size, IntField(j, "vocab_size", source, true));
  LOOM_ASSIGN_OR_RETURN(c.num_key_value_heads,
                        IntField(j, "num_key_value_heads", source, false, c.num_attention_heads));
  const int64_t default_head_dim =
      c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0;
  LOOM_ASSIGN_OR_RETURN(c.head_dim, IntField(j, "head_dim", source, false, default_head_dim));
  LOOM_ASSIGN_OR_RETURN(c.max_position_embeddings,
                        IntField(j, "max_position_embeddings", source, false, 2048));
  LOOM_ASSIGN_OR_RETURN(c.rms_norm_eps, DoubleField(j, "rms_norm_eps", source, 1e-6));
  LOOM_ASSIGN_OR_RETURN(c.rope_theta, DoubleField(j, "rope_theta", source, 10000.0));

  // Newer transformers write "rope_parameters" (holding rope_theta too); it wins over the legacy
  // "rope_scaling" when both are present.
  auto params_it = j.find("rope_parameters");
  auto scaling_it = j.find("rope_scaling");
  if (params_it != j.end() && !params_it->is_null()) {
    LOOM_RETURN_IF_ERROR(ParseRopeScaling(*params_it, "rope_parameters", source, &c.rope_scaling));
    LOOM_ASSIGN_OR_RETURN(c.rope_theta,
                          DoubleField(*params_it, "rope_theta", source, c.rope_theta));
  } else if (scaling_it != j.end() && !scaling_it->is_null()) {
    LOOM_RETURN_IF_ERROR(ParseRopeScaling(*scaling_it, "rope_scaling", source, &c.rope_scaling));
  }

  LOOM_ASSIGN_OR_RETURN(c.tie_word_embeddings, BoolField(j, "tie_word_embeddings", source, false));
  LOOM_ASSIGN_OR_RETURN(c.attention_bias, BoolField(j, "attention_bias", source, false));
  if (c.architecture == "Qwen2ForCausalLM") c.attention_bias = true;  // Qwen2 has no switch
  c.qk_norm = c.architecture == "Qwen3ForCausalLM";

  // "dtype" is the newer spelling of "torch_dtype".
  LOOM_ASSIGN_OR_RETURN(std::string torch_dtype, StringField(j, "torch_dtype", source, "float32"));
  LOOM_ASSIGN_OR_RETURN(std::string dtype_name, StringField(j, "dtype", source, torch_dtype));
  if (dtype_name.rfind("torch.", 0) == 0) dtype_name = dtype_name.substr(6);
  absl::StatusOr<DType> dtype = ParseFloatDTypeName(dtype_name);
  if (!dtype.ok()) {
    return FieldError(source, j.contains("dtype") ? "dtype" : "torch_dtype",
                      std::string(dtype.status().message()));
  }
  c.torch_dtype = *dtype;

  LOOM_ASSIGN_OR_RETURN(c.bos_token_id, IntField(j, "bos_token_id", source, false, -1));
  LOOM_RETURN_IF_ERROR(AppendTokenIds(j, "eos_token_id", source, &c.eos_token_ids));

  absl::Status valid = c.Validate();
  if (!valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", valid.message()));
  }
  return c;
}

absl::StatusOr<ModelConfig> ModelConfig::FromModelDir(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string config_path = (fs::path(dir) / "config.json").string();
  LOOM_ASSIGN_OR_RETURN(std::string text, ReadFile(config_path));
  LOOM_ASSIGN_OR_RETURN(ModelConfig c, FromJson(text, config_path));

  const std::string gen_path = (fs::path(dir) / "generation_config.json").string();
  std::error_code ec;
  if (fs::exists(gen_path, ec)) {
    LOOM_ASSIGN_OR_RETURN(std::string gen_text, ReadFile(gen_path));
    json g = json::parse(gen_text, nullptr, /*allow_exceptions=*/false);
    if (g.is_discarded() || !g.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(gen_path, ": not a valid JSON object"));
    }
    LOOM_RETURN_IF_ERROR(AppendTokenIds(g, "eos_token_id", gen_path, &c.eos_token_ids));
    absl::Status valid = c.Validate();
    if (!valid.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(gen_path, ": ", valid.message()));
    }
  }
  return c;
}

absl::Status ModelConfig::Validate() const {
  auto bad = [](const std::string& what) { return absl::InvalidArgumentError(what); };
  const std::pair<const char*, int64_t> positive[] = {
      {"hidden_size", hidden_size},
      {"intermediate_size", intermediate_size},
      {"num_hidden_layers", num_hidden_layers},
      {"num_attention_heads", num_attention_heads},
      {"num_key_value_heads", num_key_value_heads},
      {"head_dim", head_dim},
      {"vocab_size", vocab_size},
      {"max_position_embeddings", max_position_embeddings},
  };
  for (const auto& [name, value] : positive) {
    if (value <= 0) return bad(absl::StrCat(name, " must be positive, got ", value));
  }
  if (num_attention_heads % num_key_value_heads != 0) {
    return bad(absl::StrCat("num_attention_heads (", num_attention_heads,
                            ") must be a multiple of num_key_value_heads (", num_key_value_heads,
                            ")"));
  }
  // Rotary embedding rotates pairs of channels.
  if (head_dim % 2 != 0) return bad(absl::StrCat("head_dim must be even, got ", head_dim));
  if (!(rms_norm_eps > 0) || !std::isfinite(rms_norm_eps)) {
    return bad(absl::StrCat("rms_norm_eps must be positive, got ", rms_norm_eps));
  }
  if (!(rope_theta > 0) || !std::isfinite(rope_theta)) {
    return bad(absl::StrCat("rope_theta must be positive, got ", rope_theta));
  }
  const RopeScalingConfig& r = rope_scaling;
  if (r.type != "default" && r.type != "linear" && r.type != "llama3") {
    return bad(absl::StrCat("unsupported rope scaling type \"", r.type,
                            "\" (supported: default, linear, llama3)"));
  }
  if (r.type != "default" && (!(r.factor > 0) || !std::isfinite(r.factor))) {
    return bad(absl::StrCat("rope scaling factor must be positive, got ", r.factor));
  }
  if (r.type == "llama3") {
    // The llama3 rule interpolates between the two wavelength bounds; equal or inverted factors
    // would divide by zero or flip the ramp.
    if (!(r.low_freq_factor > 0) || !(r.high_freq_factor > r.low_freq_factor)) {
      return bad(
          absl::StrCat("llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor, "
                       "got ",
                       r.low_freq_factor, " and ", r.high_freq_factor));
    }
    if (r.original_max_position_embeddings <= 0) {
      return bad(
          absl::StrCat("llama3 rope scaling needs positive "
                       "original_max_position_embeddings, got ",
                       r.original_max_position_embeddings));
    }
  }
  if (bos_token_id < -1 || bos_token_id >= vocab_size) {
    return bad(
        absl::StrCat("bos_token_id ", bos_token_id, " is outside the vocabulary of ", vocab_size));
  }
  for (int64_t id : eos_token_ids) {
    if (id < 0 || id >= vocab_size) {
      return bad(absl::StrCat("eos_token_id ", id, " is outside the vocabulary of ", vocab_size));
    }
  }
  return absl::OkStatus();
}

std::string ModelConfig::ToJson() const {
  // ordered_json keeps the conventional key order, which makes the file easy to read and diff.
  nlohmann::ordered_json j;
  j["architectures"] = {architecture};
  j["model_type"] = model_type;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["head_dim"] = head_dim;
  j["vocab_size"] = vocab_size;
  j["max_position_embeddings"] = max_position_embeddings;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  if (rope_scaling.type == "default") {
    j["rope_scaling"] = nullptr;
  } else {
    nlohmann::ordered_json r;
    // Both spellings: transformers before 4.43 read "type", later ones "rope_type".
    r["type"] = rope_scaling.type;
    r["rope_type"] = rope_scaling.type;
    r["factor"] = rope_scaling.factor;
    if (rope_scaling.type == "llama3") {
      r["low_freq_factor"] = rope_scaling.low_freq_factor;
      r["high_freq_factor"] = rope_scaling.high_freq_factor;
      r["original_max_position_embeddings"] = rope_scaling.original_max_position_embeddings;
    }
    j["rope_scaling"] = r;
  }
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["attention_bias"] = attention_bias;
  j["hidden_act"] = "silu";
  j["torch_dtype"] = HfDTypeName(torch_dtype);
  if (bos_token_id >= 0) {
    j["bos_token_id"] = bos_token_id;
  } else {
    j["bos_token_id"] = nullptr;
  }
  if (eos_token_ids.empty()) {
    j["eos_token_id"] = nullptr;
  } else if (eos_token_ids.size() == 1) {
    j["eos_token_id"] = eos_token_ids[0];
  } else {
    j["eos_token_id"] = eos_token_ids;
  }
  // Loom's decoder attends to the whole context. Said explicitly because transformers'
  // MistralConfig and Qwen2Config default sliding_window to 4096 when the key is absent.
  j["sliding_window"] = nullptr;
  if (model_type == "qwen2" || model_type == "qwen3") j["use_sliding_window"] = false;
  return j.dump(2) + "\n";
}

}  // namespace loom
