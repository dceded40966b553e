#include "controller/chat_template/lexer.h"

#include <cctype>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "controller/chat_template/utf8.h"

namespace loom::chat_template {
namespace {

std::string NormalizeNewlines(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < in.size() && in[i + 1] == '\n') ++i;
    } else {
      out.push_back(in[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

absl::Status Error(int line, const std::string& msg) {
  return absl::InvalidArgumentError(absl::StrCat("line ", line, ": ", msg));
}

class Lexer {
 public:
  explicit Lexer(std::string src) : s_(std::move(src)) {}

  absl::StatusOr<std::vector<Token>> Run() {
    bool line_starting = true;
    while (pos_ < s_.size()) {
      size_t tag = FindTag(pos_);
      std::string text = s_.substr(pos_, tag - pos_);
      if (tag == s_.size()) {
        Emit(TokenType::kText, text, line_);
        pos_ = tag;
        break;
      }
      char kind = s_[tag + 1];  // '{', '%' or '#'
      char modifier = tag + 2 < s_.size() ? s_[tag + 2] : '\0';
      if (modifier == '-') {
        size_t end = text.size();
        while (end > 0 && IsSpace(text[end - 1])) --end;
        text.resize(end);
      } else if (modifier != '+' && kind != '{') {
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if (l_pos > 0 || line_starting) {
          bool only_blanks = true;
          for (size_t i = l_pos; i < text.size(); ++i) only_blanks &= text[i] == ' ' || text[i] == '\t';
          if (only_blanks) text.resize(l_pos);
        }
      }
      Emit(TokenType::kText, text, line_);
      CountLines(pos_, tag);
      pos_ = tag + 2 + ((modifier == '-' || modifier == '+') ? 1 : 0);
      absl::Status st = kind == '#' ? Comment(tag) : Tag(kind, tag);
      if (!st.ok()) return st;
      line_starting = pos_ > 0 && s_[pos_ - 1] == '\n';
    }
    tokens_.push_back({TokenType::kEof, "", line_});
    return std::move(tokens_);
  }

 private:
  size_t FindTag(size_t from) const {
    for (size_t i = from; i + 1 < s_.size(); ++i) {
      if (s_[i] == '{' && (s_[i + 1] == '{' || s_[i + 1] == '%' || s_[i + 1] == '#')) return i;
    }
    return s_.size();
  }

  void Emit(TokenType t, std::string v, int line) {
    if (t == TokenType::kText && v.empty()) return;
    tokens_.push_back({t, std::move(v), line});
  }

  void CountLines(size_t from, size_t to) {
    for (size_t i = from; i < to; ++i) line_ += s_[i] == '\n';
  }

  // After a tag's closing delimiter at `end` (one past it): `-` strips all whitespace, else
  // trim_blocks eats one newline after `%}` / `#}`.
  void AfterClose(bool minus, bool trim) {
    if (minus) {
      size_t p = pos_;
      while (p < s_.size() && IsSpace(s_[p])) ++p;
      CountLines(pos_, p);
      pos_ = p;
    } else if (trim && pos_ < s_.size() && s_[pos_] == '\n') {
      ++pos_;
      ++line_;
    }
  }

  absl::Status Comment(size_t open) {
    size_t close = s_.find("#}", pos_);
    if (close == std::string::npos) return Error(line_, "unterminated comment");
    // `-#}` is `-` right before `#}` (the dash of `{#-#}` belongs to the opening).
    bool minus = close > open + 2 && s_[close - 1] == '-' && close - 1 >= pos_;
    CountLines(pos_, close + 2);
    pos_ = close + 2;
    AfterClose(minus, /*trim=*/true);
    return absl::OkStatus();
  }

  absl::Status Tag(char kind, size_t /*open*/) {
    bool block = kind == '%';
    Emit(block ? TokenType::kBlockBegin : TokenType::kVarBegin, "", line_);
    int depth = 0;  // open braces, so `}}` in a dict literal is not the end of `{{ }}`
    while (true) {
      while (pos_ < s_.size() && IsSpace(s_[pos_])) {
        line_ += s_[pos_] == '\n';
        ++pos_;
      }
      if (pos_ >= s_.size()) return Error(line_, block ? "unexpected end of template, expected '%}'"
                                                       : "unexpected end of template, expected '}}'");
      const char* close = block ? "%}" : "}}";
      if (block || depth == 0) {
        char m = s_[pos_];
        bool dash = m == '-' && s_.compare(pos_ + 1, 2, close) == 0;
        bool plus = block && m == '+' && s_.compare(pos_ + 1, 2, close) == 0;
        if (dash || plus || s_.compare(pos_, 2, close) == 0) {
          Emit(block ? TokenType::kBlockEnd : TokenType::kVarEnd, "", line_);
          pos_ += (dash || plus) ? 3 : 2;
          AfterClose(dash, /*trim=*/block && !plus);
          return absl::OkStatus();
        }
      }
      absl::Status st = ExprToken(depth);
      if (!st.ok()) return st;
    }
  }

  absl::Status ExprToken(int& depth) {
    char c = s_[pos_];
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t b = pos_;
      while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_')) ++pos_;
      Emit(TokenType::kName, s_.substr(b, pos_ - b), line_);
      return absl::OkStatus();
    }
    if (std::isdigit(static_cast<unsigned char>(c))) return Number();
    if (c == '\'' || c == '"') return String(c);
    static const char* kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
    for (const char* op : kTwo) {
      if (s_.compare(pos_, 2, op) == 0) {
        Emit(TokenType::kOp, op, line_);
        pos_ += 2;
        return absl::OkStatus();
      }
    }
    static const std::string kOne = "+-*/%~<>=()[]{},.:|";
    if (kOne.find(c) == std::string::npos) return Error(line_, absl::StrCat("unexpected char '", std::string(1, c), "'"));
    if (c == '{') ++depth;
    if (c == '}') --depth;
    Emit(TokenType::kOp, std::string(1, c), line_);
    ++pos_;
    return absl::OkStatus();
  }

  absl::Status Number() {
    size_t b = pos_;
    bool is_float = false;
    auto digits = [&] {
      while (pos_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_')) ++pos_;
    };
    digits();
    if (pos_ + 1 < s_.size() && s_[pos_] == '.' && std::isdigit(static_cast<unsigned char>(s_[pos_ + 1]))) {
      is_float = true;
      ++pos_;
      digits();
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      size_t p = pos_ + 1;
      if (p < s_.size() && (s_[p] == '+' || s_[p] == '-')) ++p;
      if (p < s_.size() && std::isdigit(static_cast<unsigned char>(s_[p]))) {
        is_float = true;
        pos_ = p;
        digits();
      }
    }
    std::string text;
    for (size_t i = b; i < pos_; ++i)
      if (s_[i] != '_') text.push_back(s_[i]);
    Emit(is_float ? TokenType::kFloat : TokenType::kInt, text, line_);
    return absl::OkStatus();
  }

  absl::Status String(char quote) {
    int start_line = line_;
    ++pos_;
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) return Error(start_line, "unterminated string literal");
      char c = s_[pos_++];
      if (c == quote) break;
      if (c == '\n') ++line_;
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) return Error(start_line, "unterminated string literal");
      char e = s_[pos_++];
      switch (e) {
        case 'n': out.push_back('\n'); break;
        case 't': out.push_back('\t'); break;
        case 'r': out.push_back('\r'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'v': out.push_back('\v'); break;
        case 'a': out.push_back('\a'); break;
        case '0': out.push_back('\0'); break;
        case '\\': out.push_back('\\'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case '\n': ++line_; break;  // line continuation
        case 'x':
        case 'u':
        case 'U': {
          size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (pos_ + n > s_.size()) return Error(line_, "truncated escape in string literal");
          char32_t cp = static_cast<char32_t>(std::stoul(s_.substr(pos_, n), nullptr, 16));
          pos_ += n;
          out += EncodeUtf8(std::u32string(1, cp));
          break;
        }
        default:
          out.push_back('\\');
          out.push_back(e);
      }
    }
    Emit(TokenType::kString, out, line_);
    return absl::OkStatus();
  }

  std::string s_;
  size_t pos_ = 0;
  int line_ = 1;
  std::vector<Token> tokens_;
};

}  // namespace

absl::StatusOr<std::vector<Token>> Tokenize(const std::string& source) {
  return Lexer(NormalizeNewlines(source)).Run();
}

}  // namespace loom::chat_template
