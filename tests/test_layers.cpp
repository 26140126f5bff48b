// Forward results small enough to check by hand (arange inputs, known
// kernels), the Keras output shapes of the seed model's layers, padding rules,
// option and shape errors, and Glorot-uniform initialisation.

#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "built_layer.hpp"
#include "loom/layers/conv2d.hpp"
#include "loom/layers/dense.hpp"
#include "loom/layers/flatten.hpp"
#include "loom/layers/maxpool2d.hpp"
#include "loom/layers/relu.hpp"
#include "loom/layers/softmax.hpp"

using namespace loom;
using loom::testing::built;
using Catch::Contains;

namespace {


// (n, h, w, c) filled with start, start + 1, ... in row-major order.
Tensor arange(Index n, Index h, Index w, Index c, float start = 0.0f) {
  Tensor t(n, h, w, c);
  for (Index i = 0; i < t.size(); ++i) t.data()[i] = start + static_cast<float>(i);
  return t;
}

Tensor from_values(Index n, Index h, Index w, Index c, const std::vector<float>& v) {
  Tensor t(n, h, w, c);
  REQUIRE(static_cast<Index>(v.size()) == t.size());
  std::copy(v.begin(), v.end(), t.data());
  return t;
}

std::vector<float> values(const Tensor& t) { return {t.data(), t.data() + t.size()}; }

std::array<Index, 4> dims(const Tensor& t) {
  return {t.dimension(0), t.dimension(1), t.dimension(2), t.dimension(3)};
}

void set_param(Param& p, const std::vector<float>& v) {
  REQUIRE(static_cast<Index>(v.size()) == p.size());
  std::copy(v.begin(), v.end(), p.value.data());
}

// A direct, loop-per-output convolution in double, independent of im2col,
// with padding computed from the TensorFlow rule written out here.
Tensor reference_conv(const Tensor& x, const Conv2D& conv) {
  const auto& o = conv.options();
  const Index n = x.dimension(0), h = x.dimension(1), w = x.dimension(2), c = x.dimension(3), f = o.filters;
  auto axis = [&](Index in, Index k, Index s, Index& out, Index& before) {
    if (o.padding == Padding::Valid) {
      out = (in - k) / s + 1;
      before = 0;
    } else {
      out = (in + s - 1) / s;  // ceil(in / s)
      before = std::max<Index>((out - 1) * s + k - in, 0) / 2;
    }
  };
  Index oh, ow, top, left;
  axis(h, o.kernel.h, o.strides.h, oh, top);
  axis(w, o.kernel.w, o.strides.w, ow, left);
  const Param& kernel = conv.params()[0];
  const Param& bias = conv.params()[1];
  Tensor y(n, oh, ow, f);
  for (Index s = 0; s < n; ++s)
    for (Index oy = 0; oy < oh; ++oy)
      for (Index ox = 0; ox < ow; ++ox)
        for (Index fi = 0; fi < f; ++fi) {
          double sum = bias.value[fi];
          for (Index ky = 0; ky < o.kernel.h; ++ky)
            for (Index kx = 0; kx < o.kernel.w; ++kx)
              for (Index ci = 0; ci < c; ++ci) {
                const Index iy = oy * o.strides.h + ky - top, ix = ox * o.strides.w + kx - left;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                sum += double{x(s, iy, ix, ci)} * kernel.value[((ky * o.kernel.w + kx) * c + ci) * f + fi];
              }
          y(s, oy, ox, fi) = static_cast<float>(sum);
        }
  return y;
}

}  // namespace

// ---- Conv2D -----------------------------------------------------------------

TEST_CASE("Conv2D with an all-ones 2x2 kernel gives window sums of an arange", "[layers]") {
  Conv2D conv = built(Conv2D({.filters = 1, .kernel = 2}), Shape{4, 4, 1});
  set_param(conv.params()[0], {1, 1, 1, 1});
  const Tensor& y = conv.forward(arange(1, 4, 4, 1));  // x(i, j) = 4i + j
  REQUIRE(dims(y) == std::array<Index, 4>{1, 3, 3, 1});
  // x(i,j) + x(i,j+1) + x(i+1,j) + x(i+1,j+1) = 16i + 4j + 10
  CHECK(values(y) == std::vector<float>{10, 14, 18, 26, 30, 34, 42, 46, 50});
}

