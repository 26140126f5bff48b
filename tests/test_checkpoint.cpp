// Resumable training: fit with a checkpoint resumes where a run stopped and
// ends with the weights of an uninterrupted run, bit for bit, even when the
// process was killed with SIGKILL in the middle of an epoch.

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "loom/io/model_file.hpp"
#include "loom/layers/dropout.hpp"
#include "loom/optimizers/adamw.hpp"
#include "loom/optimizers/sgd.hpp"
#include "loom/schedules/one_cycle.hpp"
#include "loom/schedules/reduce_on_plateau.hpp"
#include "loom/models/fashion_mnist_cnn.hpp"
#include "subprocess.hpp"
#include "temp_dir.hpp"
#include "test_scale.hpp"
#include "toy_model.hpp"

using namespace loom;
using namespace loom::testing;
using Catch::Contains;

namespace fs = std::filesystem;

namespace {

bool same_training(Sequential& a, Sequential& b) {
  if (!same_params(a, b)) return false;
  const Optimizer::State sa = a.optimizer().state(), sb = b.optimizer().state();
  if (sa.steps != sb.steps || sa.slots.size() != sb.slots.size()) return false;
  for (std::size_t i = 0; i < sa.slots.size(); ++i)
    if (std::memcmp(sa.slots[i].data(), sb.slots[i].data(), sizeof(float) * static_cast<std::size_t>(sa.slots[i].size())) != 0)
      return false;
  if (sa.schedule != sb.schedule) return false;  // ReduceOnPlateau's rate, best and wait
  const auto &ha = a.history().epochs, &hb = b.history().epochs;
  if (ha.size() != hb.size()) return false;
  for (std::size_t i = 0; i < ha.size(); ++i)  // every field but the wall time
    if (ha[i].epoch != hb[i].epoch || ha[i].loss != hb[i].loss || ha[i].accuracy != hb[i].accuracy ||
        ha[i].val_loss != hb[i].val_loss || ha[i].val_accuracy != hb[i].val_accuracy)
      return false;
  return true;
}

// A fresh model of make() trained through o.epochs with a checkpoint in dir
// after `first` epochs were trained by another, and one trained straight through.
template <typename Make>
std::pair<Sequential, Sequential> resumed_and_straight(Make make, const Quadrants& d, FitOptions o, int first,
                                                       const fs::path& dir) {
  Sequential straight = make();
  straight.fit(d.x, d.y, o);
  o.checkpoint = dir / "ckpt.loom";
  FitOptions part = o;
  part.epochs = first;
  make().fit(d.x, d.y, part);
  Sequential resumed = make();
  resumed.fit(d.x, d.y, o);
  return {std::move(resumed), std::move(straight)};
}

// ---- the training run the kill test interrupts --------------------------------
// The seed CNN on 600 synthetic 28x28 images (scaled: 150 under the
// sanitizers) for 3 epochs, with a checkpoint: the kill lands as soon as the
// first checkpoint exists, well inside the second epoch.

constexpr const char* kChildDirVariable = "LOOM_TEST_CHECKPOINT_DIR";
constexpr const char* kChildRecipeVariable = "LOOM_TEST_CHECKPOINT_RECIPE";

// The training recipe of issue 11 on the seed CNN: SGD with Nesterov momentum,
// weight decay, clipping, a ReduceOnPlateau schedule, label smoothing.
void compile_recipe(Sequential& m) {
  m.compile(SGD({.learning_rate = 0.05f, .momentum = 0.9f, .nesterov = true, .weight_decay = 1e-3f,
                 .global_clipnorm = 1.0f,
                 .schedule = std::make_shared<ReduceOnPlateau>(ReduceOnPlateauOptions{
                     .initial_learning_rate = 0.05, .factor = 0.5, .patience = 0, .min_delta = 1e300})}),
            SparseCategoricalCrossentropy({.label_smoothing = 0.1f}));
}

Sequential run_child_training(const fs::path& dir) {
  Random rng(11);
  const Index n = scaled(600, 150);
  Tensor x(n, 28, 28, 1);
  std::vector<Label> y(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) {
    const Label k = static_cast<Label>(rng.below(10));
    y[static_cast<std::size_t>(i)] = k;
    for (Index r = 0; r < 28; ++r)
      for (Index c = 0; c < 28; ++c) x(i, r, c, 0) = (r / 3 == k ? 0.8f : 0.1f) + rng.uniform(0.0f, 0.2f);
  }
  Sequential m = models::fashion_mnist_cnn(5);
  if (const char* recipe = std::getenv(kChildRecipeVariable); recipe && std::string(recipe) == "sgd") compile_recipe(m);
  m.fit(x, y, {.epochs = 3, .batch_size = 32, .validation_split = 0.1, .seed = 9, .verbose = 0,
               .checkpoint = dir / "checkpoint.loom"});
  return m;
}

// Run as its own process by the kill test (hidden from normal runs by [.]).
TEST_CASE("checkpoint child: train with a checkpoint and save the result", "[.][checkpoint-child]") {
  const char* dir = std::getenv(kChildDirVariable);
  REQUIRE(dir != nullptr);
  run_child_training(dir).save(fs::path(dir) / "final.loom");
}

// Starts this test binary running only the child test case, in dir, with a recipe ("adam" or "sgd").
pid_t spawn_child(const fs::path& dir, const std::string& recipe) {
  return spawn_process({this_executable(), "[checkpoint-child]"}, dir / "child.log",
                       {std::string(kChildDirVariable) + "=" + dir.string(),
                        std::string(kChildRecipeVariable) + "=" + recipe});
}

}  // namespace

