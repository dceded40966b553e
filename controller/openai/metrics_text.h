// GET /metrics: the engine's status in Prometheus' text exposition format (version 0.0.4).
//
// vLLM's metric names with a `loom:` prefix — requests running and waiting, KV cache usage,
// prefix cache queries and hits, prompt and generation token totals, requests finished by reason,
// the TTFT / inter-token / end-to-end / queue-time histograms — and Loom's own: whether the
// server serves, the serving and staged weight versions, preemptions, per-rank readiness, and
// per-rank weight-load progress (bytes done and total of the load or stage under way, or of the
// last one).
#ifndef LOOM_CONTROLLER_OPENAI_METRICS_TEXT_H_
#define LOOM_CONTROLLER_OPENAI_METRICS_TEXT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "controller/serving_engine.h"

namespace loom::openai {

// One rank's weight-load progress.
struct RankLoadBytes {
  int rank = 0;
  int64_t done = 0;
  int64_t total = 0;
};

// Each rank's load progress from its `describe`.weights ({"progress": {"bytes_done",
// "bytes_total"}}); a rank that has not said yet shows zeros.
std::vector<RankLoadBytes> LoadBytesOf(const std::vector<nlohmann::json>& weights);

// The exposition of a serving engine.
std::string MetricsText(const EngineStatus& status);
// Before the engine is ready: the server is up, the ranks are loading their first weights.
std::string LoadingMetricsText(const std::vector<RankLoadBytes>& loads);

}  // namespace loom::openai

#endif  // LOOM_CONTROLLER_OPENAI_METRICS_TEXT_H_
