// Iteration, length and slicing shared by filters and the evaluator (declared in builtins.h).
#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "controller/chat_template/builtins.h"
#include "controller/chat_template/utf8.h"

namespace loom::chat_template {

absl::StatusOr<List> Iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return List{};
    case Value::Kind::kList: return v.AsList();
    case Value::Kind::kDict: {
      List out;
      for (const auto& [k, _] : v.AsDict().items) out.push_back(Value(k));
      return out;
    }
    case Value::Kind::kString: {
      List out;
      for (char32_t c : DecodeUtf8(v.AsString())) out.push_back(Value(EncodeUtf8(std::u32string(1, c))));
      return out;
    }
    default: return absl::InvalidArgumentError(absl::StrCat("'", v.TypeName(), "' object is not iterable"));
  }
}

absl::StatusOr<int64_t> Length(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return 0;
    case Value::Kind::kString: return static_cast<int64_t>(CodePointCount(v.AsString()));
    case Value::Kind::kList: return static_cast<int64_t>(v.AsList().size());
    case Value::Kind::kDict: return static_cast<int64_t>(v.AsDict().items.size());
    default: return absl::InvalidArgumentError(absl::StrCat("object of type '", v.TypeName(), "' has no len()"));
  }
}

absl::StatusOr<Value> SliceValue(const Value& v, const Value& start, const Value& stop, const Value& step) {
  auto as_index = [](const Value& x) -> absl::StatusOr<std::optional<int64_t>> {
    if (x.IsUndefined() || x.IsNone()) return std::optional<int64_t>();
    if (!x.IsInt() && !x.IsBool()) return absl::InvalidArgumentError("slice indices must be integers or None");
    return std::optional<int64_t>(x.AsInt());
  };
  auto st = as_index(step);
  if (!st.ok()) return st.status();
  int64_t k = st->value_or(1);
  if (k == 0) return absl::InvalidArgumentError("slice step cannot be zero");
  auto b = as_index(start);
  if (!b.ok()) return b.status();
  auto e = as_index(stop);
  if (!e.ok()) return e.status();
  auto indices = [&](int64_t n) {
    // Python's slice.indices(n).
    auto clamp = [&](std::optional<int64_t> x, int64_t dflt) {
      if (!x) return dflt;
      int64_t i = *x < 0 ? *x + n : *x;
      if (k > 0) return std::clamp<int64_t>(i, 0, n);
      return std::clamp<int64_t>(i, -1, n - 1);
    };
    int64_t lo = clamp(*b, k > 0 ? 0 : n - 1);
    int64_t hi = clamp(*e, k > 0 ? n : -1);
    std::vector<int64_t> out;
    for (int64_t i = lo; k > 0 ? i < hi : i > hi; i += k) out.push_back(i);
    return out;
  };
  if (v.IsList()) {
    const List& l = v.AsList();
    List out;
    for (int64_t i : indices(static_cast<int64_t>(l.size()))) out.push_back(l[i]);
    return Value(std::move(out));
  }
  if (v.IsString()) {
    std::u32string cps = DecodeUtf8(v.AsString());
    std::u32string out;
    for (int64_t i : indices(static_cast<int64_t>(cps.size()))) out.push_back(cps[i]);
    return Value(EncodeUtf8(out));
  }
  if (v.IsUndefined()) return absl::InvalidArgumentError(absl::StrCat("'", v.UndefinedHint(), "' is undefined"));
  return absl::InvalidArgumentError(absl::StrCat("'", v.TypeName(), "' object is not subscriptable"));
}

}  // namespace loom::chat_template
