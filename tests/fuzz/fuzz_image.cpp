// libFuzzer target: image decoding (loom::decode_image, the decoder behind
// read_image) on arbitrary bytes. A loom::Error is the expected answer to a
// bad file; any other exception, crash, sanitizer finding, leak or runaway
// allocation is a bug.
//
// loom links Debian's compiled libstb; this target compiles the same
// stb_image.h (libstb-dev) into itself instead, so the decoder that loom calls
// is instrumented for coverage, ASan and UBSan (the executable's definitions
// take precedence over the shared library's).
//
// Inputs whose header claims more than 2^20 pixels are skipped: decoding an
// image near loom's limit (2^26 pixels) takes up to a second under ASan, and a
// few such inputs slowed the first run to 35 inputs a second. What is skipped
// differs only in size; the size limits themselves are unit-tested.

#include <stb_image.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "../../src/stb_guard.hpp"
#include "loom/error.hpp"
#include "loom/image/image.hpp"

namespace {

// True when the header claims a large image. stb reads the header only after
// the guard decode_image also runs first (stbi_info would reach the same bugs).
bool claims_large_image(std::span<const std::uint8_t> bytes) {
  try {
    loom::detail::refuse_stb_crashers(bytes, "<fuzz input>");
  } catch (const loom::Error&) {
    return false;  // decode_image refuses it the same way
  }
  int w = 0, h = 0, c = 0;
  return stbi_info_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &c) != 0 &&
         std::int64_t{w} * h > (std::int64_t{1} << 20);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (claims_large_image({data, size})) return 0;
  try {
    const loom::Image im = loom::decode_image(std::span<const std::uint8_t>(data, size), "<fuzz input>");
    const auto n = static_cast<std::size_t>(im.width) * static_cast<std::size_t>(im.height) *
                   static_cast<std::size_t>(im.channels);
    if (im.width < 1 || im.height < 1 || im.channels < 1 || im.channels > 4 || im.pixels.size() != n)
      __builtin_trap();
  } catch (const loom::Error&) {
  }
  return 0;
}
