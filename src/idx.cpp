// Reading and writing IDX files (loom/data/idx.hpp), raw or gzip. zlib is
// used here and in src/crc32.cpp only, so its header stays out of loom's
// public headers.

#include "loom/data/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <system_error>

#include "loom/error.hpp"

namespace loom {
namespace {

namespace fs = std::filesystem;

constexpr std::uint8_t kUnsignedByte = 0x08;
// Deflate codes at best 258 bytes in 2 bits, so no gzip file inflates to more than
// 1032 times its size; a header that declares more is refused before allocating.
constexpr std::uintmax_t kMaxDeflateRatio = 1032;
// Grow the payload buffer from this size up as data actually arrives (gzip only).
constexpr std::size_t kFirstChunk = std::size_t{1} << 24;
// zlib counts in uInt; stay well inside it.
constexpr std::size_t kZlibStep = std::size_t{1} << 30;

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

std::string at(const fs::path& path) { return path.string() + ": "; }
std::string at(const std::string& source) { return source + ": "; }

std::string dims_text(const std::vector<Index>& dims) {
  std::string s = "(";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + ")";
}

const char* type_name(unsigned type) {
  switch (type) {
    case 0x08: return "unsigned bytes";
    case 0x09: return "signed bytes";
    case 0x0B: return "16-bit integers";
    case 0x0C: return "32-bit integers";
    case 0x0D: return "32-bit floats";
    case 0x0E: return "64-bit floats";
    default: return "unknown element type";
  }
}

// "2051 (0x00000803, unsigned bytes, rank 3)"
std::string magic_text(std::uint32_t magic) {
  char hex[16];
  std::snprintf(hex, sizeof hex, "0x%08X", static_cast<unsigned>(magic));
  std::string s = std::to_string(magic) + " (" + hex;
  if ((magic >> 16) == 0) s += std::string(", ") + type_name((magic >> 8) & 0xFF) + ", rank " + std::to_string(magic & 0xFF);
  return s + ")";
}

std::uint32_t big_endian32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | std::uint32_t{p[3]};
}

void check_magic(const std::string& source, std::uint32_t magic, std::optional<int> rank) {
  const bool idx_like = (magic >> 16) == 0;
  const unsigned type = (magic >> 8) & 0xFF;
  const int found_rank = static_cast<int>(magic & 0xFF);
  if (idx_like && type == kUnsignedByte && (rank ? found_rank == *rank : found_rank >= 1)) return;

  std::string msg = at(source);
  if (rank)
    msg += "expected IDX magic " + magic_text(0x0800u | static_cast<std::uint32_t>(*rank)) + " but found " +
           magic_text(magic);
  else
    msg += "expected the magic number of an unsigned-byte IDX file (0x000008rr, rr = rank >= 1) but found " +
           magic_text(magic);

  if (!idx_like && (magic >> 24) == '<')
    msg += "; this is not an IDX file: it starts with '<', like the HTML or XML error page of a failed download";
  else if (!idx_like)
    msg += "; this is not an IDX file (IDX files start with two zero bytes)";
  else if (type != kUnsignedByte)
    msg += "; loom reads only unsigned-byte IDX files (element type 0x08)";
  else if (rank && *rank == 3 && found_rank == 1)
    msg += "; this looks like a label file: were the image and label files swapped?";
  else if (rank && *rank == 1 && found_rank == 3)
    msg += "; this looks like an image file: were the image and label files swapped?";
  throw DataError(msg);
}

FilePtr open_for_reading(const fs::path& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (st.type() == fs::file_type::not_found) {
    std::string msg = at(path) + "no such file";
    // The commonest slip: the .gz was unpacked, or the other way round.
    const fs::path other = path.extension() == ".gz" ? fs::path(path).replace_extension() : fs::path(path.string() + ".gz");
    if (fs::exists(other, ec)) msg += " (but " + other.string() + " exists)";
    throw DataError(msg);
  }
  if (ec) throw IoError(at(path) + "cannot access: " + ec.message());
  if (fs::is_directory(st)) throw DataError(at(path) + "is a directory, not an IDX file");
  if (!fs::is_regular_file(st)) throw DataError(at(path) + "is not a regular file; expected an IDX file");
  FilePtr file(std::fopen(path.c_str(), "rb"));
  if (!file) throw IoError(at(path) + "cannot open for reading: " + std::strerror(errno));
  return file;
}

bool starts_like_gzip(const std::uint8_t* p, std::size_t n) { return n >= 2 && p[0] == 0x1F && p[1] == 0x8B; }

// Where the bytes of an IDX file (raw or still compressed) come from: an open
// file or a buffer in memory. One parser reads both through this.
class Input {
 public:
  virtual ~Input() = default;
  /// Reads up to n bytes into dst; returns fewer only at the end.
  virtual std::size_t read(std::uint8_t* dst, std::size_t n) = 0;
};

class FileInput final : public Input {
 public:
  FileInput(std::FILE* file, const std::string& source) : file_(file), source_(source) {}
  std::size_t read(std::uint8_t* dst, std::size_t n) override {
    const std::size_t got = std::fread(dst, 1, n, file_);
    if (got < n && std::ferror(file_)) throw IoError(at(source_) + "read failed: " + std::strerror(errno));
    return got;
  }

