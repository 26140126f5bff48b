// Catalogs and their files: adding and removing items, the round trip
// through a file (float32 and int8), and every kind of bad file refused with
// an error that names the file and what was expected.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <fstream>

#include "loom/io/crc32.hpp"
#include "loom/testing/gradient_check.hpp"
#include "loom/search/catalog_file.hpp"
#include "loom/search/catalog_model.hpp"
#include "loom/search/exact_search.hpp"
#include "search_fixtures.hpp"
#include "temp_dir.hpp"
#include "toy_model.hpp"

using namespace loom;
using namespace loom::search;
using namespace loom::testing;
using Catch::Contains;

namespace {

bool same_items(const Catalog& a, const Catalog& b) {
  if (a.size() != b.size() || a.dim() != b.dim() || a.encoding() != b.encoding()) return false;
  for (Index i = 0; i < a.size(); ++i)
    if (a.id(i) != b.id(i) || a.label(i) != b.label(i) || a.path(i) != b.path(i)) return false;
  const std::vector<float> va = a.all_vectors(), vb = b.all_vectors();
  return std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)) == 0;
}

// Repairs the content length and CRC after an edit, so the decoder behind them is reached.
void refit_frame(std::vector<std::uint8_t>& b) {
  const std::uint64_t content = b.size() - 28;
  std::memcpy(b.data() + 16, &content, sizeof content);
  const std::uint32_t crc = crc32(std::span(b).first(b.size() - 4));
  std::memcpy(b.data() + b.size() - 4, &crc, sizeof crc);
}

}  // namespace

TEST_CASE("catalog: add, find and remove items, removal compacts", "[search][catalog]") {
  Catalog c = synthetic_catalog(10, 8, 3, 1);
  REQUIRE(c.size() == 10);
  CHECK(c.find(1000 + 3 * 4) == 4);
  CHECK(c.find(7) == -1);
  const std::vector<float> before = c.all_vectors();
  const std::vector<std::int64_t> gone{1003, 1027};  // rows 1 and 9
  c.remove(gone);
  REQUIRE(c.size() == 8);
  CHECK(c.find(1003) == -1);
  CHECK(c.find(1006) == 1);  // row 2 moved up to 1
  const std::vector<float> after = c.all_vectors();
  CHECK(std::equal(after.begin() + 8, after.begin() + 16, before.begin() + 16));  // its vector moved with it
  CHECK_THROWS_WITH(c.remove(std::vector<std::int64_t>{5}), Contains("no item has id 5"));
  const std::vector<float> v(8, std::sqrt(1.0f / 8.0f));
  CHECK_THROWS_WITH(c.add(v.data(), std::vector<std::int64_t>{1000}, std::vector<Label>{0}),
                    Contains("id 1000 is already in the catalog"));
  CHECK(c.size() == 8);  // a refused add leaves it as it was
  CHECK_THROWS_WITH(c.add(v.data(), std::vector<std::int64_t>{5}, std::vector<Label>{3}),
                    Contains("label 3 is not one of the catalog's labels (0 to 2)"));
  c.add(v.data(), std::vector<std::int64_t>{5}, std::vector<Label>{2});
  CHECK(c.find(5) == 8);
  // Without class names any label below 2^16 will do (per-label tables stay small).
  Catalog unnamed({.dim = 8});
  unnamed.add(v.data(), std::vector<std::int64_t>{1}, std::vector<Label>{65535});
  CHECK_THROWS_WITH(unnamed.add(v.data(), std::vector<std::int64_t>{2}, std::vector<Label>{1 << 30}),
                    Contains("label 1073741824 is not one of the catalog's labels (0 to 65535)"));
  CHECK_THROWS_WITH(ExactSearch(unnamed).search(v.data(), 1, {.k = 1, .classes = {1 << 30}}),
                    Contains("class label 1073741824 is not one of the catalog's labels (0 to 65535)"));
}

TEST_CASE("catalog: only unit vectors (or all-zero ones) are added, naming the item", "[search][catalog]") {
  for (const VectorEncoding e : {VectorEncoding::Float32, VectorEncoding::Int8}) {
    INFO(encoding_name(e));
    Catalog c = synthetic_catalog(4, 8, 2, 3, {.encoding = e});
    const std::vector<float> unit(8, std::sqrt(1.0f / 8.0f));
    std::vector<float> rows = unit;
    rows.insert(rows.end(), 8, 0.5f);  // length sqrt(2)
    CHECK_THROWS_AS(c.add(rows.data(), std::vector<std::int64_t>{1, 2}, std::vector<Label>{0, 1}), UsageError);
    CHECK_THROWS_WITH(c.add(rows.data(), std::vector<std::int64_t>{1, 2}, std::vector<Label>{0, 1}),
                      Contains("the vector of item 2 has length 1.41421; search vectors must be of unit length"));
    std::fill(rows.begin() + 8, rows.end(), 0.0f);
    rows[8 + 5] = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH(c.add(rows.data(), std::vector<std::int64_t>{1, 2}, std::vector<Label>{0, 1}),
                      Contains("the vector of item 2 has a value that is not finite"));
    rows[8 + 5] = 1.63e36f;  // finite, and far from unit length
    CHECK_THROWS_WITH(c.add(rows.data(), std::vector<std::int64_t>{1, 2}, std::vector<Label>{0, 1}),
                      Contains("item 2 has length 1.63e+36"));
    CHECK(c.size() == 4);  // nothing of a refused add is kept
    CHECK(c.find(1) == -1);
    rows[8 + 5] = 0.0f;  // all zero: allowed, as embed leaves such rows
    c.add(rows.data(), std::vector<std::int64_t>{1, 2}, std::vector<Label>{0, 1});
    CHECK(c.size() == 6);
  }
}

