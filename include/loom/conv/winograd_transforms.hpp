#pragma once
// The transforms of Winograd's minimal filtering algorithm F(m x m, 3 x 3)
// (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016),
// written once for m = 2 and m = 4, and the one routine that applies them.
//
// One output tile Y (m x m) of a 3x3 correlation needs an input tile d of
// a x a = (m + 2) x (m + 2) values. In the Winograd domain the correlation is
// an element-wise product:
//
//   Y = AT [ (G g GT) . (BT d B) ] A          g the 3x3 kernel, . element-wise
//
// with the matrices below. They come from polynomial interpolation: the
// correlation of a length-3 filter with a length-(m+2) signal is the product of
// two polynomials, evaluated at m + 1 points (0, +-1 for m = 2; 0, +-1, +-2 for
// m = 4) and at infinity, multiplied point by point, and interpolated back.
// G evaluates the filter polynomial at the points, BT the signal, AT
// interpolates; in 2-D each is applied to rows and then columns (L X LT).
// loom stops at m = 4, as oneDNN does. NNPACK also offers F(6x6, 3x3), with
// the points +-1/2 added; its float32 rounding measured about twice m = 4's
// (relative to the output, summed over 64 random channels: 4.7e-6 against
// 2.6e-6; /work/shared/probes/winograd63_check.py), but in loom it was
// slower on the seed model's 11x11 output and faster only at 24x24: tried
// and not kept (docs/benchmarks-history.md; branch tried/winograd6x6).
//
// Because Y is linear in both (G g GT) and (BT d B), the gradients are the
// same three matrices transposed (the adjoint of each stage):
//   dM = A dY AT,  dU = sum over tiles of dM . V,  dV = dM . U,
//   dg = GT dU G,  dd = B dV BT (added back onto the overlapping input tiles).
//
// Thread safety: constants and pure functions; safe from many threads.

#include <utility>

namespace loom::conv::winograd {

/// Values of CB channels (or filters) side by side: the transforms work on
/// a x a tiles of such vectors, so every arithmetic step is one vector
/// instruction on a 512-bit machine (two on a 256-bit one).
inline constexpr int kLanes = 16;

template <int M>
struct Matrices;

// F(2x2, 3x3): points 0, 1, -1 and infinity.
template <>
struct Matrices<2> {
  static constexpr int m = 2, a = 4;
  struct BT { static constexpr float v[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}}; };
  struct G { static constexpr float v[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}}; };
  struct AT { static constexpr float v[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}}; };
};

// F(4x4, 3x3): points 0, 1, -1, 2, -2 and infinity.
template <>
struct Matrices<4> {
  static constexpr int m = 4, a = 6;
  struct BT {
    static constexpr float v[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                      {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
  };
  struct G {
    static constexpr float v[6][3] = {{1.0f / 4, 0, 0},
                                      {-1.0f / 6, -1.0f / 6, -1.0f / 6},
                                      {-1.0f / 6, 1.0f / 6, -1.0f / 6},
                                      {1.0f / 24, 1.0f / 12, 1.0f / 6},
                                      {1.0f / 24, -1.0f / 12, 1.0f / 6},
                                      {0, 0, 1}};
  };
  struct AT {
    static constexpr float v[4][6] = {
        {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
  };
};

namespace detail {
template <int N, typename F>
inline void static_for(F&& f) {
  [&]<int... I>(std::integer_sequence<int, I...>) { (f(std::integral_constant<int, I>{}), ...); }
  (std::make_integer_sequence<int, N>{});
}

// L = Mat::v (Rows x Cols), or its transpose.
template <typename Mat, bool Transposed>
struct Coefficients {
  static constexpr int rows_of_v = sizeof(Mat::v) / sizeof(Mat::v[0]);
  static constexpr int cols_of_v = sizeof(Mat::v[0]) / sizeof(float);
  static constexpr int rows = Transposed ? cols_of_v : rows_of_v;
  static constexpr int cols = Transposed ? rows_of_v : cols_of_v;
  static constexpr float at(int r, int c) { return Transposed ? Mat::v[c][r] : Mat::v[r][c]; }
};

// L's entry (r, c) as a type: the coefficient reaches axpy at compile time
// without a float template parameter, which clang before 18 (Debian 12 has
// 14, used by the fuzz build) does not accept.
template <typename L, int Row, int Col>
struct Entry {
  static constexpr float value = L::at(Row, Col);
};

// acc[k] (+)= c * in[k] for kLanes values, with c = Coef::value known at
// compile time: a zero coefficient costs nothing and +-1 no multiplication.
template <typename Coef, bool First>
inline void axpy(float* __restrict acc, const float* __restrict in) {
  constexpr float C = Coef::value;
  for (int k = 0; k < kLanes; ++k) {
    const float term = C == 1 ? in[k] : C == -1 ? -in[k] : C * in[k];
    acc[k] = First ? term : acc[k] + term;
  }
}
}  // namespace detail

/// out = L X LT for a tile X of S x S vectors (S = L's columns), giving R x R
/// vectors (R = L's rows). L is Mat::v, or its transpose when Transposed.
/// in: [S][S][kLanes], out: [R][R][kLanes], row-major.
template <typename Mat, bool Transposed = false>
inline void sandwich(const float* __restrict in, float* __restrict out) {
  using L = detail::Coefficients<Mat, Transposed>;
  constexpr int R = L::rows, S = L::cols;
  alignas(64) float tmp[R * S * kLanes];  // L X: R x S vectors
  // Rows: tmp[r][j] = sum over i of L[r][i] X[i][j].
  detail::static_for<R>([&](auto r) {
    for (int j = 0; j < S; ++j) {
      float* t = tmp + (r * S + j) * kLanes;
      for (int k = 0; k < kLanes; ++k) t[k] = 0.0f;
      detail::static_for<S>([&](auto i) {
        using C = detail::Entry<L, decltype(r)::value, decltype(i)::value>;
        if constexpr (C::value != 0.0f) detail::axpy<C, false>(t, in + (i * S + j) * kLanes);
      });
    }
  });
  // Columns: out[r][q] = sum over j of tmp[r][j] L[q][j].
  for (int r = 0; r < R; ++r)
    detail::static_for<R>([&](auto q) {
      float* o = out + (r * R + q) * kLanes;
      for (int k = 0; k < kLanes; ++k) o[k] = 0.0f;
      detail::static_for<S>([&](auto j) {
        using C = detail::Entry<L, decltype(q)::value, decltype(j)::value>;
        if constexpr (C::value != 0.0f) detail::axpy<C, false>(o, tmp + (r * S + j) * kLanes);
      });
    });
}

}  // namespace loom::conv::winograd
