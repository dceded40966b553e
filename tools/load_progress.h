// Per-rank weight-load progress for the terminal: `loom serve` while the workers load, `loom rpc
// reload_weights` (and stage_weights) while the call runs. On a terminal the lines are redrawn
// in place; otherwise a plain line is printed when a rank's state changes or it passes another
// 10% of its bytes, so logs stay short.
#ifndef LOOM_TOOLS_LOAD_PROGRESS_H_
#define LOOM_TOOLS_LOAD_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace loom::cli {

struct RankLoad {
  int rank = 0;
  std::string state;  // the rank's weight state: loading, staging, ready, failed
  int64_t bytes_done = 0;
  int64_t bytes_total = 0;
};

class LoadProgressPrinter {
 public:
  explicit LoadProgressPrinter(std::FILE* out);
  void Update(const std::vector<RankLoad>& ranks);

 private:
  struct Seen {
    std::chrono::steady_clock::time_point first;
    int64_t first_bytes = 0;
    int decile = -1;
    std::string state;
  };
  std::string Line(const RankLoad& r, Seen& seen) const;

  std::FILE* out_;
  bool terminal_;
  int lines_drawn_ = 0;
  std::map<int, Seen> seen_;
};

}  // namespace loom::cli

#endif  // LOOM_TOOLS_LOAD_PROGRESS_H_
