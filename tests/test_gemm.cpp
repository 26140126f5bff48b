// loom::gemm: the packed product against a plain triple loop in double
// precision, over shapes that cut every block and tile at its edge, operands
// transposed and sliced in memory, each epilogue, and 1 against 2 threads.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "loom/gemm.hpp"
#include "loom/random.hpp"
#include "loom/threads.hpp"
#include "random_matrix.hpp"

using namespace loom;

namespace {

using testing::random_matrix;

// C = A B (+ C0) (+ bias) (ReLU) in double: the reference.
Eigen::MatrixXd reference(const RowMatrix& a, const RowMatrix& b, const RowMatrix* c0, const float* bias, bool relu) {
  Eigen::MatrixXd c = a.cast<double>() * b.cast<double>();
  if (c0) c += c0->cast<double>();
  for (Index i = 0; i < c.rows(); ++i)
    for (Index j = 0; j < c.cols(); ++j) {
      if (bias) c(i, j) += bias[j];
      if (relu) c(i, j) = std::max(c(i, j), 0.0);
    }
  return c;
}

// Largest |c - ref| over sqrt(K): float sums of K terms of size <= 1 are off by about sqrt(K) * 1e-7.
double scaled_error(const RowMatrix& c, const Eigen::MatrixXd& ref, Index k) {
  return (c.cast<double>() - ref).cwiseAbs().maxCoeff() / std::sqrt(static_cast<double>(std::max<Index>(k, 1)));
}

struct Shape3 {
  Index m, k, n;
};

// Past one tile (6 x 16 with AVX2, 12 x 32 with AVX-512), one A block (120
// rows), one K block (256) and one B block (1024 columns); fewer than 6 rows
// take the unpacked path.
const Shape3 kShapes[] = {{1, 1, 1},      {5, 3, 15},     {6, 7, 16},     {7, 9, 17},    {13, 257, 33},
                          {121, 300, 50}, {200, 513, 31}, {64, 20, 1030}, {1, 1600, 128}, {37, 64, 1},
                          {11, 5, 31},    {12, 9, 32},    {25, 40, 65},   {36, 3, 96}};

}  // namespace

TEST_CASE("gemm: products agree with a double-precision reference on every edge of the blocking") {
  for (const Shape3& s : kShapes) {
    INFO("M " << s.m << ", K " << s.k << ", N " << s.n);
    const RowMatrix a = random_matrix(s.m, s.k, 1), b = random_matrix(s.k, s.n, 2);
    RowMatrix c(s.m, s.n);
    gemm::multiply(gemm::mutable_view(c), gemm::view(a), gemm::view(b));
    CHECK(scaled_error(c, reference(a, b, nullptr, nullptr, false), s.k) < 1e-6);
  }
}

TEST_CASE("gemm: transposed and sliced operands are read in place") {
  // 29 rows: packed tiles; 4 rows: fewer than a tile, with B read transposed.
  const Index k = 270, n = 37;
  const Index m = GENERATE(Index{29}, Index{4});
  // A^T and B^T stored, plus a destination that is a block of a wider matrix.
  const RowMatrix at = random_matrix(k, m, 3), bt = random_matrix(n, k, 4);
  RowMatrix wide = RowMatrix::Constant(m + 2, n + 5, 7.0f);
  auto block = wide.block(1, 2, m, n);
  gemm::multiply(gemm::mutable_view(block), gemm::view(at.transpose()), gemm::view(bt.transpose()));
  const RowMatrix a = at.transpose(), b = bt.transpose();
  CHECK(scaled_error(RowMatrix(block), reference(a, b, nullptr, nullptr, false), k) < 1e-6);
  // Outside the block nothing was written.
  CHECK(wide.row(0).cwiseEqual(7.0f).all());
  CHECK(wide.row(m + 1).cwiseEqual(7.0f).all());
  CHECK(wide.leftCols(2).cwiseEqual(7.0f).all());
  CHECK(wide.rightCols(3).cwiseEqual(7.0f).all());
  // A column-major destination (C^T stored): every element through the edge path.
  RowMatrix ct(n, m);
  auto c = ct.transpose();
  gemm::multiply(gemm::mutable_view(c), gemm::view(a), gemm::view(b));
  CHECK(scaled_error(RowMatrix(c), reference(a, b, nullptr, nullptr, false), k) < 1e-6);
}

