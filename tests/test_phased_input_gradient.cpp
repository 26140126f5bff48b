// im2col's input gradient by phases of the stride (conv/phased_input_gradient.hpp)
// against the sum that defines it, written out in double: strides whose
// phases differ in taps, kernels smaller than the stride (phases no tap
// reaches), unequal strides and kernels, stride 1, odd map sizes; dx
// assigned onto garbage and added onto values.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "gradient_check.hpp"
#include "loom/layers/conv2d.hpp"

using namespace loom;
using loom::testing::random_tensor;

namespace phased_dx {  // named: the tests build in unity batches

// dx[n, iy, ix, c] = sum over (oy, ox, ky, kx, f) with iy = oy*SH + ky - pad_top,
// ix = ox*SW + kx - pad_left of dy[n, oy, ox, f] W[ky, kx, c, f].
std::vector<double> reference_dx(const conv::ConvGeometry& g, const Tensor& dy, const float* kernel) {
  const Index n = dy.dimension(0);
  std::vector<double> dx(static_cast<std::size_t>(n * g.input_size()), 0.0);
  for (Index s = 0; s < n; ++s)
    for (Index oy = 0; oy < g.oh; ++oy)
      for (Index ox = 0; ox < g.ow; ++ox)
        for (Index ky = 0; ky < g.kh; ++ky)
          for (Index kx = 0; kx < g.kw; ++kx) {
            const Index iy = oy * g.sh + ky - g.pad_top, ix = ox * g.sw + kx - g.pad_left;
            if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
            for (Index c = 0; c < g.c; ++c)
              for (Index f = 0; f < g.f; ++f)
                dx[static_cast<std::size_t>(((s * g.h + iy) * g.w + ix) * g.c + c)] +=
                    double{dy(s, oy, ox, f)} * kernel[((ky * g.kw + kx) * g.c + c) * g.f + f];
          }
  return dx;
}

// Largest |got - want| over the largest |want|; infinite where got is not finite.
double relative_error(const Tensor& got, const std::vector<double>& want) {
  double diff = 0, scale = 1e-30;
  for (Index i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got.data()[i])) return std::numeric_limits<double>::infinity();
    diff = std::max(diff, std::abs(got.data()[i] - want[static_cast<std::size_t>(i)]));
    scale = std::max(scale, std::abs(want[static_cast<std::size_t>(i)]));
  }
  return diff / scale;
}

struct Case {
  const char* what;
  Conv2DOptions o;
  Shape in;
};

}  // namespace phased_dx

TEST_CASE("im2col's input gradient by phases of the stride is the sum that defines it, assigned or added", "[conv]") {
  const std::vector<phased_dx::Case> cases = {
      {"3x3 stride 2 same, odd sizes", {.filters = 16, .kernel = 3, .strides = 2, .padding = Padding::Same}, {9, 7, 3}},
      {"3x3 stride 2 valid, 17 filters", {.filters = 17, .kernel = 3, .strides = 2}, {8, 9, 2}},
      {"1x1 stride 2: three phases no tap reaches", {.filters = 16, .kernel = 1, .strides = 2}, {5, 4, 3}},
      {"2x2 stride 3", {.filters = 16, .kernel = 2, .strides = 3}, {7, 8, 2}},
      {"3x2 kernel, strides 2 and 3, same",
       {.filters = 16, .kernel = Size2{3, 2}, .strides = Size2{2, 3}, .padding = Padding::Same},
       {8, 9, 2}},
      {"5x5 stride 1 same: one phase, the image itself", {.filters = 16, .kernel = 5, .padding = Padding::Same}, {6, 7, 2}},
  };
  for (const phased_dx::Case& c : cases) {
    INFO(c.what);
    Conv2DOptions o = c.o;
    o.algorithm = ConvAlgorithm::Im2col;
    Conv2D conv(o);
    Random rng(3);
    conv.build(c.in, rng);
    REQUIRE(conv::PhasedInputGradient::worth_it(conv.geometry()) == gemm::kGatheredRowsInPlace);
    const Tensor x = random_tensor(5, c.in, 4), dy = random_tensor(5, conv.output_shape(), 5);
    const std::vector<double> want = phased_dx::reference_dx(conv.geometry(), dy, conv.params()[0].value.data());
    conv.forward(x);

    Tensor dx(5, c.in[0], c.in[1], c.in[2]);  // assigned: every pixel written, NaN left nowhere
    std::fill_n(dx.data(), dx.size(), std::numeric_limits<float>::quiet_NaN());
    conv.backward_into(dy, dx, GradientWrite::Assign);
    CHECK(phased_dx::relative_error(dx, want) < 1e-5);

    const Tensor before = random_tensor(5, c.in, 7);
    dx = before;
    conv.backward_into(dy, dx, GradientWrite::Add);
    std::vector<double> sum = want;
    for (Index i = 0; i < before.size(); ++i) sum[static_cast<std::size_t>(i)] += before.data()[i];
    CHECK(phased_dx::relative_error(dx, sum) < 1e-5);
  }
}

TEST_CASE("im2col's gradients match finite differences where dx is computed by phases", "[conv][gradient]") {
  Conv2D strided({.filters = 16, .kernel = 3, .strides = 2, .padding = Padding::Same});
  Random rng(8);
  strided.build(Shape{5, 6, 2}, rng);
  REQUIRE_GRADIENTS(strided, random_tensor(2, Shape{5, 6, 2}, 9));
}
