// Sequential::embed: the output of a layer, flattened and L2-normalised,
// through predict's inference path; the default layer; errors.

#include <catch2/catch.hpp>

#include <omp.h>

#include "loom/search/embed.hpp"
#include "toy_model.hpp"

using namespace loom;
using namespace loom::testing;
using Catch::Contains;

TEST_CASE("embed: the default layer is the input of the last Dense layer, as unit vectors", "[search][embed]") {
  const Sequential model = small_cnn(3);
  const Quadrants d = quadrants(70, 4);  // two full slices of 32 and a partial one
  CHECK(embedding_depth(model) == 3);   // conv, pool, flatten: the Dense layer's input
  CHECK(embedding_layer_name(model) == "flatten");
  const Tensor e = model.embed(d.x);
  REQUIRE(e.dimension(0) == 70);
  REQUIRE(e.dimension(3) == 36);
  // By hand: the flatten output of each sample, through the layers' own infer, normalised.
  Tensor a, b;
  model.layer(0).infer(d.x, a);
  model.layer(1).infer(a, b);
  model.layer(2).infer(b, a);
  for (Index i = 0; i < 70; ++i) {
    double norm = 0.0;
    for (Index j = 0; j < 36; ++j) norm += static_cast<double>(a(i, 0, 0, j)) * a(i, 0, 0, j);
    norm = std::sqrt(norm);
    double unit = 0.0;
    for (Index j = 0; j < 36; ++j) {
      unit += static_cast<double>(e(i, 0, 0, j)) * e(i, 0, 0, j);
      if (norm > 0) CHECK(e(i, 0, 0, j) == Approx(a(i, 0, 0, j) / norm).margin(1e-6));
    }
    if (norm > 0) CHECK(unit == Approx(1.0).margin(1e-5));
  }
}

TEST_CASE("embed: any layer by name, samples or tensors alike, the same for any thread count", "[search][embed]") {
  const Sequential model = small_cnn(5);
  const Quadrants d = quadrants(100, 6);
  const Tensor conv = model.embed(d.x, "conv2d");
  CHECK(conv.dimension(3) == 6 * 6 * 4);
  CHECK(same_tensor(model.embed(TensorSamples(d.x, d.y, Shape{8, 8, 1}), "conv2d"), conv));
  const Tensor input = model.embed(d.x, "input");
  CHECK(input.dimension(3) == 64);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const Tensor one = model.embed(d.x);
  omp_set_num_threads(std::max(threads, 3));
  const Tensor many = model.embed(d.x, "", 7);
  omp_set_num_threads(threads);
  CHECK(same_tensor(one, many));
  CHECK_THROWS_AS(model.embed(d.x, "dense_9"), UsageError);
  CHECK_THROWS_WITH(model.embed(d.x, "dense_9"),
                    Contains("no layer named \"dense_9\"; its layers: conv2d (Conv2D), max_pooling2d (MaxPooling2D)"));
  Sequential no_dense(Shape{8, 8, 1});
  no_dense.add(Flatten());
  CHECK_THROWS_WITH(no_dense.embed(d.x), Contains("the model has no Dense layer"));
  CHECK_THROWS_WITH(model.embed(Tensor(2, 4, 4, 1)), Contains("embed: a batch of dimensions (2, 4, 4, 1)"));
}
