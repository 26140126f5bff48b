// IvfIndex (loom/search/ivf_index.hpp) on Debian's FAISS: its k-means, its
// 8-bit scalar quantiser, its inverted lists and its search over them (heaps,
// class filter, queries over the OpenMP threads).
//
// Two steps are loom's own, compiled with loom's flags: choosing a vector's
// lists (its scores against the centroids, an Eigen product) and the scan's
// dot products. Debian builds FAISS for baseline x86-64, where its inner
// product is a scalar loop (FAISS's own IndexIVFFlat gave 7,600 queries/s on
// one thread at 2 lists of 1,000 items; docs/visual-search.md); its centroid
// search of a single query takes that loop too, and of a batch, the BLAS
// library with threads of its own. With these two steps here, a search runs
// on exactly the threads loom is given.

#include "loom/search/ivf_index.hpp"

#include <faiss/IndexFlat.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/impl/FaissException.h>
#include <faiss/invlists/DirectMap.h>
#include <faiss/utils/Heap.h>

#include <immintrin.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <exception>
#include <numeric>

#include "loom/parallel.hpp"
#include "loom/random.hpp"
#include "loom/search/exact_score.hpp"
#include "loom/search/exact_search.hpp"

namespace loom::search {

namespace {

using faiss_id = faiss::Index::idx_t;
using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// q.w for 8-bit codes w. With AVX-512, 16 codes widened, converted and
// multiplied per instruction; otherwise 16 running sums, which the compiler
// vectorises as far as the target allows.
float code_dot(const float* q, const std::uint8_t* w, Index d) {
  Index j = 0;
  float s = 0.0f;
#if defined(__AVX512F__)
  __m512 sum = _mm512_setzero_ps();
  for (; j + 16 <= d; j += 16) {
    const __m512 x = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + j))));
    sum = _mm512_fmadd_ps(_mm512_loadu_ps(q + j), x, sum);
  }
  s = _mm512_reduce_add_ps(sum);
#else
  float sum[16] = {};
  for (; j + 16 <= d; j += 16)
    for (Index l = 0; l < 16; ++l) sum[l] += q[j + l] * static_cast<float>(w[j + l]);
  for (const float v : sum) s += v;
#endif
  for (; j < d; ++j) s += q[j] * static_cast<float>(w[j]);
  return s;
}

// The 8-bit codec's value j of code c is offset[j] + step[j] * c; read from
// FAISS's own decoder (codes of all 0 and all 1), so loom does not restate its formula.
struct Codec {
  std::vector<float> offset, step;
  explicit Codec(const faiss::ScalarQuantizer& sq) : offset(sq.d), step(sq.d) {
    std::vector<std::uint8_t> codes(2 * sq.code_size, 0);
    std::fill(codes.begin() + static_cast<std::ptrdiff_t>(sq.code_size), codes.end(), std::uint8_t{1});
    std::vector<float> x(2 * sq.d);
    sq.decode(codes.data(), x.data(), 2);
    for (std::size_t j = 0; j < sq.d; ++j) {
      offset[j] = x[j];
      step[j] = x[sq.d + j] - x[j];
    }
  }
};

// Scans one list of 8-bit codes for a query: q.x~ = q.offset + (q * step).code
// for each code, offered to FAISS's min-heap of the best scores so far.
struct CodeScanner final : faiss::InvertedListScanner {
  const Codec& codec;
  std::vector<float> weights;  // q * step
  float base = 0.0f;           // q.offset

