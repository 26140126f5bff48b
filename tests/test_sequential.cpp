// Sequential: the Keras seed model's structure and summary, every error a user
// can run into (shapes, compile, fit arguments, data), training on a small
// separable problem, history and its CSV, determinism, and progress output.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "loom/layers/conv2d.hpp"
#include "loom/layers/dense.hpp"
#include "loom/layers/flatten.hpp"
#include "loom/layers/maxpool2d.hpp"
#include "loom/layers/softmax.hpp"
#include "loom/loss.hpp"
#include "loom/models/fashion_mnist_cnn.hpp"
#include "loom/optimizers/adam.hpp"
#include "loom/sequential.hpp"
#include "loom/threads.hpp"
#include "toy_model.hpp"

using namespace loom;
using namespace loom::testing;
using Catch::Contains;

namespace {

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

const FitOptions quiet{.epochs = 1, .batch_size = 32, .verbose = 0};

}  // namespace

// ---- structure -------------------------------------------------------------------

TEST_CASE("The Keras seed model has 225,034 parameters and a Keras-style summary", "[sequential]") {
  Sequential m = models::fashion_mnist_cnn(42);
  REQUIRE(m.size() == 7);
  CHECK(m.param_count() == 225034);
  CHECK(m.output_shape() == Shape{10});
  CHECK(m.num_classes() == 10);

  const std::string s = m.summary_string();
  INFO(s);
  for (const char* name : {"conv2d (Conv2D)", "max_pooling2d (MaxPooling2D)", "conv2d_1 (Conv2D)",
                           "max_pooling2d_1 (MaxPooling2D)", "flatten (Flatten)", "dense (Dense)",
                           "dense_1 (Dense)"})
    CHECK_THAT(s, Contains(name));
  for (const char* shape : {"(None, 26, 26, 32)", "(None, 13, 13, 32)", "(None, 11, 11, 64)", "(None, 5, 5, 64)",
                            "(None, 1600)", "(None, 128)", "(None, 10)"})
    CHECK_THAT(s, Contains(shape));
  CHECK_THAT(s, Contains("Total params: 225,034"));
  CHECK_THAT(s, Contains("Trainable params: 225,034"));
  CHECK_THAT(s, Contains("Non-trainable params: 0"));
  // each layer's row carries its own parameter count
  for (const std::string& line : lines_of(s)) {
    if (line.find("conv2d_1 (Conv2D)") != std::string::npos) CHECK_THAT(line, Contains("18496"));
    if (line.find("dense (Dense)") != std::string::npos) CHECK_THAT(line, Contains("204928"));
    if (line.find("dense_1 (Dense)") != std::string::npos) CHECK_THAT(line, Contains("1290"));
  }
  CHECK(m.layer(2).name() == "conv2d_1");
  CHECK(m.layer(6).name() == "dense_1");
}

TEST_CASE("The seed model trains one batch of 28x28 images", "[sequential]") {
  Sequential m = models::fashion_mnist_cnn(42);
  Random rng(3);
  Tensor x(4, 28, 28, 1);
  for (Index i = 0; i < x.size(); ++i) x.data()[i] = rng.uniform01();
  const std::vector<Label> y{0, 3, 9, 5};
  const Eigen::VectorXf before = m.params()[0]->value;
  const BatchScore s = m.train_batch(x, y);
  CHECK(std::isfinite(s.loss_sum));
  CHECK(s.loss_sum / 4.0 == Approx(std::log(10.0)).margin(1.0));  // near chance at the start
  CHECK(m.params()[0]->value != before);
  CHECK(m.optimizer().kind() == "Adam");
}

TEST_CASE("Adding a layer that does not fit is a ShapeError naming the layer and the shape", "[sequential]") {
  Sequential m(Shape{28, 28, 1});
  m.add(Conv2D({.filters = 32, .kernel = 3}));
  REQUIRE_THROWS_AS(m.add(Dense({.units = 10})), ShapeError);
  REQUIRE_THROWS_WITH(m.add(Dense({.units = 10})), Contains("dense (Dense)") && Contains("(None, 26, 26, 32)"));
  CHECK(m.size() == 1);  // the failed layer was not added
  m.add(Flatten());
  m.add(Dense({.units = 10}));
  CHECK(m.output_shape() == Shape{10});

  Sequential small(Shape{2, 2, 1});
  REQUIRE_THROWS_WITH(small.add(Conv2D({.filters = 1, .kernel = 3})),
                      Contains("conv2d (Conv2D)") && Contains("(None, 2, 2, 1)"));
  REQUIRE_THROWS_AS(small.add(MaxPool2D({.pool = 3})), ShapeError);
}

