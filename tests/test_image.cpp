// Image files (read_image, decode_image, write_png, write_jpeg) and the image
// helpers the preprocessing builds on: to_grey, resize, to_tensor.

#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include <zlib.h>  // crc32, for a well-formed hand-made PNG header

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "loom/data/dataset.hpp"
#include "loom/error.hpp"
#include "loom/image/exif_orientation.hpp"
#include "loom/image/grey.hpp"
#include "loom/image/image.hpp"
#include "loom/image/image_tensor.hpp"
#include "loom/image/resize.hpp"

// stb_image's process-wide flip setting, to check that loom ignores it.
extern "C" void stbi_set_flip_vertically_on_load(int flag_true_if_should_flip);

using namespace loom;
using Catch::Matchers::Contains;
using Bytes = std::vector<std::uint8_t>;

namespace {

// Every pixel and channel distinct enough to catch swapped axes or channels.
Image pattern(int w, int h, int c) {
  Image im(w, h, c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) im.at(x, y, k) = static_cast<std::uint8_t>(x * 37 + y * 11 + k * 71 + x * y);
  return im;
}

// Smooth content, which JPEG keeps well.
Image gradient(int w, int h, int c) {
  Image im(w, h, c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) im.at(x, y, k) = static_cast<std::uint8_t>(40 + (x * 150) / w + (y * 50) / h + k * 10);
  return im;
}

double mean_abs_diff(const Image& a, const Image& b) {
  REQUIRE(a.pixels.size() == b.pixels.size());
  double s = 0;
  for (std::size_t i = 0; i < a.pixels.size(); ++i) s += std::abs(a.pixels[i] - b.pixels[i]);
  return s / static_cast<double>(a.pixels.size());
}

void write_bytes(const std::filesystem::path& p, const Bytes& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(f.good());
}

Bytes file_bytes(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void put_be32(Bytes& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(v >> s));
}
void put_le(Bytes& b, std::uint32_t v, int n) {
  for (int i = 0; i < n; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

// A PNG that is only a signature and an IHDR chunk claiming w x h pixels of
// colour type 0 (grey) or 6 (RGBA), 8 bits each.
Bytes png_header(std::uint32_t w, std::uint32_t h, std::uint8_t colour_type = 6) {
  Bytes b = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  put_be32(b, 13);
  Bytes chunk = {'I', 'H', 'D', 'R'};
  put_be32(chunk, w);
  put_be32(chunk, h);
  chunk.insert(chunk.end(), {8, colour_type, 0, 0, 0});  // 8 bits, deflate, no filter, no interlace
  b.insert(b.end(), chunk.begin(), chunk.end());
  put_be32(b, static_cast<std::uint32_t>(crc32(0, chunk.data(), static_cast<uInt>(chunk.size()))));
  return b;
}

// A 54-byte BMP header claiming w x h 24-bit pixels, with no pixels after it.
Bytes bmp_header(std::uint32_t w, std::uint32_t h) {
  Bytes b = {'B', 'M'};
  put_le(b, 54, 4);  // file size (a lie, like the rest)
  put_le(b, 0, 4);
  put_le(b, 54, 4);  // pixel data offset
  put_le(b, 40, 4);  // BITMAPINFOHEADER
  put_le(b, w, 4);
  put_le(b, h, 4);
  put_le(b, 1, 2);   // planes
  put_le(b, 24, 2);  // bits per pixel
  put_le(b, 0, 4);   // no compression
  for (int i = 0; i < 5; ++i) put_le(b, 0, 4);
  return b;
}

// An APP1 segment whose EXIF block holds only IFD0 with the orientation tag,
// in Intel ("II") or Motorola ("MM") byte order.
Bytes exif_segment(std::uint16_t orientation, bool little) {
  Bytes tiff = little ? Bytes{'I', 'I', 42, 0, 8, 0, 0, 0} : Bytes{'M', 'M', 0, 42, 0, 0, 0, 8};
  const auto u16 = [&](std::uint16_t v) {
    if (little) tiff.insert(tiff.end(), {static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8)});
    else tiff.insert(tiff.end(), {static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)});
  };
  u16(1);                    // one entry
  u16(0x0112), u16(3);       // orientation, SHORT
  u16(little ? 1 : 0), u16(little ? 0 : 1);  // count 1
  u16(orientation), u16(0);  // the value, left-justified in 4 bytes
  tiff.insert(tiff.end(), {0, 0, 0, 0});  // no next directory
  Bytes seg = {0xFF, 0xE1};
  const std::size_t length = 2 + 6 + tiff.size();
  seg.insert(seg.end(), {static_cast<std::uint8_t>(length >> 8), static_cast<std::uint8_t>(length)});
  seg.insert(seg.end(), {'E', 'x', 'i', 'f', 0, 0});
  seg.insert(seg.end(), tiff.begin(), tiff.end());
  return seg;
}

// jpeg with segment inserted right after its start marker.
Bytes with_segment(Bytes jpeg, const Bytes& segment) {
  jpeg.insert(jpeg.begin() + 2, segment.begin(), segment.end());
  return jpeg;
}

}  // namespace