  CodeScanner(const Codec& c, bool store_pairs, const faiss::IDSelector* selector)
      : InvertedListScanner(store_pairs, selector), codec(c), weights(c.step.size()) {
    keep_max = true;
    code_size = c.step.size();
  }
  void set_query(const float* q) override {
    double b = 0.0;
    for (std::size_t j = 0; j < weights.size(); ++j) {
      weights[j] = q[j] * codec.step[j];
      b += static_cast<double>(q[j]) * codec.offset[j];
    }
    base = static_cast<float>(b);
  }
  void set_list(faiss_id list, float) override { list_no = list; }
  float distance_to_code(const std::uint8_t* code) const override {
    return base + code_dot(weights.data(), code, static_cast<Index>(code_size));
  }
  std::size_t scan_codes(std::size_t n, const std::uint8_t* codes, const faiss_id* ids, float* distances,
                         faiss_id* labels, std::size_t k) const override {
    std::size_t updates = 0;
    for (std::size_t j = 0; j < n; ++j) {
      const float score = distance_to_code(codes + j * code_size);
      if (!(score > distances[0])) continue;  // the heap's top is the k-th best so far
      if (sel && !sel->is_member(ids[j])) continue;
      const faiss_id label = store_pairs ? static_cast<faiss_id>(faiss::lo_build(list_no, j)) : ids[j];
      faiss::minheap_replace_top(k, distances, labels, score, label);
      ++updates;
    }
    return updates;
  }
};

// FAISS's IVF of 8-bit codes of the vectors themselves (not of their
// residuals from the centroid), scanned by CodeScanner.
struct NativeIvfSq8 final : faiss::IndexIVFScalarQuantizer {
  std::unique_ptr<Codec> codec;  // once trained
  NativeIvfSq8(faiss::Index* quantizer, loom::Index d, loom::Index nlist)
      : faiss::IndexIVFScalarQuantizer(quantizer, static_cast<std::size_t>(d), static_cast<std::size_t>(nlist),
                                       faiss::ScalarQuantizer::QT_8bit, faiss::METRIC_INNER_PRODUCT, false) {}
  faiss::InvertedListScanner* get_InvertedListScanner(bool store_pairs,
                                                      const faiss::IDSelector* selector) const override {
    return new CodeScanner(*codec, store_pairs, selector);
  }
};

// Admits the rows whose label the class filter allows.
struct LabelSelector final : faiss::IDSelector {
  const Catalog& catalog;
  const std::vector<char>& allowed;
  LabelSelector(const Catalog& c, const std::vector<char>& a) : catalog(c), allowed(a) {}
  bool is_member(faiss_id row) const override { return allowed[static_cast<std::size_t>(catalog.label(row))] != 0; }
};

void check_options(const IvfOptions& o, Index n) {
  if (n < 1) throw UsageError("IvfIndex: the catalog is empty");
  if (o.nlist < 1 || o.nlist > n)
    throw UsageError("IvfIndex: nlist must be in [1, " + std::to_string(n) + "] (the catalog's items), got " +
                     std::to_string(o.nlist));
  if (o.nprobe < 1 || o.nprobe > o.nlist)
    throw UsageError("IvfIndex: nprobe must be in [1, nlist = " + std::to_string(o.nlist) + "], got " +
                     std::to_string(o.nprobe));
  if (o.shortlist < 0)
    throw UsageError("IvfIndex: shortlist must be at least 0 (0: 4 k), got " + std::to_string(o.shortlist));
  if (o.train_sample < o.nlist)
    throw UsageError("IvfIndex: train_sample must be at least nlist = " + std::to_string(o.nlist) +
                     " (k-means needs an item per list), got " + std::to_string(o.train_sample));
}

// count distinct rows of [0, n), drawn by seed, in increasing order (all rows when count >= n).
std::vector<Index> sample_rows(Index n, Index count, std::uint64_t seed) {
  std::vector<Index> rows(static_cast<std::size_t>(n));
  std::iota(rows.begin(), rows.end(), Index{0});
  if (count >= n) return rows;
  Random rng(seed);
  for (Index i = 0; i < count; ++i)  // a partial Fisher-Yates shuffle
    std::swap(rows[static_cast<std::size_t>(i)],
              rows[static_cast<std::size_t>(i + static_cast<Index>(rng.below(static_cast<std::uint64_t>(n - i))))]);
  rows.resize(static_cast<std::size_t>(count));
  std::sort(rows.begin(), rows.end());
  return rows;
}

}  // namespace

struct IvfIndex::Lists {
  faiss::IndexFlatIP quantizer;  // holds the centroids while FAISS trains
  NativeIvfSq8 ivf;
  RowMatrix centroids;           // (nlist, d), unit rows
  std::vector<Index> label_counts;  // items per label

  Lists(Index d, Index nlist)
      : quantizer(d), ivf(&quantizer, d, nlist) {}

