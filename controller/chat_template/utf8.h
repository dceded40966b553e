// UTF-8 <-> code points, for the string operations that Python counts in code points
// (len, indexing, slicing) and for Unicode whitespace in strip().
#ifndef LOOM_CONTROLLER_CHAT_TEMPLATE_UTF8_H_
#define LOOM_CONTROLLER_CHAT_TEMPLATE_UTF8_H_

#include <string>
#include <string_view>


namespace loom::chat_template {

// Invalid bytes decode to U+FFFD each.
std::u32string DecodeUtf8(std::string_view s);
std::string EncodeUtf8(std::u32string_view s);
// Code points in `s` (what Python's len() returns).
size_t CodePointCount(std::string_view s);
// Python's str.isspace() for one code point.
bool IsPyWhitespace(char32_t c);

}  // namespace loom::chat_template

#endif  // LOOM_CONTROLLER_CHAT_TEMPLATE_UTF8_H_
