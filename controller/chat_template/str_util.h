// Python str methods over UTF-8 (case mapping is ASCII-only; see chat_template.h).
#ifndef LOOM_CONTROLLER_CHAT_TEMPLATE_STR_UTIL_H_
#define LOOM_CONTROLLER_CHAT_TEMPLATE_STR_UTIL_H_

#include <optional>
#include <string>
#include <vector>

namespace loom::chat_template {

enum class StripSide { kLeft, kRight, kBoth };
// str.strip(chars): chars nullopt strips Unicode whitespace.
std::string PyStrip(const std::string& s, const std::optional<std::string>& chars, StripSide side);
// str.split(sep, maxsplit) / rsplit; sep nullopt splits on whitespace runs.
std::vector<std::string> PySplit(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit,
                                 bool from_right);
std::string PyReplace(const std::string& s, const std::string& old, const std::string& repl, int64_t count);
std::string PyUpper(std::string s);
std::string PyLower(std::string s);
std::string PyTitle(const std::string& s);
std::string PyCapitalize(const std::string& s);

}  // namespace loom::chat_template

#endif  // LOOM_CONTROLLER_CHAT_TEMPLATE_STR_UTIL_H_