TEST_CASE("Image: construction, at() and size checks", "[image]") {
  Image im(3, 2, 3, 9);
  CHECK(im.pixels.size() == 18);
  CHECK(im.at(2, 1, 2) == 9);
  im.at(1, 0, 2) = 7;
  CHECK(im.pixels[(0 * 3 + 1) * 3 + 2] == 7);  // row-major, channels interleaved
  CHECK(Image().empty());
  CHECK_THROWS_AS(Image(0, 5, 1), UsageError);
  CHECK_THROWS_AS(Image(5, 5, 0), UsageError);
  CHECK_THROWS_WITH(Image(5, 5, 5), Contains("channels must be 1"));
  CHECK_THROWS_AS(Image(max_image_side + 1, 1, 1), UsageError);
  CHECK_THROWS_WITH(Image(max_image_side, max_image_side, 1), Contains("pixels"));
}

TEST_CASE("PNG round trip is exact for grey, grey+alpha, RGB and RGBA", "[image]") {
  testing::TempDir dir("loom-test-image");
  for (int c = 1; c <= 4; ++c) {
    const Image im = pattern(13, 7, c);
    const auto path = dir / (std::to_string(c) + "-channels.png");  // (not "p" + ...: a false g++ 12 warning)
    write_png(path, im);
    const Image back = read_image(path);
    CHECK(back.width == 13);
    CHECK(back.height == 7);
    CHECK(back.channels == c);
    CHECK(back.pixels == im.pixels);
    // The same bytes decode the same way from memory.
    CHECK(decode_image(file_bytes(path)).pixels == im.pixels);
  }
}

TEST_CASE("JPEG round trip is close, grey comes back as 3 equal channels, alpha is dropped", "[image]") {
  testing::TempDir dir("loom-test-image");
  for (int c : {1, 3}) {
    const Image im = gradient(64, 48, c);
    const auto path = dir / ("j" + std::to_string(c) + ".jpg");
    write_jpeg(path, im, 95);
    Image back = read_image(path);
    REQUIRE(back.width == 64);
    REQUIRE(back.height == 48);
    REQUIRE(back.channels == 3);  // stb_image_write always writes colour (Y, Cb, Cr) JPEGs
    if (c == 1) back = to_grey(back);
    CHECK(mean_abs_diff(back, im) < 2.0);
  }
  // Quality matters: a lower quality file is smaller.
  const Image im = pattern(64, 64, 3);
  write_jpeg(dir / "q95.jpg", im, 95);
  write_jpeg(dir / "q20.jpg", im, 20);
  CHECK(std::filesystem::file_size(dir / "q20.jpg") < std::filesystem::file_size(dir / "q95.jpg"));

  write_jpeg(dir / "a.jpg", gradient(32, 32, 4));
  CHECK(read_image(dir / "a.jpg").channels == 3);
}

TEST_CASE("read_image: a missing or unreadable file is an IoError naming it", "[image]") {
  testing::TempDir dir("loom-test-image");
  CHECK_THROWS_AS(read_image(dir / "missing.png"), IoError);
  CHECK_THROWS_WITH(read_image(dir / "missing.png"), Contains("missing.png"));
  CHECK_THROWS_AS(read_image(dir.path), IoError);  // a directory
}

