#pragma once
// What the tests of a layer with one float option (Dropout's rate,
// LeakyReLU's alpha) share about model files: the layer in a small trained
// model saves and loads with its option and bit-identical predictions, and
// a bad value is a UsageError from the constructor and a DataError from a
// model file holding it (the option rewritten in the bytes, CRC fixed, so
// the decoder's own validation is reached).

#include <catch2/catch.hpp>

#include <algorithm>
#include <concepts>
#include <initializer_list>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "loom/io/crc32.hpp"
#include "loom/io/model_file.hpp"
#include "temp_dir.hpp"
#include "toy_model.hpp"

namespace loom::testing {

/// Conv2D (ReLU), MaxPool2D, Flatten, `layer`, Dense(4, softmax), compiled,
/// for the 8x8 quadrant images.
template <std::derived_from<Layer> L>
Sequential quadrant_model_around(L layer, std::uint64_t seed) {
  Sequential m(Shape{8, 8, 1}, seed);
  m.add(Conv2D({.filters = 4, .kernel = 3, .activation = Activation::ReLU}));
  m.add(MaxPool2D());
  m.add(Flatten());
  m.add(std::move(layer));
  m.add(Dense({.units = 4, .activation = Activation::Softmax}));
  m.compile(Adam({.learning_rate = 0.01f}));
  return m;
}

/// The model after a save to a file and load_model.
inline Sequential saved_and_loaded(const Sequential& m) {
  const TempDir dir;
  m.save(dir / "model.loom");
  return load_model(dir / "model.loom");
}

/// The model's file with the f32 option that follows the layer's kind and
/// name (put_layer: each a u32 length and its bytes) set to value, CRC fixed.
inline std::vector<std::uint8_t> with_float_option(const Sequential& m, std::string_view kind,
                                                   const std::string& name, float value) {
  std::vector<std::uint8_t> bytes = encode_model(m);
  std::vector<std::uint8_t> header;
  for (const std::string_view s : {kind, std::string_view(name)}) {
    const auto n = static_cast<std::uint32_t>(s.size());
    for (int k = 0; k < 4; ++k) header.push_back(static_cast<std::uint8_t>(n >> (8 * k)));
    header.insert(header.end(), s.begin(), s.end());
  }
  const auto at = std::search(bytes.begin(), bytes.end(), header.begin(), header.end());
  REQUIRE(at != bytes.end());
  std::memcpy(&*at + header.size(), &value, sizeof value);
  const std::uint32_t c = crc32(std::span<const std::uint8_t>(bytes).first(bytes.size() - 4));
  std::memcpy(bytes.data() + bytes.size() - 4, &c, 4);
  return bytes;
}

/// The checks described at the top, for a layer L whose options are one
/// float read by `get`: `good` round-trips, each of `bad` is refused with an
/// error containing `message`.
template <std::derived_from<Layer> L>
void check_float_option(float (L::*get)() const, float good, std::initializer_list<float> bad,
                        const std::string& message) {
  const Quadrants d = quadrants(64, 3);
  Sequential m = quadrant_model_around(L(good), 5);
  m.fit(d.x, d.y, {.epochs = 1, .batch_size = 16, .verbose = 0});
  const Sequential back = saved_and_loaded(m);
  REQUIRE(back.layer(3).kind() == L::kKind);
  const std::string name = back.layer(3).name();
  CHECK(name == L(good).name_stem());
  CHECK((dynamic_cast<const L&>(back.layer(3)).*get)() == good);
  CHECK(bitwise_equal(back.predict(d.x), m.predict(d.x)));

  for (const float value : bad) {
    INFO(L::kKind << " option " << value);
    CHECK_THROWS_AS(L(value), UsageError);
    CHECK_THROWS_WITH(L(value), Catch::Contains(message));
    const std::vector<std::uint8_t> file = with_float_option(m, L::kKind, name, value);
    CHECK_THROWS_AS(decode_model(file), DataError);
    CHECK_THROWS_WITH(decode_model(file), Catch::Contains(message));
  }
  CHECK_NOTHROW(decode_model(with_float_option(m, L::kKind, name, good)));  // the bytes rewritten were the option
}

}  // namespace loom::testing
