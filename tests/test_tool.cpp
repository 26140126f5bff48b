// The loom tool end to end, as a user runs it: train on a slice of the real
// Fashion-MNIST, predict on photo-like image files, evaluate with a report;
// --help on every command, usage errors with exit status 2.

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "loom/data/fashion_mnist.hpp"
#include "loom/image/image.hpp"
#include "loom/io/model_file.hpp"
#include "loom/optimizers/elementwise_optimizer.hpp"
#include "loom_tool.hpp"
#include "photo_like.hpp"
#include "scaled_fashion_mnist.hpp"
#include "subprocess.hpp"
#include "temp_dir.hpp"
#include "test_scale.hpp"

#ifdef LOOM_TOOL_PATH  // set by tests/CMakeLists.txt when the tool is built (LOOM_BUILD_TOOLS)

using namespace loom;
using namespace loom::testing;
using Catch::Contains;

namespace fs = std::filesystem;

TEST_CASE("loom: --help on every command, usage errors exit with status 2", "[tool]") {
  TempDir dir;
  for (const char* command : {"train", "predict", "evaluate"}) {
    INFO(command);
    const ProcessResult help = loom_tool(dir, {command, "--help"});
    CHECK(help.exit_code == 0);
    CHECK_THAT(help.output, Contains(std::string("usage: loom ") + command));
  }
  CHECK(loom_tool(dir, {"--help"}).exit_code == 0);
  const ProcessResult unknown = loom_tool(dir, {"fly"});
  CHECK(unknown.exit_code == 2);
  CHECK_THAT(unknown.output, Contains("unknown command \"fly\""));
  CHECK(loom_tool(dir, {"predict", "model.loom"}).exit_code == 2);
  CHECK(loom_tool(dir, {"train", "--epochs", "0", "--out", "m.loom"}).exit_code == 2);
  const ProcessResult loud = loom_tool(dir, {"train", "--verbose", "3", "--out", "m.loom"});
  CHECK(loud.exit_code == 2);
  CHECK_THAT(loud.output, Contains("--verbose expects 0, 1 or 2, got \"3\""));
  // A number too large for its flag is refused, not wrapped (4294967297 would have been 1 thread).
  const ProcessResult huge = loom_tool(dir, {"evaluate", "m.loom", "--threads", "4294967297"});
  CHECK(huge.exit_code == 2);
  CHECK_THAT(huge.output, Contains("--threads expects a whole number >= 1 and <= 2147483647"));
  // An augmentation out of range for the 28x28 images is refused before any data is read.
  for (const char* list : {"pad=29", "erasing=1.5"}) {
    const ProcessResult wide = loom_tool(dir, {"train", "--augment", list, "--out", "m.loom"});
    CHECK(wide.exit_code == 2);
    CHECK_THAT(wide.output, Contains(std::string(list).substr(0, std::string(list).find('='))));
    CHECK_THAT(wide.output, !Contains("Fashion-MNIST from"));
  }
  // An --out that cannot be written fails at once, before any data is loaded or trained on.
  touch(dir / "a-file");
  const ProcessResult bad_out = loom_tool(dir, {"train", "--out", (dir / "a-file" / "m.loom").string()});
  CHECK(bad_out.exit_code == 1);
  CHECK_THAT(bad_out.output, Contains("m.loom: cannot create its directory"));
  CHECK_THAT(bad_out.output, !Contains("Fashion-MNIST from"));
  const ProcessResult dir_out = loom_tool(dir, {"train", "--out", dir.path.string()});
  CHECK(dir_out.exit_code == 1);
  CHECK_THAT(dir_out.output, Contains("is a directory"));
  const ProcessResult no_model = loom_tool(dir, {"evaluate", (dir / "missing.loom").string()});
  CHECK(no_model.exit_code == 1);
  CHECK_THAT(no_model.output, Contains("missing.loom"));
}

TEST_CASE("loom train --recipe best --validation FRACTION: the schedule spans the images trained on", "[tool][fashion_mnist]") {
  TempDir dir;
  const std::string data = scaled_fashion_mnist(dir).string();
  const fs::path model = dir / "best.loom";
  // 200 images, a quarter held out: 150 trained on, in 5 batches of 32 an
  // epoch. A schedule counted over all 200 (7 batches) would stop before
  // its end, its rate still high, and the recipe would not anneal.
  const ProcessResult r = loom_tool(dir, {"train", "--recipe", "best", "--out", model.string(), "--epochs", "2",
                                          "--batch-size", "32", "--limit", "200", "--validation", "0.25",
                                          "--verbose", "0", "--json", "--data", data});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const Sequential trained = load_model(model);
  const auto& sgd = dynamic_cast<const ElementwiseOptimizer&>(trained.optimizer());
  REQUIRE(sgd.schedule() != nullptr);
  CHECK(sgd.schedule()->kind() == "OneCycle");
  CHECK(sgd.schedule()->options()[1] == 2 * 5);  // total_steps: epochs x batches of the 150
  // A fraction outside (0, 1) is refused before any data is read.
  for (const char* fraction : {"0", "1", "1.5", "x"}) {
    const ProcessResult bad = loom_tool(dir, {"train", "--recipe", "best", "--out", model.string(), "--validation",
                                              fraction, "--data", data});
    CHECK(bad.exit_code == 2);
    CHECK_THAT(bad.output, Contains("--validation expects \"test\", \"none\" or a fraction in (0, 1)"));
    CHECK_THAT(bad.output, !Contains("Fashion-MNIST from"));
  }
}

