// Guards against known stb_image v2.27 bugs (see stb_guard.hpp).
//
// JPEG Huffman tables (DHT segments). stb_image builds each table from 16
// counts of codes per length without checking that they sum to at most 256,
// the size of its arrays, and then reads that many symbol values: a sum above
// 256 writes past the table into the heap (stbi__build_huffman, stbi__process_marker;
// fixed in stb_image v2.28 with a "bad DHT header" error, which this reproduces).
//
// PNG chunk lengths. stb_image grows its buffer for the compressed data to
// each IDAT chunk's declared length before reading it, so an 87-byte file
// declaring a 1.5 GB chunk costs a 1.5 GB allocation (found by fuzz_image;
// v2.28 still allows 1 GiB). A chunk cannot be longer than the rest of the
// file, and such a file would fail anyway once stb reads past its end.
//
// PNM header numbers. stb_image parses the width, height and maximum value of
// a PGM/PPM header into an int without an overflow check (undefined behaviour
// for more than 2^31 - 1; found by fuzz_image; fixed in v2.28 with "integer
// parse overflow"). The parse below follows stbi__pnm_info: whitespace and
// '#' comments, then digits.
//
// JPEG scans that use an undefined Huffman table. stb_image allocates its
// decoder state without clearing it, and a scan may name a table no DHT
// segment defined: stb then decodes with uninitialised tables, reading memory
// at indices taken from heap garbage, and fails its own assertion (an abort of
// the whole program, also in Debian's libstb) on some runs and not others
// (found by fuzz_image). Valid files define every table they use.
//
// The JPEG walk below visits every segment stb could process: stb finds
// markers by skipping any bytes up to an FF, then FF fill bytes (between
// segments and in entropy-coded data alike), consumes each segment whole by its
// length or stops with an error, and stops at EOI. Table counts are read as
// stb reads them, from the file rather than the segment, with 0 past the end.
// Which tables a scan uses follows stbi__parse_entropy_coded_data: a baseline
// scan both of each component's; a progressive DC scan its DC table on the
// first pass only; a progressive AC scan its AC table.

#include "stb_guard.hpp"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstddef>

#include "loom/error.hpp"

namespace loom::detail {
namespace {

constexpr unsigned kDht = 0xC4, kEoi = 0xD9, kSoi = 0xD8, kSos = 0xDA, kSof0 = 0xC0, kSof2 = 0xC2;

// The first problem found in a JPEG stb would reach, or an empty string.
class JpegWalk {
 public:
  explicit JpegWalk(std::span<const std::uint8_t> b) : b_(b) {}

  std::string problem() {
    std::size_t at = 0;
    if (byte(0) != 0xFF) return {};  // not a JPEG to stb: SOI must come first
    while (byte(at) == 0xFF) ++at;
    if (byte(at++) != kSoi) return {};
    while (at < b_.size()) {
      if (b_[at++] != 0xFF) continue;  // anything before a marker: skipped, or entropy-coded data
      while (at < b_.size() && b_[at] == 0xFF) ++at;
      if (at >= b_.size()) break;
      const unsigned marker = b_[at++];
      if (marker == 0x00 || marker == 0x01 || (marker >= 0xD0 && marker <= kSoi)) continue;  // no length
      if (marker == kEoi) break;
      const std::size_t length = byte(at) << 8 | byte(at + 1);  // counts its own 2 bytes
      if (length < 2) break;                                     // stb stops with an error
      if (marker >= kSof0 && marker <= kSof2 && progressive_ < 0) progressive_ = marker == kSof2;
      std::string p = marker == kDht ? huffman_tables(at + 2, static_cast<long>(length) - 2)
                      : marker == kSos ? scan(at + 2)
                                       : std::string();
      if (!p.empty()) return p;
      at += length;
    }
    return {};
  }

 private:
  unsigned byte(std::size_t i) const { return i < b_.size() ? b_[i] : 0; }

  // The tables of a DHT segment whose body (after the length) starts at `at`.
  std::string huffman_tables(std::size_t at, long length) {
    while (length > 0) {
      const unsigned q = byte(at++), table_class = q >> 4, id = q & 15;
      if (table_class > 1 || id > 3) return {};  // stb stops at the table class or number first
      long n = 0;
      for (int i = 0; i < 16; ++i) n += byte(at++);
      if (n > 256) return "a Huffman table declares more than 256 codes";
      defined_[table_class][id] = true;
      at += static_cast<std::size_t>(n);
      length -= 17 + n;
    }
    return {};
  }

