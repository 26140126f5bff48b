// loom::gemm::bf16: rounding to bfloat16, and the product against a plain
// loop in double on the rounded operands, over shapes that cut every block
// and tile at its edge, operands transposed in memory or read through row
// tables, accumulation, and 1 against 2 threads.
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "loom/gemm_bf16.hpp"
#include "loom/random.hpp"
#include "loom/threads.hpp"
#include "random_matrix.hpp"

using namespace loom;
namespace bf16 = loom::gemm::bf16;

namespace {

using testing::random_matrix;

float rounded(float x) { return bf16::widen(bf16::round(x)); }

// Checks C against sum_k bf16(A)(i, k) bf16(B)(k, j) (+ C0) in double. The
// products are exact in float, so only the K float sums round: each result
// within (K + 2) units of 2^-24 of the sum of the terms' magnitudes.
void check_product(const RowMatrix& c, const RowMatrix& a, const RowMatrix& b, const RowMatrix* c0 = nullptr) {
  const Index k = a.cols();
  for (Index i = 0; i < c.rows(); ++i)
    for (Index j = 0; j < c.cols(); ++j) {
      double sum = c0 ? (*c0)(i, j) : 0.0, size = c0 ? std::abs((*c0)(i, j)) : 0.0;
      for (Index t = 0; t < k; ++t) {
        const double term = double(rounded(a(i, t))) * double(rounded(b(t, j)));
        sum += term;
        size += std::abs(term);
      }
      const double bound = double(k + 2) * std::ldexp(size, -24);
      if (std::abs(c(i, j) - sum) > bound) {
        INFO("C(" << i << ", " << j << ") = " << c(i, j) << ", expected " << sum << " within " << bound);
        CHECK(std::abs(c(i, j) - sum) <= bound);
        return;
      }
    }
}

// A row table over the 50 runs of `image` (rows of `segment` floats) and a
// run of zeros (the padding, about one run in eleven): `rows` rows of
// `segments` runs drawn from the seed, and the same rows written out.
struct RunTable {
  std::vector<const float*> table;
  RowMatrix written;
};
RunTable random_run_table(const RowMatrix& image, const std::vector<float>& zeros, Index rows, Index segments,
                          std::uint64_t seed) {
  const Index segment = image.cols();
  RunTable t{{}, RowMatrix(rows, segments * segment)};
  Random rng(seed);
  for (Index i = 0; i < rows; ++i)
    for (Index s = 0; s < segments; ++s) {
      const auto r = static_cast<Index>(rng.uniform(0.0f, 55.0f));  // 50..54: the padding
      const float* run = r < 50 ? image.data() + r * segment : zeros.data();
      t.table.push_back(run);
      for (Index j = 0; j < segment; ++j) t.written(i, s * segment + j) = run[j];
    }
  return t;
}

}  // namespace