TEST_CASE("loom train, predict and evaluate work end to end", "[tool][fashion_mnist]") {
  TempDir dir;
  const fs::path model = dir / "new" / "model.loom";  // train creates the directory

  const std::string data = scaled_fashion_mnist(dir).string();

  // Train: a slice of the training set, one epoch; validation on the test set.
  const ProcessResult train = loom_tool(dir, {"train", "--out", model.string(), "--epochs", "1", "--limit",
                                              std::to_string(scaled(2000, 200)), "--verbose", "0", "--json",
                                              "--data", data});
  INFO(train.output);
  REQUIRE(train.exit_code == 0);
  CHECK_THAT(train.output, Contains("\"test_accuracy\": ") && Contains("\"history_csv\": "));
  CHECK(fs::exists(dir / "new" / "model.history.csv"));
  CHECK_FALSE(fs::exists(dir / "new" / "model.loom.checkpoint"));  // removed once the model is saved
  const Sequential trained = load_model(model);
  REQUIRE(trained.history().epochs.size() == 1);
  CHECK(trained.history().epochs[0].val_accuracy.has_value());

  // Predict: photo-like files of two test images, as PNG and JPEG.
  const Dataset test = fashion_mnist::load_test(data);
  write_png(dir / "first.png", light_background_photo(test, 0));
  write_jpeg(dir / "second.jpg", light_background_photo(test, 1), 85);
  const ProcessResult predict = loom_tool(dir, {"predict", model.string(), (dir / "first.png").string(),
                                                (dir / "second.jpg").string(), "--json", "--save-input",
                                                (dir / "seen").string()});
  INFO(predict.output);
  REQUIRE(predict.exit_code == 0);
  CHECK_THAT(predict.output, Contains("first.png\", \"label\": ") && Contains("second.jpg\", \"label\": ") &&
                                 Contains("\"class\": ") && Contains("\"probability\": ") && Contains("\"top3\": [{"));
  const Image seen = read_image(dir / "seen" / "first.png.input.png");
  CHECK(seen.width == 28);
  CHECK(seen.height == 28);
  CHECK(seen.channels == 1);
  // Two files of one name would save their pictures over one another: refused before any is written.
  fs::create_directories(dir / "other");
  fs::copy_file(dir / "first.png", dir / "other" / "first.png");
  const ProcessResult twins = loom_tool(dir, {"predict", model.string(), (dir / "first.png").string(),
                                              (dir / "other" / "first.png").string(), "--save-input",
                                              (dir / "twins").string()});
  CHECK(twins.exit_code == 2);
  CHECK_THAT(twins.output, Contains("would both be saved as first.png.input.png"));
  CHECK_FALSE(fs::exists(dir / "twins"));
  const ProcessResult text = loom_tool(dir, {"predict", model.string(), (dir / "first.png").string()});
  CHECK(text.exit_code == 0);
  CHECK_THAT(text.output, Contains("  1. ") && Contains("  3. ") && Contains("%"));

  // An unreadable image among good ones: reported, the others classified, exit status 1.
  const ProcessResult partly = loom_tool(dir, {"predict", model.string(), (dir / "nothing.png").string(),
                                               (dir / "first.png").string(), "--json"});
  CHECK(partly.exit_code == 1);
  CHECK_THAT(partly.output, Contains("{\"file\": \"" + (dir / "nothing.png").string() + "\", \"error\": ") &&
                                Contains("first.png\", \"label\": "));

  // Evaluate, with a report.
  const fs::path report = dir / "report";
  const ProcessResult evaluate = loom_tool(dir, {"evaluate", model.string(), "--report", report.string(), "--limit",
                                                 std::to_string(scaled(2000, 200)), "--json", "--data", data});
  INFO(evaluate.output);
  REQUIRE(evaluate.exit_code == 0);
  CHECK_THAT(evaluate.output, Contains("\"test_accuracy\": ") && Contains("\"test_loss\": ") &&
                                  Contains("\"confusion_matrix\": [[") && Contains("\"per_class\": [{"));
  for (const char* png : {"confusion_matrix.png", "mistakes.png"}) {
    const Image image = read_image(report / png);
    CHECK(image.width > 100);
    CHECK(image.height > 100);
  }
  CHECK(fs::file_size(report / "training_curves.svg") > 500);
  CHECK(fs::exists(report / "index.html"));
  const ProcessResult table = loom_tool(dir, {"evaluate", model.string(), "--limit", "300", "--data", data});
  CHECK(table.exit_code == 0);
  CHECK_THAT(table.output, Contains("Test loss: ") && Contains("precision") && Contains("Ankle boot"));
}

#endif  // LOOM_TOOL_PATH
