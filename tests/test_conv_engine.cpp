// The convolution engine: every algorithm agrees with im2col (the reference,
// itself gradient-checked in test_gradients.cpp) on forward, infer, dW, db and
// dx over shape classes that reach its edge cases; Winograd is also
// gradient-checked on its own; the choice rule and forced algorithms.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "gradient_check.hpp"
#include "loom/layers/conv2d.hpp"
#include "loom/threads.hpp"

using namespace loom;
using loom::testing::random_tensor;
using Catch::Matchers::Contains;

namespace {

Conv2D built(Conv2DOptions o, const Shape& in, bool needs_dx = true, std::uint64_t seed = 3) {
  Conv2D conv(o);
  Random rng(seed);
  conv.build(in, rng);
  conv.set_needs_input_gradient(needs_dx);
  return conv;
}

// Largest |a - b| over the largest |b|: the error relative to the tensor's
// scale; infinite where a is not finite (max would pass a NaN over).
double relative_error(const float* a, const float* b, Index n) {
  double diff = 0, scale = 1e-30;
  for (Index i = 0; i < n; ++i) {
    if (!std::isfinite(a[i])) return std::numeric_limits<double>::infinity();
    diff = std::max(diff, std::abs(double(a[i]) - b[i]));
    scale = std::max(scale, std::abs(double(b[i])));
  }
  return diff / scale;
}

struct Case {
  const char* what;
  Conv2DOptions o;
  Shape in;
  Index batch = 3;
};

// The case's layer, built with `algorithm` forced.
Conv2D built(const Case& c, ConvAlgorithm algorithm, bool needs_dx = true) {
  Conv2DOptions o = c.o;
  o.algorithm = algorithm;
  return built(o, c.in, needs_dx);
}

// Per algorithm, tolerance relative to each tensor's largest entry. Winograd
// F(4x4) multiplies by up to 8 and divides by 24 in its transforms: its
// rounding is a few 1e-6 of the scale in forward, more in dW, whose sums run
// over every tile of the batch.
double tolerance(ConvAlgorithm a) { return a == ConvAlgorithm::Winograd4 ? 2e-5 : 2e-6; }

void check_against_im2col(ConvAlgorithm algorithm, const Case& c) {
  INFO(c.what << ": " << to_string(algorithm) << ", filters " << c.o.filters << ", kernel " << c.o.kernel.to_string()
               << " on " << c.in.to_string());
  const bool needs_dx = algorithm != ConvAlgorithm::Direct;
  Conv2DOptions fast = c.o, reference = c.o;
  fast.algorithm = algorithm;
  reference.algorithm = ConvAlgorithm::Im2col;
  Conv2D a = built(fast, c.in, needs_dx), b = built(reference, c.in, needs_dx);
  REQUIRE(a.algorithm() == algorithm);
  const Tensor x = random_tensor(c.batch, c.in, 5);
  const Tensor ya = a.forward(x);
  const Tensor yb = b.forward(x);
  REQUIRE(ya.dimensions() == yb.dimensions());
  CHECK(relative_error(ya.data(), yb.data(), ya.size()) < tolerance(algorithm));
  Tensor inferred;
  a.infer(x, inferred);
  CHECK(loom::testing::bitwise_equal(inferred, ya));

  const Tensor dy = random_tensor(c.batch, a.output_shape(), 6);
  const Tensor dxa = a.backward(dy);
  const Tensor dxb = b.backward(dy);
  for (int p = 0; p < 2; ++p) {
    INFO("gradient of " << a.params()[p].name);
    CHECK(relative_error(a.params()[p].grad.data(), b.params()[p].grad.data(), a.params()[p].size()) <
          tolerance(algorithm) * 4);
  }
  if (needs_dx) {
    REQUIRE(dxa.dimensions() == x.dimensions());
    CHECK(relative_error(dxa.data(), dxb.data(), dxa.size()) < tolerance(algorithm));
  }
}

}  // namespace

TEST_CASE("Winograd F(4x4) and F(2x2) agree with im2col on every shape class", "[conv]") {
  const std::vector<Case> cases = {
      {"the seed model's conv2, valid", {.filters = 64, .kernel = 3, .activation = Activation::ReLU}, Shape{13, 13, 32}},
      {"same padding, sizes no tile divides", {.filters = 19, .kernel = 3, .padding = Padding::Same}, Shape{7, 10, 5}},
      {"channels and filters past one lane block", {.filters = 33, .kernel = 3, .padding = Padding::Same}, Shape{9, 6, 20}},
      {"filters past one lane block, ReLU: the mask on a partial vector",
       {.filters = 33, .kernel = 3, .padding = Padding::Same, .activation = Activation::ReLU}, Shape{9, 6, 20}},
      {"an output smaller than one tile", {.filters = 8, .kernel = 3}, Shape{4, 5, 8}},
      {"one input channel", {.filters = 16, .kernel = 3, .padding = Padding::Same}, Shape{8, 8, 1}},
      // Backward's two ways to the kernel gradient (winograd_conv.cpp,
      // gradient_groups): fused per group of chunks, with more chunks than
      // groups here (20 samples of 64 tiles: 10 chunks); and stage by stage,
      // for a kernel whose per-group gradients would be too large.
      {"more chunks than gradient groups", {.filters = 8, .kernel = 3, .padding = Padding::Same}, Shape{32, 32, 8}, 20},
      {"a kernel too large for per-group gradients", {.filters = 128, .kernel = 3, .padding = Padding::Same},
       Shape{6, 6, 128}},
  };
  for (const Case& c : cases) {
    check_against_im2col(ConvAlgorithm::Winograd4, c);
    check_against_im2col(ConvAlgorithm::Winograd2, c);
  }
}