TEST_CASE("Conv2D kernel layout is (KH, KW, C, F) and the bias is added per filter", "[layers]") {
  SECTION("two filters") {
    Conv2D conv = built(Conv2D({.filters = 2, .kernel = 2}), Shape{3, 3, 1});
    // kernel[ky][kx][0][f]: filter 0 all ones; filter 1 = [[1, 0], [0, -1]]
    set_param(conv.params()[0], {1, 1, /*(0,1)*/ 1, 0, /*(1,0)*/ 1, 0, /*(1,1)*/ 1, -1});
    set_param(conv.params()[1], {0.5f, -1.0f});
    const Tensor& y = conv.forward(arange(1, 3, 3, 1));  // x(i, j) = 3i + j
    REQUIRE(dims(y) == std::array<Index, 4>{1, 2, 2, 2});
    // filter 0: 12i + 4j + 8 + 0.5; filter 1: x(i,j) - x(i+1,j+1) - 1 = -4 - 1
    CHECK(values(y) == std::vector<float>{8.5f, -5, 12.5f, -5, 20.5f, -5, 24.5f, -5});
  }
  SECTION("two input channels") {
    Conv2D conv = built(Conv2D({.filters = 1, .kernel = 2}), Shape{2, 2, 2});
    set_param(conv.params()[0], {1, 10, 1, 10, 1, 10, 1, 10});  // channel 0 weighs 1, channel 1 weighs 10
    const Tensor& y = conv.forward(arange(1, 2, 2, 2));       // channel 0: 0 2 4 6, channel 1: 1 3 5 7
    CHECK(values(y) == std::vector<float>{(0 + 2 + 4 + 6) + 10 * (1 + 3 + 5 + 7)});
  }
}

TEST_CASE("Conv2D same padding follows TensorFlow: total max((out-1)s + k - in, 0), smaller half first",
          "[layers]") {
  SECTION("3x3 kernel, stride 1 on 4x4: one row of zeros on each side") {
    Conv2D conv = built(Conv2D({.filters = 1, .kernel = 3, .padding = Padding::Same}), Shape{4, 4, 1});
    set_param(conv.params()[0], std::vector<float>(9, 1.0f));
    const Tensor& y = conv.forward(arange(1, 4, 4, 1));
    REQUIRE(dims(y) == std::array<Index, 4>{1, 4, 4, 1});
    CHECK(y(0, 0, 0, 0) == 0 + 1 + 4 + 5);
    CHECK(y(0, 0, 1, 0) == 0 + 1 + 2 + 4 + 5 + 6);
    CHECK(y(0, 1, 1, 0) == 9 * 5);
    CHECK(y(0, 3, 3, 0) == 10 + 11 + 14 + 15);
  }
  SECTION("3x3 kernel, stride 2 on 4x4: total 1, all of it after") {
    Conv2D conv = built(Conv2D({.filters = 1, .kernel = 3, .strides = 2, .padding = Padding::Same}), Shape{4, 4, 1});
    set_param(conv.params()[0], std::vector<float>(9, 1.0f));
    const Tensor& y = conv.forward(arange(1, 4, 4, 1));
    REQUIRE(dims(y) == std::array<Index, 4>{1, 2, 2, 1});
    // windows: rows 0-2 / 2-3(+pad), cols 0-2 / 2-3(+pad)
    CHECK(values(y) == std::vector<float>{45, 39, 66, 50});
  }
  SECTION("4x4 kernel, stride 1 on 5x5: total 3, one before and two after") {
    Conv2D conv = built(Conv2D({.filters = 1, .kernel = 4, .padding = Padding::Same}), Shape{5, 5, 1});
    set_param(conv.params()[0], std::vector<float>(16, 1.0f));
    const Tensor& y = conv.forward(arange(1, 5, 5, 1));  // x(i, j) = 5i + j
    REQUIRE(dims(y) == std::array<Index, 4>{1, 5, 5, 1});
    CHECK(y(0, 0, 0, 0) == 54);  // rows 0-2, cols 0-2 (12 if two rows of padding came first)
    CHECK(y(0, 4, 4, 0) == 18 + 19 + 23 + 24);  // rows 3-4, cols 3-4
  }
}