TEST_CASE("fit with a checkpoint resumes a stopped run and ends bit for bit as an uninterrupted one", "[checkpoint]") {
  const Quadrants d = quadrants(160, 4);
  TempDir dir;
  const FitOptions base{.epochs = 4, .batch_size = 16, .validation_split = 0.2, .seed = 3, .verbose = 0};

  Sequential straight = small_cnn(7);
  straight.fit(d.x, d.y, base);

  // Two epochs, then a new process's worth of state: a fresh model, the same call with 4 epochs.
  FitOptions with_checkpoint = base;
  with_checkpoint.checkpoint = dir / "ckpt.loom";
  FitOptions first_half = with_checkpoint;
  first_half.epochs = 2;
  small_cnn(7).fit(d.x, d.y, first_half);
  Sequential resumed = small_cnn(7);
  std::ostringstream log;
  with_checkpoint.log = &log;
  with_checkpoint.verbose = 2;
  const History h = resumed.fit(d.x, d.y, with_checkpoint);
  CHECK_THAT(log.str(), Contains("Resuming from checkpoint") && Contains("2 of 4 epochs done"));
  CHECK(h.epochs.size() == 4);
  CHECK(same_training(resumed, straight));

  SECTION("a finished run's checkpoint trains nothing more and gives the same history") {
    Sequential again = small_cnn(7);
    with_checkpoint.log = nullptr;
    with_checkpoint.verbose = 0;
    again.fit(d.x, d.y, with_checkpoint);
    CHECK(same_training(again, straight));
  }
  SECTION("the checkpoint is a model file too") {
    Sequential loaded = load_model(dir / "ckpt.loom");
    CHECK(same_params(loaded, straight));
  }
  SECTION("a checkpoint of another run or model is refused") {
    FitOptions other = with_checkpoint;
    other.verbose = 0;
    other.batch_size = 8;
    Sequential m = small_cnn(7);
    CHECK_THROWS_WITH(m.fit(d.x, d.y, other), Contains("different run") && Contains("batch_size 16 (checkpoint) vs 8"));
    Sequential fresh = small_cnn(7);
    CHECK(same_params(m, fresh));  // refused before anything of the checkpoint was loaded
    CHECK(m.history().epochs.empty());
    Sequential wider(Shape{8, 8, 1}, 7);
    wider.add(Flatten());
    wider.add(Dense({.units = 4, .activation = Activation::Softmax}));
    wider.compile(Adam());
    other.batch_size = 16;
    CHECK_THROWS_WITH(wider.fit(d.x, d.y, other), Contains("checkpoint of a different model"));
    straight.save(dir / "plain.loom");
    other.checkpoint = dir / "plain.loom";
    CHECK_THROWS_WITH(m.fit(d.x, d.y, other), Contains("not a checkpoint"));
  }
}