TEST_CASE("The direct first-layer convolution agrees with im2col", "[conv]") {
  const std::vector<Case> cases = {
      {"the seed model's conv1", {.filters = 32, .kernel = 3, .activation = Activation::ReLU}, Shape{9, 8, 1}},
      // one chunk per image: the ReLU mask in each thread's own buffer
      {"the seed model's conv1, full size", {.filters = 32, .kernel = 3, .activation = Activation::ReLU},
       Shape{28, 28, 1}},
      {"colour, padded, ReLU", {.filters = 40, .kernel = 3, .padding = Padding::Same, .activation = Activation::ReLU},
       Shape{24, 24, 3}},
      {"colour, padded, strided", {.filters = 16, .kernel = 3, .strides = 2, .padding = Padding::Same}, Shape{7, 6, 3}},
      {"non-square kernel, unequal strides",
       {.filters = 64, .kernel = {2, 3}, .strides = {1, 2}, .padding = Padding::Same},
       Shape{5, 9, 2}},
      {"wide border, a 6-pixel tile and rest", {.filters = 32, .kernel = 5, .padding = Padding::Same}, Shape{6, 11, 1}},
      {"24 filters, colour", {.filters = 24, .kernel = 3, .padding = Padding::Same}, Shape{7, 9, 3}},
      {"24 filters, colour, ReLU: the mask and the row's end in one vector",
       {.filters = 24, .kernel = 3, .padding = Padding::Same, .activation = Activation::ReLU}, Shape{7, 9, 3}},
      {"8 filters", {.filters = 8, .kernel = 3}, Shape{6, 6, 2}},
      {"the photo model's conv1: 5x5, stride 2, colour, ReLU",
       {.filters = 32, .kernel = 5, .strides = 2, .padding = Padding::Same, .activation = Activation::ReLU},
       Shape{19, 20, 3}},
      {"7x7 stride 2 on grey, the largest patch", {.filters = 16, .kernel = 7, .strides = 2}, Shape{15, 13, 1}},
      {"80 values a patch", {.filters = 8, .kernel = {4, 5}, .padding = Padding::Same}, Shape{7, 8, 4}},
      // blocks of 32 and a rest of 16 or 24; rows of 12-, 6-, 2- and 1-pixel tiles
      {"48 filters, 3x3 on grey, 12-pixel tiles", {.filters = 48, .kernel = 3, .padding = Padding::Same}, Shape{5, 33, 1}},
      {"56 filters, 5x5 colour, ReLU", {.filters = 56, .kernel = 5, .activation = Activation::ReLU}, Shape{9, 12, 3}},
      {"a stride that leaves the last row and column unread", {.filters = 8, .kernel = 3, .strides = 2},
       Shape{8, 30, 3}},
  };
  for (const Case& c : cases) check_against_im2col(ConvAlgorithm::Direct, c);
}

TEST_CASE("The direct convolution's two forward tiles give the same bits", "[conv]") {
  // Training's forward runs the AVX-512 intrinsics tile where there is one;
  // infer with a channel normalization runs the portable tile. Under the
  // identity map (x - 0) * 1 * 1 + 0, which is x, both must give the same
  // values: the same sums in the same order. Widths cover 13-pixel tiles and
  // every tail (6, 2, 1), filter counts a block of 32, a rest of 16, and 24
  // (the last vector stored under a mask).
  const std::vector<Case> cases = {
      {"the seed model's conv1", {.filters = 32, .kernel = 3, .activation = Activation::ReLU}, Shape{28, 28, 1}},
      {"the ResNet's stem", {.filters = 32, .kernel = 3, .padding = Padding::Same}, Shape{28, 28, 1}},
      {"24 filters, colour, ReLU", {.filters = 24, .kernel = 3, .padding = Padding::Same, .activation = Activation::ReLU},
       Shape{32, 32, 3}},
      {"48 filters, 5x5 colour, stride 2", {.filters = 48, .kernel = 5, .strides = 2, .padding = Padding::Same},
       Shape{40, 41, 3}},
      {"a row of 22: 13, 6, 2 and 1", {.filters = 16, .kernel = 3, .activation = Activation::ReLU}, Shape{6, 24, 1}},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    Conv2D conv = built(c, ConvAlgorithm::Direct);
    const conv::ConvGeometry& g = conv.geometry();
    const Tensor x = random_tensor(3, c.in, 31);
    const conv::ConvWeights w{conv.params()[0].value.data(), conv.params()[1].value.data()};
    const std::vector<float> zeros(static_cast<std::size_t>(g.f), 0.0f), ones(static_cast<std::size_t>(g.f), 1.0f);
    const ChannelNormalization identity{zeros.data(), ones.data(), ones.data(), zeros.data()};
    conv::DirectConv direct;
    Tensor trained(3, g.oh, g.ow, g.f), inferred;
    inferred.resize(3, g.oh, g.ow, g.f);
    direct.forward(g, w, x, trained, c.o.activation);
    direct.infer(g, w, x, inferred, c.o.activation, identity);
    REQUIRE(trained.size() == inferred.size());
    bool same = true;
    for (Index i = 0; i < trained.size(); ++i) same = same && trained.data()[i] == inferred.data()[i];
    CHECK(same);
  }
}

