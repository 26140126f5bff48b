// read_idx / write_idx: round trips, raw and gzip, and every malformed file we
// know of, each checked by the message the user would see.

#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "loom/data/idx.hpp"
#include "loom/error.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using Bytes = std::vector<std::uint8_t>;

namespace {

struct IdxTempDir : loom::testing::TempDir {
  IdxTempDir() : TempDir("loom-test-idx") {}
};

void put_u32(Bytes& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(v >> s));
}

// An IDX file by hand, independent of write_idx: magic, dimensions, payload.
Bytes idx_file(std::uint32_t magic, const std::vector<std::uint32_t>& dims, const Bytes& payload) {
  Bytes b;
  put_u32(b, magic);
  for (auto d : dims) put_u32(b, d);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

Bytes iota_bytes(std::size_t n) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 7 + 3);
  return b;
}

void write_raw(const fs::path& p, const Bytes& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(f.good());
}

Bytes read_raw(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("read_idx reads a hand-made raw file, dimensions big-endian and outermost first", "[idx]") {
  IdxTempDir dir;
  const Bytes payload = iota_bytes(2 * 3 * 4);
  write_raw(dir / "x-idx3-ubyte", idx_file(0x00000803, {2, 3, 4}, payload));

  const loom::IdxArray a = loom::read_idx(dir / "x-idx3-ubyte", {.rank = 3});
  CHECK(a.dims == std::vector<loom::Index>{2, 3, 4});
  CHECK(a.rank() == 3);
  CHECK(a.count() == 2);
  CHECK(a.bytes == payload);
}

TEST_CASE("write_idx then read_idx round-trips, raw and gzip", "[idx]") {
  IdxTempDir dir;
  const loom::IdxArray images{{5, 28, 28}, iota_bytes(5 * 28 * 28)};
  const loom::IdxArray labels{{5}, Bytes{9, 0, 0, 3, 7}};
  for (const char* name : {"images-idx3-ubyte", "images-idx3-ubyte.gz"}) {
    INFO(name);
    loom::write_idx(dir / name, images);
    const auto back = loom::read_idx(dir / name, {.rank = 3});
    CHECK(back.dims == images.dims);
    CHECK(back.bytes == images.bytes);
  }
  loom::write_idx(dir / "labels.gz", labels);
  CHECK(loom::read_idx(dir / "labels.gz").bytes == labels.bytes);  // any rank when none is asked for

  // The written raw file is exactly header + payload, and the .gz really is gzip.
  CHECK(fs::file_size(dir / "images-idx3-ubyte") == 16 + 5 * 28 * 28);
  const Bytes gz = read_raw(dir / "images-idx3-ubyte.gz");
  REQUIRE(gz.size() > 2);
  CHECK((gz[0] == 0x1F && gz[1] == 0x8B));
}

TEST_CASE("read_idx tells gzip from raw by content, not by name", "[idx]") {
  IdxTempDir dir;
  const Bytes file = idx_file(0x00000801, {4}, {1, 2, 3, 4});
  write_raw(dir / "raw-but-named.gz", file);
  loom::detail::write_gz(dir / "gz.gz", file);
  fs::copy_file(dir / "gz.gz", dir / "gz-but-named-raw");
  for (const char* name : {"raw-but-named.gz", "gz.gz", "gz-but-named-raw"}) {
    INFO(name);
    CHECK(loom::read_idx(dir / name, {.rank = 1}).bytes == Bytes{1, 2, 3, 4});
  }
}

TEST_CASE("read_idx reads concatenated gzip members as one stream, as gzip does", "[idx]") {
  IdxTempDir dir;
  const Bytes file = idx_file(0x00000801, {6}, {10, 11, 12, 13, 14, 15});
  loom::detail::write_gz(dir / "a.gz", Bytes(file.begin(), file.begin() + 7));
  loom::detail::write_gz(dir / "b.gz", Bytes(file.begin() + 7, file.end()));
  Bytes both = read_raw(dir / "a.gz");
  const Bytes b = read_raw(dir / "b.gz");
  both.insert(both.end(), b.begin(), b.end());
  write_raw(dir / "ab.gz", both);
  CHECK(loom::read_idx(dir / "ab.gz").bytes == Bytes{10, 11, 12, 13, 14, 15});
}

TEST_CASE("read_idx: missing, empty, directory", "[idx]") {
  IdxTempDir dir;
  const fs::path missing = dir / "train-images-idx3-ubyte";
  REQUIRE_THROWS_AS(loom::read_idx(missing), loom::DataError);
  REQUIRE_THROWS_WITH(loom::read_idx(missing), Contains(missing.string() + ": no such file"));

  // The .gz was unpacked, or the other way round: say which file does exist.
  write_raw(dir / "train-images-idx3-ubyte.gz", {});
  REQUIRE_THROWS_WITH(loom::read_idx(missing), Contains("but " + missing.string() + ".gz exists"));

  REQUIRE_THROWS_AS(loom::read_idx(dir / "train-images-idx3-ubyte.gz"), loom::DataError);
  REQUIRE_THROWS_WITH(loom::read_idx(dir / "train-images-idx3-ubyte.gz"), Contains("empty file (0 bytes)"));
  REQUIRE_THROWS_WITH(loom::read_idx(dir.path), Contains("is a directory"));
}

TEST_CASE("read_idx: truncated header", "[idx]") {
  IdxTempDir dir;
  write_raw(dir / "two", {0, 0});
  REQUIRE_THROWS_WITH(loom::read_idx(dir / "two"),
                      Contains("truncated header: the file holds 2 bytes, but an IDX file starts with a 4-byte magic"));
  // Rank 3 promises three dimensions; only one and a half are there.
  write_raw(dir / "ten", {0, 0, 8, 3, 0, 0, 0, 1, 0, 0});
  REQUIRE_THROWS_AS(loom::read_idx(dir / "ten"), loom::DataError);
  REQUIRE_THROWS_WITH(loom::read_idx(dir / "ten"),
                      Contains("the file holds 10 bytes, but the header of a rank-3 IDX file takes 16"));
  loom::detail::write_gz(dir / "ten.gz", Bytes{0, 0, 8, 3, 0, 0, 0, 1, 0, 0});
  REQUIRE_THROWS_WITH(loom::read_idx(dir / "ten.gz"), Contains("the file decompresses to 10 bytes"));
}

TEST_CASE("read_idx: truncated payload and trailing bytes, raw", "[idx]") {
  IdxTempDir dir;
  Bytes file = idx_file(0x00000803, {1, 3, 4}, iota_bytes(12));
  write_raw(dir / "short", Bytes(file.begin(), file.end() - 1));
  REQUIRE_THROWS_AS(loom::read_idx(dir / "short"), loom::DataError);
  REQUIRE_THROWS_WITH(loom::read_idx(dir / "short"),
                      Contains("truncated: the header declares (1, 3, 4) = 12 bytes of data but the file holds only 11") &&
                          Contains("expected a file of 28 bytes, found 27"));

  file.insert(file.end(), {0, 0, 0});
  write_raw(dir / "long", file);
  REQUIRE_THROWS_AS(loom::read_idx(dir / "long"), loom::DataError);
  REQUIRE_THROWS_WITH(loom::read_idx(dir / "long"),
                      Contains("3 unexpected bytes after the data") && Contains("should be 28 bytes, but it is 31"));
}

TEST_CASE("read_idx: truncated payload and trailing bytes, gzip", "[idx]") {
  IdxTempDir dir;
  const Bytes file = idx_file(0x00000803, {1, 3, 4}, iota_bytes(12));
  loom::detail::write_gz(dir / "short.gz", Bytes(file.begin(), file.end() - 1));
  REQUIRE_THROWS_WITH(loom::read_idx(dir / "short.gz"),
                      Contains("truncated: the header declares (1, 3, 4) = 12 bytes of data but the gzip data ends after 11"));

  Bytes longer = file;
  longer.push_back(0);
  loom::detail::write_gz(dir / "long.gz", longer);
  REQUIRE_THROWS_AS(loom::read_idx(dir / "long.gz"), loom::DataError);
  REQUIRE_THROWS_WITH(loom::read_idx(dir / "long.gz"), Contains("the gzip data is longer than its IDX header says"));
}

TEST_CASE("read_idx: a gzip bomb is stopped one byte past the declared size", "[idx]") {
  IdxTempDir dir;
  // A header declaring 4 bytes, then 1024 gzip members of 1 MiB of zeros each:
  // about 1 MB on disk that inflates to 1 GiB more than declared.
  loom::detail::write_gz(dir / "head.gz", idx_file(0x00000801, {4}, {1, 2, 3, 4}));
  loom::detail::write_gz(dir / "zeros.gz", Bytes(std::size_t{1} << 20, 0));
  Bytes bomb = read_raw(dir / "head.gz");
  const Bytes zeros = read_raw(dir / "zeros.gz");
  for (int i = 0; i < 1024; ++i) bomb.insert(bomb.end(), zeros.begin(), zeros.end());
  write_raw(dir / "bomb.gz", bomb);
  REQUIRE(bomb.size() < (std::size_t{2} << 20));

  const auto start = std::chrono::steady_clock::now();
  REQUIRE_THROWS_AS(loom::read_idx(dir / "bomb.gz"), loom::DataError);
  REQUIRE_THROWS_WITH(loom::read_idx(dir / "bomb.gz"),
                      Contains("(4) = 4 bytes of data, but more follows (reading stopped there)"));
  // Inflating the whole gigabyte takes most of a second; stopping early, microseconds.
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(250));
}

