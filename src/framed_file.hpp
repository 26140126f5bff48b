#pragma once
// The frame every loom binary file shares (model files, catalogs): an 8-byte
// magic, a format version, a reserved word, the content length, the content,
// and a CRC-32 of everything before it. Opening a frame checks the magic,
// version, length and CRC before anything inside is decoded, so a truncated,
// flipped or foreign file fails here with a DataError naming the file.
// Private to src/.

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "loom/io/byte_io.hpp"
#include "loom/io/crc32.hpp"

namespace loom::detail {

inline constexpr std::size_t kFrameHeaderSize = 24;  // magic, version, reserved, content length
inline constexpr std::size_t kFrameCrcSize = 4;

/// What a kind of file is called in errors, its magic and the newest version this build reads.
struct FrameKind {
  const char* name;  // "loom model file"
  std::array<char, 8> magic;
  std::uint32_t version;
};

/// Writes the header (content length patched by finish_frame).
inline void begin_frame(ByteWriter& w, const FrameKind& kind) {
  for (char c : kind.magic) w.put(c);
  w.put<std::uint32_t>(kind.version);
  w.put<std::uint32_t>(0);
  w.put<std::uint64_t>(0);
}

/// Patches the content length and appends the CRC.
inline std::vector<std::uint8_t> finish_frame(ByteWriter& w) {
  w.patch<std::uint64_t>(16, w.size() - kFrameHeaderSize);
  w.put(crc32(w.bytes()));
  return std::move(w.bytes());
}

struct Frame {
  std::uint32_t version;
  std::span<const std::uint8_t> content;  // at file offset kFrameHeaderSize
};

/// Checks a whole file's frame and returns its content; DataError naming source otherwise.
inline Frame open_frame(std::span<const std::uint8_t> bytes, const std::string& source, const FrameKind& kind) {
  ByteReader head(bytes, source);
  if (bytes.size() < kind.magic.size() ||
      !std::equal(kind.magic.begin(), kind.magic.end(), reinterpret_cast<const char*>(bytes.data())))
    head.fail(std::string("not a ") + kind.name + " (the magic bytes \"" +
              std::string(kind.magic.begin(), kind.magic.end()) + "\" are missing)");
  head.get_bytes(kind.magic.size(), "magic");
  const auto version = head.get<std::uint32_t>("format version");
  if (version == 0 || version > kind.version)
    head.fail("format version " + std::to_string(version) + " is " + (version ? "newer than" : "not") +
              " what this build of loom reads (versions 1 to " + std::to_string(kind.version) + ")" +
              (version ? "; upgrade loom to load it" : ""));
  head.get<std::uint32_t>("reserved");
  const auto content = head.get<std::uint64_t>("content length");
  if (content > bytes.size() || bytes.size() - kFrameHeaderSize - kFrameCrcSize != content) {
    if (bytes.size() < kFrameHeaderSize + kFrameCrcSize || content > bytes.size() - kFrameHeaderSize - kFrameCrcSize)
      head.fail("truncated: the header declares " + std::to_string(content + kFrameHeaderSize + kFrameCrcSize) +
                " bytes, the file has " + std::to_string(bytes.size()));
    head.fail("the file has " + std::to_string(bytes.size() - kFrameHeaderSize - kFrameCrcSize - content) +
              " bytes more than its header declares");
  }
  const std::size_t crc_at = kFrameHeaderSize + content;
  std::uint32_t stored;
  std::memcpy(&stored, bytes.data() + crc_at, sizeof stored);
  if (const std::uint32_t actual = crc32(bytes.first(crc_at)); actual != stored)
    head.fail("corrupt: CRC32 of the content is " + std::to_string(actual) + ", the file says " + std::to_string(stored));
  return {version, bytes.subspan(kFrameHeaderSize, content)};
}

}  // namespace loom::detail