TEST_CASE("compile errors: no layers, an output the loss cannot score, an unknown metric", "[sequential]") {
  SECTION("no layers") {
    Sequential m(Shape{4});
    REQUIRE_THROWS_AS(m.compile(Adam()), UsageError);
    REQUIRE_THROWS_WITH(m.compile(Adam()), Contains("no layers"));
  }
  SECTION("output not flat") {
    Sequential m(Shape{8, 8, 1});
    m.add(Conv2D({.filters = 3, .kernel = 3}));
    REQUIRE_THROWS_AS(m.compile(Adam()), ShapeError);
    REQUIRE_THROWS_WITH(m.compile(Adam()), Contains("conv2d (Conv2D)") && Contains("(None, 6, 6, 3)"));
  }
  SECTION("a single output") {
    Sequential m(Shape{4});
    m.add(Dense({.units = 1}));
    REQUIRE_THROWS_WITH(m.compile(Adam()), Contains("at least 2"));
  }
  SECTION("unknown metric") {
    Sequential m(Shape{4});
    m.add(Dense({.units = 3, .activation = Activation::Softmax}));
    REQUIRE_THROWS_AS(m.compile(Adam(), SparseCategoricalCrossentropy(), {"precision"}), UsageError);
    REQUIRE_THROWS_WITH(m.compile(Adam(), SparseCategoricalCrossentropy(), {"precision"}),
                        Contains("unknown metric \"precision\""));
    REQUIRE_NOTHROW(m.compile(Adam(), SparseCategoricalCrossentropy(), {"acc"}));
    REQUIRE_THROWS_AS(m.add(Dense({.units = 2})), UsageError);  // compiled: no more layers
  }
}

TEST_CASE("Training before compile is a UsageError that says to compile", "[sequential]") {
  Sequential m(Shape{8, 8, 1});
  m.add(Flatten());
  m.add(Dense({.units = 4, .activation = Activation::Softmax}));
  const Quadrants d = quadrants(8, 1);
  REQUIRE_THROWS_AS(m.fit(d.x, d.y, quiet), UsageError);
  REQUIRE_THROWS_WITH(m.fit(d.x, d.y, quiet), Contains("compile"));
  REQUIRE_THROWS_WITH(m.evaluate(d.x, d.y), Contains("compile"));
  REQUIRE_THROWS_WITH(m.train_batch(d.x, d.y), Contains("compile"));
  REQUIRE_THROWS_WITH(m.loss_and_backward(d.y), Contains("compile"));
  REQUIRE_THROWS_WITH(m.step(), Contains("compile"));
  REQUIRE_THROWS_AS(m.optimizer(), UsageError);
}