TEST_CASE("bf16::round rounds to the nearest bfloat16, ties to even, and widen is exact") {
  CHECK(bf16::round(1.0f) == 0x3f80);
  CHECK(bf16::round(-2.0f) == 0xc000);
  CHECK(bf16::round(1.0f + 0x1p-8f) == 0x3f80);         // halfway to 1 + 2^-7: ties to the even 1
  CHECK(bf16::round(1.0f + 0x1p-7f + 0x1p-8f) == 0x3f82);  // halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even)
  CHECK(bf16::round(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81);  // just past halfway: up
  CHECK(bf16::widen(0x3f81) == 1.0f + 0x1p-7f);
  CHECK(std::isinf(bf16::widen(bf16::round(std::numeric_limits<float>::infinity()))));
  CHECK(std::isnan(bf16::widen(bf16::round(std::numeric_limits<float>::quiet_NaN()))));
  // a NaN whose payload lies only in the low bits stays a NaN, not infinity
  CHECK(std::isnan(bf16::widen(bf16::round(std::bit_cast<float>(0x7f800001u)))));
  CHECK(std::isinf(bf16::widen(bf16::round(std::numeric_limits<float>::max()))));  // rounds up past the largest
  Random rng(9);
  for (int n = 0; n < 1000; ++n) {
    const float x = rng.uniform(-100.0f, 100.0f);
    CHECK(std::abs(rounded(x) - x) <= std::ldexp(std::abs(x), -8));  // 8 significant bits: half a unit is 2^-8
  }
}

TEST_CASE("bf16::multiply is the product of the rounded operands, summed in float") {
  // 1 + 2^-10 is 1 in bfloat16: a float product would keep it.
  RowMatrix a(1, 2), b(2, 1), c(1, 1);
  a << 1.0f + 0x1p-10f, 3.0f;
  b << 1.0f, 1.0f;
  bf16::multiply(gemm::mutable_view(c), gemm::view(a), gemm::view(b));
  CHECK(c(0, 0) == 4.0f);

  // M across tiles (12) and blocks (96), K across pairs (odd) and blocks
  // (384 values), N across panels (32).
  for (const Index m : {1, 13, 97, 200})
    for (const Index k : {1, 7, 33, 385, 800})
      for (const Index n : {1, 17, 32, 45, 64}) {
        INFO("M " << m << ", K " << k << ", N " << n);
        const RowMatrix a = random_matrix(m, k, 1 + m), b = random_matrix(k, n, 2 + n);
        RowMatrix c(m, n);
        bf16::multiply(gemm::mutable_view(c), gemm::view(a), gemm::view(b));
        check_product(c, a, b);
      }
}

TEST_CASE("bf16::multiply reads transposed operands, adds onto C, and refuses shapes that disagree") {
  const RowMatrix at = random_matrix(40, 30, 3), b = random_matrix(40, 50, 4), bt = random_matrix(50, 40, 5);
  const RowMatrix a = at.transpose();
  const RowMatrix c0 = random_matrix(30, 50, 6);
  RowMatrix c = c0;
  // A (30 x 40) as at's transpose in memory, B (40 x 50) as bt's
  const gemm::ConstView a_t{at.data(), 30, 40, 1, 30};
  const gemm::ConstView b_t{bt.data(), 40, 50, 1, 40};
  bf16::multiply(gemm::mutable_view(c), a_t, b_t, {.accumulate = true});
  check_product(c, a, bt.transpose(), &c0);

  RowMatrix wrong(30, 49);
  CHECK_THROWS_AS(bf16::multiply(gemm::mutable_view(wrong), gemm::view(a), gemm::view(b)), ShapeError);
  CHECK_THROWS_AS(bf16::parallel_multiply(gemm::mutable_view(wrong), gemm::view(a), gemm::view(b)), ShapeError);
}

TEST_CASE("bf16::parallel_multiply gives multiply's bits on 1 and 2 threads") {
  const int saved = threads();
  for (const Index m : {12, 301, 2000}) {
    const RowMatrix a = random_matrix(m, 288, 7), b = random_matrix(288, 64, 8);
    RowMatrix one(m, 64);
    bf16::multiply(gemm::mutable_view(one), gemm::view(a), gemm::view(b));
    for (const int t : {1, 2}) {
      set_threads(t);
      RowMatrix c(m, 64);
      bf16::parallel_multiply(gemm::mutable_view(c), gemm::view(a), gemm::view(b));
      INFO("M " << m << ", " << t << " threads");
      CHECK(std::memcmp(c.data(), one.data(), sizeof(float) * static_cast<std::size_t>(c.size())) == 0);
    }
  }
  set_threads(saved);
  INFO("bf16::hardware() = " << bf16::hardware());
  SUCCEED();
}

TEST_CASE("bf16::multiply reads A through a row table, of float or bfloat16 runs, with the bits of A written out") {
  // Rows of `segments` runs of `segment` floats: runs of an image, some of
  // them a run of zeros (the padding), odd lengths that split pairs, and K
  // across blocks (9 x 64 = 576 values).
  const int saved = threads();
  for (const Index segment : {3, 32, 64}) {
    const Index segments = 9, rows = 301, n = 40;
    const RowMatrix image = random_matrix(50, segment, 11 + segment), b = random_matrix(segments * segment, n, 12);
    const std::vector<float> zeros(static_cast<std::size_t>(segment), 0.0f);
    // the same image rounded once, as a layer writing bfloat16 would leave it
    std::vector<std::uint16_t> image16(static_cast<std::size_t>(image.size())), zeros16(zeros.size(), 0);
    bf16::round_into(image.data(), image.size(), image16.data());
    for (Index i = 0; i < image.size(); ++i) REQUIRE(image16[static_cast<std::size_t>(i)] == bf16::round(image.data()[i]));
    const auto [table, written] = random_run_table(image, zeros, rows, segments, 13);
    std::vector<const std::uint16_t*> table16;  // the same runs in the rounded image
    for (const float* run : table)
      table16.push_back(run == zeros.data() ? zeros16.data() : image16.data() + (run - image.data()));
    RowMatrix expected(rows, n);
    bf16::multiply(gemm::mutable_view(expected), gemm::view(written), gemm::view(b));
    const gemm::GatheredRows gathered{table.data(), rows, segments, segment};
    const bf16::PackedB packed(gemm::view(b));
    for (const int t : {1, 2}) {
      set_threads(t);
      RowMatrix c(rows, n);
      bf16::parallel_multiply(gemm::mutable_view(c), gathered, packed);
      INFO("segment " << segment << ", " << t << " threads");
      CHECK(std::memcmp(c.data(), expected.data(), sizeof(float) * static_cast<std::size_t>(c.size())) == 0);
      RowMatrix c16(rows, n);
      bf16::parallel_multiply(gemm::mutable_view(c16), bf16::GatheredRows{table16.data(), rows, segments, segment},
                              packed);
      CHECK(std::memcmp(c16.data(), expected.data(), sizeof(float) * static_cast<std::size_t>(c.size())) == 0);
    }
    RowMatrix wrong(rows, n + 1);
    CHECK_THROWS_AS(bf16::multiply(gemm::mutable_view(wrong), gathered, packed), ShapeError);
  }
  set_threads(saved);
}

TEST_CASE("bf16::multiply_transposed reads A = G^T through G's row table, with the bits of G^T written out") {
  // G (K x M): rows of `segments` runs of an image or of zeros. Runs of 3,
  // 17 and 32 floats cut the 16-value pieces the packing stores at once; K
  // of 1, 7 and 801 cuts pairs and blocks; M of up to 9 x 32 = 288 rows of
  // A crosses the product's blocks of rows.
  for (const Index segment : {3, 17, 32})
    for (const Index k : {1, 7, 801}) {
      const Index segments = 9, n = 45;
      const RowMatrix image = random_matrix(50, segment, 21 + segment), b = random_matrix(k, n, 22);
      const RowMatrix c0 = random_matrix(segments * segment, n, 23);
      const std::vector<float> zeros(static_cast<std::size_t>(segment), 0.0f);
      const auto [table, written] = random_run_table(image, zeros, k, segments, 24);  // G
      const gemm::ConstView gt{written.data(), written.cols(), k, 1, written.cols()};  // G^T, stored as G
      const gemm::GatheredRows g{table.data(), k, segments, segment};
      INFO("segment " << segment << ", K " << k);
      RowMatrix expected = c0, c = c0;
      bf16::multiply(gemm::mutable_view(expected), gt, gemm::view(b), {.accumulate = true});
      bf16::multiply_transposed(gemm::mutable_view(c), g, gemm::view(b), {.accumulate = true});
      CHECK(std::memcmp(c.data(), expected.data(), sizeof(float) * static_cast<std::size_t>(c.size())) == 0);
      check_product(c, RowMatrix(written.transpose()), b, &c0);
      RowMatrix wrong(segments * segment, n + 1);
      CHECK_THROWS_AS(bf16::multiply_transposed(gemm::mutable_view(wrong), g, gemm::view(b)), ShapeError);
    }
}

TEST_CASE("bf16::multiply applies the epilogue once the sums are done, with a B packed once or per call") {
  // K of 800: three blocks of K, the bias, map and ReLU after the last only.
  for (const Index k : {0, 7, 800}) {
    const Index m = 61, n = 45;
    const RowMatrix a = random_matrix(m, k, 21), b = random_matrix(k, n, 22), c0 = random_matrix(m, n, 23);
    const RowMatrix stats = random_matrix(4, n, 24);
    std::vector<float> bias(static_cast<std::size_t>(n)), center(bias), inv_std(bias), gamma(bias), beta(bias);
    for (Index j = 0; j < n; ++j) {
      const auto u = static_cast<std::size_t>(j);
      bias[u] = stats(0, j);
      center[u] = stats(1, j);
      inv_std[u] = 1.5f + stats(2, j);
      gamma[u] = stats(3, j);
      beta[u] = 0.1f * stats(0, j);
    }
    const gemm::Epilogue e{.accumulate = true, .bias = bias.data(), .relu = true,
                           .normalize = {center.data(), inv_std.data(), gamma.data(), beta.data()}};
    // the sums alone (checked against double elsewhere), then the epilogue by hand
    RowMatrix sums(m, n);
    bf16::multiply(gemm::mutable_view(sums), gemm::view(a), gemm::view(b));
    RowMatrix c = c0, packed_c = c0;
    bf16::multiply(gemm::mutable_view(c), gemm::view(a), gemm::view(b), e);
    bf16::parallel_multiply(gemm::mutable_view(packed_c), gemm::view(a), bf16::PackedB(gemm::view(b)), e);
    INFO("K " << k);
    CHECK(std::memcmp(c.data(), packed_c.data(), sizeof(float) * static_cast<std::size_t>(c.size())) == 0);
    Index zeros = 0;
    for (Index i = 0; i < m; ++i)
      for (Index j = 0; j < n; ++j) {
        const float expected = std::max(e.normalize(c0(i, j) + sums(i, j) + bias[static_cast<std::size_t>(j)], j), 0.0f);
        // c0 + sums rounds once in the product's last block and once here: equal, or one rounding apart
        REQUIRE(std::abs(c(i, j) - expected) <= 1e-5f * (1.0f + std::abs(expected)));
        zeros += c(i, j) == 0.0f;
      }
    CHECK(zeros > 0);           // the ReLU cut some
    CHECK(zeros < m * n);       // and not all
  }
}
