// A program built against an installed loom (find_package(loom), loom::loom).
// It uses the public headers and the compiled library: trains a small
// Sequential model on made-up data, checks that it learned, and round-trips a
// gzipped IDX file and a PNG through the compiled readers and writers (which
// link zlib and stb).
// Exits 0 when every check passes, 1 otherwise.
//
//   loom_consumer [SCRATCH_DIR]   (default: the current directory)

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <loom/loom.hpp>

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  std::printf("%s: %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace loom;
  const std::filesystem::path scratch = argc > 1 ? argv[1] : ".";  // where the IDX file is written
  try {
    // Made-up data: 4 features in [-1, 1); the class is 1 when x0 + x1 > x2 + x3.
    const Index n = 512;
    Tensor x(n, 1, 1, 4);  // (N, 1, 1, 4): flat features, as tensor.hpp stores them
    std::vector<Label> y(static_cast<std::size_t>(n));
    Random data_rng(7);
    for (Index i = 0; i < n; ++i) {
      for (Index j = 0; j < 4; ++j) x(i, 0, 0, j) = data_rng.uniform(-1.0f, 1.0f);
      y[static_cast<std::size_t>(i)] = x(i, 0, 0, 0) + x(i, 0, 0, 1) > x(i, 0, 0, 2) + x(i, 0, 0, 3) ? 1 : 0;
    }

    Sequential model(Shape{4}, /*seed=*/1);
    model.add(Dense({.units = 16, .activation = Activation::ReLU}));
    model.add(Dense({.units = 2, .activation = Activation::Softmax}));
    model.compile(Adam({.learning_rate = 0.01f}), SparseCategoricalCrossentropy(), {"accuracy"});
    check(model.param_count() == 4 * 16 + 16 + 16 * 2 + 2, "param_count is " + std::to_string(model.param_count()));

    const Evaluation before = model.evaluate(x, y);
    const History history = model.fit(x, y, {.epochs = 20, .batch_size = 32, .seed = 3, .verbose = 0});
    const Evaluation after = model.evaluate(x, y);
    std::printf("loss %.4f -> %.4f, accuracy %.4f -> %.4f\n", before.loss, after.loss, before.accuracy, after.accuracy);
    check(history.epochs.size() == 20, "fit ran 20 epochs");
    check(std::isfinite(after.loss) && after.loss < 0.5 * before.loss, "fit at least halved the loss");
    check(after.accuracy >= 0.9, "accuracy on a linearly separable problem is at least 0.9");

    // One step of a hand-written loop through the public training steps.
    const BatchScore s = model.train_batch(x, y);
    check(std::isfinite(s.loss_sum) && s.correct >= 0 && s.correct <= n, "train_batch returns a finite score");

    const Tensor p = model.predict(x);  // (N, 1, 1, 2) class probabilities
    bool rows_sum_to_one = p.dimension(0) == n && p.dimension(3) == 2;
    for (Index i = 0; rows_sum_to_one && i < n; ++i) rows_sum_to_one = std::abs(p(i, 0, 0, 0) + p(i, 0, 0, 1) - 1.0f) < 1e-5f;
    check(rows_sum_to_one, "predict returns (N, 1, 1, 2) probabilities that sum to 1");

    // loom's exceptions cross the library boundary with their types intact.
    bool shape_error = false;
    try {
      model.predict(Tensor(2, 1, 1, 5));
    } catch (const ShapeError&) {
      shape_error = true;
    }
    check(shape_error, "a batch of the wrong shape throws loom::ShapeError");

    // The compiled part: write a gzipped IDX file and read it back.
    const auto path = scratch / "consumer-labels-idx1-ubyte.gz";
    IdxArray labels;
    labels.dims = {5};
    labels.bytes = {0, 1, 2, 3, 9};
    write_idx(path, labels);
    const IdxArray back = read_idx(path, {.rank = 1});
    std::filesystem::remove(path);
    check(back.dims == labels.dims && back.bytes == labels.bytes, "a gzipped IDX file round-trips through write_idx/read_idx");

    // The compiled image I/O (which links stb): write a PNG and read it back.
    Image image(3, 2, 3);
    for (std::size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] = static_cast<std::uint8_t>(i * 13);
    const auto png = scratch / "consumer-image.png";
    write_png(png, image);
    const Image png_back = read_image(png);
    std::filesystem::remove(png);
    check(png_back.width == 3 && png_back.height == 2 && png_back.pixels == image.pixels,
          "a PNG round-trips through write_png/read_image");

    bool data_error = false;
    try {
      read_idx(path);  // just removed
    } catch (const DataError&) {
      data_error = true;
    }
    check(data_error, "reading a missing IDX file throws loom::DataError");
  } catch (const std::exception& e) {
    std::printf("FAIL: unexpected exception: %s\n", e.what());
    return 1;
  }
  std::printf("%d failure(s)\n", failures);
  return failures == 0 ? 0 : 1;
}
