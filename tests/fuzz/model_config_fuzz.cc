// Fuzzes ModelConfig::FromJson: the input is a config.json's text. An accepted config must be
// valid, and survive a round trip through ToJson (what the model-making tools write).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = loom::ModelConfig::FromJson(text, "config.json");
  if (!config.ok()) return 0;
  if (!config->Validate().ok()) std::abort();
  // What the runner asks of every accepted config.
  (void)config->MaxContextLength();
  for (int64_t layer = 0; layer < config->num_hidden_layers; ++layer) (void)config->Window(layer);
  auto again = loom::ModelConfig::FromJson(config->ToJson(), "config.json (round trip)");
  if (!again.ok() || again->ToJson() != config->ToJson()) std::abort();
  return 0;
}
