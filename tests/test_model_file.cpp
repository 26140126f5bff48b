// Model files: a saved and loaded model predicts, evaluates and trains on bit
// for bit as the original; every malformed file is a clear loom::Error; saving
// is atomic.

#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "loom/io/crc32.hpp"
#include "loom/io/model_file.hpp"
#include "loom/layers/relu.hpp"
#include "loom/layers/softmax.hpp"
#include "model_bytes.hpp"
#include "temp_dir.hpp"
#include "toy_model.hpp"

using namespace loom;
using namespace loom::testing;
using Catch::Contains;

namespace {

// A small CNN trained for one epoch: weights, Adam moments and history all non-trivial.
Sequential trained_cnn(const Quadrants& d) {
  Sequential m = small_cnn(3);
  m.fit(d.x, d.y, {.epochs = 1, .batch_size = 16, .validation_split = 0.25, .verbose = 0});
  return m;
}

std::vector<std::uint8_t> read_bytes(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

}  // namespace

TEST_CASE("A saved and loaded model predicts and evaluates bit for bit as the original", "[model_file]") {
  const Quadrants d = quadrants(128, 1);
  Sequential original = trained_cnn(d);
  TempDir dir;
  original.save(dir / "model.loom");
  Sequential loaded = load_model(dir / "model.loom");

  CHECK(loaded.summary_string() == original.summary_string());
  CHECK(same_params(loaded, original));
  CHECK(same_tensor(loaded.predict(d.x), original.predict(d.x)));
  const Evaluation a = original.evaluate(d.x, d.y), b = loaded.evaluate(d.x, d.y);
  CHECK(a.loss == b.loss);
  CHECK(a.accuracy == b.accuracy);
  CHECK(loaded.loss().from_logits() == original.loss().from_logits());

  SECTION("the optimizer state and history come back, so training continues identically") {
    CHECK(testing::same_optimizer_state(loaded, original));
    REQUIRE(loaded.history().epochs.size() == 1);
    const EpochRecord &h = loaded.history().epochs[0], &o = original.history().epochs[0];
    CHECK(h.loss == o.loss);
    CHECK(h.accuracy == o.accuracy);
    CHECK(h.val_loss == o.val_loss);
    CHECK(h.val_accuracy == o.val_accuracy);
    CHECK(h.seconds == o.seconds);
    original.fit(d.x, d.y, {.epochs = 1, .batch_size = 16, .seed = 5, .verbose = 0});
    loaded.fit(d.x, d.y, {.epochs = 1, .batch_size = 16, .seed = 5, .verbose = 0});
    CHECK(same_params(loaded, original));
  }
  SECTION("without optimizer state and history, the weights still round-trip") {
    original.save(dir / "lean.loom", {.include_optimizer_state = false, .include_history = false});
    Sequential lean = load_model(dir / "lean.loom");
    CHECK(same_params(lean, original));
    CHECK(lean.optimizer().state().steps == 0);
    CHECK(lean.history().empty());
    CHECK(std::filesystem::file_size(dir / "lean.loom") < std::filesystem::file_size(dir / "model.loom") / 2);
  }
  SECTION("encode and decode in memory give the same model as the file") {
    const std::vector<std::uint8_t> bytes = encode_model(original);
    CHECK(bytes == read_bytes(dir / "model.loom"));
    Sequential from_memory = decode_model(bytes);
    CHECK(same_params(from_memory, original));
  }
}

TEST_CASE("Every layer kind and option survives a round trip", "[model_file]") {
  Sequential m(Shape{9, 7, 2}, 4);
  m.add(Conv2D({.filters = 3, .kernel = {3, 2}, .strides = {2, 1}, .padding = Padding::Same}));
  m.add(ReLU());
  m.add(MaxPool2D({.pool = {2, 3}, .strides = {1, 2}, .padding = Padding::Same}));
  m.add(Flatten());
  m.add(Dense({.units = 5, .activation = Activation::ReLU}));
  m.add(Dense({.units = 3}));
  m.add(Softmax());
  m.compile(Adam({.learning_rate = 0.5f, .beta1 = 0.8f, .beta2 = 0.9f, .epsilon = 1e-3f}),
            SparseCategoricalCrossentropy({.from_logits = true}));
  TempDir dir;
  m.save(dir / "m.loom");
  Sequential l = load_model(dir / "m.loom");
  CHECK(l.summary_string() == m.summary_string());
  CHECK(encode_model(l) == encode_model(m));  // every configuration field, byte for byte
  const auto& adam = dynamic_cast<const Adam&>(l.optimizer());
  CHECK(adam.options().learning_rate == 0.5f);
  CHECK(adam.options().epsilon == 1e-3f);
  CHECK(l.loss().from_logits());
}

TEST_CASE("Saving refuses what a model file cannot hold, and leaves no temporary files", "[model_file]") {
  TempDir dir;
  Sequential uncompiled(Shape{4}, 1);
  uncompiled.add(Dense({.units = 2}));
  CHECK_THROWS_AS(uncompiled.save(dir / "m.loom"), UsageError);

  Sequential m = small_cnn(1);
  CHECK_THROWS_AS(m.save("/nonexistent-dir/m.loom"), IoError);
  m.save(dir / "m.loom");
  m.save(dir / "m.loom");  // over an existing file
  CHECK_THROWS_WITH(check_writable("/nonexistent-dir/m.loom"),
                    Contains("/nonexistent-dir/m.loom: cannot create a temporary file in /nonexistent-dir"));
  CHECK_THROWS_WITH(check_writable(dir.path), Contains("is a directory"));
  check_writable(dir / "other.loom");  // a writable place: no error, and no file left behind
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path)) ++files;
  CHECK(files == 1);
}