TEST_CASE("read_image/decode_image: empty input and garbage are DataErrors with stb's reason", "[image]") {
  testing::TempDir dir("loom-test-image");
  write_bytes(dir / "empty.png", {});
  CHECK_THROWS_AS(read_image(dir / "empty.png"), DataError);
  CHECK_THROWS_WITH(read_image(dir / "empty.png"), Contains("empty.png") && Contains("empty"));
  CHECK_THROWS_AS(decode_image({}), DataError);

  const Bytes garbage = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', 0, 1, 2, 3, 4, 5, 6, 7, 8};
  write_bytes(dir / "garbage.jpg", garbage);
  CHECK_THROWS_AS(read_image(dir / "garbage.jpg"), DataError);
  CHECK_THROWS_WITH(read_image(dir / "garbage.jpg"), Contains("garbage.jpg") && Contains("unknown image type"));
  CHECK_THROWS_WITH(decode_image(garbage, "upload 3"), Contains("upload 3"));

  // A valid header with its pixels cut off: refused, naming the source (by the
  // PNG chunk check in front of stb, src/stb_guard.cpp, which names the chunk).
  testing::TempDir d2("loom-test-image");
  write_png(d2 / "ok.png", pattern(40, 40, 3));
  Bytes cut = file_bytes(d2 / "ok.png");
  cut.resize(cut.size() / 2);
  CHECK_THROWS_AS(decode_image(cut, "cut.png"), DataError);
  CHECK_THROWS_WITH(decode_image(cut, "cut.png"), Contains("cut.png") && Contains("truncated PNG"));
}

TEST_CASE("decode_image refuses a header claiming a huge image before decoding it", "[image]") {
  // Headers only, no pixels: were they decoded, stb would first allocate the
  // whole image. 100000 x 100000 RGBA (40 GB) stb's PNG reader itself refuses
  // (above 2^30 bytes: "not a decodable image"); 10000 x 10000 grey (100 MB)
  // it accepts, and only loom's pixel limit stops it, from the header ("claims").
  CHECK_THROWS_AS(decode_image(png_header(100000, 100000)), DataError);
  CHECK_THROWS_WITH(decode_image(png_header(10000, 10000, 0), "huge.png"),
                    Contains("huge.png") && Contains("claims to be 10000 x 10000"));
  CHECK_THROWS_WITH(decode_image(png_header(40000, 10, 0), "wide.png"), Contains("claims to be 40000 x 10"));
  for (auto [w, h] : {std::pair<std::uint32_t, std::uint32_t>{100000, 100000}, {20000, 20000}, {40000, 10}})
    CHECK_THROWS_WITH(decode_image(bmp_header(w, h), "huge.bmp"),
                      Contains("huge.bmp") && Contains("claims to be " + std::to_string(w) + " x " + std::to_string(h)));
  // Within the limits the same header gets as far as the decoder, which finds no pixels.
  CHECK_THROWS_WITH(decode_image(png_header(100, 100), "small.png"), Contains("small.png") && Contains("cannot decode"));
}

TEST_CASE("write_png/write_jpeg: bad images, qualities and paths", "[image]") {
  testing::TempDir dir("loom-test-image");
  CHECK_THROWS_AS(write_png(dir / "e.png", Image()), UsageError);
  Image broken = pattern(4, 4, 3);
  broken.pixels.pop_back();
  CHECK_THROWS_WITH(write_png(dir / "b.png", broken), Contains("b.png") && Contains("bytes"));
  CHECK_THROWS_AS(write_jpeg(dir / "q.jpg", pattern(4, 4, 3), 0), UsageError);
  CHECK_THROWS_AS(write_jpeg(dir / "q.jpg", pattern(4, 4, 3), 101), UsageError);
  CHECK_THROWS_AS(write_png(dir / "no" / "such" / "dir.png", pattern(4, 4, 1)), IoError);
  CHECK_THROWS_WITH(write_jpeg(dir / "no" / "dir.jpg", pattern(4, 4, 1)), Contains("dir.jpg"));
}

TEST_CASE("decoding ignores stb_image's process-wide flip setting and runs on many threads", "[image]") {
  testing::TempDir dir("loom-test-image");
  const Image im = pattern(9, 5, 3);
  write_png(dir / "p.png", im);
  const Bytes bytes = file_bytes(dir / "p.png");

  stbi_set_flip_vertically_on_load(1);
  const Image flipped_setting = decode_image(bytes);
  stbi_set_flip_vertically_on_load(0);
  CHECK(flipped_setting.pixels == im.pixels);

  std::vector<int> ok(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) ok[t] += decode_image(bytes).pixels == im.pixels;
    });
  for (auto& t : threads) t.join();
  CHECK(ok == std::vector<int>(4, 50));
}

