#include "controller/latency_histogram.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"

namespace loom {
namespace {

TEST(LatencyHistogramTest, CountsCumulativelyAndPrintsPrometheusText) {
  LatencyHistogram h;
  for (double s : {0.0005, 0.003, 0.003, 0.7, 3000.0}) h.Add(s);
  EXPECT_EQ(h.count(), 5);
  EXPECT_NEAR(h.sum(), 3000.7065, 1e-9);
  const std::vector<int64_t> c = h.Cumulative();
  EXPECT_EQ(c.front(), 1);  // <= 1 ms
  EXPECT_EQ(c[1], 3);       // <= 5 ms
  EXPECT_EQ(c.back(), 4);   // the 3000 s one is past every bound
  const std::string text = h.Exposition("ttft_seconds", "help");
  EXPECT_TRUE(absl::StrContains(text, "# TYPE loom:ttft_seconds histogram\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "loom:ttft_seconds_bucket{le=\"0.005\"} 3\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "loom:ttft_seconds_bucket{le=\"+Inf\"} 5\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "loom:ttft_seconds_count 5\n")) << text;
}

}  // namespace
}  // namespace loom
