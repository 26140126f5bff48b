// A pooled projection's average pool riding along the main path's first
// convolution (residual.hpp): the convolution's sample hook covers every
// sample once, and the block computes the bits of its layers run apart.

#include <catch2/catch.hpp>

#include <algorithm>
#include <utility>
#include <vector>

#include "built_layer.hpp"
#include "gradient_check.hpp"
#include "loom/layers/average_pooling2d.hpp"
#include "loom/layers/batch_normalization.hpp"
#include "loom/layers/conv2d.hpp"
#include "loom/layers/relu.hpp"
#include "loom/layers/residual.hpp"

using namespace loom;

namespace pool_riding {

// The recipe's strided block at a small size: conv(stride) BN ReLU conv BN |
// pool (pool x pool, stride `pool`) 1x1 BN, ReLU after the sum.
Residual pooled_block(Index filters, Index stride, Index pool) {
  Residual b({.activation = Activation::ReLU});
  b.add(Conv2D({.filters = filters, .kernel = 3, .strides = stride, .padding = Padding::Same}));
  b.add(BatchNormalization());
  b.add(ReLU());
  b.add(Conv2D({.filters = filters, .kernel = 3, .padding = Padding::Same}));
  b.add(BatchNormalization());
  b.add_shortcut(AveragePooling2D({.pool = pool, .strides = pool, .padding = Padding::Same}));
  b.add_shortcut(Conv2D({.filters = filters, .kernel = 1}));
  b.add_shortcut(BatchNormalization());
  return b;
}

// Every sample range a hook saw, sorted.
std::vector<std::pair<Index, Index>> sorted(std::vector<std::pair<Index, Index>> ranges) {
  std::sort(ranges.begin(), ranges.end());
  return ranges;
}

// Whether the ranges cover [0, n) exactly once.
bool covers_once(const std::vector<std::pair<Index, Index>>& ranges, Index n) {
  Index next = 0;
  for (const auto& [first, end] : sorted(ranges)) {
    if (first != next || end <= first) return false;
    next = end;
  }
  return next == n;
}

// Training forward and backward of one block; returns its output, dx and every parameter gradient.
std::vector<Tensor> train_once(Residual& b, const Tensor& x, const Tensor& dy) {
  b.set_mode(Mode::Training);
  std::vector<Tensor> out{b.forward(x)};
  out.push_back(b.backward(dy));
  for (const auto& layer : b.children())
    for (const Param& p : layer->params())
      if (p.trainable) {
        Tensor g(1, 1, 1, p.size());
        std::copy_n(p.grad.data(), p.size(), g.data());
        out.push_back(g);
      }
  return out;
}

}  // namespace pool_riding

TEST_CASE("Conv2D's sample hook sees every sample once: im2col chunk by chunk, other algorithms once", "[conv][residual]") {
  using pool_riding::covers_once;
  const Index n = 19;  // 8x8 outputs: 8 samples a chunk, evened out to 4 chunks of 5
  SECTION("im2col (a strided 3x3), forward and backward_into") {
    Conv2D conv = testing::built(Conv2D({.filters = 16, .kernel = 3, .strides = 2, .padding = Padding::Same}),
                                 Shape{16, 16, 3});
    REQUIRE(conv.algorithm() == ConvAlgorithm::Im2col);
    const Tensor x = testing::random_tensor(n, Shape{16, 16, 3}, 1);
    std::vector<std::pair<Index, Index>> ranges;
    const auto record = [&](Index first, Index end) {
#pragma omp critical(pool_riding_test)
      ranges.emplace_back(first, end);
    };
    const conv::SampleHook hook(record);
    conv.set_sample_hook(&hook);
    conv.forward(x);
    CHECK(covers_once(ranges, n));
    CHECK(ranges.size() == 4);
    ranges.clear();
    Tensor dx;
    conv.backward_into(testing::random_tensor(n, conv.output_shape(), 2), dx, GradientWrite::Assign);
    CHECK(covers_once(ranges, n));
    CHECK(ranges.size() == 4);
    conv.set_sample_hook(nullptr);
    ranges.clear();
    conv.forward(x);
    CHECK(ranges.empty());
  }
  SECTION("Winograd (a 3x3 of stride 1): the whole batch after the pass") {
    Conv2D conv = testing::built(Conv2D({.filters = 16, .kernel = 3, .padding = Padding::Same}), Shape{8, 8, 16});
    REQUIRE(conv.algorithm() == ConvAlgorithm::Winograd4);
    std::vector<std::pair<Index, Index>> ranges;
    const auto record = [&](Index first, Index end) { ranges.emplace_back(first, end); };
    const conv::SampleHook hook(record);
    conv.set_sample_hook(&hook);
    const Tensor x = testing::random_tensor(n, Shape{8, 8, 16}, 3);  // kept until backward (layer.hpp)
    conv.forward(x);
    Tensor dx;
    conv.backward_into(testing::random_tensor(n, conv.output_shape(), 4), dx, GradientWrite::Assign);
    conv.set_sample_hook(nullptr);
    CHECK(ranges == std::vector<std::pair<Index, Index>>{{0, n}, {0, n}});
  }
}

