// `loom train --images FOLDER` and `loom evaluate --tta flip`, as a user runs them.

#include <catch2/catch.hpp>

#include <fstream>
#include <string>

#include "image_folder_fixture.hpp"
#include "loom/data/fashion_mnist.hpp"
#include "loom/io/model_file.hpp"
#include "loom/models/fashion_mnist_best.hpp"
#include "loom/models/fashion_mnist_cnn.hpp"
#include "loom_tool.hpp"

#ifdef LOOM_TOOL_PATH

using namespace loom;
using namespace loom::testing;
using Catch::Contains;

namespace fs = std::filesystem;

TEST_CASE("loom train --images trains on a folder of images and writes the model and its class names",
          "[tool][image_folder]") {
  TempDir dir;
  write_image_folder(dir / "photos", {"wide", "tall", "square"}, 12);
  std::ofstream(dir / "photos" / "tall" / "readme.txt") << "not an image";
  const fs::path model = dir / "out" / "model.loom";
  const ProcessResult r = loom_tool(dir, {"train", "--images", (dir / "photos").string(), "--out", model.string(),
                                         "--epochs", "1", "--batch-size", "8", "--validation", "0.25", "--augment",
                                         "pad=2,flip,erasing=0.5", "--verbose", "2"});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("27 training and 9 validation images in 3 classes"));
  CHECK_THAT(r.output, Contains("skipped " + (dir / "photos" / "tall" / "readme.txt").string()));
  CHECK_THAT(r.output, Contains("Validation accuracy: "));
  const Sequential trained = load_model(model);
  CHECK(trained.num_classes() == 3);
  REQUIRE(trained.history().epochs.size() == 1);
  CHECK(trained.history().epochs[0].val_accuracy.has_value());
  std::ifstream names(dir / "out" / "model.classes.txt");
  std::string a, b, c;
  names >> a >> b >> c;
  CHECK((a == "square" && b == "tall" && c == "wide"));

  // loom predict names the classes from the file beside the model.
  const ProcessResult predicted = loom_tool(dir, {"predict", model.string(), (dir / "photos" / "wide" / "0.png").string(),
                                                 "--json"});
  CHECK(predicted.exit_code == 0);
  CHECK_THAT(predicted.output, Contains("\"class\": \"square\"") && Contains("\"class\": \"tall\"") &&
                                   Contains("\"class\": \"wide\""));
  std::ofstream(dir / "out" / "model.classes.txt") << "one\ntwo\n";
  const ProcessResult mismatch = loom_tool(dir, {"predict", model.string(), (dir / "photos" / "wide" / "0.png").string()});
  CHECK(mismatch.exit_code == 1);
  CHECK_THAT(mismatch.output, Contains("model.classes.txt holds 2 class names") && Contains("has 3 classes"));

  // Refusing unreadable files names the file.
  const ProcessResult strict = loom_tool(dir, {"train", "--images", (dir / "photos").string(), "--out",
                                              model.string(), "--refuse-unreadable", "--verbose", "0"});
  CHECK(strict.exit_code == 1);
  CHECK_THAT(strict.output, Contains("readme.txt"));
}

TEST_CASE("loom train --recipe best trains the small ResNet with its schedule, its peak and EMA flags, and bad values are refused",
          "[tool][image_folder]") {
  TempDir dir;
  write_image_folder(dir / "photos", {"wide", "tall"}, 8);
  // Two epochs of the recipe on the folder, written to `out`, with `more` flags.
  auto train_best = [&](const fs::path& out, std::vector<std::string> more = {}) {
    std::vector<std::string> args{"train", "--images", (dir / "photos").string(), "--out", out.string(), "--recipe",
                                  "best", "--epochs", "2", "--batch-size", "8", "--verbose", "0"};
    args.insert(args.end(), more.begin(), more.end());
    return loom_tool(dir, args);
  };
  const fs::path model = dir / "model.loom";
  const ProcessResult r = train_best(model);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const Sequential trained = load_model(model);
  CHECK(trained.num_classes() == 2);
  CHECK(trained.history().epochs.size() == 2);
  CHECK(trained.optimizer().kind() == "SGD");
  CHECK(trained.loss().label_smoothing() == models::BestRecipe{}.label_smoothing);  // the recipe's loss, saved
  CHECK_THAT(trained.summary_string(), Contains("residual"));

  const ProcessResult bad = loom_tool(dir, {"train", "--images", (dir / "photos").string(), "--out", model.string(),
                                           "--recipe", "fancy"});
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.output, Contains("--recipe: expected \"seed\" or \"best\", got \"fancy\""));

  // --ema: the model ends with the average of its weights, which differs from the last step's.
  const fs::path averaged = dir / "averaged.loom";
  const ProcessResult ema = train_best(averaged, {"--ema", "0.5"});
  INFO(ema.output);
  REQUIRE(ema.exit_code == 0);
  Sequential with_ema = load_model(averaged), without = load_model(model);
  CHECK(with_ema.history().epochs.size() == 2);
  CHECK_FALSE(with_ema.weights().front()->value == without.weights().front()->value);  // the same run, averaged
  // --max-lr: the one-cycle peak; the same seed with another peak trains other weights.
  const fs::path slower = dir / "slower.loom";
  const ProcessResult peak = train_best(slower, {"--max-lr", "0.05"});
  INFO(peak.output);
  REQUIRE(peak.exit_code == 0);
  CHECK_FALSE(load_model(slower).weights().front()->value == without.weights().front()->value);
  for (const char* rate : {"0", "-0.1", "x", "nan", "inf", "1e6"}) {
    const ProcessResult refused = loom_tool(dir, {"train", "--images", (dir / "photos").string(), "--out",
                                                 model.string(), "--recipe", "best", "--max-lr", rate});
    CHECK(refused.exit_code == 2);
    CHECK_THAT(refused.output, Contains("--max-lr expects a positive learning rate below 1e6"));
  }
  const ProcessResult seed_recipe = loom_tool(dir, {"train", "--images", (dir / "photos").string(), "--out",
                                                   model.string(), "--max-lr", "0.05"});
  CHECK(seed_recipe.exit_code == 2);
  CHECK_THAT(seed_recipe.output, Contains("--max-lr goes with --recipe best"));
  for (const char* decay : {"1", "-0.1", "x", "1.5"}) {
    const ProcessResult refused = loom_tool(dir, {"train", "--images", (dir / "photos").string(), "--out",
                                                 model.string(), "--ema", decay});
    CHECK(refused.exit_code == 2);
    CHECK_THAT(refused.output, Contains("--ema expects a decay in (0, 1)"));
  }
}

