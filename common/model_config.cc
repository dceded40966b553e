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
#include "common/json_fields.h"
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

// More layers than any model has (the largest have a few hundred); the bound keeps a corrupt
// count from sizing the per-layer tables.
constexpr int64_t kMaxHiddenLayers = 4096;

// config.json as HF writes it: null is "unset", and hand-edited files hold integers as 1024.0.
JsonPlace InConfig(const std::string& source) {
  return JsonPlace{.file = source, .null_is_absent = true, .integral_floats = true};
}

absl::Status FieldError(const std::string& source, const std::string& field,
                        const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(InConfig(source).FieldName(field), " ", what));
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

constexpr char kRopeTypes[] = "default, linear, llama3, yarn, dynamic";

bool KnownRopeType(const std::string& type) {
  return type == "default" || type == "linear" || type == "llama3" || type == "yarn" ||
         type == "dynamic";
}

// Reads the rope scaling description from either spelling: the legacy "rope_scaling"
// ({"type" | "rope_type", "factor", ...}) or the newer "rope_parameters" (the same keys plus
// "rope_theta"). `field` names the object in errors. original_max_position_embeddings is left 0
// when absent (FromJson fills in HF's default).
absl::Status ParseRopeScaling(const json& obj, const std::string& field, const std::string& source,
                              RopeScalingConfig* out) {
  if (!obj.is_object()) {
    return FieldError(source, field, absl::StrCat("must be an object, got ", TypeName(obj)));
  }
  const JsonPlace place = InConfig(source).Child(field);
  LOOM_ASSIGN_OR_RETURN(std::string legacy_type, JsonString(obj, "type", place, "default"));
  LOOM_ASSIGN_OR_RETURN(std::string type, JsonString(obj, "rope_type", place, legacy_type));
  RopeScalingConfig r;
  if (type == "default") {
    *out = r;
    return absl::OkStatus();
  }
  if (!KnownRopeType(type)) {
    return FieldError(source, field,
                      absl::StrCat("has unsupported rope type \"", type, "\" (supported: ",
                                   kRopeTypes, ")"));
  }
  r.type = type;
  if (obj.find("factor") == obj.end()) {
    return FieldError(source, field, absl::StrCat("of type \"", type, "\" needs \"factor\""));
  }
  LOOM_ASSIGN_OR_RETURN(r.factor, JsonNumber(obj, "factor", place, r.factor));
  if (type == "llama3" || type == "yarn") {
    LOOM_ASSIGN_OR_RETURN(r.original_max_position_embeddings,
                          JsonInt(obj, "original_max_position_embeddings", place, 0));
  }
  if (type == "llama3") {
    LOOM_ASSIGN_OR_RETURN(r.low_freq_factor,
                          JsonNumber(obj, "low_freq_factor", place, r.low_freq_factor));
    LOOM_ASSIGN_OR_RETURN(r.high_freq_factor,
                          JsonNumber(obj, "high_freq_factor", place, r.high_freq_factor));
  }
  if (type == "yarn") {
    LOOM_ASSIGN_OR_RETURN(r.attention_factor,
                          JsonNumber(obj, "attention_factor", place, r.attention_factor));
    // HF takes a beta of 0 (or null) as "use the default".
    LOOM_ASSIGN_OR_RETURN(r.beta_fast, JsonNumber(obj, "beta_fast", place, 0.0));
    LOOM_ASSIGN_OR_RETURN(r.beta_slow, JsonNumber(obj, "beta_slow", place, 0.0));
    if (r.beta_fast == 0) r.beta_fast = 32.0;
    if (r.beta_slow == 0) r.beta_slow = 1.0;
    LOOM_ASSIGN_OR_RETURN(r.mscale, JsonNumber(obj, "mscale", place, 0.0));
    LOOM_ASSIGN_OR_RETURN(r.mscale_all_dim, JsonNumber(obj, "mscale_all_dim", place, 0.0));
    LOOM_ASSIGN_OR_RETURN(r.truncate, JsonBool(obj, "truncate", place, true));
  }
  *out = r;
  return absl::OkStatus();
}