TEST_CASE("fit, evaluate and predict reject bad arguments and bad data", "[sequential]") {
  Sequential m = small_cnn(1);
  const Quadrants d = quadrants(16, 2);

  SECTION("batch size") {
    REQUIRE_THROWS_AS(m.fit(d.x, d.y, {.batch_size = 0, .verbose = 0}), UsageError);
    REQUIRE_THROWS_WITH(m.fit(d.x, d.y, {.batch_size = 0, .verbose = 0}), Contains("batch_size must be positive"));
    REQUIRE_THROWS_AS(m.evaluate(d.x, d.y, 0), UsageError);
    // predict and embed check it where their slices are cut (sliced_inference.hpp)
    REQUIRE_THROWS_WITH(m.predict(d.x, 0), Contains("predict: batch_size must be positive, got 0"));
    REQUIRE_THROWS_WITH(m.embed(d.x, {}, -2), Contains("embed: batch_size must be positive, got -2"));
  }
  SECTION("other fit options") {
    REQUIRE_THROWS_AS(m.fit(d.x, d.y, {.epochs = -1, .verbose = 0}), UsageError);
    REQUIRE_THROWS_AS(m.fit(d.x, d.y, {.verbose = 3}), UsageError);
  }
  SECTION("validation_split outside [0, 1), or leaving nothing to train on") {
    REQUIRE_THROWS_AS(m.fit(d.x, d.y, {.validation_split = 1.0, .verbose = 0}), UsageError);
    REQUIRE_THROWS_WITH(m.fit(d.x, d.y, {.validation_split = -0.1, .verbose = 0}),
                        Contains("validation_split must be in [0, 1)"));
    REQUIRE_THROWS_AS(m.fit(d.x, d.y, {.validation_split = 0.99, .verbose = 0}), DataError);
    REQUIRE_THROWS_WITH(m.fit(d.x, d.y, {.validation_split = -1e-10, .verbose = 0}),
                        Contains("validation_split must be in [0, 1), got -1e-10"));
  }
  SECTION("validation_data and validation_split together") {
    const TensorSamples validation(d.x, d.y, Shape{8, 8, 1});
    REQUIRE_THROWS_WITH(m.fit(d.x, d.y, {.validation_split = 0.25, .verbose = 0, .validation_data = &validation}),
                        Contains("fit: give validation_data or validation_split, not both"));
    REQUIRE_NOTHROW(m.fit(d.x, d.y, {.verbose = 0, .validation_data = &validation}));
  }
  SECTION("empty data") {
    const Tensor none(0, 8, 8, 1);
    const std::vector<Label> no_labels;
    REQUIRE_THROWS_AS(m.fit(none, no_labels, quiet), DataError);
    REQUIRE_THROWS_WITH(m.fit(none, no_labels, quiet), Contains("empty"));
    REQUIRE_THROWS_AS(m.evaluate(none, no_labels), DataError);
    REQUIRE_THROWS_AS(m.predict(none), DataError);
  }
  SECTION("samples of another shape") {
    const Tensor wrong(4, 7, 7, 1);
    const std::vector<Label> y(4, 0);
    REQUIRE_THROWS_AS(m.fit(wrong, y, quiet), ShapeError);
    REQUIRE_THROWS_WITH(m.fit(wrong, y, quiet), Contains("(4, 7, 7, 1)") && Contains("(None, 8, 8, 1)"));
    // any Samples whose shape is not the model's input
    const TensorSamples other(wrong, y, Shape{7, 7, 1});
    REQUIRE_THROWS_AS(m.fit(other, quiet), ShapeError);
    REQUIRE_THROWS_WITH(m.fit(other, quiet), Contains("(None, 7, 7, 1)") && Contains("(None, 8, 8, 1)"));
    REQUIRE_THROWS_WITH(m.evaluate(other), Contains("(None, 7, 7, 1)") && Contains("(None, 8, 8, 1)"));
    REQUIRE_THROWS_WITH(m.predict(wrong), Contains("(4, 7, 7, 1)") && Contains("(None, 8, 8, 1)"));
  }
  SECTION("labels and samples of different counts") {
    const std::vector<Label> short_labels(15, 0);
    REQUIRE_THROWS_AS(m.fit(d.x, short_labels, quiet), ShapeError);
  }
  SECTION("labels outside [0, classes)") {
    std::vector<Label> y = d.y;
    y[5] = 4;  // 4 classes: 0..3
    REQUIRE_THROWS_AS(m.fit(d.x, y, quiet), DataError);
    REQUIRE_THROWS_WITH(m.fit(d.x, y, quiet), Contains("label 4") && Contains("[0, 3]"));
    REQUIRE_THROWS_AS(m.evaluate(d.x, y), DataError);
    y[5] = -1;
    REQUIRE_THROWS_AS(m.fit(d.x, y, quiet), DataError);
  }
  SECTION("a bad label in the last batch is found before any batch trains") {
    std::vector<Label> y = d.y;
    y.back() = 9;
    std::vector<Eigen::VectorXf> before;
    for (const Param* p : m.params()) before.push_back(p->value);
    REQUIRE_THROWS_WITH(m.fit(d.x, y, {.batch_size = 4, .shuffle = false, .verbose = 0}),
                        Contains("label 9 of sample 15"));
    for (std::size_t i = 0; i < before.size(); ++i) CHECK(m.params()[i]->value == before[i]);
  }
}

// ---- training ------------------------------------------------------------------------