TEST_CASE("gemm: accumulate, bias and ReLU are applied once, after the whole sum") {
  const Index m = 50, k = 600, n = 40;  // three K blocks: the epilogue must wait for the last
  const RowMatrix a = random_matrix(m, k, 5), b = random_matrix(k, n, 6), c0 = random_matrix(m, n, 7);
  const RowMatrix bias_row = random_matrix(1, n, 8) * 10.0f;  // large enough to move many signs
  for (const bool accumulate : {false, true})
    for (const bool bias : {false, true})
      for (const bool relu : {false, true}) {
        INFO("accumulate " << accumulate << ", bias " << bias << ", relu " << relu);
        RowMatrix c = c0;
        gemm::multiply(gemm::mutable_view(c), gemm::view(a), gemm::view(b),
                       {accumulate, bias ? bias_row.data() : nullptr, relu});
        CHECK(scaled_error(c, reference(a, b, accumulate ? &c0 : nullptr, bias ? bias_row.data() : nullptr, relu), k) <
              1e-6);
        if (relu) CHECK(c.minCoeff() == 0.0f);
      }
}

TEST_CASE("gemm: an empty sum gives zeros, then the epilogue") {
  const RowMatrix a(9, 0), b(0, 20);
  const RowMatrix bias = RowMatrix::Constant(1, 20, -1.0f);
  RowMatrix c = RowMatrix::Constant(9, 20, 3.0f);
  gemm::multiply(gemm::mutable_view(c), gemm::view(a), gemm::view(b), {true, bias.data(), false});
  CHECK(c.cwiseEqual(2.0f).all());
  gemm::multiply(gemm::mutable_view(c), gemm::view(a), gemm::view(b), {false, bias.data(), true});
  CHECK(c.cwiseEqual(0.0f).all());
  // Fewer rows than a tile, where the unpacked path would otherwise take it.
  RowMatrix thin = RowMatrix::Constant(2, 20, 3.0f);
  gemm::multiply(gemm::mutable_view(thin), gemm::view(RowMatrix(2, 0)), gemm::view(b), {true, bias.data(), false});
  CHECK(thin.cwiseEqual(2.0f).all());
}

TEST_CASE("gemm: mismatched shapes are refused") {
  const RowMatrix a(4, 5), b(6, 7);
  RowMatrix c(4, 7);
  CHECK_THROWS_AS(gemm::multiply(gemm::mutable_view(c), gemm::view(a), gemm::view(b)), ShapeError);
  CHECK_THROWS_AS(gemm::parallel_multiply(gemm::mutable_view(c), gemm::view(a), gemm::view(b)), ShapeError);
  const std::vector<float> run(7, 1.0f);
  const std::vector<const float*> table(6, run.data());
  CHECK_THROWS_AS(gemm::multiply_transposed(gemm::mutable_view(c), gemm::GatheredRows{table.data(), 6, 1, 7},
                                            gemm::view(b)),
                  ShapeError);  // G^T is (7, 6), C (4, 7)
  std::vector<float*> c_rows(4, c.data());
  const gemm::PackedB packed(gemm::view(b));
  CHECK_THROWS_AS(gemm::multiply(gemm::ScatteredRows{c_rows.data(), 4, 7}, gemm::GatheredRows{table.data(), 4, 1, 5},
                                 packed),
                  ShapeError);  // B (6, 7) after A (4, 5)
}