// Per-layer sliding windows, as HF's configuration classes derive them. Mistral: one window for
// every layer ("sliding_window", 4096 when absent, null = none; "layer_types" is ignored, as
// HF's Mistral does). Qwen2/Qwen3: a window only with "use_sliding_window", on the layers
// "layer_types" marks "sliding_attention" (by default those from "max_window_layers" on).
// Llama: none (HF's Llama ignores both fields).
absl::Status ParseWindows(const json& j, const std::string& source, ModelConfig* c) {
  const JsonPlace place = InConfig(source);
  // A count outside [1, kMaxHiddenLayers] sizes no table: Validate refuses it once parsing is
  // done (a negative one cast to size_t was a length_error thrown out of the parser).
  if (c->num_hidden_layers <= 0 || c->num_hidden_layers > kMaxHiddenLayers) {
    return absl::OkStatus();
  }
  c->layer_windows.assign(static_cast<size_t>(c->num_hidden_layers), 0);
  if (c->model_type == "llama") return absl::OkStatus();
  LOOM_ASSIGN_OR_RETURN(int64_t window, JsonInt(j, "sliding_window", place, 0));
  const bool absent = !j.contains("sliding_window");
  if (c->model_type == "mistral") {
    if (absent) window = 4096;
    if (window < 0) return FieldError(source, "sliding_window", "must be positive or null");
    for (int64_t& w : c->layer_windows) w = window;
    return absl::OkStatus();
  }
  LOOM_ASSIGN_OR_RETURN(bool use, JsonBool(j, "use_sliding_window", place, false));
  if (absent) window = 4096;
  if (!use || window == 0) window = 0;  // null: no window
  if (window < 0) return FieldError(source, "sliding_window", "must be positive or null");
  LOOM_ASSIGN_OR_RETURN(int64_t max_window_layers, JsonInt(j, "max_window_layers", place, 28));
  std::vector<bool> sliding(static_cast<size_t>(c->num_hidden_layers));
  for (int64_t i = 0; i < c->num_hidden_layers; ++i) sliding[i] = i >= max_window_layers;
  auto it = j.find("layer_types");
  if (it != j.end() && !it->is_null()) {
    if (!it->is_array() || static_cast<int64_t>(it->size()) != c->num_hidden_layers) {
      return FieldError(source, "layer_types",
                        absl::StrCat("must be a list of ", c->num_hidden_layers,
                                     " layer types (one per layer)"));
    }
    for (size_t i = 0; i < it->size(); ++i) {
      const json& t = (*it)[i];
      if (t == "sliding_attention") {
        sliding[i] = true;
      } else if (t == "full_attention") {
        sliding[i] = false;
      } else {
        return FieldError(source, "layer_types",
                          absl::StrCat("has unsupported layer type ", t.dump(), " at layer ", i,
                                       " (supported: full_attention, sliding_attention)"));
      }
    }
  }
  for (size_t i = 0; i < sliding.size(); ++i) c->layer_windows[i] = sliding[i] ? window : 0;
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

}  // namespace