TEST_CASE("loom train --images: each bad folder or flag is a clear error", "[tool][image_folder]") {
  TempDir dir;
  const std::string out = (dir / "m.loom").string();
  auto train = [&](const fs::path& folder, std::vector<std::string> more = {}) {
    std::vector<std::string> args{"train", "--images", folder.string(), "--out", out, "--verbose", "0"};
    args.insert(args.end(), more.begin(), more.end());
    return loom_tool(dir, args);
  };
  const ProcessResult missing = train(dir / "missing");
  CHECK(missing.exit_code == 1);
  CHECK_THAT(missing.output, Contains("missing: no such folder"));
  fs::create_directories(dir / "empty");
  CHECK_THAT(train(dir / "empty").output, Contains("empty: the folder is empty"));
  touch(dir / "flat" / "a.png");
  CHECK_THAT(train(dir / "flat").output, Contains("flat: no class sub-folders"));
  write_image_folder(dir / "gap", {"a"}, 2);
  fs::create_directories(dir / "gap" / "b");
  CHECK_THAT(train(dir / "gap").output, Contains("class folder \"b\" holds no image files"));
  write_image_folder(dir / "one", {"only"}, 2);
  CHECK_THAT(train(dir / "one").output, Contains("only one class folder"));

  write_image_folder(dir / "ok", {"a", "b"}, 2);
  const ProcessResult both = train(dir / "ok", {"--data", dir.path.string()});
  CHECK(both.exit_code == 2);
  CHECK_THAT(both.output, Contains("--images or --data, not both"));
  const ProcessResult test = train(dir / "ok", {"--validation", "test"});
  CHECK(test.exit_code == 2);
  CHECK_THAT(test.output, Contains("--validation test"));
  const ProcessResult augment = train(dir / "ok", {"--augment", "rotate"});
  CHECK(augment.exit_code == 2);
  CHECK_THAT(augment.output, Contains("unknown item \"rotate\""));
  const ProcessResult pad = train(dir / "ok", {"--augment", "pad=40"});
  CHECK(pad.exit_code == 2);
  CHECK_THAT(pad.output, Contains("pad must be") && Contains("40"));
  CHECK_FALSE(fs::exists(out));
}

TEST_CASE("loom evaluate --tta flip scores as Sequential::evaluate with Tta::Flip, and a bad value is a usage error",
          "[tool][fashion_mnist]") {
  TempDir dir;
  const Sequential model = models::fashion_mnist_cnn(3);  // untrained: its mirror answers differ
  model.save(dir / "m.loom");
  const ProcessResult bad = loom_tool(dir, {"evaluate", (dir / "m.loom").string(), "--tta", "rotate"});
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.output, Contains("--tta") && Contains("\"rotate\""));

  const Dataset test = fashion_mnist::load_test(fashion_mnist::find_data_dir()).head(100);
  const ProcessResult r =
      loom_tool(dir, {"evaluate", (dir / "m.loom").string(), "--limit", "100", "--tta", "flip", "--json"});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const auto at = r.output.find("\"test_loss\": ");
  REQUIRE(at != std::string::npos);
  const double loss = std::stod(r.output.substr(at + 13));
  CHECK(loss == Approx(model.evaluate(test, 32, Tta::Flip).loss).epsilon(1e-5));
  CHECK(loss != Approx(model.evaluate(test).loss).epsilon(1e-5));
}

#endif  // LOOM_TOOL_PATH
