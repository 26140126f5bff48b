// The rotation and the codes of loom/search/screening_codes.hpp.

#include "loom/search/screening_codes.hpp"

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace loom::search {
namespace {

constexpr Index kSample = 16384;  // vectors the rotation is learnt from, evenly spaced
constexpr Index kBlock = 4096;    // items rotated at a time
constexpr double kHeadEnergy = 0.97;  // of 0.95, 0.97, 0.98 and 0.99, the fastest on the seed model's embeddings
// Above this many values, no rotation: its matrix (dim^2 floats), its
// eigensolver (dim^3) and rotating every vector (dim^2 each) would cost more
// than the screen saves. The screen then reads every value's code.
constexpr Index kMaxRotated = 512;

// The allowance for float rounding, relative to |q| |x| (see the header).
double rounding(Index dim) { return static_cast<double>(4 * dim + 16) * std::numeric_limits<float>::epsilon(); }

// A norm from its sum of squares, rounded up to a float: a bound must not shrink.
float norm_up(double sum_squares) {
  return std::nextafter(static_cast<float>(std::sqrt(sum_squares)), std::numeric_limits<float>::infinity());
}

// What coding a rotated vector gives: codes of v[0, dim) with |code| <=
// limit under one scale (a float, as the kernel uses it), and the sums of
// squares of the coded values and of what the codes miss, over the head
// [0, head) and over all of it, and of the tail [head, dim) as it is.
struct Coded {
  float scale = 1.0f;
  double head_coded = 0.0, head_miss = 0.0, coded = 0.0, miss = 0.0, tail = 0.0;
};

template <typename Code>
Coded encode(const float* v, Index dim, Index head, long limit, Code* out) {
  Coded c;
  float top = 0.0f;
  for (Index j = 0; j < dim; ++j) top = std::max(top, std::abs(v[j]));
  c.scale = top > 0.0f ? static_cast<float>(top / static_cast<double>(limit)) : 1.0f;
  if (c.scale == 0.0f) c.scale = top;  // so small that top / limit underflows: codes of -1, 0 and 1
  for (Index j = 0; j < dim; ++j) {
    const long code = std::clamp(std::lround(static_cast<double>(v[j]) / c.scale), -limit, limit);
    const double coded = static_cast<double>(c.scale) * static_cast<double>(code);
    const double miss = (v[j] - coded) * (v[j] - coded);
    c.coded += coded * coded;
    c.miss += miss;
    if (j < head) c.head_coded += coded * coded, c.head_miss += miss;
    else c.tail += static_cast<double>(v[j]) * v[j];
    out[j] = static_cast<Code>(code);
  }
  return c;
}

}  // namespace

Rotation Rotation::of(const Catalog& c) {
  const Index d = c.dim(), n = c.size();
  Rotation r;
  r.dim = d;
  if (d > kMaxRotated) {  // the identity: an empty matrix
    r.head = (d + 1) / 2 * 2;
    return r;
  }
  Eigen::MatrixXd moment = Eigen::MatrixXd::Zero(d, d);
  if (n > 0) {
    const Index step = std::max<Index>(1, n / kSample), rows = (n + step - 1) / step;
    RowMatrix sample(rows, d);
    std::vector<float> scratch;
    for (Index s = 0; s < rows; ++s) sample.row(s) = ConstMatrixMap(c.decode_rows(s * step, 1, scratch), 1, d);
    moment = (sample.transpose() * sample).cast<double>();
  }
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eigen(moment);  // eigenvalues ascending
  r.matrix.resize(static_cast<std::size_t>(d * d));
  for (Index i = 0; i < d; ++i)
    for (Index j = 0; j < d; ++j) r.matrix[static_cast<std::size_t>(i * d + j)] = static_cast<float>(eigen.eigenvectors()(i, d - 1 - j));
  double total = 0.0;
  for (Index j = 0; j < d; ++j) total += std::max(0.0, eigen.eigenvalues()(j));
  double held = 0.0;
  r.head = 0;
  while (r.head < d && held < kHeadEnergy * total) held += std::max(0.0, eigen.eigenvalues()(d - 1 - r.head++));
  r.head = std::max<Index>(2, (r.head + 1) / 2 * 2);
  return r;
}

void Rotation::apply(const float* rows, Index n, float* out) const {
  if (matrix.empty()) {
    std::copy_n(rows, n * dim, out);
    return;
  }
  MatrixMap(out, n, dim).noalias() = ConstMatrixMap(rows, n, dim) * ConstMatrixMap(matrix.data(), dim, dim);
}

ScreeningCodes::ScreeningCodes(const Catalog& c)
    : rotation_(Rotation::of(c)), items_(c.size()), width_((c.dim() + 1) / 2 * 2), groups_((c.size() + kGroup - 1) / kGroup) {
  const Index d = c.dim(), head = rotation_.head, pairs = head / 2;
  const auto padded = static_cast<std::size_t>(groups_ * kGroup);
  head_codes_.assign(static_cast<std::size_t>(groups_ * pairs * 2 * kGroup), 0);
  rows_.assign(static_cast<std::size_t>(items_ * width_), 0);
  for (auto* v : {&scale_, &head_norm_, &head_reach_, &tail_, &norm_, &reach_}) v->assign(padded, 0.0f);
  const auto slack = static_cast<float>(rounding(d));
  std::vector<float> scratch, rotated(static_cast<std::size_t>(std::min(kBlock, items_) * d));
  for (Index b0 = 0; b0 < items_; b0 += kBlock) {
    const Index bn = std::min(kBlock, items_ - b0);
    const float* x = c.decode_rows(b0, bn, scratch);
    rotation_.apply(x, bn, rotated.data());
    for (Index i = 0; i < bn; ++i) {
      const Index item = b0 + i;
      const auto at = static_cast<std::size_t>(item);
      std::int8_t* row = rows_.data() + item * width_;
      const Coded k = encode(rotated.data() + i * d, d, head, 127, row);
      const float length = norm_up(k.coded) + norm_up(k.miss);  // >= |x|
      scale_[at] = k.scale;
      head_norm_[at] = norm_up(k.head_coded);
      head_reach_[at] = norm_up(k.head_miss) + slack * length;
      tail_[at] = norm_up(k.tail);
      norm_[at] = norm_up(k.coded);
      reach_[at] = norm_up(k.miss) + slack * length;
      std::int8_t* group = head_codes_.data() + (item / kGroup) * pairs * 2 * kGroup + (item % kGroup) * 2;
      for (Index p = 0; p < pairs; ++p)
        for (Index h = 0; h < 2; ++h) group[p * 2 * kGroup + h] = row[2 * p + h];
    }
  }
}

float ScreeningCodes::refine(Index item, const QueryCodes& queries, Index q) const {
  const std::int32_t dot = codes_dot(queries.codes(q), rows_.data() + item * width_, width_);
  const auto at = static_cast<std::size_t>(item);
  return static_cast<float>(dot) * (queries.scale(q) * scale_[at]) + queries.miss(q) * norm_[at] + queries.norm(q) * reach_[at];
}

QueryCodes::QueryCodes(const float* queries, Index m, const Rotation& rotation)
    : head_(rotation.head), width_((rotation.dim + 1) / 2 * 2) {
  const Index d = rotation.dim;
  // A query's dot with an item sums width products of at most 127 * limit: it must fit in 32 bits.
  const long limit = std::clamp(static_cast<long>(2147483647.0 / (127.0 * static_cast<double>(width_))), 1L, 32767L);
  std::vector<float> rotated(static_cast<std::size_t>(m * d));
  rotation.apply(queries, m, rotated.data());
  codes_.assign(static_cast<std::size_t>(m * width_), 0);
  for (auto* v : {&scale_, &head_miss_, &miss_, &norm_, &tail_}) v->resize(static_cast<std::size_t>(m));
  for (Index q = 0; q < m; ++q) {
    const auto at = static_cast<std::size_t>(q);
    const Coded k = encode(rotated.data() + q * d, d, head_, limit, codes_.data() + q * width_);
    scale_[at] = k.scale;
    head_miss_[at] = norm_up(k.head_miss);
    miss_[at] = norm_up(k.miss);
    tail_[at] = norm_up(k.tail);
    double squares = 0.0;  // |q|, from the query as given
    for (Index j = 0; j < d; ++j) squares += static_cast<double>(queries[q * d + j]) * queries[q * d + j];
    norm_[at] = norm_up(squares);
  }
}

}  // namespace loom::search
