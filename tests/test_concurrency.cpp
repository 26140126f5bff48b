// Many threads serving one model: predict, evaluate and embed on a const
// Sequential keep their state on the calling thread, and so do searches of one
// catalog, so concurrent calls must neither race nor change a single bit of the result. scripts/sanitize.sh runs this file
// under ThreadSanitizer, which turns a race into a failure even when the
// numbers happen to come out right.

#include <catch2/catch.hpp>

#include <atomic>
#include <cstring>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "loom/models/fashion_mnist_cnn.hpp"
#include "loom/random.hpp"
#include "loom/search/exact_search.hpp"
#include "loom/search/hnsw_index.hpp"
#include "loom/sequential.hpp"

using namespace loom;

namespace {

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dimensions() == b.dimensions() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(float)) == 0;
}

bool same_bits(const Evaluation& a, const Evaluation& b) {
  return std::memcmp(&a.loss, &b.loss, sizeof a.loss) == 0 && std::memcmp(&a.accuracy, &b.accuracy, sizeof a.accuracy) == 0;
}

}  // namespace

TEST_CASE("predict and evaluate on one const model from many threads match the serial results bitwise",
          "[concurrency][threads]") {
  // The seed CNN covers every layer kind and both convolution paths (direct
  // first layer, im2col second). A few training steps move it off its
  // initial weights.
  constexpr Index n = 70;  // two full slices of 32 and a partial one
  Random rng(11);
  Tensor x;
  resize_batch(x, n, Shape{28, 28, 1});
  for (Index i = 0; i < x.size(); ++i) x.data()[i] = rng.uniform01();
  std::vector<Label> y(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) y[static_cast<std::size_t>(i)] = static_cast<Label>(i % 10);

  Sequential trained = models::fashion_mnist_cnn(5);
  for (int step = 0; step < 3; ++step) trained.train_batch(x, y);
  const Sequential& model = trained;

  Tensor one;  // a single image: predict takes the no-team path
  resize_batch(one, 1, Shape{28, 28, 1});
  std::copy_n(x.data(), one.size(), one.data());

  const Tensor serial_all = model.predict(x);
  const Tensor serial_small = model.predict(x, 7);
  const Tensor serial_one = model.predict(one);
  const Evaluation serial_eval = model.evaluate(x, y);
  REQUIRE(serial_eval.loss > 0.0);

  constexpr int kThreads = 4, kRounds = 3;
  std::atomic<int> mismatches{0}, errors{0};
  std::vector<std::string> error_text(kThreads);
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        start.arrive_and_wait();  // all threads run their calls at the same time
        for (int r = 0; r < kRounds; ++r) {
          // Each thread starts with a different call, so all of them overlap.
          switch ((t + r) % 4) {
            case 0: mismatches += !same_bits(model.predict(x), serial_all); break;
            case 1: mismatches += !same_bits(model.evaluate(x, y), serial_eval); break;
            case 2: mismatches += !same_bits(model.predict(one), serial_one); break;
            case 3: mismatches += !same_bits(model.predict(x, 7), serial_small); break;
          }
        }
      } catch (const std::exception& e) {
        ++errors;
        error_text[static_cast<std::size_t>(t)] = e.what();
      }
    });
  }
  for (auto& th : threads) th.join();

  std::string all_errors;
  for (const std::string& e : error_text) all_errors += e.empty() ? "" : e + "\n";
  INFO(all_errors);
  CHECK(errors == 0);
  CHECK(mismatches == 0);
}

TEST_CASE("embed and search from many threads match the serial results bitwise", "[concurrency][threads][search]") {
  constexpr Index n = 70;
  Random rng(12);
  Tensor x;
  resize_batch(x, n, Shape{28, 28, 1});
  for (Index i = 0; i < x.size(); ++i) x.data()[i] = rng.uniform01();
  const Sequential model = models::fashion_mnist_cnn(6);
  const Tensor serial_embed = model.embed(x);
  const Tensor serial_conv = model.embed(x, "conv2d_1", 5);

  search::Catalog catalog({.dim = 128, .class_names = {"even", "odd"}});
  std::vector<std::int64_t> ids(static_cast<std::size_t>(n));
  std::vector<Label> labels(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) ids[static_cast<std::size_t>(i)] = i, labels[static_cast<std::size_t>(i)] = static_cast<Label>(i % 2);
  catalog.add(serial_embed, ids, labels);
  const search::ExactSearch exact(catalog);
  const search::HnswIndex hnsw(catalog, {.ef_search = 80});
  const search::SearchResults serial_exact = exact.search(serial_embed, {.k = 5, .classes = {1}});
  const search::SearchResults serial_hnsw = hnsw.search(serial_embed, {.k = 5});

  constexpr int kThreads = 4, kRounds = 3;
  std::atomic<int> mismatches{0}, errors{0};
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        start.arrive_and_wait();
        for (int r = 0; r < kRounds; ++r) {
          switch ((t + r) % 4) {
            case 0: mismatches += !same_bits(model.embed(x), serial_embed); break;
            case 1: mismatches += !same_bits(model.embed(x, "conv2d_1", 5), serial_conv); break;
            case 2: mismatches += exact.search(serial_embed, {.k = 5, .classes = {1}}) != serial_exact; break;
            case 3: mismatches += hnsw.search(serial_embed, {.k = 5}) != serial_hnsw; break;
          }
        }
      } catch (const std::exception&) {
        ++errors;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(errors == 0);
  CHECK(mismatches == 0);
}
