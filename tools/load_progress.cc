#include "tools/load_progress.h"

#include <unistd.h>

#include "absl/strings/str_format.h"

namespace loom::cli {

LoadProgressPrinter::LoadProgressPrinter(std::FILE* out)
    : out_(out), terminal_(isatty(fileno(out)) != 0) {}

std::string LoadProgressPrinter::Line(const RankLoad& r, Seen& seen) const {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - seen.first).count();
  const double rate = seconds > 0 ? static_cast<double>(r.bytes_done - seen.first_bytes) / seconds
                                  : 0.0;
  const double percent =
      r.bytes_total > 0 ? 100.0 * static_cast<double>(r.bytes_done) / r.bytes_total : 0.0;
  return absl::StrFormat("rank %d: %-8s %6.1f%%  %8.1f / %.1f MB  %7.1f MB/s", r.rank, r.state,
                         percent, r.bytes_done / 1e6, r.bytes_total / 1e6, rate / 1e6);
}

void LoadProgressPrinter::Update(const std::vector<RankLoad>& ranks) {
  const auto now = std::chrono::steady_clock::now();
  if (terminal_ && lines_drawn_ > 0) std::fprintf(out_, "\033[%dA", lines_drawn_);
  int drawn = 0;
  for (const RankLoad& r : ranks) {
    auto [it, fresh] = seen_.try_emplace(r.rank);
    Seen& seen = it->second;
    if (fresh) {
      seen.first = now;
      seen.first_bytes = r.bytes_done;
    }
    const int decile = r.bytes_total > 0 ? static_cast<int>(10 * r.bytes_done / r.bytes_total) : 0;
    const std::string line = Line(r, seen);
    if (terminal_) {
      std::fprintf(out_, "\r\033[K%s\n", line.c_str());
      ++drawn;
    } else if (decile != seen.decile || r.state != seen.state) {
      std::fprintf(out_, "%s\n", line.c_str());
    }
    seen.decile = decile;
    seen.state = r.state;
  }
  lines_drawn_ = terminal_ ? drawn : 0;
  std::fflush(out_);
}

}  // namespace loom::cli