TEST_CASE("to_grey: BT.601 luma, alpha over the matte", "[image]") {
  Image rgb(3, 1, 3);
  const std::uint8_t colours[3][3] = {{255, 0, 0}, {0, 255, 0}, {10, 20, 200}};
  for (int x = 0; x < 3; ++x)
    for (int k = 0; k < 3; ++k) rgb.at(x, 0, k) = colours[x][k];
  const Image g = to_grey(rgb);
  REQUIRE(g.channels == 1);
  CHECK(g.at(0, 0) == 76);   // 0.299 * 255
  CHECK(g.at(1, 0) == 150);  // 0.587 * 255
  CHECK(g.at(2, 0) == 38);   // 2.99 + 11.74 + 22.8

  Image ga(3, 1, 2);
  ga.at(0, 0, 0) = 0, ga.at(0, 0, 1) = 255;  // opaque black
  ga.at(1, 0, 0) = 0, ga.at(1, 0, 1) = 0;    // transparent
  ga.at(2, 0, 0) = 0, ga.at(2, 0, 1) = 51;   // 20% black
  CHECK(to_grey(ga).pixels == Bytes{0, 255, 204});
  CHECK(to_grey(ga, 100).pixels == Bytes{0, 100, 80});
  CHECK(to_grey(pattern(5, 4, 1)).pixels == pattern(5, 4, 1).pixels);
}

TEST_CASE("to_rgb: grey repeated, alpha over the matte, RGB kept", "[image]") {
  Image ga(2, 1, 2);
  ga.at(0, 0, 0) = 40, ga.at(0, 0, 1) = 255;  // opaque grey 40
  ga.at(1, 0, 0) = 0, ga.at(1, 0, 1) = 51;    // 20% black
  CHECK(to_rgb(ga).pixels == Bytes{40, 40, 40, 204, 204, 204});
  Image rgba(1, 1, 4);
  rgba.at(0, 0, 0) = 200, rgba.at(0, 0, 1) = 100, rgba.at(0, 0, 2) = 0, rgba.at(0, 0, 3) = 0;  // transparent
  CHECK(to_rgb(rgba, 10).pixels == Bytes{10, 10, 10});
  CHECK(to_rgb(pattern(5, 4, 3)).pixels == pattern(5, 4, 3).pixels);
}

TEST_CASE("resize: area averaging undoes an integer enlargement, linear growth, errors", "[image]") {
  const Image small = pattern(7, 5, 3);
  Image big(28, 20, 3);  // each pixel a 4 x 4 block
  for (int y = 0; y < 20; ++y)
    for (int x = 0; x < 28; ++x)
      for (int k = 0; k < 3; ++k) big.at(x, y, k) = small.at(x / 4, y / 4, k);
  CHECK(resize(big, 7, 5).pixels == small.pixels);

  // 2 x 2 averaging, with a non-integer factor covering fractions of pixels.
  Image row(4, 1, 1);
  row.pixels = {0, 100, 200, 40};
  CHECK(resize(row, 2, 1).pixels == Bytes{50, 120});
  CHECK(resize(row, 3, 1).pixels == Bytes{25, 150, 80});  // (0 + 100/3) * 3/4, (100 + 200) * 2/3 * 3/4, ...

  // Growing 2 -> 4 interpolates between the two centres, edges held.
  Image two(2, 1, 1);
  two.pixels = {0, 200};
  CHECK(resize(two, 4, 1).pixels == Bytes{0, 50, 150, 200});
  CHECK(resize(small, 7, 5).pixels == small.pixels);  // same size: unchanged

  CHECK_THROWS_AS(resize(Image(), 4, 4), UsageError);
  CHECK_THROWS_AS(resize(small, 0, 4), UsageError);
}