TEST_CASE("read_idx: corrupt and truncated gzip data", "[idx]") {
  IdxTempDir dir;
  loom::write_idx(dir / "ok.gz", {{3, 28, 28}, iota_bytes(3 * 28 * 28)});
  const Bytes good = read_raw(dir / "ok.gz");

  // The CRC in the trailer (the 8 bytes before the end: CRC-32, then length).
  Bytes bad_crc = good;
  bad_crc[bad_crc.size() - 8] ^= 0xFF;
  write_raw(dir / "bad-crc.gz", bad_crc);
  REQUIRE_THROWS_AS(loom::read_idx(dir / "bad-crc.gz"), loom::DataError);
  REQUIRE_THROWS_WITH(loom::read_idx(dir / "bad-crc.gz"),
                      Contains((dir / "bad-crc.gz").string()) && Contains("corrupt gzip data") &&
                          Contains("incorrect data check"));

  // Damage in the compressed stream: whatever zlib makes of it, it is a DataError.
  for (std::size_t at : {std::size_t{12}, good.size() / 2}) {
    Bytes damaged = good;
    for (std::size_t i = at; i < at + 4; ++i) damaged[i] ^= 0x5A;
    write_raw(dir / "damaged.gz", damaged);
    INFO("damaged at byte " << at);
    REQUIRE_THROWS_AS(loom::read_idx(dir / "damaged.gz"), loom::DataError);
  }

  write_raw(dir / "cut.gz", Bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(good.size() / 2)));
  REQUIRE_THROWS_WITH(loom::read_idx(dir / "cut.gz"),
                      Contains("truncated gzip data: the compressed file ends in the middle of the stream"));

  // Garbage after the last member is neither a member nor silently ignored.
  Bytes trailing = good;
  trailing.insert(trailing.end(), {'j', 'u', 'n', 'k'});
  write_raw(dir / "trailing.gz", trailing);
  REQUIRE_THROWS_AS(loom::read_idx(dir / "trailing.gz"), loom::DataError);
}