  // The `probes` lists nearest to each of m rows: lists (m, probes) and their centroids' scores.
  void nearest_lists(const float* rows, Index m, Index probes, faiss_id* lists, float* scores) const {
    constexpr Index kBlock = 64;  // rows per product
    const Index d = centroids.cols();
    const Index blocks = (m + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(dynamic) if (blocks > 1)
    for (Index b = 0; b < blocks; ++b) {
      const Index b0 = b * kBlock, bn = std::min(kBlock, m - b0);
      RowMatrix s(bn, centroids.rows());
      if (bn == 1)  // a matrix-vector product: a matrix product would pack every centroid first
        s.row(0).transpose().noalias() = centroids * Eigen::Map<const Eigen::VectorXf>(rows + b0 * d, d);
      else
        s.noalias() = Eigen::Map<const RowMatrix>(rows + b0 * d, bn, d) * centroids.transpose();
      for (Index i = 0; i < bn; ++i) best(s.row(i).data(), s.cols(), probes, lists + (b0 + i) * probes,
                                          scores + (b0 + i) * probes);
    }
  }

  // The `count` highest of n scores, best first (equal scores: lower list first), by insertion: count is small.
  static void best(const float* s, Index n, Index count, faiss_id* lists, float* scores) {
    Index kept = 0;
    for (Index l = 0; l < n; ++l) {
      if (kept == count && !(s[l] > scores[count - 1])) continue;
      Index at = std::min(kept, count - 1);
      for (; at > 0 && s[l] > scores[at - 1]; --at) {
        scores[at] = scores[at - 1];
        lists[at] = lists[at - 1];
      }
      scores[at] = s[l];
      lists[at] = l;
      kept = std::min(kept + 1, count);
    }
  }
};

IvfIndex::IvfIndex(const Catalog& catalog, const IvfOptions& options) : catalog_(catalog), options_(options) {
  const Index n = catalog.size(), d = catalog.dim();
  if (options_.nlist == 0 && n > 0) options_.nlist = default_nlist(n);
  check_options(options_, n);
  try {
    lists_ = std::make_unique<Lists>(d, options_.nlist);
    lists_->label_counts = count_labels(catalog);
    NativeIvfSq8& ivf = lists_->ivf;
    ivf.cp.spherical = true;  // unit centroids: cells of cosine similarity
    ivf.cp.seed = static_cast<int>(options_.seed & 0x7fffffff);
    // loom checks the sample itself (an item per list at least); FAISS would
    // warn on stderr below 39 per list, which every small catalog is.
    ivf.cp.min_points_per_centroid = 1;
    ivf.nprobe = static_cast<std::size_t>(options_.nprobe);

    const std::vector<Index> sample = sample_rows(n, options_.train_sample, options_.seed);
    std::vector<float> train(sample.size() * static_cast<std::size_t>(d)), scratch;
    for (std::size_t i = 0; i < sample.size(); ++i)
      std::copy_n(catalog.decode_rows(sample[i], 1, scratch), d, train.data() + i * static_cast<std::size_t>(d));
    ivf.train(static_cast<faiss_id>(sample.size()), train.data());  // the centroids, then the codes' ranges
    ivf.codec = std::make_unique<Codec>(ivf.sq);
    lists_->centroids = Eigen::Map<const RowMatrix>(lists_->quantizer.get_xb(), options_.nlist, d);

    constexpr Index kBlock = 65536;  // items decoded and filed at a time (int8 catalogs)
    std::vector<faiss_id> list(static_cast<std::size_t>(kBlock)), rows(static_cast<std::size_t>(kBlock));
    std::vector<float> unused(static_cast<std::size_t>(kBlock));
    for (Index b0 = 0; b0 < n; b0 += kBlock) {
      const Index bn = std::min(kBlock, n - b0);
      const float* x = catalog.decode_rows(b0, bn, scratch);
      lists_->nearest_lists(x, bn, 1, list.data(), unused.data());
      std::iota(rows.begin(), rows.begin() + bn, static_cast<faiss_id>(b0));  // FAISS's ids are catalog rows
      ivf.add_core(bn, x, rows.data(), list.data());
    }
  } catch (const faiss::FaissException& e) {
    throw Error(std::string("IvfIndex: FAISS failed: ") + e.what());
  }
}

IvfIndex::~IvfIndex() = default;

Index IvfIndex::default_nlist(Index n) {
  return std::max<Index>(1, static_cast<Index>(std::lround(std::sqrt(static_cast<double>(n)))));
}

void IvfIndex::set_nprobe(Index nprobe) {
  IvfOptions o = options_;
  o.nprobe = nprobe;
  check_options(o, catalog_.size());
  options_ = o;
}

std::size_t IvfIndex::memory_bytes() const {
  const faiss::InvertedLists& l = *lists_->ivf.invlists;
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < l.nlist; ++i) bytes += l.list_size(i) * (l.code_size + sizeof(faiss_id));
  return bytes + 2 * static_cast<std::size_t>(lists_->centroids.size()) * sizeof(float);  // ours and the quantizer's
}