TEST_CASE("gemm: the threaded product is bitwise the one-thread product, split by rows or by columns") {
  const int saved = threads();
  for (const Shape3 s : {Shape3{700, 300, 40}, Shape3{40, 300, 700}}) {
    INFO("M " << s.m << ", K " << s.k << ", N " << s.n);
    const RowMatrix a = random_matrix(s.m, s.k, 9), b = random_matrix(s.k, s.n, 10);
    const RowMatrix bias = random_matrix(1, s.n, 11);
    RowMatrix one(s.m, s.n), two(s.m, s.n);
    gemm::multiply(gemm::mutable_view(one), gemm::view(a), gemm::view(b), {false, bias.data(), true});
    set_threads(2);
    gemm::parallel_multiply(gemm::mutable_view(two), gemm::view(a), gemm::view(b), {false, bias.data(), true});
    set_threads(saved);
    CHECK(one == two);
  }
}

TEST_CASE("gemm: a row's result does not depend on how many rows it is multiplied with") {
  // K past two blocks; 1 to 5 rows take the unpacked path, 6 and more the
  // packed one. 200 columns cross the unpacked path's column blocks (64 to 128
  // wide) and end in a partial vector.
  const Index k = 600;
  const Index n = GENERATE(40, 200);
  const RowMatrix a = random_matrix(13, k, 12), b = random_matrix(k, n, 13), bias = random_matrix(1, n, 14);
  RowMatrix all(13, n);
  gemm::multiply(gemm::mutable_view(all), gemm::view(a), gemm::view(b), {false, bias.data(), true});
  for (Index rows = 1; rows <= 13; ++rows) {
    INFO(rows << " rows, " << n << " columns");
    RowMatrix part(rows, n);
    gemm::multiply(gemm::mutable_view(part), gemm::view(a.topRows(rows)), gemm::view(b), {false, bias.data(), true});
    CHECK(part == all.topRows(rows));
  }
}

TEST_CASE("gemm: a product with B packed beforehand is bitwise the product with B") {
  // K past one block of 256 and N past one block of 1,024 columns, N not a
  // multiple of 16; M of 1 (the unpacked path's thin case), 6 and 13; B as is
  // and transposed in memory; with each part of the epilogue.
  for (const auto [m, k, n] : {std::array<Index, 3>{1, 32, 64}, {6, 300, 40}, {13, 70, 1030}, {4, 0, 20}}) {
    const RowMatrix a = random_matrix(m, k, 1), b = random_matrix(k, n, 2), bt = b.transpose();
    const RowMatrix c0 = random_matrix(m, n, 3);
    const std::vector<float> bias(static_cast<std::size_t>(n), 0.25f);
    for (const bool transposed : {false, true}) {
      const gemm::ConstView bv = transposed ? gemm::view(bt.transpose()) : gemm::view(b);
      const gemm::PackedB packed(bv);
      for (const gemm::Epilogue& e : {gemm::Epilogue{}, gemm::Epilogue{true, bias.data(), true}}) {
        RowMatrix expected = c0, got = c0;
        gemm::multiply(gemm::mutable_view(expected), gemm::view(a), bv, e);
        gemm::multiply(gemm::mutable_view(got), gemm::view(a), packed, e);
        INFO("M " << m << ", K " << k << ", N " << n << (transposed ? ", B transposed" : ""));
        CHECK(std::memcmp(expected.data(), got.data(), sizeof(float) * static_cast<std::size_t>(m * n)) == 0);
      }
    }
  }
  const gemm::PackedB packed(gemm::view(random_matrix(5, 7, 4)));
  RowMatrix c(2, 7);
  CHECK_THROWS_AS(gemm::multiply(gemm::mutable_view(c), gemm::view(random_matrix(2, 6, 5)), packed), ShapeError);
}

