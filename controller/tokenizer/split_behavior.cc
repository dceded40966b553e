#include "controller/tokenizer/split_behavior.h"

#include <algorithm>

#include "common/status.h"
#include "controller/tokenizer/utf8.h"

namespace loom::tokenizer {

absl::StatusOr<SplitBehavior> ParseSplitBehavior(const std::string& name,
                                                 const std::string& where) {
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  return absl::UnimplementedError(
      absl::StrCat("unsupported split behavior \"", name, "\" at ", where));
}

std::vector<Span> ApplySplitBehavior(const std::vector<Span>& spans, SplitBehavior behavior) {
  std::vector<Span> out;
  out.reserve(spans.size());
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      out = spans;
      break;
    case SplitBehavior::kRemoved:
      for (const Span& s : spans) {
        if (!s.is_match) out.push_back(s);
      }
      break;
    case SplitBehavior::kContiguous:
      for (const Span& s : spans) {
        if (s.is_match == previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().begin = it->begin;
        } else {
          out.push_back(*it);
        }
        previous_match = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
  }
  for (Span& s : out) s.is_match = false;
  return out;
}

std::vector<Span> CharMatches(std::string_view text,
                              const std::function<bool(char32_t)>& predicate) {
  std::vector<Span> spans;
  if (text.empty()) {
    spans.push_back({0, 0, false});
    return spans;
  }
  size_t gap_begin = 0, pos = 0;
  while (pos < text.size()) {
    const size_t at = pos;
    if (predicate(NextCodePoint(text, pos))) {
      if (gap_begin < at) spans.push_back({gap_begin, at, false});
      spans.push_back({at, pos, true});
      gap_begin = pos;
    }
  }
  if (gap_begin < text.size()) spans.push_back({gap_begin, text.size(), false});
  return spans;
}

}  // namespace loom::tokenizer
