// HF's SplitDelimiterBehavior: what happens to the matches when a pre-tokenizer splits text.
#ifndef LOOM_CONTROLLER_TOKENIZER_SPLIT_BEHAVIOR_H_
#define LOOM_CONTROLLER_TOKENIZER_SPLIT_BEHAVIOR_H_

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/tokenizer/regex.h"

namespace loom::tokenizer {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Parses "Removed", "Isolated", ...; `where` names the field for the error.
absl::StatusOr<SplitBehavior> ParseSplitBehavior(const std::string& name, const std::string& where);

// The spans of the pieces to keep, given `spans` from a pattern (consecutive, covering the
// text). Empty pieces are not dropped here; callers drop them as HF does.
std::vector<Span> ApplySplitBehavior(const std::vector<Span>& spans, SplitBehavior behavior);

// Spans where every character satisfying `predicate` is its own match (HF's char patterns).
std::vector<Span> CharMatches(std::string_view text,
                              const std::function<bool(char32_t)>& predicate);

}  // namespace loom::tokenizer

#endif  // LOOM_CONTROLLER_TOKENIZER_SPLIT_BEHAVIOR_H_
