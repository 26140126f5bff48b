// Callbacks: the order fit calls them in, stopping, EarlyStopping,
// ModelCheckpoint and CSVLogger, and their state across a resumed run.

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "loom/io/model_file.hpp"
#include "loom/training/csv_logger.hpp"
#include "loom/training/early_stopping.hpp"
#include "loom/training/model_checkpoint.hpp"
#include "temp_dir.hpp"
#include "toy_model.hpp"

using namespace loom;
using namespace loom::testing;
using Catch::Matchers::Contains;

namespace {

// Records every call as a line, and stops after `stop_after` epochs when set.
struct Recorder final : Callback {
  std::vector<std::string> calls;
  int stop_after = 0;
  void on_train_begin(TrainingContext& c) override {
    calls.push_back("train_begin " + std::to_string(c.epochs()) + " " + std::to_string(c.steps_per_epoch()));
  }
  void on_epoch_begin(int epoch, TrainingContext&) override { calls.push_back("epoch_begin " + std::to_string(epoch)); }
  void on_batch_end(const BatchLogs& b, TrainingContext&) override { calls.push_back("batch " + std::to_string(b.batch)); }
  void on_epoch_end(const EpochRecord& r, TrainingContext& c) override {
    calls.push_back("epoch_end " + std::to_string(r.epoch) + " " + std::to_string(c.history().epochs.size()));
    if (stop_after > 0 && r.epoch == stop_after) c.stop_training("enough");
  }
  void on_train_end(TrainingContext&) override { calls.push_back("train_end"); }
};

// A record with only what the monitors read.
EpochRecord record(int epoch, double loss, std::optional<double> val_loss = {}) {
  EpochRecord r;
  r.epoch = epoch;
  r.loss = loss;
  r.val_loss = val_loss;
  return r;
}

std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// The CSV without its last column (seconds differ from run to run).
std::string without_seconds(const std::string& csv) {
  std::istringstream in(csv);
  std::string out, line;
  while (std::getline(in, line)) out += line.substr(0, line.rfind(',')) + "\n";
  return out;
}

}  // namespace

TEST_CASE("fit calls callbacks in order: train, epochs, batches", "[callbacks]") {
  const Quadrants d = quadrants(40, 1);
  Sequential m = small_cnn(3);
  Recorder rec;
  m.fit(d.x, d.y, {.epochs = 2, .batch_size = 16, .verbose = 0, .callbacks = {&rec}});
  const std::vector<std::string> expected{"train_begin 2 3", "epoch_begin 1", "batch 1", "batch 2", "batch 3",
                                          "epoch_end 1 1", "epoch_begin 2", "batch 1", "batch 2", "batch 3",
                                          "epoch_end 2 2", "train_end"};
  CHECK(rec.calls == expected);
}

TEST_CASE("A callback stops training after the epoch in progress", "[callbacks]") {
  const Quadrants d = quadrants(40, 1);
  Sequential m = small_cnn(3);
  Recorder rec;
  rec.stop_after = 2;
  std::ostringstream log;
  const History h = m.fit(d.x, d.y, {.epochs = 5, .batch_size = 16, .verbose = 2, .log = &log, .callbacks = {&rec}});
  CHECK(h.epochs.size() == 2);
  CHECK(rec.calls.back() == "train_end");
  CHECK_THAT(log.str(), Contains("Training stopped after epoch 2: enough"));
}