TEST_CASE("The direct convolution's backward with ReLU gives the plain layer's gradients on dy masked by hand",
          "[conv]") {
  // With AVX-512 the weight gradient's tiles mask dy themselves (their sums
  // left alone where ReLU cut); the plain layer's tiles read dy masked by
  // hand. The same bits, for a block of 32 filters, one of 16, and 24 (a
  // last vector of 8).
  const std::vector<Case> cases = {
      {"the seed model's conv1", {.filters = 32, .kernel = 3, .activation = Activation::ReLU}, Shape{28, 28, 1}},
      {"24 filters, colour, same", {.filters = 24, .kernel = 3, .padding = Padding::Same, .activation = Activation::ReLU},
       Shape{11, 13, 3}},
      {"48 filters: a block of 32 and one of 16", {.filters = 48, .kernel = 3, .activation = Activation::ReLU},
       Shape{9, 15, 1}},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    Conv2D conv = built(c, ConvAlgorithm::Direct, false);
    const conv::ConvGeometry& g = conv.geometry();
    const conv::ConvWeights w{conv.params()[0].value.data(), conv.params()[1].value.data()};
    const Tensor x = random_tensor(3, c.in, 41), dy = random_tensor(3, conv.output_shape(), 42);
    const auto gradients = [&](conv::DirectConv& direct, const Tensor& d, const Tensor* y) {
      std::vector<float> out(static_cast<std::size_t>((g.patch() + 1) * g.f));
      direct.backward(g, d, y, out.data(), out.data() + g.patch() * g.f);
      return out;
    };
    conv::DirectConv fused, plain;
    Tensor y(3, g.oh, g.ow, g.f), z(3, g.oh, g.ow, g.f);
    fused.forward(g, w, x, y, Activation::ReLU);
    plain.forward(g, w, x, z, Activation::None);
    Tensor relu_of_z = z, masked = dy;
    Index cut = 0;
    for (Index i = 0; i < z.size(); ++i) {
      relu_of_z.data()[i] = std::max(0.0f, z.data()[i]);
      if (!(y.data()[i] > 0.0f)) masked.data()[i] = 0.0f, ++cut;
    }
    REQUIRE(loom::testing::bitwise_equal(y, relu_of_z));
    REQUIRE(cut > 0);
    REQUIRE(cut < masked.size());
    const std::vector<float> reference = gradients(plain, masked, nullptr);
    CHECK(gradients(fused, dy, &y) == reference);
  }
}

TEST_CASE("The direct convolution's weight gradient agrees with col^T dz, 9 to 27 taps, with and without ReLU",
          "[conv]") {
  // With AVX-512 the tiles of up to 27 taps read dy as it is (masking it
  // themselves under ReLU) and cut a block of 32 filters' taps into tiles
  // of 13, then 14, then the rest (src/direct_tap_tiles.hpp): 9, 13 + 12
  // and 13 + 14 here; 48 filters are a block of 32 and one of 16, 24 one
  // block with a last vector of 8. Against a double-precision product of
  // the patches and dy, masked where ReLU cut.
  const std::vector<Case> cases = {
      {"3x3 grey, 32 filters", {.filters = 32, .kernel = 3}, Shape{12, 11, 1}},
      {"5x5 grey, 48 filters", {.filters = 48, .kernel = 5, .padding = Padding::Same}, Shape{10, 9, 1}},
      {"3x3 colour, 32 filters", {.filters = 32, .kernel = 3, .padding = Padding::Same}, Shape{9, 10, 3}},
      {"3x3 colour, 24 filters, stride 2", {.filters = 24, .kernel = 3, .strides = 2}, Shape{13, 12, 3}},
  };
  for (const Case& c : cases) {
    for (const Activation activation : {Activation::ReLU, Activation::None}) {
      INFO(c.what << (activation == Activation::ReLU ? ", ReLU" : ", no activation"));
      Case with = c;
      with.o.activation = activation;
      Conv2D conv = built(with, ConvAlgorithm::Direct, false);
      const conv::ConvGeometry& g = conv.geometry();
      const Index n = 3;
      const Tensor x = random_tensor(n, c.in, 51);
      const Tensor y = conv.forward(x);
      Tensor dz = random_tensor(n, conv.output_shape(), 52);
      conv.backward(dz);
      if (activation == Activation::ReLU)
        for (Index i = 0; i < dz.size(); ++i)
          if (!(y.data()[i] > 0.0f)) dz.data()[i] = 0.0f;
      RowMatrix col(n * g.pixels(), g.patch());
      for (Index s = 0; s < n; ++s)
        conv::Im2colConv::im2col(g, x.data() + s * g.input_size(), col.data() + s * g.pixels() * g.patch());
      const ConstMatrixMap dZ(dz.data(), col.rows(), g.f);
      const Eigen::MatrixXd dw = col.cast<double>().transpose() * dZ.cast<double>();
      const Eigen::VectorXd db = dZ.cast<double>().colwise().sum().transpose();
      const RowMatrix dw_ref = dw.cast<float>();
      const Eigen::VectorXf db_ref = db.cast<float>();
      CHECK(relative_error(conv.params()[0].grad.data(), dw_ref.data(), dw_ref.size()) < 1e-5);
      CHECK(relative_error(conv.params()[1].grad.data(), db_ref.data(), db_ref.size()) < 1e-5);
    }
  }
}

TEST_CASE("Winograd gradients match finite differences", "[conv][gradient]") {
  for (ConvAlgorithm algorithm : {ConvAlgorithm::Winograd2, ConvAlgorithm::Winograd4}) {
    INFO(to_string(algorithm));
    Conv2D same = built({.filters = 3, .kernel = 3, .padding = Padding::Same, .algorithm = algorithm}, Shape{5, 6, 2});
    REQUIRE_GRADIENTS(same, random_tensor(2, Shape{5, 6, 2}, 7));
    Conv2D valid = built({.filters = 2, .kernel = 3, .algorithm = algorithm}, Shape{7, 5, 3});
    REQUIRE_GRADIENTS(valid, random_tensor(2, Shape{7, 5, 3}, 8));
  }
}