TEST_CASE("to_tensor scales exactly as Dataset::gather does", "[image]") {
  const Image im = pattern(6, 4, 1);
  const Tensor x = to_tensor(im);
  REQUIRE(x.dimension(0) == 1);
  REQUIRE(x.dimension(1) == 4);
  REQUIRE(x.dimension(2) == 6);
  REQUIRE(x.dimension(3) == 1);

  const Dataset data(im.pixels, {0}, Shape::image(4, 6, 1));
  Tensor gathered;
  std::vector<Label> label(1);
  const Index idx[] = {0};
  data.gather(idx, gathered, label);
  for (Index i = 0; i < x.size(); ++i) CHECK(x.data()[i] == gathered.data()[i]);
  CHECK(x(0, 3, 5, 0) == static_cast<float>(im.at(5, 3)) / 255.0f);

  const std::vector<Image> two = {pattern(6, 4, 1), gradient(6, 4, 1)};
  const Tensor batch = to_tensor(two);
  CHECK(batch.dimension(0) == 2);
  CHECK(batch(1, 2, 3, 0) == static_cast<float>(two[1].at(3, 2)) / 255.0f);
  const std::vector<Image> mixed = {pattern(6, 4, 1), pattern(4, 6, 1)};
  CHECK_THROWS_AS(to_tensor(mixed), ShapeError);
  CHECK_THROWS_AS(to_tensor(std::span<const Image>()), UsageError);
}

TEST_CASE("apply_orientation turns and mirrors as the EXIF tag says", "[image]") {
  const Image im = pattern(3, 2, 2);
  const auto corner = [&](const Image& out, int x, int y) {  // where stored (0, 0) went
    return out.at(x, y, 0) == im.at(0, 0, 0) && out.at(x, y, 1) == im.at(0, 0, 1);
  };
  CHECK(apply_orientation(im, 1).pixels == im.pixels);
  const Image o2 = apply_orientation(im, 2), o3 = apply_orientation(im, 3), o4 = apply_orientation(im, 4);
  CHECK((o2.width == 3 && corner(o2, 2, 0) && corner(o3, 2, 1) && corner(o4, 0, 1)));
  const Image o5 = apply_orientation(im, 5), o6 = apply_orientation(im, 6);
  const Image o7 = apply_orientation(im, 7), o8 = apply_orientation(im, 8);
  CHECK((o6.width == 2 && o6.height == 3));
  CHECK((corner(o5, 0, 0) && corner(o6, 1, 0) && corner(o7, 1, 2) && corner(o8, 0, 2)));
  CHECK(o5.at(0, 1) == im.at(1, 0));                   // transposed
  CHECK(apply_orientation(o6, 8).pixels == im.pixels);  // a quarter turn back
  CHECK(apply_orientation(o3, 3).pixels == im.pixels);
  CHECK(apply_orientation(o7, 7).pixels == im.pixels);
  CHECK_THROWS_AS(apply_orientation(im, 9), UsageError);
}

TEST_CASE("decode_image turns a JPEG upright by its EXIF orientation, bad EXIF blocks are ignored", "[image]") {
  testing::TempDir dir("loom-test-image");
  // 64 x 32: a black left half and a white right half, sharp enough for JPEG.
  Image im(64, 32, 1, 255);
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 32; ++x) im.at(x, y) = 0;
  write_jpeg(dir / "s.jpg", im, 95);
  const Bytes jpeg = file_bytes(dir / "s.jpg");
  CHECK(exif_orientation(jpeg) == 1);

  for (bool little : {true, false}) {
    const Bytes rotated = with_segment(jpeg, exif_segment(6, little));
    CHECK(exif_orientation(rotated) == 6);
    const Image up = decode_image(rotated);
    REQUIRE(up.width == 32);
    REQUIRE(up.height == 64);
    CHECK(up.at(16, 8, 0) < 30);    // the stored left half is now on top
    CHECK(up.at(16, 56, 0) > 225);  // and the right half below
  }
  CHECK(exif_orientation(with_segment(jpeg, exif_segment(9, true))) == 1);  // no such orientation
  Bytes cut = exif_segment(3, true);
  cut.resize(cut.size() - 8);  // the entry runs past the segment's end
  cut[3] = static_cast<std::uint8_t>(cut.size() - 2);
  CHECK(exif_orientation(with_segment(jpeg, cut)) == 1);
  CHECK(exif_orientation(Bytes{0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF}) == 1);  // a length past the end
  CHECK(exif_orientation(png_header(4, 4)) == 1);
  CHECK(exif_orientation({}) == 1);
}
