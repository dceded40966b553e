#include "controller/latency_histogram.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace loom {

LatencyHistogram::LatencyHistogram()
    : bounds_({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
               7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}),
      counts_(bounds_.size() + 1, 0) {}

void LatencyHistogram::Add(double seconds) {
  const size_t b = std::lower_bound(bounds_.begin(), bounds_.end(), seconds) - bounds_.begin();
  ++counts_[b];
  ++count_;
  sum_ += seconds;
}

std::vector<int64_t> LatencyHistogram::Cumulative() const {
  std::vector<int64_t> out(bounds_.size());
  int64_t running = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) out[i] = running += counts_[i];
  return out;
}

std::string LatencyHistogram::Exposition(const std::string& name, const std::string& help) const {
  const std::string metric = "loom:" + name;
  std::string m = absl::StrCat("# HELP ", metric, " ", help, "\n# TYPE ", metric, " histogram\n");
  const std::vector<int64_t> cumulative = Cumulative();
  for (size_t i = 0; i < bounds_.size(); ++i) {
    absl::StrAppendFormat(&m, "%s_bucket{le=\"%g\"} %d\n", metric, bounds_[i], cumulative[i]);
  }
  absl::StrAppendFormat(&m, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %.9g\n%s_count %d\n", metric,
                        count_, metric, sum_, metric, count_);
  return m;
}

}  // namespace loom