TEST_CASE("EarlyStopping follows Keras: patience, min_delta, baseline, restored weights", "[callbacks]") {
  Sequential m = small_cnn(3);
  const History none;
  TrainingContext c(m, none, 10, 1, true);

  SECTION("stops once the value has not improved for `patience` epochs") {
    EarlyStopping es({.monitor = "loss", .patience = 2});
    for (const auto& [epoch, loss] : std::vector<std::pair<int, double>>{{1, 1.0}, {2, 0.8}, {3, 0.9}, {4, 0.85}}) {
      CHECK_FALSE(c.stopping());
      es.on_epoch_end(record(epoch, loss), c);
    }
    CHECK(c.stopping());
    CHECK(es.stopped_epoch() == 4);
    CHECK(es.best_epoch() == 2);
    CHECK(*es.best() == 0.8);
  }
  SECTION("an improvement smaller than min_delta does not count") {
    EarlyStopping es({.monitor = "loss", .min_delta = 0.1, .patience = 1});
    es.on_epoch_end(record(1, 1.0), c);
    es.on_epoch_end(record(2, 0.95), c);
    CHECK(c.stopping());
    CHECK(es.best_epoch() == 1);
  }
  SECTION("accuracies are maximised") {
    EarlyStopping es({.monitor = "accuracy", .patience = 1});
    EpochRecord r = record(1, 0);
    r.accuracy = 0.5;
    es.on_epoch_end(r, c);
    r.epoch = 2, r.accuracy = 0.6;
    es.on_epoch_end(r, c);
    CHECK_FALSE(c.stopping());
    CHECK(es.best_epoch() == 2);
  }
  SECTION("the count is not reset until the baseline is beaten") {
    EarlyStopping es({.monitor = "loss", .patience = 2, .baseline = 0.5});
    es.on_epoch_end(record(1, 1.0), c);  // best, but not below the baseline: the count stays at 1
    es.on_epoch_end(record(2, 1.1), c);
    CHECK(c.stopping());
  }
  SECTION("epochs up to start_from_epoch are not watched") {
    EarlyStopping es({.monitor = "loss", .patience = 0, .start_from_epoch = 2});
    es.on_epoch_end(record(1, 1.0), c);
    es.on_epoch_end(record(2, 2.0), c);
    CHECK_FALSE(c.stopping());
    CHECK(es.best_epoch() == 0);
  }
  SECTION("restore_best_weights puts the best epoch's weights back when it stops") {
    EarlyStopping es({.monitor = "loss", .patience = 1, .restore_best_weights = true});
    const Eigen::VectorXf best = m.weights()[0]->value;
    es.on_epoch_end(record(1, 1.0), c);
    m.weights()[0]->value.setConstant(7.0f);
    es.on_epoch_end(record(2, 1.5), c);
    REQUIRE(c.stopping());
    CHECK(m.weights()[0]->value == best);
    CHECK_THAT(c.stop_reason(), Contains("restored the weights of epoch 1"));
  }
}

TEST_CASE("EarlyStopping stops a real fit and its state survives the checkpoint", "[callbacks][checkpoint]") {
  const Quadrants d = quadrants(48, 2);
  TempDir dir;
  // val_loss improving by less than min_delta an epoch: this stops within a few epochs.
  auto train = [&](int epochs, EarlyStopping& es) {
    Sequential m = small_cnn(5, 0.05f);
    m.fit(d.x, d.y, {.epochs = epochs, .batch_size = 8, .validation_split = 0.25, .verbose = 0,
                     .checkpoint = dir / "run.ckpt", .callbacks = {&es}});
    return m;
  };
  EarlyStopping whole({.min_delta = 0.05, .patience = 1, .restore_best_weights = true});
  Sequential uninterrupted = small_cnn(5, 0.05f);
  const History h = uninterrupted.fit(d.x, d.y, {.epochs = 30, .batch_size = 8, .validation_split = 0.25, .verbose = 0,
                                                 .callbacks = {&whole}});
  INFO("stopped after epoch " << whole.stopped_epoch() << ", best " << whole.best_epoch());
  REQUIRE(whole.stopped_epoch() >= 3);  // the premise: it stops before 30 epochs, after the cut at 2
  CHECK(static_cast<int>(h.epochs.size()) == whole.stopped_epoch());

  // The same run cut after 2 epochs and resumed with a fresh callback.
  EarlyStopping first({.min_delta = 0.05, .patience = 1, .restore_best_weights = true});
  train(2, first);
  EarlyStopping second({.min_delta = 0.05, .patience = 1, .restore_best_weights = true});
  Sequential resumed = train(30, second);
  CHECK(second.stopped_epoch() == whole.stopped_epoch());
  CHECK(second.best_epoch() == whole.best_epoch());
  CHECK(same_params(resumed, uninterrupted));

  // Run again with the finished checkpoint: it stopped, so nothing more is trained.
  EarlyStopping third({.min_delta = 0.05, .patience = 1, .restore_best_weights = true});
  Sequential again = train(30, third);
  CHECK(again.history().epochs.size() == h.epochs.size());
  CHECK(same_params(again, uninterrupted));
}