TEST_CASE("Conv2D matches a direct convolution for strides, padding, non-square kernels and batches",
          "[layers]") {
  struct Case {
    Conv2DOptions o;
    Shape in;
  };
  const std::vector<Case> cases = {
      {{.filters = 3, .kernel = 3}, Shape{6, 5, 2}},
      {{.filters = 2, .kernel = {2, 3}, .strides = 2}, Shape{7, 8, 3}},
      {{.filters = 2, .kernel = {3, 2}, .strides = {2, 1}, .padding = Padding::Same}, Shape{5, 6, 2}},
      {{.filters = 4, .kernel = 5, .strides = 3, .padding = Padding::Same}, Shape{7, 7, 1}},
      {{.filters = 1, .kernel = 1}, Shape{3, 3, 4}},
  };
  Random rng(5);
  for (const Case& c : cases) {
    Conv2D conv = built(Conv2D(c.o), c.in, 9);
    set_param(conv.params()[1], std::vector<float>(static_cast<std::size_t>(c.o.filters), 0.25f));
    Tensor x(3, c.in[0], c.in[1], c.in[2]);
    for (Index i = 0; i < x.size(); ++i) x.data()[i] = rng.uniform(-1.0f, 1.0f);
    const Tensor& y = conv.forward(x);
    const Tensor expected = reference_conv(x, conv);
    INFO("kernel " << c.o.kernel.to_string() << " strides " << c.o.strides.to_string() << " "
                   << to_string(c.o.padding) << " on " << c.in.to_string());
    REQUIRE(dims(y) == dims(expected));
    for (Index i = 0; i < y.size(); ++i) REQUIRE(y.data()[i] == Approx(expected.data()[i]).margin(1e-5));
  }
}

TEST_CASE("Conv2D with ReLU activation zeroes negative outputs", "[layers]") {
  Conv2D conv = built(Conv2D({.filters = 1, .kernel = 1, .activation = Activation::ReLU}), Shape{2, 2, 1});
  set_param(conv.params()[0], {1.0f});
  set_param(conv.params()[1], {-1.5f});
  CHECK(values(conv.forward(arange(1, 2, 2, 1))) == std::vector<float>{0, 0, 0.5f, 1.5f});
}

TEST_CASE("Output shapes of the Keras seed model's layers, and of padding and stride variants", "[layers]") {
  CHECK(built(Conv2D({.filters = 32, .kernel = 3}), Shape{28, 28, 1}).output_shape() == Shape{26, 26, 32});
  CHECK(built(MaxPool2D(), Shape{26, 26, 32}).output_shape() == Shape{13, 13, 32});
  CHECK(built(Conv2D({.filters = 64, .kernel = 3}), Shape{13, 13, 32}).output_shape() == Shape{11, 11, 64});
  CHECK(built(MaxPool2D(), Shape{11, 11, 64}).output_shape() == Shape{5, 5, 64});
  CHECK(built(Flatten(), Shape{5, 5, 64}).output_shape() == Shape{1600});
  CHECK(built(Dense({.units = 128}), Shape{1600}).output_shape() == Shape{128});
  CHECK(built(Dense({.units = 10}), Shape{128}).output_shape() == Shape{10});

  CHECK(built(Conv2D({.filters = 8, .kernel = 3, .padding = Padding::Same}), Shape{28, 28, 1}).output_shape() ==
        Shape{28, 28, 8});
  CHECK(built(Conv2D({.filters = 8, .kernel = 3, .strides = 2, .padding = Padding::Same}), Shape{28, 28, 1})
            .output_shape() == Shape{14, 14, 8});
  CHECK(built(Conv2D({.filters = 8, .kernel = 3, .strides = 2}), Shape{28, 28, 1}).output_shape() ==
        Shape{13, 13, 8});
  CHECK(built(Conv2D({.filters = 8, .kernel = {5, 3}}), Shape{28, 28, 1}).output_shape() == Shape{24, 26, 8});
  CHECK(built(MaxPool2D({.pool = 3, .strides = 2}), Shape{13, 13, 4}).output_shape() == Shape{6, 6, 4});
  CHECK(built(MaxPool2D({.pool = 2, .padding = Padding::Same}), Shape{13, 13, 4}).output_shape() ==
        Shape{7, 7, 4});

  // parameter counts, as Keras reports them
  CHECK(built(Conv2D({.filters = 32, .kernel = 3}), Shape{28, 28, 1}).param_count() == 320);
  CHECK(built(Conv2D({.filters = 64, .kernel = 3}), Shape{13, 13, 32}).param_count() == 18496);
  CHECK(built(Dense({.units = 128}), Shape{1600}).param_count() == 204928);
  CHECK(built(Dense({.units = 10}), Shape{128}).param_count() == 1290);
  CHECK(built(MaxPool2D(), Shape{26, 26, 32}).param_count() == 0);
}