TEST_CASE("gemm: B packed by pieces of rows is B packed whole") {
  // Rows in pieces that cross a K block of 256 and end inside one, N past one
  // block of 1,024 columns and not a multiple of 16, B as is and transposed
  // in memory; pieces packed in reverse order, as threads finish in any.
  for (const auto [k, n] : {std::array<Index, 2>{300, 1030}, {70, 40}, {8, 16}}) {
    const RowMatrix b = random_matrix(k, n, 2), bt = b.transpose();
    for (const bool transposed : {false, true}) {
      const gemm::ConstView bv = transposed ? gemm::view(bt.transpose()) : gemm::view(b);
      const gemm::PackedB whole(bv);
      gemm::PackedB pieces;
      pieces.reshape(k, n);
      const Index step = 7;
      for (Index r1 = k; r1 > 0; r1 -= step) pieces.pack_rows(bv, std::max<Index>(0, r1 - step), r1);
      INFO("K " << k << ", N " << n << (transposed ? ", B transposed" : ""));
      REQUIRE(pieces.rows() == k);
      REQUIRE(pieces.cols() == n);
      const RowMatrix a = random_matrix(5, k, 1);
      RowMatrix expected(5, n), got(5, n);
      gemm::multiply(gemm::mutable_view(expected), gemm::view(a), whole);
      gemm::multiply(gemm::mutable_view(got), gemm::view(a), pieces);
      CHECK(std::memcmp(expected.data(), got.data(), sizeof(float) * static_cast<std::size_t>(5 * n)) == 0);
    }
  }
  gemm::PackedB packed;
  packed.reshape(4, 8);
  const RowMatrix b = random_matrix(4, 8, 3), other = random_matrix(5, 8, 3);
  CHECK_THROWS_AS(packed.pack_rows(gemm::view(b), 2, 5), UsageError);
  CHECK_THROWS_AS(packed.pack_rows(gemm::view(b), -1, 2), UsageError);
  CHECK_THROWS_AS(packed.pack_rows(gemm::view(other), 0, 2), UsageError);
}

TEST_CASE("gemm: operands read in place give the bits of packed ones") {
  // A product of at most 128 rows reads a row-major B of whole vectors (N a
  // multiple of 16) in place, and a column-major A (A^T stored) is read in
  // place as a row-major one is: both against B packed beforehand and A
  // written out. K past one block of 256, N past one block of 1,024 columns,
  // a last panel of 16 columns, M short of a tile (with AVX-512 a row-major
  // A's last tile of fewer rows is read through a row table, a column-major
  // one's packed: the same bits).
  for (const auto [m, k, n] : {std::array<Index, 3>{13, 300, 1040}, {40, 260, 48}, {128, 9, 64}, {7, 513, 16}}) {
    const RowMatrix a = random_matrix(m, k, 1), at = a.transpose(), b = random_matrix(k, n, 2);
    const RowMatrix c0 = random_matrix(m, n, 3);
    const std::vector<float> bias(static_cast<std::size_t>(n), 0.25f);
    const gemm::PackedB packed(gemm::view(b));
    for (const gemm::Epilogue& e : {gemm::Epilogue{}, gemm::Epilogue{true, bias.data(), true}}) {
      RowMatrix expected = c0, b_in_place = c0, a_columns = c0;
      gemm::multiply(gemm::mutable_view(expected), gemm::view(a), packed, e);
      gemm::multiply(gemm::mutable_view(b_in_place), gemm::view(a), gemm::view(b), e);
      gemm::multiply(gemm::mutable_view(a_columns), gemm::view(at.transpose()), packed, e);
      INFO("M " << m << ", K " << k << ", N " << n);
      CHECK(b_in_place == expected);
      CHECK(a_columns == expected);
      CHECK(scaled_error(expected, reference(a, b, e.accumulate ? &c0 : nullptr, e.bias, e.relu), k) < 2e-6);
    }
    // B transposed in memory (W^T in a Dense layer's input gradient): packed
    // by squares transposed in registers, then any K left element by element
    // (K of 9, 300 and 513), and a last panel of fewer columns (N of 48 and
    // 1,040) column by column: the bits of B packed from its rows.
    const RowMatrix bt = b.transpose();
    const gemm::ConstView b_columns = gemm::view(bt.transpose());
    for (const gemm::Epilogue& e : {gemm::Epilogue{}, gemm::Epilogue{true, bias.data(), true}}) {
      RowMatrix expected = c0, got = c0;
      gemm::multiply(gemm::mutable_view(expected), gemm::view(a), packed, e);
      gemm::multiply(gemm::mutable_view(got), gemm::view(a), b_columns, e);
      INFO("B transposed: M " << m << ", K " << k << ", N " << n);
      CHECK(got == expected);
    }
  }
}

