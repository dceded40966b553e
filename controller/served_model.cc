#include "controller/served_model.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace loom {
namespace {

namespace fs = std::filesystem;

// The contents of `path`, or "" when it does not exist.
absl::StatusOr<std::string> OptionalFile(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::string();
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path.string()));
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

absl::StatusOr<GenerationDefaults> ReadGenerationDefaults(const fs::path& dir) {
  GenerationDefaults defaults;
  const fs::path path = dir / "generation_config.json";
  LOOM_ASSIGN_OR_RETURN(std::string text, OptionalFile(path));
  if (text.empty()) return defaults;
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": not a valid JSON object"));
  }
  if (auto it = j.find("max_new_tokens"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path.string(), ": \"max_new_tokens\" must be a positive integer"));
    }
    defaults.max_new_tokens = it->get<int64_t>();
  }
  return defaults;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const ServedModel>> ServedModel::Load(
    const std::string& dir, const SchedulerConfig& limits, const ServedModel* current) {
  std::shared_ptr<ServedModel> m(new ServedModel());
  m->dir_ = dir;
  LOOM_ASSIGN_OR_RETURN(m->config_, ModelConfig::FromModelDir(dir));
  const int64_t positions = m->config_.MaxContextLength();
  m->max_model_len_ =
      limits.max_model_len > 0 ? std::min(limits.max_model_len, positions) : positions;
  LOOM_ASSIGN_OR_RETURN(m->generation_, ReadGenerationDefaults(dir));
  LOOM_ASSIGN_OR_RETURN(std::string tokenizer_json, OptionalFile(fs::path(dir) / "tokenizer.json"));
  if (tokenizer_json.empty()) return m;
  LOOM_ASSIGN_OR_RETURN(std::string tokenizer_config,
                        OptionalFile(fs::path(dir) / "tokenizer_config.json"));
  m->tokenizer_hash_ = absl::HashOf(tokenizer_json, tokenizer_config) | 1;  // never 0
  if (current != nullptr && current->tokenizer_ != nullptr &&
      current->tokenizer_hash_ == m->tokenizer_hash_) {
    m->tokenizer_ = current->tokenizer_;
    return m;
  }
  LOOM_ASSIGN_OR_RETURN(m->tokenizer_, tokenizer::Tokenizer::FromModelDir(dir));
  return m;
}

absl::Status ServedModel::CheckCanReplace(const ModelConfig& ranks) const {
  absl::Status same = CheckSameModel(ranks, config_);
  if (!same.ok()) return absl::InvalidArgumentError(absl::StrCat(dir_, ": ", same.message()));
  // The ranks built their rotary tables at start, for their scaling and context length.
  auto differ = [&](const char* what, const auto& serving, const auto& next) {
    return absl::InvalidArgumentError(absl::StrCat(
        dir_, ": the new model differs from the serving one in ", what, " (", serving, " vs ",
        next, "), which cannot change at run time: the ranks' rotary tables are built at start"));
  };
  const RopeScalingConfig& a = ranks.rope_scaling;
  const RopeScalingConfig& b = config_.rope_scaling;
  if (a.type != b.type || a.factor != b.factor || a.low_freq_factor != b.low_freq_factor ||
      a.high_freq_factor != b.high_freq_factor ||
      a.original_max_position_embeddings != b.original_max_position_embeddings ||
      a.attention_factor != b.attention_factor || a.beta_fast != b.beta_fast ||
      a.beta_slow != b.beta_slow || a.mscale != b.mscale ||
      a.mscale_all_dim != b.mscale_all_dim || a.truncate != b.truncate) {
    return differ("rope_scaling", absl::StrCat(a.type, " factor ", a.factor),
                  absl::StrCat(b.type, " factor ", b.factor));
  }
  if (config_.MaxContextLength() > ranks.MaxContextLength()) {
    return differ("context length (max_position_embeddings, larger)", ranks.MaxContextLength(),
                  config_.MaxContextLength());
  }
  return absl::OkStatus();
}

std::vector<int32_t> ServedModel::eos_token_ids() const {
  return std::vector<int32_t>(config_.eos_token_ids.begin(), config_.eos_token_ids.end());
}

}  // namespace loom