TEST_CASE("read_idx: wrong magic says what was expected and what was found", "[idx]") {
  IdxTempDir dir;
  const fs::path labels = dir / "train-labels-idx1-ubyte";
  write_raw(labels, idx_file(0x00000801, {2}, {1, 2}));
  REQUIRE_THROWS_AS(loom::read_idx(labels, {.rank = 3}), loom::DataError);
  REQUIRE_THROWS_WITH(loom::read_idx(labels, {.rank = 3}),
                      Contains(labels.string() +
                               ": expected IDX magic 2051 (0x00000803, unsigned bytes, rank 3) but found 2049 "
                               "(0x00000801, unsigned bytes, rank 1)") &&
                          Contains("were the image and label files swapped?"));

  const fs::path images = dir / "train-images-idx3-ubyte";
  write_raw(images, idx_file(0x00000803, {1, 1, 2}, {1, 2}));
  REQUIRE_THROWS_WITH(loom::read_idx(images, {.rank = 1}),
                      Contains("expected IDX magic 2049 (0x00000801, unsigned bytes, rank 1) but found 2051"));

  // A failed download often leaves an HTML page under the data file's name.
  const std::string html = "<!DOCTYPE html><html>404</html>";
  write_raw(dir / "page", Bytes(html.begin(), html.end()));
  REQUIRE_THROWS_WITH(loom::read_idx(dir / "page", {.rank = 3}),
                      Contains("this is not an IDX file: it starts with '<'"));
  REQUIRE_THROWS_WITH(loom::read_idx(dir / "page"),
                      Contains("expected the magic number of an unsigned-byte IDX file"));

  write_raw(dir / "rank0", {0, 0, 8, 0, 1});
  REQUIRE_THROWS_AS(loom::read_idx(dir / "rank0"), loom::DataError);
}