TEST_CASE("Winograd results do not depend on the thread count", "[conv]") {
  // Backward's ways to the kernel gradient: one chunk per group, more chunks
  // than groups, and stage by stage (a large kernel).
  const std::vector<Case> cases = {
      {"a chunk per group", {.filters = 40, .kernel = 3, .padding = Padding::Same, .activation = Activation::ReLU},
       Shape{12, 12, 24}, 9},
      {"more chunks than groups", {.filters = 8, .kernel = 3, .padding = Padding::Same}, Shape{32, 32, 8}, 20},
      {"stage by stage", {.filters = 128, .kernel = 3, .padding = Padding::Same}, Shape{6, 6, 128}, 5},
      // A single image of 16 tiles of 64 x 128: infer spreads its one chunk's
      // transforms and products over the threads (spreads_one_chunk).
      {"one image's chunk spread", {.filters = 128, .kernel = 3, .padding = Padding::Same}, Shape{16, 16, 64}, 3},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    Conv2D conv = built(c, ConvAlgorithm::Winograd4);
    const Shape& in = c.in;
    const Tensor x = random_tensor(c.batch, in, 9), dy = random_tensor(c.batch, conv.output_shape(), 10);
    const int saved = threads();
    std::vector<float> seen[2];
    for (int t : {1, 2}) {
      set_threads(t);
      const Tensor y = conv.forward(x);
      const Tensor dx = conv.backward(dy);
      auto& v = seen[t - 1];
      v.assign(y.data(), y.data() + y.size());
      v.insert(v.end(), dx.data(), dx.data() + dx.size());
      v.insert(v.end(), conv.params()[0].grad.data(), conv.params()[0].grad.data() + conv.params()[0].size());
      v.insert(v.end(), conv.params()[1].grad.data(), conv.params()[1].grad.data() + conv.params()[1].size());
      // One image through infer: the forward's first sample, on any thread count.
      Tensor one(1, in[0], in[1], in[2]), y1;
      std::copy_n(x.data(), one.size(), one.data());
      conv.infer(one, y1);
      CHECK(std::equal(y1.data(), y1.data() + y1.size(), y.data()));
      v.insert(v.end(), y1.data(), y1.data() + y1.size());
    }
    set_threads(saved);
    REQUIRE(seen[0].size() == seen[1].size());
    CHECK(std::memcmp(seen[0].data(), seen[1].data(), seen[0].size() * sizeof(float)) == 0);
  }
}

TEST_CASE("im2col's product reads the patches in place and gives the bits of the patch matrix written out", "[conv]") {
  // Stride 1 and 2, kernels 1x1 to 5x5 and 3x1, padding valid and same
  // (windows crossing every edge), channel counts whose runs are cut by the
  // product's K blocks, and one with too few channels to read in place; infer
  // against im2col and the product on the written-out matrix, on 1 and 2
  // threads.
  const Case cases[] = {
      {"3x3 stride 2 same", {.filters = 32, .kernel = 3, .strides = 2, .padding = Padding::Same}, Shape{14, 14, 32}},
      {"3x3 stride 2 same, odd size", {.filters = 20, .kernel = 3, .strides = 2, .padding = Padding::Same},
       Shape{7, 9, 19}},
      {"1x1 stride 2", {.filters = 24, .kernel = 1, .strides = 2}, Shape{9, 8, 40}},
      {"5x5 stride 1 same", {.filters = 16, .kernel = 5, .padding = Padding::Same}, Shape{6, 7, 17}},
      {"5x5 stride 2 on 3 channels (patches written out)",
       {.filters = 16, .kernel = 5, .strides = 2, .padding = Padding::Same},
       Shape{11, 10, 3}},
      {"3x1 stride 2x1 valid", {.filters = 8, .kernel = {3, 1}, .strides = {2, 1}}, Shape{9, 5, 100}},
      {"3x3 stride 2 same, K past a block", {.filters = 40, .kernel = 3, .strides = 2, .padding = Padding::Same},
       Shape{5, 5, 64}},
  };
  const int saved = threads();
  for (const Case& c : cases) {
    INFO(c.what);
    Conv2DOptions o = c.o;
    o.algorithm = ConvAlgorithm::Im2col;
    o.activation = Activation::ReLU;
    Conv2D conv = built(o, c.in);
    const conv::ConvGeometry& g = conv.geometry();
    const Tensor x = random_tensor(5, c.in, 21);
    RowMatrix col(x.dimension(0) * g.pixels(), g.patch());
    for (Index s = 0; s < x.dimension(0); ++s)
      conv::Im2colConv::im2col(g, x.data() + s * g.input_size(), col.data() + s * g.pixels() * g.patch());
    RowMatrix expected(col.rows(), g.f);
    gemm::multiply(gemm::mutable_view(expected), gemm::view(col),
                   gemm::view(ConstMatrixMap(conv.params()[0].value.data(), g.patch(), g.f)),
                   {false, conv.params()[1].value.data(), true});
    for (int t : {1, 2}) {
      set_threads(t);
      Tensor y;
      conv.infer(x, y);
      REQUIRE(y.size() == expected.size());
      CHECK(std::memcmp(y.data(), expected.data(), sizeof(float) * static_cast<std::size_t>(y.size())) == 0);
    }
  }
  set_threads(saved);
}

