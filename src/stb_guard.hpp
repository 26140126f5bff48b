#pragma once
// Inputs that would reach a known memory-safety bug or a runaway allocation of
// the stb_image that loom links (Debian 12's libstb, stb_image v2.27), refused
// before stb reads them.
// Each guard names the bug and the stb release that fixed it; a guard can go
// when loom requires that release. Found by fuzzing decode_image
// (tests/fuzz/fuzz_image.cpp, docs/reliability.md). Internal to the library.

#include <cstdint>
#include <span>
#include <string>

namespace loom::detail {

/// Throws DataError, naming source, when bytes would trigger a known stb_image
/// bug or allocation; does nothing for any other input (valid or not: stb judges those).
void refuse_stb_crashers(std::span<const std::uint8_t> bytes, const std::string& source);

}  // namespace loom::detail