TEST_CASE("catalog files: float32 and int8 catalogs round trip exactly", "[search][catalog]") {
  TempDir dir;
  for (const VectorEncoding e : {VectorEncoding::Float32, VectorEncoding::Int8}) {
    INFO(encoding_name(e));
    Catalog c = synthetic_catalog(50, 16, 4, 2, {.encoding = e});
    const std::vector<float> v(16, 0.25f);
    c.add(v.data(), std::vector<std::int64_t>{-7}, std::vector<Label>{3}, std::vector<std::string>{"photos/a.jpg"});
    save_catalog(c, dir / "c.ctlg");
    const Catalog back = load_catalog(dir / "c.ctlg");
    CHECK(same_items(c, back));
    CHECK(back.path(50) == "photos/a.jpg");
    CHECK(back.path(0).empty());
    CHECK(back.info().class_names == c.info().class_names);
    CHECK(back.info().layer == "dense");
    CHECK(back.info().model_fingerprint == 42);
    CHECK(encode_catalog(back) == encode_catalog(c));
  }
  // int8 keeps every value within half a quantisation step, at about a quarter of the memory.
  const Catalog f = synthetic_catalog(200, 128, 4, 3), q = f.with_encoding(VectorEncoding::Int8);
  const std::vector<float> fv = f.all_vectors(), qv = q.all_vectors();
  CHECK(loom::testing::worst_difference(fv.data(), qv.data(), fv.size()) <= 0.5f / 127.0f + 1e-6f);
  CHECK(q.memory_bytes() * 10 < f.memory_bytes() * 4);
}

