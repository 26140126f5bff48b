// Model files written before the layer registry still load: tests/data holds
// one (made by tests/data/make_model_v1.cpp at commit 43c2fd0, with every
// layer kind of that time) and what that build predicted with it.

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "loom/io/model_file.hpp"
#include "loom/random.hpp"
#include "temp_dir.hpp"

using namespace loom;

namespace {

const std::filesystem::path data_dir = std::filesystem::path(__FILE__).parent_path() / "data";

std::vector<float> stored_predictions() {
  std::ifstream in(data_dir / "model_v1_predictions.txt");
  std::vector<float> p;
  for (std::string line; std::getline(in, line);) p.push_back(std::strtof(line.c_str(), nullptr));
  return p;
}

// The input make_model_v1.cpp predicted on.
Tensor v1_input() {
  Random rng(5);
  Tensor x(6, 8, 8, 2);
  for (Index i = 0; i < x.size(); ++i) x.data()[i] = rng.uniform(-1.0f, 1.0f);
  return x;
}

}  // namespace

TEST_CASE("A model file written before the layer registry loads and predicts as it did", "[model_file][compat]") {
  Sequential m = load_model(data_dir / "model_v1.loom");
  const char* kinds[] = {"Conv2D", "MaxPooling2D", "Conv2D", "ReLU", "Flatten", "Dense", "Dense", "Softmax"};
  REQUIRE(m.size() == std::size(kinds));
  for (std::size_t i = 0; i < m.size(); ++i) CHECK(m.layer(i).kind() == kinds[i]);
  CHECK(m.layer(0).name() == "conv2d");
  CHECK(m.layer(2).name() == "conv2d_1");
  CHECK(m.param_count() == m.trainable_param_count());
  CHECK(m.history().epochs.size() == 2);
  CHECK(m.optimizer().state().steps == 4);

  const std::vector<float> expected = stored_predictions();
  const Tensor p = m.predict(v1_input());
  REQUIRE(static_cast<Index>(expected.size()) == p.size());
  // The old build's own arithmetic may differ in the last bits (summation
  // order is not part of the format), so within float rounding:
  for (Index i = 0; i < p.size(); ++i) CHECK(p.data()[i] == Approx(expected[static_cast<std::size_t>(i)]).margin(1e-6));

  // Saved again by this build, it is the same file: the format did not change for these kinds.
  std::ifstream in(data_dir / "model_v1.loom", std::ios::binary);
  const std::vector<std::uint8_t> original{std::istreambuf_iterator<char>(in), {}};
  CHECK(encode_model(m) == original);
}