TEST_CASE("A pooled projection riding along the main path's convolution gives the bits of the layers apart",
          "[residual]") {
  struct Case {
    const char* what;
    Index filters, stride, pool, size;
  };
  const Case c = GENERATE(Case{"phased dx (16 filters), 2x2 windows", 16, 2, 2, 16},
                          Case{"col2im dx (8 filters), 2x2 windows", 8, 2, 2, 16},
                          Case{"odd size: border windows of 1 and 2 taps", 16, 2, 2, 15},
                          Case{"a Winograd main path with a 1x1 pool: the hook once for the batch", 16, 1, 1, 8});
  INFO(c.what);
  const Shape in{c.size, c.size, 4};
  const Index n = 19;
  Residual riding = testing::built(pool_riding::pooled_block(c.filters, c.stride, c.pool), in, 5);
  Residual apart = testing::built(pool_riding::pooled_block(c.filters, c.stride, c.pool), in, 5);
  apart.set_pool_riding(false);
  REQUIRE(riding.pool_rides());
  REQUIRE_FALSE(apart.pool_rides());
  const Tensor x = testing::random_tensor(n, in, 6);
  const Tensor dy = testing::random_tensor(n, riding.output_shape(), 7);
  for (int round = 0; round < 2; ++round) {  // twice: buffers reused from the first round
    const std::vector<Tensor> a = pool_riding::train_once(riding, x, dy), b = pool_riding::train_once(apart, x, dy);
    REQUIRE(a.size() == b.size());
    REQUIRE(a.size() == 2 + 12);  // y, dx, then kernel and bias of 3 convolutions, gamma and beta of 3 normalizations
    for (std::size_t i = 0; i < a.size(); ++i) {
      INFO("tensor " << i << " (0: y, 1: dx, then the parameters' gradients), round " << round);
      CHECK(testing::bitwise_equal(a[i], b[i]));
    }
  }
}

TEST_CASE("A block whose pool rides along passes the gradient checker", "[residual][gradient_check]") {
  Residual b;  // no BatchNormalization: the check's steps stay in the linear regime
  b.add(Conv2D({.filters = 4, .kernel = 3, .strides = 2, .padding = Padding::Same}));
  b.add_shortcut(AveragePooling2D({.pool = 2, .strides = 2, .padding = Padding::Same}));
  b.add_shortcut(Conv2D({.filters = 4, .kernel = 1}));
  REQUIRE(b.pool_rides());
  REQUIRE_LAYER_GRADIENTS(b, Shape{7, 7, 3});
}

TEST_CASE("An average pool's gradient by samples refuses overlapping windows and wrong shapes", "[residual]") {
  AveragePooling2D overlapping =
      testing::built(AveragePooling2D({.pool = 3, .strides = 2, .padding = Padding::Same}), Shape{8, 8, 2});
  Tensor dx(2, 8, 8, 2);
  CHECK_THROWS_AS(overlapping.begin_spread(Tensor(2, 4, 4, 2), dx), UsageError);
  AveragePooling2D pool = testing::built(AveragePooling2D({.pool = 2, .strides = 2}), Shape{8, 8, 2});
  CHECK_THROWS_AS(pool.begin_spread(Tensor(2, 4, 4, 3), dx), ShapeError);  // dy of other channels
  CHECK_THROWS_AS(pool.begin_spread(Tensor(3, 4, 4, 2), dx), ShapeError);  // another batch than dx
  CHECK_THROWS_AS(pool.begin_spread(Tensor(2, 4, 4, 2), Tensor(2, 6, 6, 2)), ShapeError);  // dx of another size
  CHECK_NOTHROW(pool.begin_spread(Tensor(2, 4, 4, 2), dx));
}