TEST_CASE("A small CNN learns which quadrant is bright", "[sequential]") {
  Sequential m = small_cnn(7);
  const Quadrants train = quadrants(256, 11), test = quadrants(128, 12);
  const Evaluation before = m.evaluate(test.x, test.y);
  const History h = m.fit(train.x, train.y, {.epochs = 5, .batch_size = 32, .seed = 1, .verbose = 0});
  REQUIRE(h.epochs.size() == 5);
  INFO("loss " << h.epochs.front().loss << " -> " << h.epochs.back().loss << ", accuracy "
               << h.epochs.front().accuracy << " -> " << h.epochs.back().accuracy);
  CHECK(h.epochs.back().loss < h.epochs.front().loss);
  CHECK(h.epochs.back().accuracy > 0.9);
  const Evaluation after = m.evaluate(test.x, test.y);
  CHECK(after.loss < before.loss);
  CHECK(after.accuracy > 0.9);

  const Tensor p = m.predict(test.x);
  REQUIRE(p.dimension(0) == 128);
  REQUIRE(p.dimension(3) == 4);
  Index correct = 0;
  for (Index i = 0; i < 128; ++i) {
    double row = 0.0;
    Index best = 0;
    for (Index c = 0; c < 4; ++c) {
      REQUIRE(p(i, 0, 0, c) >= 0.0f);
      row += p(i, 0, 0, c);
      if (p(i, 0, 0, c) > p(i, 0, 0, best)) best = c;
    }
    REQUIRE(row == Approx(1.0).margin(1e-5));
    correct += best == test.y[static_cast<std::size_t>(i)];
  }
  CHECK(static_cast<double>(correct) / 128.0 == Approx(after.accuracy));
}

TEST_CASE("A model compiled from_logits trains too, and predict still returns probabilities", "[sequential]") {
  Sequential m(Shape{8, 8, 1}, 7);
  m.add(Conv2D({.filters = 4, .kernel = 3, .activation = Activation::ReLU}));
  m.add(MaxPool2D());
  m.add(Flatten());
  m.add(Dense({.units = 4}));
  m.compile(Adam({.learning_rate = 0.01f}), SparseCategoricalCrossentropy({.from_logits = true}));
  const Quadrants train = quadrants(256, 11);
  const History h = m.fit(train.x, train.y, {.epochs = 5, .seed = 1, .verbose = 0});
  CHECK(h.epochs.back().accuracy > 0.9);
  const Tensor p = m.predict(train.x);
  for (Index i = 0; i < 8; ++i) {
    double row = 0.0;
    for (Index c = 0; c < 4; ++c) row += p(i, 0, 0, c);
    CHECK(row == Approx(1.0).margin(1e-5));
  }
}

TEST_CASE("A final softmax is fused with the loss: a confidently wrong model still gets its gradient",
          "[sequential]") {
  // logits (0, 100) for label 0: p_0 = e^-100 underflows to 0 in float, so the
  // unfused path (clip p to 1e-7, dL/dp = 0 there) would lose the gradient.
  Sequential m(Shape{1});
  Dense& d = m.add(Dense({.units = 2, .activation = Activation::Softmax}));
  m.compile(Adam());
  d.params()[0].value << 0.0f, 100.0f;  // kernel (1, 2)
  d.params()[1].value << 0.0f, 0.0f;
  Tensor x(1, 1, 1, 1);
  x.setConstant(1.0f);
  const std::vector<Label> y{0};
  m.forward(x);
  const BatchScore s = m.loss_and_backward(y);
  CHECK(s.loss_sum == Approx(100.0).epsilon(1e-6));  // logsumexp(z) - z_0, not -log(1e-7) = 16.1
  // dL/db = softmax(z) - onehot = (0 - 1, 1 - 0)
  CHECK(d.params()[1].grad[0] == Approx(-1.0f));
  CHECK(d.params()[1].grad[1] == Approx(1.0f));
}