// ---- MaxPool2D ---------------------------------------------------------------

TEST_CASE("MaxPool2D takes window maxima and routes the gradient to the argmax", "[layers]") {
  MaxPool2D pool = built(MaxPool2D(), Shape{4, 4, 1});
  const Tensor& y = pool.forward(arange(1, 4, 4, 1));
  REQUIRE(dims(y) == std::array<Index, 4>{1, 2, 2, 1});
  CHECK(values(y) == std::vector<float>{5, 7, 13, 15});
  const Tensor& dx = pool.backward(from_values(1, 2, 2, 1, {1, 2, 3, 4}));
  CHECK(values(dx) == std::vector<float>{0, 0, 0, 0,  //
                                         0, 1, 0, 2,  //
                                         0, 0, 0, 0,  //
                                         0, 3, 0, 4});
}

TEST_CASE("MaxPool2D works channel by channel", "[layers]") {
  MaxPool2D pool = built(MaxPool2D(), Shape{2, 2, 2});
  // channel 0: 1 9 3 4 (max at (0,1)); channel 1: 8 2 7 6 (max at (0,0))
  const Tensor& y = pool.forward(from_values(1, 2, 2, 2, {1, 8, 9, 2, 3, 7, 4, 6}));
  CHECK(values(y) == std::vector<float>{9, 8});
  CHECK(values(pool.backward(from_values(1, 1, 1, 2, {10, 20}))) == std::vector<float>{0, 20, 10, 0, 0, 0, 0, 0});
}

TEST_CASE("MaxPool2D overlapping windows add up the gradients of a shared winner", "[layers]") {
  MaxPool2D pool = built(MaxPool2D({.pool = 3, .strides = 2}), Shape{5, 5, 1});
  Tensor x = arange(1, 5, 5, 1);
  x(0, 2, 2, 0) = 100.0f;  // the centre lies in all four windows
  CHECK(values(pool.forward(x)) == std::vector<float>{100, 100, 100, 100});
  const Tensor& dx = pool.backward(from_values(1, 2, 2, 1, {1, 2, 3, 4}));
  CHECK(dx(0, 2, 2, 0) == 10.0f);
  float total = 0.0f;
  for (Index i = 0; i < dx.size(); ++i) total += std::abs(dx.data()[i]);
  CHECK(total == 10.0f);
}

TEST_CASE("MaxPool2D same padding pads with -infinity, not zero", "[layers]") {
  MaxPool2D pool = built(MaxPool2D({.pool = 2, .padding = Padding::Same}), Shape{3, 3, 1});
  REQUIRE(pool.output_shape() == Shape{2, 2, 1});
  const Tensor& y = pool.forward(arange(1, 3, 3, 1, -9.0f));  // -9 ... -1, all negative
  CHECK(values(y) == std::vector<float>{-5, -4, -2, -1});
}