TEST_CASE("im2col's weight gradient through the patches' row table gives the bits of col^T dz", "[conv]") {
  // Backward reads the patches through the table forward read them by
  // (where the build reads rows in place), not a patch matrix made again.
  // Runs of 32, 64 and 20 channels (the last a tile of 12 overlapping the
  // one before); 16 channels too few for a whole tile twice; filters short
  // of a panel and past one. dW is the chunks' products summed in chunk order.
  const Case cases[] = {
      {"the ResNet's first strided 3x3", {.filters = 32, .kernel = 3, .strides = 2, .padding = Padding::Same},
       Shape{14, 14, 32}},
      {"64 channels, 40 filters", {.filters = 40, .kernel = 3, .strides = 2, .padding = Padding::Same},
       Shape{14, 12, 64}},
      {"20 channels, valid", {.filters = 8, .kernel = 3, .strides = 2}, Shape{9, 8, 20}},
      {"16 channels, 5x5", {.filters = 16, .kernel = 5, .strides = 2, .padding = Padding::Same}, Shape{9, 9, 16}},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    Conv2D conv = built(c, ConvAlgorithm::Im2col);
    const conv::ConvGeometry& g = conv.geometry();
    REQUIRE(conv::Im2colConv::weight_gradient_reads_in_place(g) == gemm::kGatheredRowsInPlace);
    const Index n = 48;
    const Tensor x = random_tensor(n, c.in, 41);
    RowMatrix col(n * g.pixels(), g.patch());
    for (Index s = 0; s < n; ++s)
      conv::Im2colConv::im2col(g, x.data() + s * g.input_size(), col.data() + s * g.pixels() * g.patch());
    conv.forward(x);
    const Tensor dz = random_tensor(n, conv.output_shape(), 42);
    const auto chunks = conv::SampleChunks::balanced(n, conv::Im2colConv::chunk_samples(g));
    RowMatrix expected(g.patch(), g.f), part(g.patch(), g.f);
    for (Index ch = 0; ch < chunks.count(); ++ch) {
      const Index r0 = chunks.first(ch) * g.pixels(), rows = chunks.size(ch) * g.pixels();
      gemm::multiply(gemm::mutable_view(part), gemm::view(col.middleRows(r0, rows).transpose()),
                     gemm::view(ConstMatrixMap(dz.data() + r0 * g.f, rows, g.f)));
      if (ch == 0) expected = part;
      else expected += part;
    }
    conv.backward(dz);
    const Eigen::VectorXf& dw = conv.params()[0].grad;
    REQUIRE(dw.size() == expected.size());
    CHECK(std::memcmp(dw.data(), expected.data(), sizeof(float) * static_cast<std::size_t>(dw.size())) == 0);
  }
}

TEST_CASE("A 1x1 convolution of stride 1 multiplies its input as the patch matrix, copying nothing", "[conv]") {
  // A pooled projection's convolution. The patch rows are the input's
  // pixels: forward gives the product with x itself, bit for bit; dW is x^T dz
  // and dx is dz W^T, written or added by the product (no patch gradients,
  // no col2im). 40 channels: read in place where the build can.
  const Shape in{5, 6, 40};
  Conv2D conv = built({.filters = 24, .kernel = 1}, in);
  const conv::ConvGeometry& g = conv.geometry();
  REQUIRE(conv.algorithm() == ConvAlgorithm::Im2col);
  REQUIRE(conv::Im2colConv::identity_patches(g));
  REQUIRE_FALSE(conv::Im2colConv::keeps_patches(g));
  CHECK_FALSE(conv::Im2colConv::identity_patches(built({.filters = 24, .kernel = 1, .strides = 2}, in).geometry()));
  CHECK_FALSE(conv::Im2colConv::identity_patches(built({.filters = 24, .kernel = 3}, in).geometry()));

  const Index n = 3, rows = n * g.pixels();
  const Tensor x = random_tensor(n, in, 31);
  const ConstMatrixMap X(x.data(), rows, g.c);
  const ConstMatrixMap W(conv.params()[0].value.data(), g.c, g.f);
  RowMatrix expected(rows, g.f);
  gemm::multiply(gemm::mutable_view(expected), gemm::view(X), gemm::view(W), {false, conv.params()[1].value.data()});
  const Tensor z = conv.forward(x);
  REQUIRE(z.size() == expected.size());
  CHECK(std::memcmp(z.data(), expected.data(), sizeof(float) * static_cast<std::size_t>(z.size())) == 0);

  const Tensor dz = random_tensor(n, conv.output_shape(), 32);
  const ConstMatrixMap dZ(dz.data(), rows, g.f);
  const Tensor dx = conv.backward(dz);
  const RowMatrix dw_expected = X.transpose() * dZ, dx_expected = dZ * W.transpose();
  CHECK(relative_error(conv.params()[0].grad.data(), dw_expected.data(), dw_expected.size()) < 2e-6);
  REQUIRE(dx.size() == dx_expected.size());
  CHECK(relative_error(dx.data(), dx_expected.data(), dx_expected.size()) < 2e-6);

  // Added onto what dx holds: the same values plus what was there.
  Tensor onto = random_tensor(n, in, 33);
  const Tensor before = onto;
  conv.backward_into(dz, onto, GradientWrite::Add);
  bool sums = true;
  for (Index i = 0; i < onto.size(); ++i) sums = sums && onto.data()[i] == before.data()[i] + dx.data()[i];
  CHECK(sums);
  Conv2D small = built({.filters = 3, .kernel = 1}, Shape{3, 4, 17});
  REQUIRE_GRADIENTS(small, random_tensor(2, Shape{3, 4, 17}, 34));
}

TEST_CASE("im2col's gradients match finite differences where it reads its patches in place", "[conv][gradient]") {
  // 16 channels and more: forward reads the input through the row table; a
  // 3x3 of stride 2 (patches made again in backward) and a 1x1 of stride 2 (kept).
  Conv2D strided = built({.filters = 3, .kernel = 3, .strides = 2, .padding = Padding::Same}, Shape{5, 6, 16});
  REQUIRE(conv::Im2colConv::reads_in_place(strided.geometry()) == gemm::kGatheredRowsInPlace);
  REQUIRE(conv::Im2colConv::weight_gradient_reads_in_place(strided.geometry()) == gemm::kGatheredRowsInPlace);
  REQUIRE_GRADIENTS(strided, random_tensor(2, Shape{5, 6, 16}, 17));
  Conv2D pointwise = built({.filters = 2, .kernel = 1, .strides = 2}, Shape{5, 4, 17});
  REQUIRE_GRADIENTS(pointwise, random_tensor(2, Shape{5, 4, 17}, 18));
}