TEST_CASE("gemm: A read through a row table is bitwise A written out, on 1 and 2 threads") {
  // Rows gathered from a pool in a scrambled order, some of them the zero
  // run; segments cut by the K blocks of 256 (segment 96, 3 and 300), the last
  // tile short of 12 rows, N of 1 to 40 columns.
  const int saved = threads();
  for (const auto [m, segments, segment, n] :
       {std::array<Index, 4>{1, 1, 3, 1}, {13, 3, 96, 32}, {50, 5, 3, 17}, {121, 2, 300, 40}, {7, 4, 70, 16}}) {
    const Index k = segments * segment;
    const RowMatrix pool = random_matrix(3 * m * segments + 1, segment, 11), b = random_matrix(k, n, 12);
    const std::vector<float> zeros(static_cast<std::size_t>(segment), 0.0f), bias(static_cast<std::size_t>(n), 0.5f);
    std::vector<const float*> table(static_cast<std::size_t>(m * segments));
    RowMatrix a(m, k);
    for (Index i = 0; i < m * segments; ++i) {
      const Index pick = (i * 7 + 3) % pool.rows();
      table[static_cast<std::size_t>(i)] = i % 5 == 4 ? zeros.data() : pool.row(pick).data();
      std::copy_n(table[static_cast<std::size_t>(i)], segment, a.data() + i * segment);
    }
    const gemm::PackedB packed(gemm::view(b));
    const gemm::GatheredRows rows{table.data(), m, segments, segment};
    for (const gemm::Epilogue& e : {gemm::Epilogue{}, gemm::Epilogue{false, bias.data(), true}}) {
      RowMatrix expected(m, n);
      gemm::multiply(gemm::mutable_view(expected), gemm::view(a), gemm::view(b), e);
      for (int t : {1, 2}) {
        set_threads(t);
        RowMatrix got(m, n);
        gemm::parallel_multiply(gemm::mutable_view(got), rows, packed, e);
        INFO("M " << m << ", " << segments << " segments of " << segment << ", N " << n << ", " << t << " threads");
        CHECK(std::memcmp(expected.data(), got.data(), sizeof(float) * static_cast<std::size_t>(m * n)) == 0);
      }
    }
  }
  set_threads(saved);
}

TEST_CASE("gemm: C written through a row table is bitwise C written as a matrix, then its rows copied") {
  // A strided convolution's phase of dx: A through its row table, C's rows
  // scattered over a larger buffer in a scrambled order. Without and with
  // the epilogue (adding onto what the rows hold, then bias and ReLU); the
  // last tile short of 12 rows, N of 16 to 40 columns, K past a block.
  for (const auto [m, segments, segment, n] :
       {std::array<Index, 4>{49, 9, 32, 32}, {13, 3, 96, 40}, {7, 2, 150, 16}, {1, 1, 5, 3}}) {
    const Index k = segments * segment;
    const RowMatrix a = random_matrix(m, k, 31), b = random_matrix(k, n, 32);
    std::vector<const float*> a_table(static_cast<std::size_t>(m * segments));
    for (Index i = 0; i < m * segments; ++i) a_table[static_cast<std::size_t>(i)] = a.data() + i * segment;
    const gemm::GatheredRows a_rows{a_table.data(), m, segments, segment};
    const gemm::PackedB packed(gemm::view(b));
    const std::vector<float> bias(static_cast<std::size_t>(n), -0.25f);
    for (const gemm::Epilogue& e : {gemm::Epilogue{}, gemm::Epilogue{true, bias.data(), true}}) {
      RowMatrix out = random_matrix(3 * m, n, 33);  // C's rows: every other row, from the end
      const RowMatrix before = out;
      std::vector<float*> c_table(static_cast<std::size_t>(m));
      std::vector<Index> picks(static_cast<std::size_t>(m));
      for (Index i = 0; i < m; ++i) {
        picks[static_cast<std::size_t>(i)] = (3 * m - 1 - 2 * i);  // descending, every other row: distinct
        c_table[static_cast<std::size_t>(i)] = out.row(picks[static_cast<std::size_t>(i)]).data();
      }
      RowMatrix expected(m, n);
      for (Index i = 0; i < m; ++i) expected.row(i) = before.row(picks[static_cast<std::size_t>(i)]);
      gemm::multiply(gemm::mutable_view(expected), gemm::view(a), packed, e);
      gemm::multiply(gemm::ScatteredRows{c_table.data(), m, n}, a_rows, packed, e);
      INFO("M " << m << ", K " << k << ", N " << n << (e.accumulate ? ", with the epilogue" : ""));
      bool rows_match = true, others_kept = true;
      for (Index i = 0; i < m; ++i) rows_match = rows_match && out.row(picks[static_cast<std::size_t>(i)]) == expected.row(i);
      for (Index r = 0; r < 3 * m; ++r)
        if (std::find(picks.begin(), picks.end(), r) == picks.end()) others_kept = others_kept && out.row(r) == before.row(r);
      CHECK(rows_match);
      CHECK(others_kept);
    }
  }
}

