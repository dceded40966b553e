// The statistics every benchmark in tools/ prints: medians over repeats, nearest-rank
// percentiles, ratios against a baseline, seconds between two clock readings.
#ifndef LOOM_TOOLS_BENCH_STATS_H_
#define LOOM_TOOLS_BENCH_STATS_H_

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

namespace loom::cli {

inline double Seconds(std::chrono::steady_clock::time_point a,
                      std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// The median (the mean of the middle two for an even count); 0 for none.
inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The nearest-rank percentile, p in [0, 1]; 0 for none.
inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

// a / b, or 0 when there is no baseline.
inline double Ratio(double a, double b) { return b > 0 ? a / b : 0; }

}  // namespace loom::cli

#endif  // LOOM_TOOLS_BENCH_STATS_H_