TEST_CASE("A resumed AdamW run with OneCycle, clipping and label smoothing ends as an uninterrupted one", "[checkpoint]") {
  const Quadrants d = quadrants(96, 4);
  TempDir dir;
  auto model = [] {
    Sequential m = small_cnn(7);
    m.compile(AdamW({.learning_rate = 0.01f, .weight_decay = 0.01f, .global_clipnorm = 0.5f,
                     .schedule = std::make_shared<OneCycle>(OneCycleOptions{.max_learning_rate = 0.02, .total_steps = 20})}),
              SparseCategoricalCrossentropy({.label_smoothing = 0.1f}));
    return m;
  };
  auto [resumed, straight] = resumed_and_straight(
      model, d, {.epochs = 4, .batch_size = 16, .validation_split = 0.2, .seed = 3, .verbose = 0}, 2, dir.path);
  CHECK(same_training(resumed, straight));
  // The whole file but the history (its wall times differ), bit for bit.
  CHECK(encode_model(resumed, {.include_history = false}) == encode_model(straight, {.include_history = false}));
}

TEST_CASE("A resumed run with Dropout draws the masks an uninterrupted one would", "[checkpoint][dropout]") {
  const Quadrants d = quadrants(96, 6);
  TempDir dir;
  auto model = [] {
    Sequential m(Shape{8, 8, 1}, 5);
    m.add(Conv2D({.filters = 4, .kernel = 3, .activation = Activation::ReLU}));
    m.add(Dropout(0.5f));
    m.add(Flatten());
    m.add(Dense({.units = 4, .activation = Activation::Softmax}));
    m.compile(Adam({.learning_rate = 0.01f}));
    return m;
  };
  auto [resumed, straight] = resumed_and_straight(model, d, {.epochs = 3, .batch_size = 16, .seed = 2, .verbose = 0}, 1, dir.path);
  CHECK(same_training(resumed, straight));
}

TEST_CASE("fit refuses a checkpoint it cannot write before training, not after an epoch", "[checkpoint]") {
  const Quadrants d = quadrants(32, 4);
  TempDir dir;
  Sequential m = small_cnn(7);
  Sequential untouched = small_cnn(7);
  const FitOptions o{.epochs = 2, .batch_size = 16, .verbose = 0, .checkpoint = dir / "missing" / "ckpt.loom"};
  CHECK_THROWS_AS(m.fit(d.x, d.y, o), IoError);
  CHECK_THROWS_WITH(m.fit(d.x, d.y, o), Contains("ckpt.loom: cannot create a temporary file in"));
  CHECK(same_params(m, untouched));  // no step was taken
  CHECK(m.history().epochs.empty());
}

// The kill test: an uninterrupted run, and a run killed mid-epoch and
// restarted, both in processes of their own, end alike bit for bit.
static void require_killed_run_resumes(const std::string& recipe) {
  TempDir killed, straight;

  // The uninterrupted run, in a process of its own like the others.
  REQUIRE(wait_process(spawn_child(straight.path, recipe)) == 0);

  // The interrupted run: killed soon after its first checkpoint, in epoch 2.
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = spawn_child(killed.path, recipe);
  const fs::path checkpoint = killed / "checkpoint.loom";
  while (!fs::exists(checkpoint)) {
    REQUIRE(std::chrono::steady_clock::now() - t0 < std::chrono::minutes(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // Killed at once: the first checkpoint is there, so the process is in epoch 2.
  // (Waiting a fraction of the first epoch's time had let epoch 2 finish when
  // ctest ran two of these tests side by side and one ended, freeing a core.)
  REQUIRE(::kill(pid, SIGKILL) == 0);
  const int status = wait_process(pid);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  CHECK_FALSE(fs::exists(killed / "final.loom"));
  {
    Sequential probe = models::fashion_mnist_cnn(5);
    if (recipe == "sgd") compile_recipe(probe);
    const auto state = restore_checkpoint(probe, checkpoint);
    REQUIRE(state);
    CHECK(state->epochs_done == 1);  // killed during epoch 2
  }

  // Restarted with the same command: resumes and finishes.
  REQUIRE(wait_process(spawn_child(killed.path, recipe)) == 0);
  Sequential a = load_model(killed / "final.loom"), b = load_model(straight / "final.loom");
  CHECK(same_training(a, b));
}

TEST_CASE("A training process killed with SIGKILL mid-epoch resumes from its checkpoint to the same weights",
          "[checkpoint][process]") {
  require_killed_run_resumes("adam");
}

TEST_CASE("Killed and resumed with SGD, Nesterov, weight decay, clipping, ReduceOnPlateau and label smoothing",
          "[checkpoint][process]") {
  require_killed_run_resumes("sgd");
}