TEST_CASE("read_idx: only unsigned bytes", "[idx]") {
  IdxTempDir dir;
  write_raw(dir / "floats", idx_file(0x00000D01, {1}, {0, 0, 0x80, 0x3F}));
  REQUIRE_THROWS_AS(loom::read_idx(dir / "floats", {.rank = 1}), loom::DataError);
  REQUIRE_THROWS_WITH(loom::read_idx(dir / "floats", {.rank = 1}),
                      Contains("but found 3329 (0x00000D01, 32-bit floats, rank 1)") &&
                          Contains("loom reads only unsigned-byte IDX files (element type 0x08)"));
  REQUIRE_THROWS_AS(loom::read_idx(dir / "floats"), loom::DataError);
}

TEST_CASE("read_idx: a zero dimension is an error", "[idx]") {
  IdxTempDir dir;
  write_raw(dir / "zero", idx_file(0x00000803, {10, 0, 28}, {}));
  REQUIRE_THROWS_AS(loom::read_idx(dir / "zero"), loom::DataError);
  REQUIRE_THROWS_WITH(loom::read_idx(dir / "zero"),
                      Contains("dimension 1 of (10, 0, 28) is 0; every IDX dimension must be positive"));
}

TEST_CASE("read_idx refuses absurd sizes before allocating", "[idx]") {
  IdxTempDir dir;
  // 2^32-1 cubed overflows 64 bits; the check must not.
  write_raw(dir / "overflow", idx_file(0x00000803, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, {}));
  REQUIRE_THROWS_AS(loom::read_idx(dir / "overflow"), loom::DataError);
  REQUIRE_THROWS_WITH(loom::read_idx(dir / "overflow"),
                      Contains("the header declares dimensions (4294967295, 4294967295, 4294967295), more than the "
                               "limit of 2147483648 bytes of data"));

  // Just past the default limit of 2^31 bytes: 2739147 * 28 * 28 = 2147491248.
  write_raw(dir / "over-limit", idx_file(0x00000803, {2739147, 28, 28}, {}));
  REQUIRE_THROWS_WITH(loom::read_idx(dir / "over-limit"), Contains("more than the limit of 2147483648"));
  // The limit is an option.
  write_raw(dir / "small", idx_file(0x00000801, {8}, iota_bytes(8)));
  REQUIRE_THROWS_WITH(loom::read_idx(dir / "small", {.max_bytes = 7}), Contains("more than the limit of 7 bytes"));
  CHECK(loom::read_idx(dir / "small", {.max_bytes = 8}).bytes.size() == 8);

  // A header claiming 2^31 images of 28x28, or 2^31 labels: the images pass the
  // limit, the labels sit exactly on it and are refused by the file size instead.
  write_raw(dir / "2^31-images", idx_file(0x00000803, {0x80000000, 28, 28}, iota_bytes(28 * 28)));
  REQUIRE_THROWS_WITH(loom::read_idx(dir / "2^31-images"),
                      Contains("(2147483648, 28, 28), more than the limit of 2147483648 bytes"));
  write_raw(dir / "2^31-labels", idx_file(0x00000801, {0x80000000}, {1, 2, 3}));
  REQUIRE_THROWS_WITH(loom::read_idx(dir / "2^31-labels"),
                      Contains("(2147483648) = 2147483648 bytes of data but the file holds only 3"));

  // Under the limit, but the file cannot hold it: caught from the file size alone.
  write_raw(dir / "liar", idx_file(0x00000803, {2000000, 28, 28}, iota_bytes(100)));
  REQUIRE_THROWS_WITH(loom::read_idx(dir / "liar"),
                      Contains("(2000000, 28, 28) = 1568000000 bytes of data but the file holds only 100"));
  // Gzip: no 200-byte gzip file inflates to 1.5 GB.
  loom::detail::write_gz(dir / "liar.gz", idx_file(0x00000803, {2000000, 28, 28}, iota_bytes(100)));
  REQUIRE_THROWS_WITH(loom::read_idx(dir / "liar.gz"), Contains("gzip file can hold (deflate compresses at most 1032:1)"));
}