TEST_CASE("Loading refuses truncated, corrupt, foreign and newer files with a loom::Error", "[model_file]") {
  const Quadrants d = quadrants(64, 2);
  const std::vector<std::uint8_t> good = encode_model(trained_cnn(d));
  REQUIRE_NOTHROW(decode_model(good));

  SECTION("truncated at any of several offsets") {
    for (std::size_t at : {std::size_t{0}, std::size_t{3}, std::size_t{8}, std::size_t{12}, std::size_t{23},
                           std::size_t{24}, std::size_t{40}, good.size() / 3, good.size() / 2, good.size() - 5,
                           good.size() - 1}) {
      INFO("truncated to " << at << " bytes");
      const std::vector<std::uint8_t> cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(at));
      CHECK_THROWS_AS(decode_model(cut, "cut.loom"), DataError);
    }
    CHECK_THROWS_WITH(decode_model(std::vector<std::uint8_t>(good.begin(), good.end() - 100), "cut.loom"),
                      Contains("cut.loom") && Contains("truncated"));
  }
  SECTION("a flipped byte anywhere is caught by the CRC") {
    for (std::size_t at : {std::size_t{30}, good.size() / 4, good.size() / 2, good.size() - 10, good.size() - 2}) {
      INFO("byte " << at << " flipped");
      std::vector<std::uint8_t> bad = good;
      bad[at] ^= 0x10;
      CHECK_THROWS_WITH(decode_model(bad), Contains("CRC32"));
    }
  }
  SECTION("wrong magic: a foreign file") {
    std::vector<std::uint8_t> bad = good;
    bad[0] = 'X';
    CHECK_THROWS_WITH(decode_model(bad, "x.png"), Contains("x.png") && Contains("not a loom model file"));
    const std::vector<std::uint8_t> png{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13};
    CHECK_THROWS_AS(decode_model(png), DataError);
  }
  SECTION("a newer format version") {
    std::vector<std::uint8_t> bad = good;
    poke<std::uint32_t>(bad, 8, kModelFormatVersion + 1);
    fix_crc(bad);
    CHECK_THROWS_WITH(decode_model(bad), Contains("format version 2") && Contains("newer"));
  }
  SECTION("bytes after the declared end") {
    std::vector<std::uint8_t> bad = good;
    bad.push_back(0);
    CHECK_THROWS_WITH(decode_model(bad), Contains("more than its header declares"));
  }
  SECTION("a valid CRC over a hostile content: sizes are checked before allocating") {
    std::vector<std::uint8_t> bad = good;
    const std::size_t arch = payload_of(good, "ARCH");
    SECTION("a layer count far beyond the file") {
      poke<std::uint32_t>(bad, arch + 4 + 3 * 8, 0xFFFFFFFFu);
      fix_crc(bad);
      CHECK_THROWS_AS(decode_model(bad), DataError);
    }
    SECTION("a Dense layer claiming 2^24 units") {
      // The last layer, Dense(4, softmax), ends the ARCH section: units (8 bytes), activation (1).
      const std::size_t units_at = payload_of(good, "COMP") - 12 - 9;
      REQUIRE(bad[units_at] == 4);
      poke<std::uint64_t>(bad, units_at, std::uint64_t{1} << 24);
      fix_crc(bad);
      CHECK_THROWS_WITH(decode_model(bad), Contains("more parameters than the file has bytes for"));
    }
    SECTION("a section length beyond the file") {
      poke<std::uint64_t>(bad, arch - 8, std::uint64_t{1} << 60);
      fix_crc(bad);
      CHECK_THROWS_AS(decode_model(bad), DataError);
    }
    SECTION("an unknown section") {
      std::memcpy(bad.data() + payload_of(good, "HIST") - 12, "HIZT", 4);
      fix_crc(bad);
      CHECK_THROWS_WITH(decode_model(bad), Contains("unexpected section \"HIZT\""));
    }
    SECTION("an unknown layer kind") {
      const std::size_t kind_at = arch + 4 + 3 * 8 + 4 + 4;  // first layer's kind text, "Conv2D"
      REQUIRE(std::memcmp(bad.data() + kind_at, "Conv2D", 6) == 0);
      bad[kind_at] = 'X';
      fix_crc(bad);
      CHECK_THROWS_WITH(decode_model(bad), Contains("unknown layer kind \"Xonv2D\""));
    }
  }
  SECTION("files that cannot be read are IoErrors") {
    TempDir dir;
    CHECK_THROWS_AS(load_model(dir / "missing.loom"), IoError);
    std::ofstream(dir / "empty.loom").close();
    CHECK_THROWS_AS(load_model(dir / "empty.loom"), DataError);
  }
}
