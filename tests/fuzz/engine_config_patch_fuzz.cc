// Fuzzes the engine config's JSON: update_config's merge patch (ApplyConfigPatch) and the
// whole-config form a worker's Init carries (EngineConfigFromJson); the input is the JSON text
// for both. An accepted patch yields a valid config that differs from the current one only in
// the run-time settings, and every config read back from its JSON is itself.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/engine_config.h"
#include "common/engine_config_json.h"
#include "common/engine_config_patch.h"

namespace {

loom::EngineConfig Current() {
  loom::EngineConfig c;
  c.load.model = "/models/a";
  c.load.weight_dtype = loom::DType::kBF16;
  c.scheduler.max_num_seqs = 8;
  c.num_threads = 2;
  return c;
}

void CheckRoundTrip(const loom::EngineConfig& config) {
  const std::string json = loom::EngineConfigToJson(config);
  auto again = loom::EngineConfigFromJson(json);
  if (!again.ok() || loom::EngineConfigToJson(*again) != json) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  static const loom::EngineConfig current = Current();
  auto next = loom::ApplyConfigPatch(current, text);
  if (next.ok()) {
    if (!next->Validate().ok()) std::abort();
    // Only load_config's run-time keys may change (RuntimeConfigKeys).
    loom::EngineConfig fixed = *next;
    fixed.load.model = current.load.model;
    fixed.load.load_format = current.load.load_format;
    fixed.load.strategy = current.load.strategy;
    fixed.load.dummy_seed = current.load.dummy_seed;
    fixed.load.dummy_range = current.load.dummy_range;
    if (loom::EngineConfigToJson(fixed) != loom::EngineConfigToJson(current)) std::abort();
    CheckRoundTrip(*next);
  }
  auto whole = loom::EngineConfigFromJson(text);
  if (whole.ok()) CheckRoundTrip(*whole);
  return 0;
}