TEST_CASE("History: one record per epoch, validation metrics iff validation_split > 0, and CSV", "[sequential]") {
  const Quadrants d = quadrants(64, 21);
  const auto path = std::filesystem::temp_directory_path() /
                    ("loom_history_" + std::to_string(::getpid()) + ".csv");

  SECTION("without validation") {
    Sequential m = small_cnn(3);
    const History h = m.fit(d.x, d.y, {.epochs = 3, .batch_size = 16, .verbose = 0});
    REQUIRE(h.epochs.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
      CHECK(h.epochs[i].epoch == static_cast<int>(i) + 1);
      CHECK_FALSE(h.epochs[i].val_loss.has_value());
      CHECK_FALSE(h.epochs[i].val_accuracy.has_value());
      CHECK(h.epochs[i].seconds >= 0.0);
    }
    CHECK(&h.last() == &h.epochs.back());
    h.write_csv(path.string());
    std::ifstream f(path);
    std::stringstream text;
    text << f.rdbuf();
    const auto lines = lines_of(text.str());
    REQUIRE(lines.size() == 4);
    CHECK(lines[0] == "epoch,loss,accuracy,val_loss,val_accuracy,seconds");
    CHECK(lines[1].rfind("1,", 0) == 0);
    CHECK(lines[3].rfind("3,", 0) == 0);
    CHECK_THAT(lines[2], Contains(",,"));  // empty validation columns
  }
  SECTION("with validation") {
    Sequential m = small_cnn(3);
    const History h = m.fit(d.x, d.y, {.epochs = 2, .batch_size = 16, .validation_split = 0.25, .verbose = 0});
    REQUIRE(h.epochs.size() == 2);
    for (const EpochRecord& r : h.epochs) {
      REQUIRE(r.val_loss.has_value());
      REQUIRE(r.val_accuracy.has_value());
      CHECK(std::isfinite(*r.val_loss));
      CHECK(*r.val_accuracy >= 0.0);
      CHECK(*r.val_accuracy <= 1.0);
    }
    // the validation set is the last 25%, held out: val metrics equal evaluate on it
    const Tensor tail = d.x.slice(std::array<Index, 4>{48, 0, 0, 0}, std::array<Index, 4>{16, 8, 8, 1});
    const std::vector<Label> tail_y(d.y.begin() + 48, d.y.end());
    const Evaluation e = m.evaluate(tail, tail_y);
    CHECK(*h.epochs.back().val_loss == Approx(e.loss).epsilon(1e-9));
    CHECK(*h.epochs.back().val_accuracy == Approx(e.accuracy));

    h.write_csv(path.string());
    std::ifstream f(path);
    std::stringstream text;
    text << f.rdbuf();
    const auto lines = lines_of(text.str());
    REQUIRE(lines.size() == 3);
    CHECK(lines[0] == "epoch,loss,accuracy,val_loss,val_accuracy,seconds");
    CHECK(std::count(lines[1].begin(), lines[1].end(), ',') == 5);
    CHECK_THAT(lines[1], !Contains(",,"));
  }
  std::filesystem::remove(path);
  REQUIRE_THROWS_AS(History().last(), UsageError);
  REQUIRE_THROWS_AS(History().write_csv("/nonexistent-dir/history.csv"), IoError);
}

// ---- determinism ---------------------------------------------------------------------

TEST_CASE("Same seeds give bitwise-identical training and another seed gives other weights", "[sequential]") {
  const Quadrants d = quadrants(96, 31);
  Sequential a = small_cnn(5), b = small_cnn(5), c = small_cnn(6);
  REQUIRE(same_params(a, b));
  REQUIRE_FALSE(same_params(a, c));

  const FitOptions o{.epochs = 2, .batch_size = 16, .seed = 9, .verbose = 0};
  a.fit(d.x, d.y, o);
  b.fit(d.x, d.y, o);
  CHECK(same_params(a, b));
  CHECK(same_tensor(a.predict(d.x), b.predict(d.x)));

  SECTION("another shuffling seed trains differently") {
    Sequential e = small_cnn(5);
    FitOptions other = o;
    other.seed = 10;
    e.fit(d.x, d.y, other);
    CHECK_FALSE(same_params(a, e));
  }
}

TEST_CASE("fit is a loop over train_batch: without shuffling, the same batches give the same weights",
          "[sequential]") {
  const Quadrants d = quadrants(40, 41);
  Sequential by_fit = small_cnn(8), by_hand = small_cnn(8);
  by_fit.fit(d.x, d.y, {.epochs = 1, .batch_size = 16, .shuffle = false, .verbose = 0});
  for (Index begin = 0; begin < 40; begin += 16) {
    const Index count = std::min<Index>(16, 40 - begin);
    const Tensor x = d.x.slice(std::array<Index, 4>{begin, 0, 0, 0}, std::array<Index, 4>{count, 8, 8, 1});
    const std::vector<Label> y(d.y.begin() + begin, d.y.begin() + begin + count);
    by_hand.train_batch(x, y);
  }
  CHECK(same_params(by_fit, by_hand));
  CHECK(by_hand.optimizer().kind() == "Adam");
}