 private:
  std::FILE* file_;
  const std::string& source_;
};

class MemoryInput final : public Input {
 public:
  explicit MemoryInput(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}
  std::size_t read(std::uint8_t* dst, std::size_t n) override {
    const std::size_t got = std::min(n, bytes_.size() - pos_);
    if (got > 0) std::memcpy(dst, bytes_.data() + pos_, got);
    pos_ += got;
    return got;
  }

 private:
  std::span<const std::uint8_t> bytes_;
  std::size_t pos_ = 0;
};

// The decompressed bytes of an input: the input itself, or zlib inflating it.
// Inflates straight into the caller's buffer, so never more than was asked for.
class ByteSource {
 public:
  ByteSource(Input& input, const std::string& source, bool gz) : input_(input), source_(source), gz_(gz) {
    if (!gz_) return;
    in_.resize(std::size_t{1} << 16);
    if (inflateInit2(&zs_, 15 + 16) != Z_OK) throw std::bad_alloc();  // 15 + 16: gzip wrapper, 32 KiB window
  }
  ~ByteSource() {
    if (gz_) inflateEnd(&zs_);
  }
  ByteSource(const ByteSource&) = delete;
  ByteSource& operator=(const ByteSource&) = delete;

  /// Reads up to n bytes into dst; returns fewer only at the end of the data.
  std::size_t read(std::uint8_t* dst, std::size_t n) { return gz_ ? read_gz(dst, n) : input_.read(dst, n); }

 private:
  std::size_t read_gz(std::uint8_t* dst, std::size_t n) {
    std::size_t done = 0;
    while (done < n) {
      if (zs_.avail_in == 0) {
        const std::size_t got = input_.read(in_.data(), in_.size());
        if (got == 0) {
          if (member_done_) break;  // the clean end of the last gzip member
          throw DataError(at(source_) + "truncated gzip data: the compressed file ends in the middle of the stream, after " +
                          std::to_string(inflated_ + done) + " bytes of IDX data");
        }
        zs_.next_in = in_.data();
        zs_.avail_in = static_cast<uInt>(got);
      }
      if (member_done_) {  // more input after a member: another member follows, as `cat a.gz b.gz` makes
        if (inflateReset(&zs_) != Z_OK) throw DataError(at(source_) + "zlib failed to reset between gzip members");
        member_done_ = false;
      }
      const std::size_t want = std::min(n - done, kZlibStep);
      zs_.next_out = dst + done;
      zs_.avail_out = static_cast<uInt>(want);
      const int rc = inflate(&zs_, Z_NO_FLUSH);
      done += want - zs_.avail_out;
      if (rc == Z_STREAM_END) {
        member_done_ = true;  // the trailer's CRC and length have been checked
      } else if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT) {
        throw DataError(at(source_) + "corrupt gzip data after " + std::to_string(inflated_ + done) +
                        " bytes of IDX data (zlib: " + (zs_.msg ? zs_.msg : "invalid data") + ")");
      } else if (rc == Z_MEM_ERROR) {
        throw std::bad_alloc();
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {  // Z_BUF_ERROR: wants more input, fetched above
        throw DataError(at(source_) + "zlib error " + std::to_string(rc) + " while inflating");
      }
    }
    inflated_ += done;
    return done;
  }