TEST_CASE("Balanced sample chunks give 2 and 4 threads equal shares, even when one chunk would hold the batch",
          "[conv]") {
  using conv::SampleChunks;
  const auto sizes = [](const SampleChunks& ch) {
    std::vector<Index> v;
    for (Index c = 0; c < ch.count(); ++c) v.push_back(ch.size(c));
    return v;
  };
  // A 4x4 map at batch 128: one tile per sample, 128 tiles a chunk.
  CHECK(sizes(SampleChunks::balanced(128, 128)) == std::vector<Index>{32, 32, 32, 32});
  CHECK(sizes(SampleChunks::balanced(32, 14)) == std::vector<Index>{8, 8, 8, 8});
  CHECK(sizes(SampleChunks::balanced(3, 100)) == std::vector<Index>{1, 1, 1});  // never an empty chunk
  CHECK(sizes(SampleChunks::balanced(1, 8)) == std::vector<Index>{1});
  CHECK(SampleChunks::balanced(256, 8).count() == 32);  // many chunks stay as asked
}

TEST_CASE("The engine's rule picks direct, Winograd or im2col from the shapes", "[conv]") {
  // The seed model: conv1 is a first layer on grey images, conv2 a 3x3 layer on 32 channels.
  CHECK(built({.filters = 32, .kernel = 3}, Shape{28, 28, 1}, false).algorithm() == ConvAlgorithm::Direct);
  CHECK(built({.filters = 64, .kernel = 3}, Shape{13, 13, 32}).algorithm() == ConvAlgorithm::Winograd4);
  // First layers: a 5x5 stride-2 layer on colour photos goes direct; one on 8
  // channels or more that Winograd can compute goes to Winograd; one with
  // patches of more than 80 values, to im2col.
  CHECK(built({.filters = 32, .kernel = 5, .strides = 2, .padding = Padding::Same}, Shape{96, 96, 3}, false)
            .algorithm() == ConvAlgorithm::Direct);
  CHECK(built({.filters = 32, .kernel = 3}, Shape{16, 16, 8}, false).algorithm() == ConvAlgorithm::Winograd4);
  CHECK(built({.filters = 32, .kernel = 3, .strides = 2}, Shape{16, 16, 10}, false).algorithm() ==
        ConvAlgorithm::Im2col);  // 90 values a patch
  // The same first layer inside a model, where its dx is wanted: too few channels for Winograd.
  CHECK(built({.filters = 32, .kernel = 3}, Shape{28, 28, 1}).algorithm() == ConvAlgorithm::Im2col);
  CHECK(built({.filters = 6, .kernel = 3}, Shape{16, 16, 32}).algorithm() == ConvAlgorithm::Im2col);
  CHECK(built({.filters = 64, .kernel = 3, .strides = 2}, Shape{16, 16, 32}).algorithm() == ConvAlgorithm::Im2col);
  CHECK(built({.filters = 64, .kernel = 1}, Shape{16, 16, 32}).algorithm() == ConvAlgorithm::Im2col);
  CHECK(built({.filters = 64, .kernel = 5}, Shape{16, 16, 32}).algorithm() == ConvAlgorithm::Im2col);
  CHECK(built({.filters = 64, .kernel = 3, .algorithm = ConvAlgorithm::Im2col}, Shape{16, 16, 32}).algorithm() ==
        ConvAlgorithm::Im2col);
}

TEST_CASE("A forced algorithm that cannot compute the layer is a clear error", "[conv]") {
  REQUIRE_THROWS_WITH(built({.filters = 8, .kernel = 5, .algorithm = ConvAlgorithm::Winograd4}, Shape{9, 9, 8}),
                      Contains("conv2d (Conv2D)") && Contains("winograd4x4") && Contains("3x3 kernel with stride 1"));
  REQUIRE_THROWS_WITH(
      built({.filters = 8, .kernel = 3, .strides = 2, .algorithm = ConvAlgorithm::Winograd2}, Shape{9, 9, 8}),
      Contains("winograd2x2") && Contains("stride 1"));
  Conv2D needs_dx = built({.filters = 32, .kernel = 3, .algorithm = ConvAlgorithm::Direct}, Shape{8, 8, 1});
  REQUIRE_THROWS_WITH(needs_dx.forward(random_tensor(1, Shape{8, 8, 1}, 1)),
                      Contains("direct") && Contains("no input gradient"));
  Conv2D too_wide = built({.filters = 32, .kernel = 3, .algorithm = ConvAlgorithm::Direct}, Shape{8, 8, 9}, false);
  REQUIRE_THROWS_WITH(too_wide.forward(random_tensor(1, Shape{8, 8, 9}, 1)), Contains("at most 80 values"));
  Conv2D odd_filters = built({.filters = 20, .kernel = 3, .algorithm = ConvAlgorithm::Direct}, Shape{8, 8, 1}, false);
  REQUIRE_THROWS_WITH(odd_filters.forward(random_tensor(1, Shape{8, 8, 1}, 1)), Contains("multiple of 8 filters"));
}