  // An SOS header at `at`: components (id, DC table << 4 | AC table), then the
  // spectral selection start, end and successive approximation.
  std::string scan(std::size_t at) const {
    const unsigned components = byte(at);
    const unsigned start = byte(at + 1 + 2 * components), high = byte(at + 3 + 2 * components) >> 4;
    const bool progressive = progressive_ != 0;  // before a frame header stb stops anyway; assume the most use
    const bool dc = !progressive || (start == 0 && high == 0), ac = !progressive || start != 0;
    for (unsigned i = 0; i < components; ++i) {
      const unsigned q = byte(at + 2 + 2 * i), dc_id = q >> 4, ac_id = q & 15;
      if (dc_id > 3 || ac_id > 3) return {};  // stb stops: "bad DC huff"
      if ((dc && !defined_[0][dc_id]) || (ac && !defined_[1][ac_id]))
        return std::string("a scan uses ") + (dc && !defined_[0][dc_id] ? "DC" : "AC") + " Huffman table " +
               std::to_string(dc && !defined_[0][dc_id] ? dc_id : ac_id) + ", which no DHT segment defines";
    }
    return {};
  }

  std::span<const std::uint8_t> b_;
  bool defined_[2][4] = {};  // [DC, AC][table id]: defined by a DHT segment so far
  int progressive_ = -1;     // from the first frame header (SOF2: progressive); -1 before it
};

std::uint32_t big_endian32(std::span<const std::uint8_t> b, std::size_t at) {
  return std::uint32_t{b[at]} << 24 | std::uint32_t{b[at + 1]} << 16 | std::uint32_t{b[at + 2]} << 8 | b[at + 3];
}

// Throws when a chunk of a PNG file claims more bytes than follow it. Chunks
// are read in order as stb reads them: length, type, data, CRC, up to IEND.
void check_png_chunk_lengths(std::span<const std::uint8_t> b, const std::string& source) {
  static constexpr std::uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (b.size() < 8 || !std::equal(kSignature, kSignature + 8, b.begin())) return;
  for (std::size_t at = 8; at + 8 <= b.size();) {
    const std::uint32_t length = big_endian32(b, at);
    const std::string type(reinterpret_cast<const char*>(b.data() + at + 4), 4);
    const std::size_t left = b.size() - at - 8;
    if (length > left)
      throw DataError(source + ": cannot decode the image (corrupt or truncated PNG: a chunk (" +
                      (std::all_of(type.begin(), type.end(), [](char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; })
                           ? type
                           : "unnamed") + ") at byte " +
                      std::to_string(at) + " declares " + std::to_string(length) + " bytes, but only " +
                      std::to_string(left) + " follow)");
    if (type == "IEND") return;
    at += 12 + std::size_t{length};
  }
}

bool pnm_header_number_overflows(std::span<const std::uint8_t> b) {
  if (b.size() < 2 || b[0] != 'P' || (b[1] != '5' && b[1] != '6')) return false;
  std::size_t at = 2;
  const auto eof = [&] { return at >= b.size(); };
  const auto next = [&]() -> char { return at < b.size() ? static_cast<char>(b[at++]) : '\0'; };
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; };
  char c = next();
  for (int field = 0; field < 3; ++field) {  // width, height, maximum value
    for (;;) {
      while (!eof() && space(c)) c = next();
      if (eof() || c != '#') break;
      while (!eof() && c != '\n' && c != '\r') c = next();
    }
    std::int64_t value = 0;
    while (!eof() && c >= '0' && c <= '9') {
      value = value * 10 + (c - '0');
      if (value > INT_MAX) return true;
      c = next();
    }
  }
  return false;
}

}  // namespace

void refuse_stb_crashers(std::span<const std::uint8_t> bytes, const std::string& source) {
  if (const std::string p = JpegWalk(bytes).problem(); !p.empty())
    throw DataError(source + ": cannot decode the image (corrupt JPEG: " + p + ")");
  if (pnm_header_number_overflows(bytes))
    throw DataError(source + ": cannot decode the image (corrupt PNM header: a number above 2^31 - 1)");
  check_png_chunk_lengths(bytes, source);
}

}  // namespace loom::detail
