// libFuzzer target: the IDX parser (loom::parse_idx, the parser behind
// read_idx) on arbitrary bytes, raw or gzip-compressed.
// A loom::Error is the expected answer to a bad file; any other exception,
// crash, sanitizer finding, leak or runaway allocation is a bug.

#include <cstddef>
#include <cstdint>
#include <span>

#include "loom/data/idx.hpp"
#include "loom/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const loom::IdxArray a = loom::parse_idx(std::span<const std::uint8_t>(data, size), "<fuzz input>");
    // An accepted file must be what the header says it is.
    std::size_t n = 1;
    for (loom::Index d : a.dims) n *= static_cast<std::size_t>(d);
    if (a.rank() < 1 || a.bytes.size() != n) __builtin_trap();
  } catch (const loom::Error&) {
  }
  return 0;
}
