// libFuzzer target: image decoding (loom::decode_image, the decoder behind
// read_image) on arbitrary bytes. A loom::Error is the expected answer to a
// bad file; any other exception, crash, sanitizer finding, leak or runaway
// allocation is a bug.
//
// loom links Debian's compiled libstb; this target compiles the same
// stb_image.h (libstb-dev) into itself instead, so the decoder that loom calls
// is instrumented for coverage, ASan and UBSan (the executable's definitions
// take precedence over the shared library's).

#include <cstddef>
#include <cstdint>
#include <span>

#include "loom/error.hpp"
#include "loom/image/image.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
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
