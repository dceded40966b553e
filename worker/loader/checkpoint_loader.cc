#include "worker/loader/checkpoint_loader.h"

#include <chrono>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/safetensors.h"
#include "common/status.h"

namespace loom {

absl::StatusOr<LoadReport> LoadCheckpoint(const std::string& model_dir, Decoder& decoder) {
  const auto start = std::chrono::steady_clock::now();
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> ckpt, Checkpoint::Open(model_dir));
  LoadReport report;
  std::set<std::string> expected;
  for (const ParameterInfo& p : decoder.Parameters()) {
    expected.insert(p.name);
    if (!ckpt->Has(p.name)) {
      return absl::NotFoundError(absl::StrCat(model_dir, ": tensor ", p.name,
                                              " is missing from the checkpoint"));
    }
    LOOM_ASSIGN_OR_RETURN(Tensor t, ckpt->Get(p.name));
    absl::Status s = decoder.LoadWeight(p.name, t);
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat(ckpt->FileOf(p.name), ": ", s.message()));
    }
    ++report.tensors;
    report.bytes_read += static_cast<int64_t>(t.nbytes());
  }
  for (const std::string& name : ckpt->Names()) {
    if (expected.count(name) || absl::EndsWith(name, "rotary_emb.inv_freq")) continue;
    if (name == "lm_head.weight" && decoder.config().tie_word_embeddings) continue;
    return absl::InvalidArgumentError(absl::StrCat(ckpt->FileOf(name), ": unexpected tensor ",
                                                   name, " for ",
                                                   decoder.config().architecture));
  }
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace loom