absl::StatusOr<ModelConfig> ModelConfig::FromJson(const std::string& json_text,
                                                  const std::string& source) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(source, ": invalid JSON"));
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  }
  const JsonPlace place = InConfig(source);
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
    LOOM_ASSIGN_OR_RETURN(std::string model_type, JsonString(j, "model_type", place, ""));
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

  // The decoder implements SwiGLU MLPs; anything else would load and run wrong.
  LOOM_ASSIGN_OR_RETURN(std::string act, JsonString(j, "hidden_act", place, "silu"));
  if (act != "silu") {
    return FieldError(source, "hidden_act",
                      absl::StrCat("is \"", act,
                                   "\"; only \"silu\" is "
                                   "supported"));
  }

  LOOM_ASSIGN_OR_RETURN(c.hidden_size, JsonRequiredInt(j, "hidden_size", place));
  LOOM_ASSIGN_OR_RETURN(c.intermediate_size, JsonRequiredInt(j, "intermediate_size", place));
  LOOM_ASSIGN_OR_RETURN(c.num_hidden_layers, JsonRequiredInt(j, "num_hidden_layers", place));
  LOOM_ASSIGN_OR_RETURN(c.num_attention_heads, JsonRequiredInt(j, "num_attention_heads", place));
  LOOM_ASSIGN_OR_RETURN(c.vocab_size, JsonRequiredInt(j, "vocab_size", place));
  LOOM_ASSIGN_OR_RETURN(c.num_key_value_heads,
                        JsonInt(j, "num_key_value_heads", place, c.num_attention_heads));
  const int64_t default_head_dim =
      c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0;
  LOOM_ASSIGN_OR_RETURN(c.head_dim, JsonInt(j, "head_dim", place, default_head_dim));
  LOOM_ASSIGN_OR_RETURN(c.max_position_embeddings,
                        JsonInt(j, "max_position_embeddings", place, 2048));
  LOOM_ASSIGN_OR_RETURN(c.rms_norm_eps, JsonNumber(j, "rms_norm_eps", place, 1e-6));
  LOOM_ASSIGN_OR_RETURN(c.rope_theta, JsonNumber(j, "rope_theta", place, 10000.0));

  // Newer transformers write "rope_parameters" (holding rope_theta too); it wins over the legacy
  // "rope_scaling" when both are present.
  auto params_it = j.find("rope_parameters");
  auto scaling_it = j.find("rope_scaling");
  if (params_it != j.end() && !params_it->is_null()) {
    LOOM_RETURN_IF_ERROR(ParseRopeScaling(*params_it, "rope_parameters", source, &c.rope_scaling));
    LOOM_ASSIGN_OR_RETURN(c.rope_theta, JsonNumber(*params_it, "rope_theta",
                                                   place.Child("rope_parameters"), c.rope_theta));
  } else if (scaling_it != j.end() && !scaling_it->is_null()) {
    LOOM_RETURN_IF_ERROR(ParseRopeScaling(*scaling_it, "rope_scaling", source, &c.rope_scaling));
  }

  // Rotating only part of each head is another rotary layout the decoder does not implement.
  for (const auto& [object, where] :
       {std::pair{&j, place}, std::pair{params_it != j.end() && params_it->is_object()
                                            ? &*params_it
                                            : &j,
                                        place.Child("rope_parameters")}}) {
    LOOM_ASSIGN_OR_RETURN(double partial, JsonNumber(*object, "partial_rotary_factor", where, 1.0));
    if (partial != 1.0) {
      return FieldError(source, "partial_rotary_factor",
                        absl::StrCat("is ", partial, "; only 1 (the whole head rotates) is "
                                     "supported"));
    }
  }

  // HF: a top-level original_max_position_embeddings wins (Phi-3's spelling); else the
  // pre-training context defaults to max_position_embeddings.
  if (c.rope_scaling.type == "llama3" || c.rope_scaling.type == "yarn") {
    LOOM_ASSIGN_OR_RETURN(int64_t top, JsonInt(j, "original_max_position_embeddings", place, 0));
    if (top > 0) c.rope_scaling.original_max_position_embeddings = top;
    if (c.rope_scaling.original_max_position_embeddings == 0) {
      c.rope_scaling.original_max_position_embeddings = c.max_position_embeddings;
    }
  }

  LOOM_ASSIGN_OR_RETURN(c.tie_word_embeddings, JsonBool(j, "tie_word_embeddings", place, false));
  // Which projections carry biases, as each HF architecture builds them.
  LOOM_ASSIGN_OR_RETURN(bool attention_bias, JsonBool(j, "attention_bias", place, false));
  LOOM_ASSIGN_OR_RETURN(bool mlp_bias, JsonBool(j, "mlp_bias", place, false));
  if (c.model_type == "llama") {
    c.qkv_bias = c.o_bias = attention_bias;
    c.mlp_bias = mlp_bias;
  } else if (c.model_type == "qwen3") {
    c.qkv_bias = c.o_bias = attention_bias;
  } else if (c.model_type == "qwen2") {
    c.qkv_bias = true;  // Qwen2 has no switch
  }
  c.qk_norm = c.architecture == "Qwen3ForCausalLM";
  LOOM_RETURN_IF_ERROR(ParseWindows(j, source, &c));

  // "dtype" is the newer spelling of "torch_dtype".
  LOOM_ASSIGN_OR_RETURN(std::string torch_dtype, JsonString(j, "torch_dtype", place, "float32"));
  LOOM_ASSIGN_OR_RETURN(std::string dtype_name, JsonString(j, "dtype", place, torch_dtype));
  if (dtype_name.rfind("torch.", 0) == 0) dtype_name = dtype_name.substr(6);
  absl::StatusOr<DType> dtype = ParseFloatDTypeName(dtype_name);
  if (!dtype.ok()) {
    return FieldError(source, j.contains("dtype") ? "dtype" : "torch_dtype",
                      std::string(dtype.status().message()));
  }
  c.torch_dtype = *dtype;

  LOOM_ASSIGN_OR_RETURN(c.bos_token_id, JsonInt(j, "bos_token_id", place, -1));
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
  if (num_hidden_layers > kMaxHiddenLayers) {
    return bad(absl::StrCat("num_hidden_layers must be at most ", kMaxHiddenLayers, ", got ",
                            num_hidden_layers));
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
  if (!KnownRopeType(r.type)) {
    return bad(absl::StrCat("unsupported rope scaling type \"", r.type, "\" (supported: ",
                            kRopeTypes, ")"));
  }
  if ((r.type == "yarn" || r.type == "dynamic") && !(r.factor >= 1)) {
    return bad(absl::StrCat(r.type, " rope scaling needs factor >= 1, got ", r.factor));
  }
  if (r.type == "yarn" && r.original_max_position_embeddings <= 0) {
    return bad(absl::StrCat("yarn rope scaling needs positive original_max_position_embeddings, "
                            "got ", r.original_max_position_embeddings));
  }
  if (r.type == "yarn" && (!(r.beta_fast > 0) || !(r.beta_slow > 0) ||
                           !std::isfinite(r.attention_factor))) {
    return bad("yarn rope scaling needs positive beta_fast, beta_slow and a finite "
               "attention_factor");
  }
  if (r.type == "dynamic" && head_dim <= 2) {
    return bad(absl::StrCat("dynamic rope scaling needs head_dim > 2, got ", head_dim));
  }
  if (!layer_windows.empty() &&
      static_cast<int64_t>(layer_windows.size()) != num_hidden_layers) {
    return bad(absl::StrCat("layer_windows has ", layer_windows.size(), " entries for ",
                            num_hidden_layers, " layers"));
  }
  for (int64_t w : layer_windows) {
    if (w < 0) return bad(absl::StrCat("sliding_window must be positive, got ", w));
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

int64_t ModelConfig::MaxContextLength() const {
  const RopeScalingConfig& r = rope_scaling;
  if (r.type == "yarn") {
    return std::max(max_position_embeddings,
                    static_cast<int64_t>(r.original_max_position_embeddings * r.factor));
  }
  if (r.type == "dynamic") {
    return std::max(max_position_embeddings,
                    static_cast<int64_t>(max_position_embeddings * r.factor));
  }
  return max_position_embeddings;
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
    }
    if (rope_scaling.type == "llama3" || rope_scaling.type == "yarn") {
      r["original_max_position_embeddings"] = rope_scaling.original_max_position_embeddings;
    }
    if (rope_scaling.type == "yarn") {
      if (rope_scaling.attention_factor >= 0) {
        r["attention_factor"] = rope_scaling.attention_factor;
      }
      r["beta_fast"] = rope_scaling.beta_fast;
      r["beta_slow"] = rope_scaling.beta_slow;
      if (rope_scaling.mscale != 0) r["mscale"] = rope_scaling.mscale;
      if (rope_scaling.mscale_all_dim != 0) r["mscale_all_dim"] = rope_scaling.mscale_all_dim;
      r["truncate"] = rope_scaling.truncate;
    }
    j["rope_scaling"] = r;
  }
  j["tie_word_embeddings"] = tie_word_embeddings;
  // Qwen2's q/k/v biases need no switch; Llama and Qwen3 spell theirs attention_bias.
  j["attention_bias"] = model_type != "qwen2" && qkv_bias;
  if (model_type == "llama") j["mlp_bias"] = mlp_bias;
  j["hidden_act"] = "silu";
  j["torch_dtype"] = FloatDTypeName(torch_dtype);
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
  // Said explicitly even without a window, because transformers' MistralConfig and Qwen2Config
  // default sliding_window to 4096 when the key is absent.
  const int64_t window =
      layer_windows.empty() ? 0 : *std::max_element(layer_windows.begin(), layer_windows.end());
  if (window == 0) {
    j["sliding_window"] = nullptr;
  } else {
    j["sliding_window"] = window;
  }
  if (model_type == "qwen2" || model_type == "qwen3") {
    j["use_sliding_window"] = window > 0;
    if (window > 0) {
      std::vector<std::string> types;
      for (int64_t w : layer_windows) types.push_back(w > 0 ? "sliding_attention" : "full_attention");
      j["layer_types"] = types;
    }
  }
  return j.dump(2) + "\n";
}