SearchResults IvfIndex::search(const float* queries, Index m, const SearchOptions& o) const {
  check_search_options(catalog_, o);
  check_queries(queries, m, catalog_.dim());
  const std::vector<char> allowed = allowed_labels(catalog_, o, static_cast<Label>(lists_->label_counts.size()));
  const Index admitted = admitted_items(lists_->label_counts, allowed);  // items of the chosen classes
  const Index n = catalog_.size(), d = catalog_.dim(), want = std::min(o.k, admitted);
  // The codes' scores are approximate (a step of the 8-bit grid per value):
  // the best `shortlist` of them are scored again exactly, and the k best kept.
  const Index fetch = std::min(n, std::max(o.k, options_.shortlist > 0 ? options_.shortlist : 4 * o.k));
  const Index probes = options_.nprobe;
  const auto cells = static_cast<std::size_t>(m * probes), found = static_cast<std::size_t>(m * fetch);
  std::vector<faiss_id> lists(cells), labels(found);
  std::vector<float> centroid_scores(cells), scores(found);
  lists_->nearest_lists(queries, m, probes, lists.data(), centroid_scores.data());
  LabelSelector selector(catalog_, allowed);  // FAISS takes a pointer to non-const
  faiss::SearchParametersIVF params;
  params.nprobe = static_cast<std::size_t>(probes);
  params.sel = admitted == n ? nullptr : &selector;
  try {
    lists_->ivf.search_preassigned(m, queries, fetch, lists.data(), centroid_scores.data(), scores.data(),
                                   labels.data(), false, &params);
  } catch (const faiss::FaissException& e) {
    throw Error(std::string("IvfIndex: FAISS failed: ") + e.what());
  }

  SearchResults results(static_cast<std::size_t>(m));
  std::vector<char> short_of_k(static_cast<std::size_t>(m), 0);  // queries the filter left short
  // Rows of an int8 catalog are decoded into a scratch row of each thread.
  parallel_for_with<std::vector<float>, Schedule::Dynamic>(m, true, [&](Index q, std::vector<float>& scratch) {
    std::vector<Neighbour>& r = results[static_cast<std::size_t>(q)];
    const faiss_id* rows = labels.data() + q * fetch;  // -1 past the candidates found
    if (catalog_.encoding() == VectorEncoding::Float32)  // the rows are cache misses: ask for all of them at once
      for (Index i = 0; i < fetch && rows[i] >= 0; ++i) {
        const float* x = catalog_.decode_rows(rows[i], 1, scratch);
        for (Index j = 0; j < d; j += 16) __builtin_prefetch(x + j);
      }
    for (Index i = 0; i < fetch && rows[i] >= 0; ++i)
      r.push_back({rows[i], catalog_.id(rows[i]), exact_score(queries + q * d, catalog_.decode_rows(rows[i], 1, scratch), d)});
    std::sort(r.begin(), r.end(), ranks_before);
    if (static_cast<Index>(r.size()) > o.k) r.resize(static_cast<std::size_t>(o.k));
    short_of_k[static_cast<std::size_t>(q)] = static_cast<Index>(r.size()) < want;
  });
  answer_short_queries_exactly(catalog_, queries, short_of_k, o, results);
  return results;
}

}  // namespace loom::search
