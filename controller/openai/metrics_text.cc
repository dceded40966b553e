#include "controller/openai/metrics_text.h"

#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace loom::openai {
namespace {

void Header(std::string& m, const char* metric, const char* type, const char* help) {
  absl::StrAppendFormat(&m, "# HELP loom:%s %s\n# TYPE loom:%s %s\n", metric, help, metric, type);
}

void Gauge(std::string& m, const char* metric, const char* help, double value) {
  Header(m, metric, "gauge", help);
  absl::StrAppendFormat(&m, "loom:%s %.17g\n", metric, value);
}

void Counter(std::string& m, const char* metric, const char* help, int64_t value) {
  Header(m, metric, "counter", help);
  absl::StrAppendFormat(&m, "loom:%s %d\n", metric, value);
}

void LoadBytes(std::string& m, const std::vector<RankLoadBytes>& loads) {
  Header(m, "weight_load_bytes", "gauge", "Bytes of the rank's current or last weight load done.");
  for (const RankLoadBytes& l : loads) {
    absl::StrAppendFormat(&m, "loom:weight_load_bytes{rank=\"%d\"} %d\n", l.rank, l.done);
  }
  Header(m, "weight_load_total_bytes", "gauge", "Bytes of the rank's current or last weight load.");
  for (const RankLoadBytes& l : loads) {
    absl::StrAppendFormat(&m, "loom:weight_load_total_bytes{rank=\"%d\"} %d\n", l.rank, l.total);
  }
}

}  // namespace

std::vector<RankLoadBytes> LoadBytesOf(const std::vector<nlohmann::json>& weights) {
  std::vector<RankLoadBytes> loads;
  for (size_t r = 0; r < weights.size(); ++r) {
    RankLoadBytes& l = loads.emplace_back();
    l.rank = static_cast<int>(r);
    if (!weights[r].is_object()) continue;
    const nlohmann::json p = weights[r].value("progress", nlohmann::json::object());
    if (!p.is_object()) continue;
    l.done = p.value("bytes_done", int64_t{0});
    l.total = p.value("bytes_total", int64_t{0});
  }
  return loads;
}

std::string LoadingMetricsText(const std::vector<RankLoadBytes>& loads) {
  std::string m;
  Gauge(m, "server_ready", "1 when the server serves requests.", 0);
  LoadBytes(m, loads);
  return m;
}

std::string MetricsText(const EngineStatus& s) {
  std::string m;
  Gauge(m, "server_ready", "1 when the server serves requests.",
        s.broken.ok() && !s.healing && !s.draining && s.sleep_level == 0 ? 1 : 0);
  Gauge(m, "sleep_level", "0 awake; 1 or 2 while asleep.", s.sleep_level);
  Gauge(m, "rank_restarts", "Times the ranks were restarted after a failure.", s.restarts);
  Gauge(m, "num_requests_running", "Requests admitted to the scheduler.", s.running_requests);
  Gauge(m, "num_requests_waiting", "Requests submitted, not yet admitted.", s.waiting_requests);
  Gauge(m, "kv_cache_usage_perc", "Share of KV blocks in use (0..1).",
        s.num_kv_blocks > 0 ? 1.0 - static_cast<double>(s.num_free_kv_blocks) / s.num_kv_blocks
                            : 0.0);
  Gauge(m, "serving_weight_version", "The weight version serving.", s.serving_weight_version);
  Gauge(m, "staged_weight_version", "The staged weight version (0: none).",
        s.staged_weight_version);
  Gauge(m, "previous_weight_version", "The weight version kept for a rollback (0: none).",
        s.previous_weight_version);
  Header(m, "request_success_total", "counter", "Requests finished, by reason.");
  for (const auto& [reason, count] : {std::tuple{"stop", s.finished.stop},
                                      std::tuple{"length", s.finished.length},
                                      std::tuple{"abort", s.finished.abort}}) {
    absl::StrAppendFormat(&m, "loom:request_success_total{finished_reason=\"%s\"} %d\n", reason,
                          count);
  }
  Gauge(m, "num_preemptions", "Sequences preempted and recomputed.", s.preemptions);
  Counter(m, "prompt_tokens_total", "Prompt tokens of finished requests.", s.prompt_tokens_total);
  Counter(m, "generation_tokens_total", "Tokens generated.", s.generation_tokens_total);
  absl::StrAppend(&m,
                  s.time_to_first_token.Exposition("time_to_first_token_seconds",
                                                   "From arrival to the first token."),
                  s.inter_token_latency.Exposition("inter_token_latency_seconds",
                                                   "Between a request's tokens."),
                  s.e2e_request_latency.Exposition("e2e_request_latency_seconds",
                                                   "From arrival to the last token."),
                  s.request_queue_time.Exposition("request_queue_time_seconds",
                                                  "From arrival to the request's first step."));
  Counter(m, "prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.",
          s.prefix_cache_queries);
  Counter(m, "prefix_cache_hits_total", "Prompt tokens found there.", s.prefix_cache_hits);
  Header(m, "rank_ready", "gauge", "1 when the rank serves.");
  for (const RankState& r : s.ranks) {
    absl::StrAppendFormat(&m, "loom:rank_ready{rank=\"%d\"} %d\n", r.rank,
                          r.state == "ready" ? 1 : 0);
  }
  std::vector<nlohmann::json> weights;
  for (const RankState& r : s.ranks) weights.push_back(r.weights);
  LoadBytes(m, LoadBytesOf(weights));
  return m;
}

}  // namespace loom::openai
