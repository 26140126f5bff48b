// Every file of the fuzzers' seed corpora (tests/fuzz/corpus/<target>/) goes
// through its loader in the ordinary test suite, so what the fuzzers once
// found stays fixed without a fuzzing build: each file either loads or is
// refused with a loom::Error, and the regression-* files (inputs that crashed
// a loader before its fix) must be refused. scripts/sanitize.sh runs this
// under ASan and UBSan too.

#include <catch2/catch.hpp>

#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <span>
#include <string>
#include <vector>

#include "loom/data/idx.hpp"
#include "loom/error.hpp"
#include "loom/image/image.hpp"
#include "loom/io/model_file.hpp"
#include "loom/search/catalog_file.hpp"
#include "loom/sequential.hpp"

namespace fs = std::filesystem;

namespace {

using Loader = std::function<void(std::span<const std::uint8_t>, const std::string&)>;

const fs::path corpus_dir = fs::path(__FILE__).parent_path() / "fuzz" / "corpus";

std::vector<std::uint8_t> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// "loaded", "refused: <message>", or the failure of anything else thrown.
std::string outcome(const Loader& load, const fs::path& file) {
  try {
    load(read_bytes(file), file.filename().string());
    return "loaded";
  } catch (const loom::Error& e) {
    return std::string("refused: ") + e.what();
  } catch (const std::exception& e) {
    return std::string("NOT A loom::Error: ") + e.what();
  }
}

void check_corpus(const std::string& target, const Loader& load) {
  REQUIRE(fs::is_directory(corpus_dir / target));
  int files = 0;
  for (const auto& entry : fs::directory_iterator(corpus_dir / target)) {
    const std::string name = entry.path().filename().string();
    const std::string result = outcome(load, entry.path());
    INFO(target << "/" << name << ": " << result);
    ++files;
    CHECK((result == "loaded" || result.starts_with("refused: ")));
    if (name.starts_with("regression-")) CHECK(result.starts_with("refused: "));
  }
  CHECK(files >= 5);
}

}  // namespace

TEST_CASE("fuzz corpus: every IDX seed is parsed or refused with a loom::Error", "[fuzz-corpus][idx]") {
  check_corpus("idx", [](std::span<const std::uint8_t> b, const std::string& s) { (void)loom::parse_idx(b, s); });
}

TEST_CASE("fuzz corpus: every model seed is decoded or refused with a loom::Error", "[fuzz-corpus][model_file]") {
  check_corpus("model", [](std::span<const std::uint8_t> b, const std::string& s) { (void)loom::decode_model(b, s); });
}

TEST_CASE("fuzz corpus: every catalog seed is decoded or refused with a loom::Error", "[fuzz-corpus][search]") {
  check_corpus("catalog",
               [](std::span<const std::uint8_t> b, const std::string& s) { (void)loom::search::decode_catalog(b, s); });
}

TEST_CASE("fuzz corpus: every image seed is decoded or refused with a loom::Error", "[fuzz-corpus][image]") {
  check_corpus("image", [](std::span<const std::uint8_t> b, const std::string& s) { (void)loom::decode_image(b, s); });
}