TEST_CASE("set_algorithm forces an algorithm on a built layer and refuses one that cannot compute it", "[conv]") {
  Conv2D conv = built({.filters = 16, .kernel = 3, .padding = Padding::Same}, Shape{8, 8, 16});
  REQUIRE(conv.algorithm() == ConvAlgorithm::Winograd4);
  conv.set_algorithm(ConvAlgorithm::Im2col);
  CHECK(conv.algorithm() == ConvAlgorithm::Im2col);
  Conv2D strided = built({.filters = 16, .kernel = 3, .strides = 2}, Shape{8, 8, 16});
  REQUIRE_THROWS_WITH(strided.set_algorithm(ConvAlgorithm::Winograd4), Contains("stride 1"));
  CHECK(strided.algorithm() == ConvAlgorithm::Im2col);  // unchanged
}

TEST_CASE("Winograd inference transforms the kernel again when the weights change, and a copy keeps up", "[conv]") {
  Conv2DOptions o{.filters = 16, .kernel = 3, .padding = Padding::Same};
  o.algorithm = ConvAlgorithm::Winograd4;
  Conv2D conv = built(o, Shape{8, 8, 8});
  const Tensor x = random_tensor(2, Shape{8, 8, 8}, 9);
  Tensor before, after, fresh;
  conv.infer(x, before);  // keeps the transform of these weights
  conv.params()[0].value *= -0.5f;
  conv.infer(x, after);
  CHECK(loom::testing::bitwise_equal(after, conv.forward(x)));
  CHECK_FALSE(loom::testing::bitwise_equal(after, before));
  Conv2D copy = conv;  // starts without a kept transform
  copy.params()[0].value *= 2.0f;
  copy.infer(x, fresh);
  CHECK(loom::testing::bitwise_equal(fresh, copy.forward(x)));
}

// Residual blocks have each path's first layer write its dx into the block's
// tensor (Layer::backward_into); a convolution writes there directly.
TEST_CASE("A convolution's backward_into assigns or adds the dx that backward returns, every algorithm", "[conv]") {
  const Case same{"3x3 same", {.filters = 6, .kernel = 3, .padding = Padding::Same, .activation = Activation::ReLU},
                  Shape{7, 9, 5}};
  const Case strided{"3x3 stride 2", {.filters = 6, .kernel = 3, .strides = 2, .padding = Padding::Same}, Shape{7, 9, 5}};
  const Case projection{"1x1 stride 2", {.filters = 6, .kernel = 1, .strides = 2}, Shape{7, 9, 5}};
  const std::vector<std::pair<Case, ConvAlgorithm>> runs = {
      {same, ConvAlgorithm::Im2col},    {same, ConvAlgorithm::Winograd2},      {same, ConvAlgorithm::Winograd4},
      {strided, ConvAlgorithm::Im2col}, {projection, ConvAlgorithm::Im2col},
  };
  for (const auto& [c, algorithm] : runs) {
    Conv2DOptions o = c.o;
    o.algorithm = algorithm;
    INFO(c.what << ": " << to_string(algorithm));
    Conv2D a = built(o, c.in), b = built(o, c.in);
    const Tensor x = random_tensor(3, c.in, 5), dy = random_tensor(3, a.output_shape(), 6);
    a.forward(x);
    b.forward(x);
    const Tensor expected = a.backward(dy);

    Tensor dx = random_tensor(3, c.in, 7);  // Assign overwrites whatever dx held
    b.backward_into(dy, dx, GradientWrite::Assign);
    CHECK(loom::testing::bitwise_equal(dx, expected));
    for (int p = 0; p < 2; ++p) CHECK(b.params()[p].grad == a.params()[p].grad);

    const Tensor before = random_tensor(3, c.in, 8);
    dx = before;
    b.backward_into(dy, dx, GradientWrite::Add);
    Tensor sum = before;
    ArrayMap(sum.data(), sum.size()) += ConstArrayMap(expected.data(), expected.size());
    CHECK(relative_error(dx.data(), sum.data(), sum.size()) < 1e-6);
    for (int p = 0; p < 2; ++p) CHECK(b.params()[p].grad == a.params()[p].grad);

    Tensor wrong = random_tensor(2, c.in, 9);
    CHECK_THROWS_WITH(b.backward_into(dy, wrong, GradientWrite::Add), Contains("backward_into adds onto dx"));
  }
}

TEST_CASE("backward_into on a direct first-layer convolution, which computes no dx, is a clear error", "[conv]") {
  Conv2D conv = built({.filters = 8, .kernel = 3}, Shape{10, 10, 1}, /*needs_dx=*/false);
  REQUIRE(conv.algorithm() == ConvAlgorithm::Direct);
  const Tensor x = random_tensor(2, Shape{10, 10, 1}, 5), dy = random_tensor(2, conv.output_shape(), 6);
  conv.forward(x);
  Tensor dx;
  CHECK_THROWS_WITH(conv.backward_into(dy, dx, GradientWrite::Assign), Contains("computes no input gradient"));
}

TEST_CASE("A convolution with ReLU computes the gradients of the same layer without it given dy masked by its output",
          "[conv]") {
  // Winograd masks dy and sums the bias gradient in its first backward pass;
  // the result must be the plain layer's on the masked dy, bit for bit.
  const Shape in{9, 7, 5};
  for (const ConvAlgorithm algorithm : {ConvAlgorithm::Im2col, ConvAlgorithm::Winograd2, ConvAlgorithm::Winograd4}) {
    INFO(to_string(algorithm));
    const Conv2DOptions relu{.filters = 19, .kernel = 3, .padding = Padding::Same, .activation = Activation::ReLU,
                             .algorithm = algorithm};
    Conv2DOptions plain = relu;
    plain.activation = Activation::None;
    Conv2D a = built(relu, in), b = built(plain, in);  // same seed: same weights
    const Tensor x = random_tensor(4, in, 5), dy = random_tensor(4, a.output_shape(), 6);
    const Tensor y = a.forward(x);
    b.forward(x);
    Tensor masked = dy;
    Index cut = 0;
    for (Index i = 0; i < masked.size(); ++i)
      if (!(y.data()[i] > 0.0f)) masked.data()[i] = 0.0f, ++cut;
    REQUIRE(cut > 0);
    REQUIRE(cut < masked.size());
    const Tensor dxa = a.backward(dy);
    const Tensor dxb = b.backward(masked);
    CHECK(loom::testing::bitwise_equal(dxa, dxb));
    for (int p = 0; p < 2; ++p) CHECK(a.params()[p].grad == b.params()[p].grad);
  }
}