absl::Status CheckSameModel(const ModelConfig& a, const ModelConfig& b) {
  auto differ = [](const char* what, const auto& x, const auto& y) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the new model differs from the serving one in ", what, " (", x, " vs ", y,
        "): weights of another architecture or shape cannot be loaded at run time"));
  };
  if (a.architecture != b.architecture) return differ("architecture", a.architecture, b.architecture);
  if (a.hidden_size != b.hidden_size) return differ("hidden_size", a.hidden_size, b.hidden_size);
  if (a.intermediate_size != b.intermediate_size) {
    return differ("intermediate_size", a.intermediate_size, b.intermediate_size);
  }
  if (a.num_hidden_layers != b.num_hidden_layers) {
    return differ("num_hidden_layers", a.num_hidden_layers, b.num_hidden_layers);
  }
  if (a.num_attention_heads != b.num_attention_heads) {
    return differ("num_attention_heads", a.num_attention_heads, b.num_attention_heads);
  }
  if (a.num_key_value_heads != b.num_key_value_heads) {
    return differ("num_key_value_heads", a.num_key_value_heads, b.num_key_value_heads);
  }
  if (a.head_dim != b.head_dim) return differ("head_dim", a.head_dim, b.head_dim);
  if (a.vocab_size != b.vocab_size) return differ("vocab_size", a.vocab_size, b.vocab_size);
  if (a.tie_word_embeddings != b.tie_word_embeddings) {
    return differ("tie_word_embeddings", a.tie_word_embeddings, b.tie_word_embeddings);
  }
  if (a.qkv_bias != b.qkv_bias || a.o_bias != b.o_bias) {
    return differ("attention_bias", a.qkv_bias, b.qkv_bias);
  }
  if (a.mlp_bias != b.mlp_bias) return differ("mlp_bias", a.mlp_bias, b.mlp_bias);
  if (a.layer_windows != b.layer_windows) {
    return differ("sliding_window", absl::StrJoin(a.layer_windows, ","),
                  absl::StrJoin(b.layer_windows, ","));
  }
  if (a.rope_scaling.type != b.rope_scaling.type) {
    return differ("rope scaling", a.rope_scaling.type, b.rope_scaling.type);
  }
  if (a.qk_norm != b.qk_norm) return differ("qk_norm", a.qk_norm, b.qk_norm);
  if (a.rope_theta != b.rope_theta) return differ("rope_theta", a.rope_theta, b.rope_theta);
  if (a.rms_norm_eps != b.rms_norm_eps) return differ("rms_norm_eps", a.rms_norm_eps, b.rms_norm_eps);
  return absl::OkStatus();
}

}  // namespace loom
