#include "controller/stop_strings.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace loom {

absl::Status StopStringMatcher::Validate(const std::vector<std::string>& stops) {
  if (stops.size() > kMaxStops) {
    return absl::InvalidArgumentError(
        absl::StrCat("at most ", kMaxStops, " stop strings, got ", stops.size()));
  }
  for (const std::string& s : stops) {
    if (s.empty()) return absl::InvalidArgumentError("a stop string must not be empty");
    if (s.size() > kMaxLength) {
      return absl::InvalidArgumentError(absl::StrCat("a stop string is at most ", kMaxLength,
                                                     " bytes, got ", s.size()));
    }
  }
  return absl::OkStatus();
}

std::string StopStringMatcher::Feed(const std::string& text) {
  if (stopped_) return "";
  held_ += text;
  // The earliest stop string wins; what precedes it is released, the rest dropped.
  size_t first = std::string::npos;
  for (const std::string& s : stops_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, first);
    held_.clear();
    return out;
  }
  // Hold back the longest tail that is the beginning of some stop string.
  size_t keep = 0;
  for (const std::string& s : stops_) {
    for (size_t n = std::min(s.size() - 1, held_.size()); n > keep; --n) {
      if (held_.compare(held_.size() - n, n, s, 0, n) == 0) {
        keep = n;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopStringMatcher::Flush() {
  if (stopped_) return "";
  return std::exchange(held_, std::string());
}

}  // namespace loom