TEST_CASE("MaxPool2D breaks ties in favour of the first maximum in (row, column) order", "[layers]") {
  MaxPool2D pool = built(MaxPool2D(), Shape{2, 2, 1});
  pool.forward(from_values(1, 2, 2, 1, {3, 3, 3, 3}));
  CHECK(values(pool.backward(from_values(1, 1, 1, 1, {5}))) == std::vector<float>{5, 0, 0, 0});
}

TEST_CASE("MaxPool2D 2x2 windows (a window at a time) agree with a reference, odd sizes, ties, -0 and NaN",
          "[layers]") {
  // 7 x 9 input: the last row and column are in no window; 19 channels: a vector and a rest.
  const Index h = 7, w = 9, c = 19, n = 2;
  MaxPool2D pool = built(MaxPool2D(), Shape{h, w, c});
  REQUIRE(pool.output_shape() == Shape{3, 4, c});
  Tensor x(n, h, w, c);
  for (Index i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>((i * 7919) % 13) - 6.0f;  // many ties
  x(0, 0, 0, 0) = -0.0f;  // -0 against 0: not greater, the first tap keeps it
  x(0, 0, 1, 0) = 0.0f;
  x(0, 1, 0, 0) = x(0, 1, 1, 0) = -5.0f;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  x(1, 0, 2, 3) = nan;  // a first tap: nothing is greater, the window's maximum is NaN
  x(1, 3, 5, 17) = nan;  // a last tap (in the rest after the first vector): never taken
  Tensor dy(n, 3, 4, c);
  for (Index i = 0; i < dy.size(); ++i) dy.data()[i] = static_cast<float>(i + 1);
  const Tensor y = pool.forward(x);
  const Tensor dx = pool.backward(dy);
  Tensor want_dx(n, h, w, c);
  want_dx.setZero();
  for (Index s = 0; s < n; ++s)
    for (Index oy = 0; oy < 3; ++oy)
      for (Index ox = 0; ox < 4; ++ox)
        for (Index ch = 0; ch < c; ++ch) {
          Index by = 2 * oy, bx = 2 * ox;  // the first strictly greatest in (row, column) order
          for (Index ky = 0; ky < 2; ++ky)
            for (Index kx = 0; kx < 2; ++kx)
              if (x(s, 2 * oy + ky, 2 * ox + kx, ch) > x(s, by, bx, ch)) by = 2 * oy + ky, bx = 2 * ox + kx;
          INFO("sample " << s << " window " << oy << "," << ox << " channel " << ch);
          REQUIRE(std::bit_cast<std::uint32_t>(y(s, oy, ox, ch)) == std::bit_cast<std::uint32_t>(x(s, by, bx, ch)));
          want_dx(s, by, bx, ch) = dy(s, oy, ox, ch);
        }
  CHECK(std::signbit(y(0, 0, 0, 0)));  // the -0 of the first tap, not the 0 after it
  CHECK(values(dx) == values(want_dx));
  MaxPool2D same = built(MaxPool2D(), Shape{h, w, c});
  Tensor inferred;
  same.infer(x, inferred);
  CHECK(std::isnan(y(1, 0, 1, 3)));
  for (Index i = 0; i < y.size(); ++i)
    REQUIRE(std::bit_cast<std::uint32_t>(inferred.data()[i]) == std::bit_cast<std::uint32_t>(y.data()[i]));
}

// ---- Flatten, Dense, Softmax, ReLU ---------------------------------------------

TEST_CASE("Flatten keeps row-major (h, w, c) order and backward restores the shape", "[layers]") {
  Flatten flatten = built(Flatten(), Shape{2, 3, 2});
  const Tensor x = arange(2, 2, 3, 2);
  const Tensor& y = flatten.forward(x);
  REQUIRE(dims(y) == std::array<Index, 4>{2, 1, 1, 12});
  for (Index n = 0; n < 2; ++n)
    for (Index h = 0; h < 2; ++h)
      for (Index w = 0; w < 3; ++w)
        for (Index c = 0; c < 2; ++c) REQUIRE(y(n, 0, 0, (h * 3 + w) * 2 + c) == x(n, h, w, c));
  const Tensor& dx = flatten.backward(arange(2, 1, 1, 12, 100.0f));
  REQUIRE(dims(dx) == std::array<Index, 4>{2, 2, 3, 2});
  CHECK(dx(1, 1, 2, 1) == 100.0f + 23.0f);
  CHECK(dx(0, 0, 1, 0) == 100.0f + 2.0f);
}

TEST_CASE("Dense's backward reads the kept input: after it changed size, a clear error", "[layers]") {
  // dW = x^T dz reads the input of the last forward where the caller keeps it
  // (layer.hpp's contract); an input resized since cannot be it.
  Dense dense = built(Dense({.units = 2}), Shape{3});
  Tensor x = from_values(2, 1, 1, 3, {1, 2, 3, -1, 0, 1});
  dense.forward(x);
  const Tensor dy = from_values(2, 1, 1, 2, {1, 0, 0, 1});
  dense.backward(dy);
  const Eigen::VectorXf& dw = dense.params()[0].grad;
  CHECK(std::vector<float>(dw.data(), dw.data() + dw.size()) == std::vector<float>{1, -1, 2, 0, 3, 1});  // x^T dy
  x.resize(1, 1, 1, 3);
  CHECK_THROWS_WITH(dense.backward(dy), Contains("kept unchanged by the caller"));
}

TEST_CASE("Dense computes x W + b with W laid out (in, out)", "[layers]") {
  Dense dense = built(Dense({.units = 2}), Shape{3});
  set_param(dense.params()[0], {1, 2, 3, 4, 5, 6});  // W = [[1, 2], [3, 4], [5, 6]]
  set_param(dense.params()[1], {0.5f, -1.0f});
  const Tensor& y = dense.forward(from_values(2, 1, 1, 3, {1, 2, 3, -1, 0, 1}));
  REQUIRE(dims(y) == std::array<Index, 4>{2, 1, 1, 2});
  CHECK(values(y) == std::vector<float>{22.5f, 27.0f, 4.5f, 3.0f});

  SECTION("with ReLU") {
    Dense relu = built(Dense({.units = 2, .activation = Activation::ReLU}), Shape{3});
    set_param(relu.params()[0], {1, 2, 3, 4, 5, 6});
    set_param(relu.params()[1], {-30.0f, 0.0f});
    CHECK(values(relu.forward(from_values(1, 1, 1, 3, {1, 2, 3}))) == std::vector<float>{0.0f, 28.0f});
  }
  SECTION("with softmax: rows sum to 1, and logits() keeps x W + b") {
    Dense soft = built(Dense({.units = 2, .activation = Activation::Softmax}), Shape{3});
    set_param(soft.params()[0], {1, 2, 3, 4, 5, 6});
    set_param(soft.params()[1], {0.5f, -1.0f});
    const Tensor& p = soft.forward(from_values(1, 1, 1, 3, {1, 2, 3}));
    CHECK(p(0, 0, 0, 0) + p(0, 0, 0, 1) == Approx(1.0f));
    CHECK(p(0, 0, 0, 1) == Approx(1.0 / (1.0 + std::exp(-4.5))));
    REQUIRE(soft.ends_with_softmax());
    CHECK(values(soft.logits()) == std::vector<float>{22.5f, 27.0f});
  }
}

TEST_CASE("Softmax gives known values, sums to 1 per row and is stable for huge logits", "[layers]") {
  Softmax softmax = built(Softmax(), Shape{3});
  const Tensor& p = softmax.forward(from_values(4, 1, 1, 3, {1, 2, 3, 1000, 1000, 1000, 1000, 0, -1000, -1000, -1000, 0}));
  CHECK(p(0, 0, 0, 0) == Approx(0.09003057));
  CHECK(p(0, 0, 0, 1) == Approx(0.24472847));
  CHECK(p(0, 0, 0, 2) == Approx(0.66524096));
  for (Index c = 0; c < 3; ++c) CHECK(p(1, 0, 0, c) == Approx(1.0 / 3.0));
  CHECK(values(p).at(6) == 1.0f);
  CHECK(values(p).at(7) == 0.0f);
  CHECK(p(3, 0, 0, 2) == 1.0f);
  for (Index n = 0; n < 4; ++n) {
    float row = 0.0f;
    for (Index c = 0; c < 3; ++c) {
      REQUIRE(std::isfinite(p(n, 0, 0, c)));
      row += p(n, 0, 0, c);
    }
    CHECK(row == Approx(1.0f));
  }
}

TEST_CASE("Softmax on rank-3 input normalises over channels at each pixel", "[layers]") {
  Softmax softmax = built(Softmax(), Shape{2, 2, 3});
  const Tensor& p = softmax.forward(arange(2, 2, 2, 3));
  for (Index n = 0; n < 2; ++n)
    for (Index h = 0; h < 2; ++h)
      for (Index w = 0; w < 2; ++w) {
        // channels hold k, k+1, k+2: softmax is that of (0, 1, 2) at every pixel
        CHECK(p(n, h, w, 0) == Approx(0.09003057));
        CHECK(p(n, h, w, 2) == Approx(0.66524096));
        CHECK(p(n, h, w, 0) + p(n, h, w, 1) + p(n, h, w, 2) == Approx(1.0f));
      }
}

TEST_CASE("ReLU passes positives, zeroes the rest, and has derivative 0 at 0", "[layers]") {
  ReLU relu = built(ReLU(), Shape{5});
  CHECK(values(relu.forward(from_values(1, 1, 1, 5, {-2, -0.5f, 0, 0.5f, 2}))) ==
        std::vector<float>{0, 0, 0, 0.5f, 2});
  CHECK(values(relu.backward(from_values(1, 1, 1, 5, {1, 1, 1, 1, 1}))) == std::vector<float>{0, 0, 0, 1, 1});
}

// ---- errors ---------------------------------------------------------------------

TEST_CASE("Invalid layer options are UsageErrors that say what was wrong", "[layers]") {
  REQUIRE_THROWS_AS(Conv2D({.filters = 0, .kernel = 3}), UsageError);
  REQUIRE_THROWS_WITH(Conv2D({.filters = 0, .kernel = 3}), "Conv2D: filters must be positive, got 0");
  REQUIRE_THROWS_AS(Conv2D({.filters = 4, .kernel = 0}), UsageError);
  REQUIRE_THROWS_WITH(Conv2D({.filters = 4, .kernel = 0}), "Conv2D: kernel must be positive, got (0, 0)");
  REQUIRE_THROWS_WITH(Conv2D({.filters = 4, .kernel = {3, 0}}), Contains("kernel must be positive"));
  REQUIRE_THROWS_AS(Conv2D({.filters = 4, .kernel = 3, .strides = 0}), UsageError);
  REQUIRE_THROWS_WITH(Conv2D({.filters = 4, .kernel = 3, .strides = {1, -1}}), Contains("strides must be positive"));
  REQUIRE_THROWS_AS(Dense({.units = 0}), UsageError);
  REQUIRE_THROWS_WITH(Dense({.units = 0}), "Dense: units must be positive, got 0");
  REQUIRE_THROWS_AS(Dense({.units = -3}), UsageError);
  REQUIRE_THROWS_AS(MaxPool2D({.pool = 0}), UsageError);
  REQUIRE_THROWS_WITH(MaxPool2D({.pool = {2, 0}}), Contains("pool size must be positive"));
  REQUIRE_THROWS_WITH(MaxPool2D({.pool = 2, .strides = {2, -1}}), Contains("strides must be positive"));
}

TEST_CASE("Inputs a layer cannot take are ShapeErrors naming the layer and the shape", "[layers]") {
  Random rng(1);
  Conv2D conv({.filters = 2, .kernel = 5});
  REQUIRE_THROWS_AS(conv.build(Shape{10}, rng), ShapeError);
  REQUIRE_THROWS_WITH(conv.build(Shape{10}, rng), Contains("conv2d (Conv2D)") && Contains("(None, 10)"));
  REQUIRE_THROWS_WITH(conv.build(Shape{3, 3, 1}, rng),
                      Contains("kernel (5, 5) does not fit input (None, 3, 3, 1)"));
  Dense dense({.units = 4});
  dense.set_name("dense_3");
  REQUIRE_THROWS_AS(dense.build(Shape{4, 4, 2}, rng), ShapeError);
  REQUIRE_THROWS_WITH(dense.build(Shape{4, 4, 2}, rng),
                      Contains("dense_3 (Dense)") && Contains("(None, 4, 4, 2)") && Contains("Flatten"));
  MaxPool2D pool({.pool = 3});
  REQUIRE_THROWS_AS(pool.build(Shape{2, 2, 1}, rng), ShapeError);

  Conv2D built_conv = built(Conv2D({.filters = 2, .kernel = 3}), Shape{4, 4, 1});
  REQUIRE_THROWS_AS(built_conv.forward(Tensor(1, 5, 5, 1)), ShapeError);
  REQUIRE_THROWS_WITH(built_conv.forward(Tensor(1, 5, 5, 1)),
                      Contains("(None, 4, 4, 1)") && Contains("(1, 5, 5, 1)"));
  Tensor y;
  REQUIRE_THROWS_AS(built_conv.infer(Tensor(1, 4, 4, 2), y), ShapeError);
}

// ---- initialisation ---------------------------------------------------------------

TEST_CASE("Glorot-uniform kernels stay within +-sqrt(6 / (fan_in + fan_out)), biases start at zero", "[layers]") {
  struct Case {
    const char* what;
    Param kernel, bias;
    double limit;
  };
  Conv2D conv = built(Conv2D({.filters = 32, .kernel = 3}), Shape{28, 28, 1}, 3);
  Conv2D conv2 = built(Conv2D({.filters = 16, .kernel = {3, 2}}), Shape{8, 8, 4}, 3);
  Dense dense = built(Dense({.units = 128}), Shape{1600}, 3);
  const std::vector<Case> cases = {
      // Keras: a conv's fan_in = KH*KW*C, fan_out = KH*KW*F
      {"conv 3x3x1x32", conv.params()[0], conv.params()[1], std::sqrt(6.0 / (9 * 1 + 9 * 32))},
      {"conv 3x2x4x16", conv2.params()[0], conv2.params()[1], std::sqrt(6.0 / (6 * 4 + 6 * 16))},
      {"dense 1600x128", dense.params()[0], dense.params()[1], std::sqrt(6.0 / (1600 + 128))},
  };
  for (const Case& c : cases) {
    INFO(c.what << ", limit " << c.limit);
    CHECK(c.kernel.value.maxCoeff() <= c.limit);
    CHECK(c.kernel.value.minCoeff() >= -c.limit);
    // enough draws to come close to both ends, and centred
    CHECK(c.kernel.value.maxCoeff() > 0.9 * c.limit);
    CHECK(c.kernel.value.minCoeff() < -0.9 * c.limit);
    CHECK(std::abs(c.kernel.value.mean()) < 0.1 * c.limit);
    CHECK(c.bias.value.isZero(0.0));
  }
}

TEST_CASE("The same seed gives the same weights and another seed gives others", "[layers]") {
  Conv2D a = built(Conv2D({.filters = 8, .kernel = 3}), Shape{6, 6, 2}, 42);
  Conv2D b = built(Conv2D({.filters = 8, .kernel = 3}), Shape{6, 6, 2}, 42);
  Conv2D c = built(Conv2D({.filters = 8, .kernel = 3}), Shape{6, 6, 2}, 43);
  const auto& wa = a.params()[0].value;
  REQUIRE(std::memcmp(wa.data(), b.params()[0].value.data(), sizeof(float) * static_cast<std::size_t>(wa.size())) == 0);
  REQUIRE(std::memcmp(wa.data(), c.params()[0].value.data(), sizeof(float) * static_cast<std::size_t>(wa.size())) != 0);
}
