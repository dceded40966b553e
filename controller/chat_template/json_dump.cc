#include "controller/chat_template/json_dump.h"

#include <algorithm>
#include <cstdio>

#include "absl/status/status.h"
#include "common/status.h"
#include "controller/chat_template/utf8.h"

namespace loom::chat_template {
namespace {

void EscapeU(unsigned v, std::string& out) {
  char b[8];
  std::snprintf(b, sizeof(b), "\\u%04x", v);
  out += b;
}

// One byte of a string; bytes >= 0x80 pass through (UTF-8 kept as is).
void AppendJsonByte(unsigned char c, std::string& out) {
  switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    case '\b': out += "\\b"; break;
    case '\f': out += "\\f"; break;
    default:
      if (c < 0x20) {
        EscapeU(c, out);
      } else {
        out.push_back(static_cast<char>(c));
      }
  }
}

void AppendJsonString(const std::string& s, bool ensure_ascii, std::string& out) {
  out.push_back('"');
  if (ensure_ascii) {
    for (char32_t c : DecodeUtf8(s)) {
      if (c < 0x80) {
        AppendJsonByte(static_cast<unsigned char>(c), out);
      } else if (c >= 0x10000) {
        c -= 0x10000;
        EscapeU(0xD800 | (c >> 10), out);
        EscapeU(0xDC00 | (c & 0x3FF), out);
      } else {
        EscapeU(c, out);
      }
    }
  } else {
    for (unsigned char c : s) AppendJsonByte(c, out);
  }
  out.push_back('"');
}

class Dumper {
 public:
  explicit Dumper(const JsonDumpOptions& o) : o_(o) {
    item_sep_ = o.item_separator.value_or(o.indent ? "," : ", ");
    key_sep_ = o.key_separator.value_or(": ");
  }

  absl::Status Dump(const Value& v, int depth, std::string& out) {
    switch (v.kind()) {
      case Value::Kind::kNone: out += "null"; return absl::OkStatus();
      case Value::Kind::kBool: out += v.AsBool() ? "true" : "false"; return absl::OkStatus();
      case Value::Kind::kInt: out += std::to_string(v.AsInt()); return absl::OkStatus();
      case Value::Kind::kFloat: {
        std::string r = PyFloatRepr(v.AsDouble());
        out += r == "nan" ? "NaN" : r == "inf" ? "Infinity" : r == "-inf" ? "-Infinity" : r;
        return absl::OkStatus();
      }
      case Value::Kind::kString: AppendJsonString(v.AsString(), o_.ensure_ascii, out); return absl::OkStatus();
      case Value::Kind::kList: {
        const List& l = v.AsList();
        if (l.empty()) {
          out += "[]";
          return absl::OkStatus();
        }
        out.push_back('[');
        for (size_t i = 0; i < l.size(); ++i) {
          if (i) out += item_sep_;
          Newline(depth + 1, out);
          LOOM_RETURN_IF_ERROR(Dump(l[i], depth + 1, out));
        }
        Newline(depth, out);
        out.push_back(']');
        return absl::OkStatus();
      }
      case Value::Kind::kDict: {
        std::vector<const std::pair<std::string, Value>*> items;
        for (const auto& kv : v.AsDict().items) items.push_back(&kv);
        if (items.empty()) {
          out += "{}";
          return absl::OkStatus();
        }
        if (o_.sort_keys)
          std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
        out.push_back('{');
        for (size_t i = 0; i < items.size(); ++i) {
          if (i) out += item_sep_;
          Newline(depth + 1, out);
          AppendJsonString(items[i]->first, o_.ensure_ascii, out);
          out += key_sep_;
          LOOM_RETURN_IF_ERROR(Dump(items[i]->second, depth + 1, out));
        }
        Newline(depth, out);
        out.push_back('}');
        return absl::OkStatus();
      }
      default:
        return absl::InvalidArgumentError("Object of type " + v.TypeName() + " is not JSON serializable");
    }
  }

 private:
  void Newline(int depth, std::string& out) {
    if (!o_.indent) return;
    out.push_back('\n');
    for (int i = 0; i < depth; ++i) out += *o_.indent;
  }

  const JsonDumpOptions& o_;
  std::string item_sep_;
  std::string key_sep_;
};

}  // namespace

absl::StatusOr<std::string> PyJsonDumps(const Value& v, const JsonDumpOptions& options) {
  std::string out;
  Dumper d(options);
  LOOM_RETURN_IF_ERROR(d.Dump(v, 0, out));
  return out;
}

}  // namespace loom::chat_template
