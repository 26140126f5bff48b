#pragma once
// Text made safe to place in SVG and HTML, in element content and in quoted
// attribute values alike. Control characters, which XML 1.0 forbids even
// escaped, become '?' (tab, newline and carriage return stay). Bytes of 128
// and above pass through unchanged: the text is taken to be UTF-8.
//
// Thread safety: pure function; safe from many threads.

#include <string>
#include <string_view>

namespace loom::report {

inline std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default:
        out += static_cast<unsigned char>(ch) < 0x20 && ch != '\t' && ch != '\n' && ch != '\r' ? '?' : ch;
    }
  }
  return out;
}

}  // namespace loom::report