// ---- progress --------------------------------------------------------------------------

TEST_CASE("fit with verbose 2 logs one line per epoch with loss and accuracy", "[sequential]") {
  const Quadrants d = quadrants(64, 51);
  Sequential m = small_cnn(4);
  std::ostringstream log;
  m.fit(d.x, d.y, {.epochs = 2, .batch_size = 16, .verbose = 2, .log = &log});
  const auto lines = lines_of(log.str());
  INFO(log.str());
  REQUIRE(lines.size() == 2);
  for (std::size_t i = 0; i < 2; ++i) {
    CHECK(lines[i].rfind("Epoch " + std::to_string(i + 1) + "/2 ", 0) == 0);
    CHECK_THAT(lines[i], Contains("4/4"));  // 64 samples in batches of 16
    CHECK_THAT(lines[i], Contains("loss:"));
    CHECK_THAT(lines[i], Contains("accuracy:"));
    CHECK_THAT(lines[i], !Contains("val_loss"));
  }

  SECTION("with validation, the line carries val_loss and val_accuracy") {
    std::ostringstream vlog;
    m.fit(d.x, d.y, {.epochs = 1, .batch_size = 16, .validation_split = 0.5, .verbose = 2, .log = &vlog});
    CHECK_THAT(vlog.str(), Contains("val_loss:") && Contains("val_accuracy:"));
  }
  SECTION("verbose 0 writes nothing") {
    std::ostringstream silent;
    m.fit(d.x, d.y, {.epochs = 2, .batch_size = 16, .verbose = 0, .log = &silent});
    CHECK(silent.str().empty());
  }
}

// loom splits work into fixed blocks (samples, columns, array blocks) whatever
// the thread count, so the thread count changes speed, not results.
TEST_CASE("Training and prediction are bitwise identical on 1 and 2 threads", "[sequential][threads]") {
  Random rng(5);
  Tensor x(64, 28, 28, 1);
  for (Index i = 0; i < x.size(); ++i) x.data()[i] = rng.uniform01();
  std::vector<Label> y(64);
  for (Label& l : y) l = static_cast<Label>(rng.below(10));

  const int saved = threads();
  auto train = [&](int n) {
    set_threads(n);
    Sequential m = models::fashion_mnist_cnn(3);
    m.fit(x, y, {.epochs = 2, .batch_size = 32, .seed = 4, .verbose = 0});
    return m;
  };
  Sequential one = train(1);
  Sequential two = train(2);
  const Tensor p1 = two.predict(x);
  set_threads(1);
  const Tensor p2 = two.predict(x);
  set_threads(saved);
  CHECK(same_params(one, two));
  CHECK(same_tensor(p1, p2));
}

TEST_CASE("predict gives each sample the same bits whatever the batch size and thread count", "[sequential][threads]") {
  // The seed CNN: a direct first layer, Winograd, and a Dense with K = 1600
  // (several K blocks), so slices of fewer rows than a product tile take
  // other code paths than full ones.
  Random rng(8);
  Tensor x(37, 28, 28, 1);
  for (Index i = 0; i < x.size(); ++i) x.data()[i] = rng.uniform01();
  const Sequential m = models::fashion_mnist_cnn(6);
  const int saved = threads();
  const Tensor reference = m.predict(x, 37);
  for (const int t : {1, 2})
    for (const Index batch : {Index{1}, Index{5}, Index{16}, Index{100}}) {
      INFO(t << " threads, batch_size " << batch);
      set_threads(t);
      const Tensor p = m.predict(x, batch);
      set_threads(saved);
      CHECK(same_tensor(p, reference));
    }
  // One image alone is one slice, whose layers spread their own work over the threads.
  for (const int t : {1, 2})
    for (const Index i : {Index{0}, Index{36}}) {
      INFO(t << " threads, image " << i << " alone");
      Tensor one(1, 28, 28, 1);
      std::copy_n(x.data() + i * 784, 784, one.data());
      set_threads(t);
      const Tensor p = m.predict(one);
      set_threads(saved);
      CHECK(std::equal(p.data(), p.data() + p.size(), reference.data() + i * p.size()));
    }
}