TEST_CASE("A direct convolution's backward refuses dy of another batch than its forward's", "[conv]") {
  // Without padding the engine reads the caller's x in backward; with it, its
  // padded copy: either way the last forward's batch, and no more.
  for (const Padding padding : {Padding::Valid, Padding::Same}) {
    Conv2D conv = built({.filters = 8, .kernel = 3, .padding = padding, .algorithm = ConvAlgorithm::Direct},
                        Shape{10, 10, 1}, false);
    const Tensor x = random_tensor(2, Shape{10, 10, 1}, 5), fewer = random_tensor(1, conv.output_shape(), 6);
    conv.forward(x);
    CHECK_THROWS_AS(conv.backward(fewer), ShapeError);
    const conv::ConvGeometry& g = conv.geometry();
    const conv::ConvWeights w{conv.params()[0].value.data(), conv.params()[1].value.data()};
    conv::DirectConv direct;
    Tensor z(2, g.oh, g.ow, g.f);
    direct.forward(g, w, x, z, Activation::None);
    std::vector<float> dw(static_cast<std::size_t>((g.patch() + 1) * g.f));
    CHECK_THROWS_WITH(direct.backward(g, fewer, nullptr, dw.data(), dw.data() + g.patch() * g.f),
                      Contains("backward of 1 samples after a forward of 2"));
  }
}

TEST_CASE("A convolution's backward refuses dy of other dimensions than its output's", "[conv]") {
  for (const ConvAlgorithm algorithm : {ConvAlgorithm::Im2col, ConvAlgorithm::Winograd4}) {
    INFO(to_string(algorithm));
    Conv2D conv = built({.filters = 8, .kernel = 3, .activation = Activation::ReLU, .algorithm = algorithm},
                        Shape{10, 10, 4});
    conv.forward(random_tensor(2, Shape{10, 10, 4}, 5));
    const Tensor fewer = random_tensor(1, conv.output_shape(), 6);
    CHECK_THROWS_AS(conv.backward(fewer), ShapeError);
    Tensor dx;
    CHECK_THROWS_WITH(conv.backward_into(fewer, dx, GradientWrite::Assign), Contains("backward expects dy"));
  }
}

TEST_CASE("Winograd's backward reads the kept input: before any forward, or after it changed size, a clear error",
          "[conv]") {
  // The fused backward makes the input tiles again from x (layer.hpp's
  // contract: the caller keeps x until backward).
  const conv::ConvGeometry g{.h = 6, .w = 6, .c = 4, .kh = 3, .kw = 3, .f = 8, .pad_top = 1, .pad_left = 1, .oh = 6,
                             .ow = 6};
  const std::vector<float> kernel(9 * 4 * 8, 0.1f), bias(8, 0.0f);
  std::vector<float> dkernel(9 * 4 * 8), dbias(8);
  conv::WinogradConv<4> engine;
  const Tensor dy = random_tensor(2, Shape{6, 6, 8}, 3);
  CHECK_THROWS_WITH(engine.backward(g, dy, nullptr, dkernel.data(), dbias.data(), nullptr, GradientWrite::Assign),
                    Contains("before forward"));
  Tensor x = random_tensor(2, Shape{6, 6, 4}, 4), z(2, 6, 6, 8);
  engine.forward(g, {kernel.data(), bias.data()}, x, z, Activation::None);
  engine.backward(g, dy, nullptr, dkernel.data(), dbias.data(), nullptr, GradientWrite::Assign);
  x.resize(1, 6, 6, 4);
  CHECK_THROWS_WITH(engine.backward(g, dy, nullptr, dkernel.data(), dbias.data(), nullptr, GradientWrite::Assign),
                    Contains("no longer there"));
}

TEST_CASE("Backward uses the algorithm of the last forward, whatever the layer's algorithm is by then", "[conv]") {
  // Switching between forward and backward (set_algorithm, or a container's
  // set_needs_input_gradient changing the rule's choice) once had backward
  // run another engine, on that engine's stale state or none.
  const Conv2DOptions o{.filters = 8, .kernel = 3, .padding = Padding::Same, .activation = Activation::ReLU};
  const Tensor x = random_tensor(3, Shape{6, 6, 4}, 5);
  const Tensor dy = random_tensor(3, Shape{6, 6, 8}, 6);
  for (const ConvAlgorithm first : {ConvAlgorithm::Im2col, ConvAlgorithm::Winograd4}) {
    const ConvAlgorithm then = first == ConvAlgorithm::Im2col ? ConvAlgorithm::Winograd4 : ConvAlgorithm::Im2col;
    INFO(to_string(first) << " forward, then " << to_string(then));
    Conv2D reference = built(o, Shape{6, 6, 4});
    reference.set_algorithm(first);
    reference.forward(x);
    const Tensor dx = reference.backward(dy);

    Conv2D switched = built(o, Shape{6, 6, 4});
    switched.set_algorithm(first);
    switched.forward(x);
    switched.set_algorithm(then);
    CHECK(testing::bitwise_equal(switched.backward(dy), dx));
    CHECK(switched.params()[0].grad == reference.params()[0].grad);
  }
}