TEST_CASE("ModelCheckpoint saves every epoch or the best, atomically, to a loadable file", "[callbacks]") {
  const Quadrants d = quadrants(40, 3);
  TempDir dir;
  SECTION("every epoch, one file each") {
    Sequential m = small_cnn(3);
    ModelCheckpoint mc(dir / "model-{epoch}.loom", {.monitor = "loss"});
    m.fit(d.x, d.y, {.epochs = 2, .batch_size = 16, .verbose = 0, .callbacks = {&mc}});
    CHECK(std::filesystem::exists(dir / "model-1.loom"));
    REQUIRE(std::filesystem::exists(dir / "model-2.loom"));
    Sequential last = load_model(dir / "model-2.loom");
    CHECK(same_params(last, m));
    CHECK(last.history().epochs.size() == 2);
  }
  SECTION("save_best_only writes only when the monitored value improved") {
    Sequential m = small_cnn(3);
    const History none;
    TrainingContext c(m, none, 3, 1, true);
    ModelCheckpoint mc(dir / "best-{epoch}.loom", {.monitor = "val_loss", .save_best_only = true});
    mc.on_epoch_end(record(1, 1.0, 0.7), c);
    mc.on_epoch_end(record(2, 0.9, 0.8), c);
    mc.on_epoch_end(record(3, 0.8, 0.6), c);
    CHECK(std::filesystem::exists(dir / "best-1.loom"));
    CHECK_FALSE(std::filesystem::exists(dir / "best-2.loom"));
    CHECK(std::filesystem::exists(dir / "best-3.loom"));
    CHECK(mc.saved_epoch() == 3);
  }
  SECTION("an unwritable place is refused before training") {
    Sequential m = small_cnn(3);
    ModelCheckpoint mc(dir / "missing" / "model.loom", {.monitor = "loss"});
    CHECK_THROWS_WITH(m.fit(d.x, d.y, {.epochs = 1, .verbose = 0, .callbacks = {&mc}}), Contains("missing"));
    CHECK(m.history().empty());
  }
}

TEST_CASE("CSVLogger writes the history, appends, and a resumed run writes the same file", "[callbacks][checkpoint]") {
  const Quadrants d = quadrants(40, 4);
  TempDir dir;
  const auto csv = dir / "log.csv";
  auto fit = [&](int epochs, CSVLogger& log, const std::filesystem::path& checkpoint = {}) {
    Sequential m = small_cnn(3);
    m.fit(d.x, d.y, {.epochs = epochs, .batch_size = 16, .verbose = 0, .checkpoint = checkpoint, .callbacks = {&log}});
    return m;
  };
  SECTION("one row per epoch under the header") {
    CSVLogger log(csv);
    fit(3, log);
    const std::string text = read_text(csv);
    CHECK(text.starts_with("epoch,loss,accuracy,val_loss,val_accuracy,seconds\n1,"));
    CHECK(std::count(text.begin(), text.end(), '\n') == 4);
  }
  SECTION("append keeps what the file held") {
    { std::ofstream(csv) << "epoch,loss,accuracy,val_loss,val_accuracy,seconds\n1,9,9,,,1"; }
    CSVLogger log(csv, {.append = true});
    fit(1, log);
    const std::string text = read_text(csv);
    CHECK(text.starts_with("epoch,loss,accuracy,val_loss,val_accuracy,seconds\n1,9,9,,,1\n1,"));
    CHECK(std::count(text.begin(), text.end(), '\n') == 3);
  }
  SECTION("resumed with append: the same rows as an uninterrupted run") {
    { std::ofstream(csv) << "earlier run\n"; }
    CSVLogger whole(csv, {.append = true});
    fit(3, whole);
    const std::string expected = read_text(csv);
    { std::ofstream(csv) << "earlier run\n"; }
    CSVLogger first(csv, {.append = true});
    fit(1, first, dir / "run.ckpt");
    CSVLogger second(csv, {.append = true});
    fit(3, second, dir / "run.ckpt");
    CHECK(without_seconds(read_text(csv)) == without_seconds(expected));
  }
}

