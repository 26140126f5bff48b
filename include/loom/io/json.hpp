#pragma once
// The little JSON loom writes: the tool's --json lines and the JSON-lines
// exports of a catalog (search/catalog_export.hpp). One object per line,
// built field by field. Strings are escaped; numbers are written with enough
// digits to read back what was measured.
//
// Thread safety: value types and pure functions.

#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>

namespace loom {

inline std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

/// A number; NaN and infinities, which JSON lacks, as null.
inline std::string json_number(double v, int digits = 6) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

/// {"a": 1, "b": "x"}: fields in the order they are added.
class JsonObject {
 public:
  JsonObject& raw(std::string_view key, const std::string& json) {
    body_ += (body_.empty() ? "" : ", ") + json_string(key) + ": " + json;
    return *this;
  }
  JsonObject& str(std::string_view key, std::string_view v) { return raw(key, json_string(v)); }
  JsonObject& num(std::string_view key, double v, int digits = 6) { return raw(key, json_number(v, digits)); }
  JsonObject& integer(std::string_view key, long long v) { return raw(key, std::to_string(v)); }
  std::string text() const { return "{" + body_ + "}"; }

 private:
  std::string body_;
};

/// [a, b, c] from already-formatted JSON values.
template <typename Range, typename Format>
std::string json_array(const Range& items, Format&& format) {
  std::string out = "[";
  bool first = true;
  for (const auto& item : items) {
    out += (first ? "" : ", ") + format(item);
    first = false;
  }
  return out + "]";
}

}  // namespace loom