TEST_CASE("parse_idx reads from memory what read_idx reads from a file, with the same checks", "[idx]") {
  IdxTempDir dir;
  const loom::IdxArray images{{3, 5, 4}, iota_bytes(3 * 5 * 4)};
  for (const char* name : {"images-idx3-ubyte", "images-idx3-ubyte.gz"}) {
    INFO(name);
    loom::write_idx(dir / name, images);
    const Bytes file = read_raw(dir / name);
    const loom::IdxArray a = loom::parse_idx(file, "memory", {.rank = 3});
    CHECK(a.dims == images.dims);
    CHECK(a.bytes == images.bytes);
    // One parser: a cut file gets read_idx's message, naming the source given.
    const Bytes cut(file.begin(), file.end() - 5);
    REQUIRE_THROWS_AS(loom::parse_idx(cut, "https://example.org/x.gz"), loom::DataError);
    REQUIRE_THROWS_WITH(loom::parse_idx(cut, "https://example.org/x.gz"),
                        Contains("https://example.org/x.gz: truncated"));
  }
  REQUIRE_THROWS_WITH(loom::parse_idx({}, "nothing"), Contains("nothing: empty file (0 bytes)"));
  REQUIRE_THROWS_WITH(loom::parse_idx(idx_file(0x00000801, {2}, {1, 2}), "labels", {.rank = 3}),
                      Contains("labels: expected IDX magic 2051"));
  REQUIRE_THROWS_AS(loom::parse_idx(Bytes{0, 0, 8, 1}, "x", {.rank = 256}), loom::UsageError);
}

TEST_CASE("read_idx and write_idx reject invalid arguments", "[idx]") {
  IdxTempDir dir;
  REQUIRE_THROWS_AS(loom::read_idx(dir / "any", {.rank = 0}), loom::UsageError);
  REQUIRE_THROWS_AS(loom::write_idx(dir / "x", {{2, 2}, Bytes(3)}), loom::UsageError);
  REQUIRE_THROWS_WITH(loom::write_idx(dir / "x", {{2, 2}, Bytes(3)}),
                      Contains("dimensions (2, 2) need 4 bytes but 3 were given"));
  REQUIRE_THROWS_AS(loom::write_idx(dir / "x", {{}, Bytes{}}), loom::UsageError);
  REQUIRE_THROWS_AS(loom::write_idx(dir / "x", {{0}, Bytes{}}), loom::UsageError);
  REQUIRE_THROWS_AS(loom::write_idx(dir / "no-such-dir" / "x", {{1}, Bytes{1}}), loom::IoError);
}