TEST_CASE("Callbacks refuse bad options and mismatched runs with clear errors", "[callbacks]") {
  const Quadrants d = quadrants(40, 5);
  Sequential m = small_cnn(3);
  TempDir dir;
  CHECK_THROWS_AS(EarlyStopping({.patience = -1}), UsageError);
  CHECK_THROWS_WITH(EarlyStopping({.monitor = "val_los"}), Contains("unknown monitor \"val_los\""));
  CHECK_THROWS_WITH(EarlyStopping({.min_delta = -0.1}), Contains("min_delta"));
  CHECK_THROWS_AS(EarlyStopping({.start_from_epoch = -1}), UsageError);
  CHECK_THROWS_AS(ModelCheckpoint(""), UsageError);
  CHECK_THROWS_AS(CSVLogger(""), UsageError);
  CHECK_THROWS_WITH(CSVLogger(dir / "x.csv", {.separator = '.'}), Contains("separator"));

  EarlyStopping needs_validation({.monitor = "val_loss"});
  CHECK_THROWS_WITH(m.fit(d.x, d.y, {.epochs = 1, .verbose = 0, .callbacks = {&needs_validation}}),
                    Contains("no validation data"));
  CHECK_THROWS_WITH(m.fit(d.x, d.y, {.epochs = 1, .verbose = 0, .callbacks = {nullptr}}), Contains("null"));

  // A checkpoint written with one callback cannot be resumed with none.
  Recorder rec;
  m.fit(d.x, d.y, {.epochs = 1, .verbose = 0, .checkpoint = dir / "run.ckpt", .callbacks = {&rec}});
  Sequential other = small_cnn(3);
  CHECK_THROWS_WITH(other.fit(d.x, d.y, {.epochs = 2, .verbose = 0, .checkpoint = dir / "run.ckpt"}),
                    Contains("resume with the same callbacks"));
}

TEST_CASE("Callbacks refuse a NaN baseline, a separator found in numbers or quoting, an unknown monitor",
          "[callbacks]") {
  TempDir dir;
  CHECK_THROWS_WITH(EarlyStopping({.baseline = std::numeric_limits<double>::quiet_NaN()}),
                    Contains("EarlyStopping: baseline must be a number, got nan"));
  CHECK_NOTHROW(EarlyStopping({.baseline = 0.5}));
  CHECK_THROWS_WITH(EarlyStopping({.min_delta = -1e-10}),
                    Contains("min_delta must be a non-negative number, got -1e-10"));

  // Rows hold 1e-05, nan and inf, the header val_loss: a letter, a sign, an underscore or a quote would split or join them.
  for (const char sep : {'e', 'E', 'n', 'a', 'i', 'f', 'x', 'Z', '+', '"', '-', '.', '7', '\n', '_'}) {
    CAPTURE(sep);
    CHECK_THROWS_WITH(CSVLogger(dir / "x.csv", {.separator = sep}),
                      Contains(std::string("CSVLogger: separator '") + sep + "'"));
  }
  for (const char sep : {',', ';', '\t', ' ', '|', ':'}) CHECK_NOTHROW(CSVLogger(dir / "x.csv", {.separator = sep}));

  CHECK_THROWS_WITH(ModelCheckpoint(dir / "m.loom", {.monitor = "val_acuracy"}),
                    Contains("ModelCheckpoint: unknown monitor \"val_acuracy\""));
  CHECK_THROWS_AS(ModelCheckpoint(dir / "m.loom", {.monitor = ""}), UsageError);
  CHECK_NOTHROW(ModelCheckpoint(dir / "m.loom", {.monitor = "val_acc"}));
}
