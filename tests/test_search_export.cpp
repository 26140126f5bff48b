// Catalog exports: each file parsed back independently of the writer.

#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "loom/search/catalog_export.hpp"
#include "search_fixtures.hpp"
#include "temp_dir.hpp"

using namespace loom;
using namespace loom::search;
using namespace loom::testing;
using Catch::Contains;

namespace {

std::vector<std::uint8_t> bytes_of(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// The header dict and the data of a .npy file (format 1.0).
std::pair<std::string, std::vector<std::uint8_t>> read_npy(const std::filesystem::path& p) {
  const std::vector<std::uint8_t> b = bytes_of(p);
  REQUIRE(b.size() > 10);
  REQUIRE(std::memcmp(b.data(), "\x93NUMPY\x01\x00", 8) == 0);
  const std::size_t header = b[8] | (b[9] << 8);
  REQUIRE((10 + header) % 64 == 0);  // NumPy aligns the data
  REQUIRE(b[10 + header - 1] == '\n');
  return {std::string(b.begin() + 10, b.begin() + 10 + static_cast<std::ptrdiff_t>(header)),
          std::vector<std::uint8_t>(b.begin() + 10 + static_cast<std::ptrdiff_t>(header), b.end())};
}

std::vector<std::string> lines_of(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::vector<std::string> out;
  for (std::string line; std::getline(f, line);) out.push_back(line);
  return out;
}

}  // namespace

TEST_CASE("export: .npy, JSON lines and .fvecs hold the catalog's vectors and metadata", "[search][export]") {
  TempDir dir;
  Catalog c = synthetic_catalog(5, 4, 2, 1);
  const std::vector<float> v{0.5f, -0.5f, 0.5f, 0.5f};
  c.add(v.data(), std::vector<std::int64_t>{77}, std::vector<Label>{1}, std::vector<std::string>{"shop/\"red\" shirt.jpg"});
  const std::vector<std::filesystem::path> files = export_catalog(c, dir / "out");
  CHECK(files.size() == 5);
  const std::vector<float> all = c.all_vectors();

  const auto [header, data] = read_npy(dir / "out" / "vectors.npy");
  CHECK_THAT(header, Contains("'descr': '<f4'") && Contains("'fortran_order': False") && Contains("'shape': (6, 4)"));
  REQUIRE(data.size() == 6 * 4 * sizeof(float));
  CHECK(std::memcmp(data.data(), all.data(), data.size()) == 0);
  const auto [id_header, id_data] = read_npy(dir / "out" / "ids.npy");
  CHECK_THAT(id_header, Contains("'descr': '<i8'") && Contains("'shape': (6,)"));
  std::int64_t last_id;
  std::memcpy(&last_id, id_data.data() + 5 * 8, 8);
  CHECK(last_id == 77);

  const std::vector<std::string> meta = lines_of(dir / "out" / "metadata.jsonl");
  REQUIRE(meta.size() == 6);
  CHECK(meta[0] == "{\"id\": 1000, \"label\": " + std::to_string(c.label(0)) + ", \"class\": \"class" +
                       std::to_string(c.label(0)) + "\"}");
  CHECK(meta[5] == "{\"id\": 77, \"label\": 1, \"class\": \"class1\", \"path\": \"shop/\\\"red\\\" shirt.jpg\"}");
  const std::vector<std::string> items = lines_of(dir / "out" / "items.jsonl");
  REQUIRE(items.size() == 6);
  CHECK_THAT(items[5], Contains("\"id\": 77") && Contains("\"vector\": [0.5, -0.5, 0.5, 0.5]}"));
  // The inline vectors read back to the very floats.
  const std::string& first = items[0];
  std::istringstream nums(first.substr(first.find('[') + 1));
  for (int j = 0; j < 4; ++j) {
    float x;
    char sep;
    nums >> x >> sep;
    CHECK(x == all[static_cast<std::size_t>(j)]);
  }

  const std::vector<std::uint8_t> fvecs = bytes_of(dir / "out" / "vectors.fvecs");
  REQUIRE(fvecs.size() == 6 * (4 + 4 * 4));
  for (int i = 0; i < 6; ++i) {
    std::int32_t dim;
    std::memcpy(&dim, fvecs.data() + i * 20, 4);
    CHECK(dim == 4);
    CHECK(std::memcmp(fvecs.data() + i * 20 + 4, all.data() + i * 4, 16) == 0);
  }
}
