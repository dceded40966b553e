// Stop strings on a stream of detokenized text: the text a client may see, and whether a stop
// string has appeared. Matching is on text, so a stop string may span any number of tokens;
// the stop string itself (and anything after it) is never released. Text that could still be
// the start of a stop string is held back until it is known not to be, so nothing released
// has to be taken back.
#ifndef LOOM_CONTROLLER_STOP_STRINGS_H_
#define LOOM_CONTROLLER_STOP_STRINGS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace loom {

class StopStringMatcher {
 public:
  // The limits a request's stop strings must keep (checked by Validate).
  static constexpr size_t kMaxStops = 16;
  static constexpr size_t kMaxLength = 256;
  // Non-empty, at most kMaxStops strings of at most kMaxLength bytes.
  static absl::Status Validate(const std::vector<std::string>& stops);

  StopStringMatcher() = default;
  explicit StopStringMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}

  bool empty() const { return stops_.empty(); }
  // Takes the next piece of text; returns what may be released now. Once stopped() nothing more
  // is released.
  std::string Feed(const std::string& text);
  // True once a stop string appeared; the text before it has been released.
  bool stopped() const { return stopped_; }
  // At the end of the stream (no stop string came): everything held back.
  std::string Flush();

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace loom

#endif  // LOOM_CONTROLLER_STOP_STRINGS_H_
