// A latency histogram in Prometheus' shape: cumulative counts over fixed bucket bounds (the
// ones vLLM uses for its request latencies), their sum and count. A value type: the engine keeps
// them under its lock and hands copies out with its status.
#ifndef LOOM_CONTROLLER_LATENCY_HISTOGRAM_H_
#define LOOM_CONTROLLER_LATENCY_HISTOGRAM_H_

#include <cstdint>
#include <string>
#include <vector>

namespace loom {

class LatencyHistogram {
 public:
  LatencyHistogram();

  void Add(double seconds);

  const std::vector<double>& bounds() const { return bounds_; }
  // Per bound: how many values were <= it (cumulative, as Prometheus' `le`).
  std::vector<int64_t> Cumulative() const;
  int64_t count() const { return count_; }
  double sum() const { return sum_; }

  // The exposition lines of `name` (with the `loom:` prefix): # HELP, # TYPE, the buckets with
  // +Inf, _sum and _count.
  std::string Exposition(const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  std::vector<int64_t> counts_;  // per bucket, not cumulative
  int64_t count_ = 0;
  double sum_ = 0;
};

}  // namespace loom

#endif  // LOOM_CONTROLLER_LATENCY_HISTOGRAM_H_