  Input& input_;
  const std::string& source_;
  bool gz_;
  z_stream zs_{};
  std::vector<unsigned char> in_;  // compressed bytes read ahead
  bool member_done_ = false;       // inflate reached the end of a gzip member
  std::size_t inflated_ = 0;       // bytes returned so far, for messages
};

// The payload of a gzip file, grown as data actually arrives rather than sized by
// the header up front: a header that lies costs at most about four times the real data.
std::size_t read_growing(ByteSource& src, std::vector<std::uint8_t>& bytes, std::size_t payload) {
  std::size_t filled = 0, target = std::min(payload, kFirstChunk);
  for (;;) {
    bytes.resize(target);
    filled += src.read(bytes.data() + filled, target - filled);
    if (filled < target || target == payload) return filled;
    target = payload / 4 < target ? payload : target * 4;
  }
}

void write_file(const fs::path& path, std::initializer_list<std::span<const std::uint8_t>> parts) {
  if (path.extension() == ".gz") {
    gzFile gz = gzopen(path.c_str(), "wb");
    if (!gz) throw IoError(at(path) + "cannot open for writing: " + std::strerror(errno));
    bool ok = true;
    for (auto part : parts)
      for (std::size_t i = 0; ok && i < part.size(); i += kZlibStep) {
        const auto len = static_cast<unsigned>(std::min(part.size() - i, kZlibStep));
        ok = gzwrite(gz, part.data() + i, len) == static_cast<int>(len);
      }
    if (gzclose(gz) != Z_OK || !ok) throw IoError(at(path) + "writing gzip data failed");
    return;
  }
  FilePtr file(std::fopen(path.c_str(), "wb"));
  if (!file) throw IoError(at(path) + "cannot open for writing: " + std::strerror(errno));
  for (auto part : parts)
    if (std::fwrite(part.data(), 1, part.size(), file.get()) != part.size())
      throw IoError(at(path) + "write failed: " + std::strerror(errno));
  if (std::fclose(file.release()) != 0) throw IoError(at(path) + "write failed: " + std::strerror(errno));
}

// The one IDX parser, behind read_idx and parse_idx. `size` is the input's
// length in bytes (compressed, for gzip), known before reading.
IdxArray parse(Input& input, std::uintmax_t size, bool gz, const std::string& source, const IdxReadOptions& options) {
  if (size == 0) throw DataError(at(source) + "empty file (0 bytes); an IDX file starts with a 4-byte magic number");
  ByteSource src(input, source, gz);
  const std::string holds = gz ? "decompresses to " : "holds ";

  // Header: magic, then one big-endian uint32 per dimension.
  std::uint8_t magic_bytes[4];
  std::size_t got = src.read(magic_bytes, 4);
  if (got < 4)
    throw DataError(at(source) + "truncated header: the file " + holds + std::to_string(got) +
                    " bytes, but an IDX file starts with a 4-byte magic number");
  const std::uint32_t magic = big_endian32(magic_bytes);
  check_magic(source, magic, options.rank);
  const int rank = static_cast<int>(magic & 0xFF);
  const std::size_t header_bytes = 4 + 4 * static_cast<std::size_t>(rank);

  std::vector<std::uint8_t> dim_bytes(4 * static_cast<std::size_t>(rank));
  got = src.read(dim_bytes.data(), dim_bytes.size());
  if (got < dim_bytes.size())
    throw DataError(at(source) + "truncated header: the file " + holds + std::to_string(4 + got) +
                    " bytes, but the header of a rank-" + std::to_string(rank) + " IDX file takes " +
                    std::to_string(header_bytes));

  IdxArray out;
  out.dims.resize(static_cast<std::size_t>(rank));
  for (std::size_t i = 0; i < out.dims.size(); ++i) out.dims[i] = big_endian32(&dim_bytes[4 * i]);
  for (std::size_t i = 0; i < out.dims.size(); ++i)
    if (out.dims[i] == 0)
      throw DataError(at(source) + "dimension " + std::to_string(i) + " of " + dims_text(out.dims) +
                      " is 0; every IDX dimension must be positive");
  // payload = prod(dims), checked against the limit at every step so it cannot overflow.
  std::size_t payload = 1;
  for (Index d : out.dims) {
    if (static_cast<std::size_t>(d) > options.max_bytes / payload)
      throw DataError(at(source) + "the header declares dimensions " + dims_text(out.dims) +
                      ", more than the limit of " + std::to_string(options.max_bytes) +
                      " bytes of data; the header is corrupt or this is not an MNIST-style IDX file "
                      "(IdxReadOptions::max_bytes raises the limit)");
    payload *= static_cast<std::size_t>(d);
  }
  const std::string declared =
      "the header declares " + dims_text(out.dims) + " = " + std::to_string(payload) + " bytes of data";

  if (!gz) {
    // The size says everything before a byte of payload is read.
    const std::uintmax_t expected = header_bytes + payload;
    if (size < expected)
      throw DataError(at(source) + "truncated: " + declared + " but the file holds only " +
                      std::to_string(size - header_bytes) + " after its " + std::to_string(header_bytes) +
                      "-byte header (expected a file of " + std::to_string(expected) + " bytes, found " +
                      std::to_string(size) + ")");
    if (size > expected)
      throw DataError(at(source) + std::to_string(size - expected) + " unexpected bytes after the data: " +
                      declared + ", so the file should be " + std::to_string(expected) + " bytes, but it is " +
                      std::to_string(size));
    out.bytes.resize(payload);
    got = src.read(out.bytes.data(), payload);
    if (got < payload)
      throw DataError(at(source) + "the file shrank while being read: " + declared + " but only " +
                      std::to_string(got) + " could be read");
    return out;
  }

  if (header_bytes + payload > size * kMaxDeflateRatio)
    throw DataError(at(source) + "truncated or corrupt: " + declared + ", more than a " + std::to_string(size) +
                    "-byte gzip file can hold (deflate compresses at most 1032:1)");
  got = read_growing(src, out.bytes, payload);
  if (got < payload)
    throw DataError(at(source) + "truncated: " + declared + " but the gzip data ends after " + std::to_string(got));
  // One byte more, never the rest: a gzip bomb is detected, not buffered. Reading it
  // also makes zlib check the gzip trailer (CRC and length) of a well-formed file.
  std::uint8_t extra;
  if (src.read(&extra, 1) != 0)
    throw DataError(at(source) + "the gzip data is longer than its IDX header says: " + declared +
                    ", but more follows (reading stopped there); the header or the file is corrupt");
  return out;
}

void check_options(const char* what, const std::string& source, const IdxReadOptions& options) {
  if (options.rank && (*options.rank < 1 || *options.rank > 255))
    throw UsageError(std::string(what) + "(" + source + "): IdxReadOptions::rank must be in [1, 255], got " +
                     std::to_string(*options.rank));
}

}  // namespace