TEST_CASE("gemm: G^T B for G read through a row table is bitwise G written out, read transposed") {
  // A convolution's weight gradient col^T dZ: G's rows gathered from a
  // pool, some the zero run. Runs of a multiple of 4 floats, cut into tiles
  // of 12 and 8 rows (32 = 12 + 12 + 8, 64, 12, 8, 16 = 8 + 8, 20, 28 =
  // 12 + 8 + 8), 13 (a run's last tile of 12 overlaps the one before), 5
  // (shorter than a tile: G written out); K (G's rows) past a block of 256;
  // N short of a panel, one, and past one; C row-major, and transposed in
  // memory (written out too).
  for (const auto [k, segments, segment, n] :
       {std::array<Index, 4>{300, 9, 32, 32}, {513, 2, 64, 40}, {70, 3, 13, 16}, {40, 5, 5, 7}, {9, 1, 12, 33},
        {50, 2, 8, 32}, {40, 3, 16, 17}, {30, 2, 20, 32}, {45, 1, 28, 16}}) {
    const Index m = segments * segment;
    const RowMatrix pool = random_matrix(2 * k * segments + 1, segment, 51), b = random_matrix(k, n, 52);
    const RowMatrix c0 = random_matrix(m, n, 53);
    const std::vector<float> zeros(static_cast<std::size_t>(segment), 0.0f), bias(static_cast<std::size_t>(n), 0.5f);
    std::vector<const float*> table(static_cast<std::size_t>(k * segments));
    RowMatrix g(k, m);
    for (Index i = 0; i < k * segments; ++i) {
      const Index pick = (i * 5 + 1) % pool.rows();
      table[static_cast<std::size_t>(i)] = i % 7 == 6 ? zeros.data() : pool.row(pick).data();
      std::copy_n(table[static_cast<std::size_t>(i)], segment, g.data() + i * segment);
    }
    const gemm::GatheredRows rows{table.data(), k, segments, segment};
    INFO("K " << k << ", " << segments << " runs of " << segment << ", N " << n);
    for (const gemm::Epilogue& e : {gemm::Epilogue{}, gemm::Epilogue{true, bias.data(), true}}) {
      RowMatrix expected = c0, got = c0;
      gemm::multiply(gemm::mutable_view(expected), gemm::view(g.transpose()), gemm::view(b), e);
      gemm::multiply_transposed(gemm::mutable_view(got), rows, gemm::view(b), e);
      CHECK(got == expected);
      RowMatrix expected_t = c0.transpose(), got_t = c0.transpose();
      gemm::multiply(gemm::mutable_view(expected_t.transpose()), gemm::view(g.transpose()), gemm::view(b), e);
      gemm::multiply_transposed(gemm::mutable_view(got_t.transpose()), rows, gemm::view(b), e);
      CHECK(got_t == expected_t);
      const RowMatrix gt = g.transpose();
      CHECK(scaled_error(got, reference(gt, b, e.accumulate ? &c0 : nullptr, e.bias, e.relu), k) < 2e-6);
    }
  }
}