TEST_CASE("catalog files: truncated, flipped, foreign and newer files are refused, naming the file",
          "[search][catalog]") {
  const std::vector<std::uint8_t> good = encode_catalog(synthetic_catalog(20, 8, 3, 4));
  REQUIRE_NOTHROW(decode_catalog(good, "c.ctlg"));
  SECTION("truncated") {
    const std::vector<std::uint8_t> b(good.begin(), good.end() - 100);
    CHECK_THROWS_AS(decode_catalog(b, "c.ctlg"), DataError);
    CHECK_THROWS_WITH(decode_catalog(b, "c.ctlg"), Contains("c.ctlg: truncated: the header declares"));
  }
  SECTION("a flipped bit") {
    std::vector<std::uint8_t> b = good;
    b[100] ^= 0x10;
    CHECK_THROWS_WITH(decode_catalog(b, "c.ctlg"), Contains("c.ctlg: corrupt: CRC32"));
  }
  SECTION("a foreign file: a model file") {
    const std::vector<std::uint8_t> model = encode_model(small_cnn(1));
    CHECK_THROWS_WITH(decode_catalog(model, "m.loom"),
                      Contains("m.loom: not a loom catalog file (the magic bytes \"LOOMCTLG\" are missing)"));
  }
  SECTION("a newer version") {
    std::vector<std::uint8_t> b = good;
    b[8] = 9;
    CHECK_THROWS_WITH(decode_catalog(b, "c.ctlg"), Contains("format version 9 is newer"));
  }
  SECTION("an item count larger than the file") {
    std::vector<std::uint8_t> b = good;
    // fingerprint 8, model length 8 (0), layer 4+5, dim 8, encoding 1, classes 4 + 3 x (4 + 6): count at 24 + 68
    const std::size_t at = 24 + 8 + 8 + 9 + 8 + 1 + 4 + 30;
    std::uint64_t count;
    std::memcpy(&count, b.data() + at, 8);
    REQUIRE(count == 20);
    count = std::uint64_t{1} << 40;
    std::memcpy(b.data() + at, &count, 8);
    refit_frame(b);
    CHECK_THROWS_WITH(decode_catalog(b, "c.ctlg"), Contains("c.ctlg: items: 1099511627776 items of 12 bytes claimed"));
  }
  SECTION("a label outside the classes") {
    std::vector<std::uint8_t> b = good;
    const std::size_t first_label = 24 + 8 + 8 + 9 + 8 + 1 + 4 + 30 + 8 + 8;
    const std::int32_t bad = 7;
    std::memcpy(b.data() + first_label, &bad, 4);
    refit_frame(b);
    CHECK_THROWS_WITH(decode_catalog(b, "c.ctlg"), Contains("item 0 has label 7, expected 0 to 2"));
  }
  SECTION("a label past 2^16 in a catalog without class names (the fuzzer's find: search sized a table by it)") {
    Catalog unnamed({.dim = 1});
    const std::vector<float> one{1.0f};
    unnamed.add(one.data(), std::vector<std::int64_t>{4}, std::vector<Label>{9});
    std::vector<std::uint8_t> b = encode_catalog(unnamed);
    // fingerprint 8, model length 8, layer 4 + 0, dim 8, encoding 1, classes 4, count 8, id 8: the label
    const std::size_t label = 24 + 8 + 8 + 4 + 8 + 1 + 4 + 8 + 8;
    std::int32_t stored;
    std::memcpy(&stored, b.data() + label, 4);
    REQUIRE(stored == 9);
    const std::int32_t bad = 0x7ffffffb;
    std::memcpy(b.data() + label, &bad, 4);
    refit_frame(b);
    CHECK_THROWS_WITH(decode_catalog(b, "c.ctlg"), Contains("item 0 has label 2147483643, expected 0 to 65535"));
  }
  SECTION("a vector that is not of unit length (finite: the fuzzer's find)") {
    std::vector<std::uint8_t> b = good;
    const float huge = 1.63e36f;
    std::memcpy(b.data() + b.size() - 4 - 8 * 4 + 12, &huge, 4);  // the last item's fourth value
    refit_frame(b);
    CHECK_THROWS_AS(decode_catalog(b, "c.ctlg"), DataError);
    CHECK_THROWS_WITH(decode_catalog(b, "c.ctlg"), Contains("c.ctlg: the vector of item 1057 has length 1.63e+36"));
  }
  SECTION("an int8 vector whose scale makes it too long, or not finite") {
    const Catalog c = synthetic_catalog(20, 8, 3, 4, {.encoding = VectorEncoding::Int8});
    std::vector<std::uint8_t> b = encode_catalog(c);
    const std::size_t first_scale = b.size() - 4 - 20 * 8 - 20 * 4;
    float scale;
    std::memcpy(&scale, b.data() + first_scale, 4);
    REQUIRE(scale == c.scale_storage()[0]);
    for (const float bad : {scale * 3.0f, std::numeric_limits<float>::infinity()}) {
      std::memcpy(b.data() + first_scale, &bad, 4);
      refit_frame(b);
      CHECK_THROWS_WITH(decode_catalog(b, "c.ctlg"),
                        Contains(std::isfinite(bad) ? "c.ctlg: the vector of item 1000 has length"
                                                    : "c.ctlg: the vector of item 1000 has a value that is not finite"));
    }
  }
  SECTION("bytes left over") {
    std::vector<std::uint8_t> b = good;
    b.insert(b.end() - 4, {1, 2, 3});
    refit_frame(b);
    CHECK_THROWS_WITH(decode_catalog(b, "c.ctlg"), Contains("the catalog has 3 bytes left over"));
  }
  SECTION("a file that cannot be read") {
    CHECK_THROWS_AS(load_catalog("/nonexistent/c.ctlg"), IoError);
    CHECK_THROWS_WITH(load_catalog("/nonexistent/c.ctlg"), Contains("/nonexistent/c.ctlg"));
  }
}

TEST_CASE("catalog: the catalog's own model is kept, and another model is refused", "[search][catalog]") {
  const Sequential model = small_cnn(1), other = small_cnn(2);
  Catalog c(catalog_info_for(model, "", {"a", "b", "c", "d"}));
  CHECK(c.dim() == 36);  // the flatten layer's output: the input of the last Dense layer
  CHECK(c.info().layer == "flatten");
  const std::vector<std::uint8_t> bytes = encode_catalog(c);
  const Catalog back = decode_catalog(bytes, "c.ctlg");
  const Sequential kept = catalog_model(back, "c.ctlg");
  CHECK(model_fingerprint(kept) == model_fingerprint(model));
  CHECK_NOTHROW(check_same_model(back, model, "c.ctlg", "m.loom"));
  CHECK_THROWS_AS(check_same_model(back, other, "c.ctlg", "other.loom"), DataError);
  CHECK_THROWS_WITH(check_same_model(back, other, "c.ctlg", "other.loom"),
                    Contains("c.ctlg: the catalog was made by another model") && Contains("than other.loom"));
  const Catalog no_model = synthetic_catalog(3, 4, 2, 1);
  CHECK_THROWS_WITH(catalog_model(no_model, "raw.ctlg"), Contains("raw.ctlg: the catalog holds no model"));
}