IdxArray read_idx(const fs::path& path, const IdxReadOptions& options) {
  const std::string source = path.string();
  check_options("read_idx", source, options);
  FilePtr file = open_for_reading(path);
  std::error_code ec;
  const std::uintmax_t file_bytes = fs::file_size(path, ec);
  if (ec) throw IoError(at(path) + "cannot get its size: " + ec.message());

  // Gzip or raw by the first bytes, not the name.
  std::uint8_t sniff[2] = {0, 0};
  const bool gz = starts_like_gzip(sniff, std::fread(sniff, 1, 2, file.get()));
  if (std::fseek(file.get(), 0, SEEK_SET) != 0) throw IoError(at(path) + "cannot seek: " + std::strerror(errno));
  FileInput input(file.get(), source);
  return parse(input, file_bytes, gz, source, options);
}

IdxArray parse_idx(std::span<const std::uint8_t> bytes, const std::string& source, const IdxReadOptions& options) {
  check_options("parse_idx", source, options);
  MemoryInput input(bytes);
  return parse(input, bytes.size(), starts_like_gzip(bytes.data(), bytes.size()), source, options);
}

void write_idx(const fs::path& path, const IdxArray& array) {
  const int rank = array.rank();
  if (rank < 1 || rank > 255)
    throw UsageError("write_idx(" + path.string() + "): an IDX file has rank 1 to 255, got " + std::to_string(rank));
  std::vector<std::uint8_t> header(4 + 4 * static_cast<std::size_t>(rank));
  header[2] = kUnsignedByte;
  header[3] = static_cast<std::uint8_t>(rank);
  std::size_t total = 1;
  bool overflow = false;
  for (std::size_t i = 0; i < array.dims.size(); ++i) {
    const Index d = array.dims[i];
    if (d < 1 || d > Index{0xFFFFFFFF})
      throw UsageError("write_idx(" + path.string() + "): dimension " + std::to_string(i) + " of " +
                       dims_text(array.dims) + " must be in [1, 2^32 - 1]");
    const auto u = static_cast<std::uint32_t>(d);
    for (std::size_t b = 0; b < 4; ++b) header[4 + 4 * i + b] = static_cast<std::uint8_t>(u >> (24 - 8 * b));
    overflow = overflow || __builtin_mul_overflow(total, std::size_t{u}, &total);
  }
  if (overflow || total != array.bytes.size())
    throw UsageError("write_idx(" + path.string() + "): dimensions " + dims_text(array.dims) + " need " +
                     (overflow ? "more than 2^64" : std::to_string(total)) + " bytes but " +
                     std::to_string(array.bytes.size()) + " were given");
  write_file(path, {header, array.bytes});
}

namespace detail {
void write_gz(const fs::path& path, std::span<const std::uint8_t> bytes) {
  if (path.extension() != ".gz") throw UsageError("detail::write_gz: " + path.string() + " does not end in .gz");
  write_file(path, {bytes});
}
}  // namespace detail

}  // namespace loom
