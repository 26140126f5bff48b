// Model files keep the whole training recipe: every optimizer with its
// options, its schedule with options and state, clipping, weight decay and
// label smoothing. Decoding and encoding again gives the same bytes, and the
// decoder refuses unknown kinds and bad values by name and offset.

#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "loom/io/model_file.hpp"
#include "loom/optimizers/adamw.hpp"
#include "loom/optimizers/rmsprop.hpp"
#include "loom/optimizers/sgd.hpp"
#include "loom/schedules/cosine_decay.hpp"
#include "loom/schedules/exponential_decay.hpp"
#include "loom/schedules/one_cycle.hpp"
#include "loom/schedules/reduce_on_plateau.hpp"
#include "loom/schedules/step_decay.hpp"
#include "model_bytes.hpp"
#include "toy_model.hpp"

using namespace loom;
using namespace loom::testing;
using Catch::Contains;

namespace {

struct Recipe {
  const char* name;
  std::function<std::unique_ptr<Optimizer>()> optimizer;
  float label_smoothing = 0.0f;
};

std::vector<Recipe> recipes() {
  auto plateau = std::make_shared<ReduceOnPlateau>(
      ReduceOnPlateauOptions{.initial_learning_rate = 0.01, .patience = 0, .min_delta = 1e300});
  return {
      {"Adam", [] { return std::make_unique<Adam>(); }},
      {"AdamW + OneCycle + clipping", [] {
         return std::make_unique<AdamW>(AdamOptions{
             .global_clipnorm = 1.0f, .schedule = std::make_shared<OneCycle>(OneCycleOptions{.total_steps = 20})});
       }, 0.1f},
      {"SGD Nesterov + ReduceOnPlateau", [=] {
         return std::make_unique<SGD>(SGDOptions{.momentum = 0.9f, .nesterov = true, .weight_decay = 1e-4f,
                                                 .schedule = plateau});
       }},
      {"SGD + StepDecay", [] {
         return std::make_unique<SGD>(SGDOptions{.schedule = std::make_shared<StepDecay>(StepDecayOptions{.step_size = 3})});
       }},
      {"RMSprop centered + ExponentialDecay", [] {
         return std::make_unique<RMSprop>(RMSpropOptions{
             .momentum = 0.5f, .centered = true,
             .schedule = std::make_shared<ExponentialDecay>(ExponentialDecayOptions{.decay_steps = 5, .staircase = true})});
       }},
      {"RMSprop + CosineDecay with warm-up", [] {
         return std::make_unique<RMSprop>(RMSpropOptions{
             .global_clipnorm = 0.5f,
             .schedule = std::make_shared<CosineDecay>(CosineDecayOptions{
                 .initial_learning_rate = 0.0, .decay_steps = 10, .warmup_steps = 2, .warmup_target = 1e-3})});
       }},
  };
}

Sequential trained(const Recipe& r, const Quadrants& d) {
  Sequential m = small_cnn(3);
  m.compile(*r.optimizer(), SparseCategoricalCrossentropy({.label_smoothing = r.label_smoothing}));
  m.fit(d.x, d.y, {.epochs = 2, .batch_size = 16, .validation_split = 0.25, .verbose = 0});
  return m;
}

}  // namespace

TEST_CASE("Every optimizer and schedule survives a save and load, state and all, to the same bytes", "[model_file][optimizers]") {
  const Quadrants d = quadrants(48, 2);
  for (const Recipe& r : recipes()) {
    DYNAMIC_SECTION(r.name) {
      Sequential m = trained(r, d);
      const std::vector<std::uint8_t> bytes = encode_model(m);
      Sequential loaded = decode_model(bytes);
      CHECK(encode_model(loaded) == bytes);
      CHECK(loaded.optimizer().kind() == m.optimizer().kind());
      CHECK(loaded.loss().label_smoothing() == r.label_smoothing);
      CHECK(same_optimizer_state(loaded, m));
      CHECK(loaded.optimizer().state().schedule == m.optimizer().state().schedule);
      const auto& a = dynamic_cast<const ElementwiseOptimizer&>(loaded.optimizer());
      const auto& b = dynamic_cast<const ElementwiseOptimizer&>(m.optimizer());
      CHECK(a.current_learning_rate() == b.current_learning_rate());
      CHECK(a.global_clipnorm() == b.global_clipnorm());
      CHECK(a.weight_decay() == b.weight_decay());
      // Training on continues alike.
      m.fit(d.x, d.y, {.epochs = 1, .batch_size = 16, .verbose = 0});
      loaded.fit(d.x, d.y, {.epochs = 1, .batch_size = 16, .verbose = 0});
      CHECK(same_params(loaded, m));
    }
  }
}

TEST_CASE("ReduceOnPlateau's state is saved: a loaded model goes on at the reduced rate", "[model_file][optimizers]") {
  const Quadrants d = quadrants(48, 2);
  Sequential m = trained(recipes()[2], d);
  const auto& sgd = dynamic_cast<const SGD&>(m.optimizer());
  CHECK(sgd.current_learning_rate() == Approx(0.001));  // the second epoch cut 0.01 by 10
  const Sequential loaded = decode_model(encode_model(m));
  CHECK(dynamic_cast<const SGD&>(loaded.optimizer()).current_learning_rate() == sgd.current_learning_rate());
}

TEST_CASE("The decoder names unknown optimizers and schedules and refuses bad values", "[model_file][optimizers]") {
  const Quadrants d = quadrants(48, 2);
  const std::vector<std::uint8_t> bytes = encode_model(trained(recipes()[1], d));  // AdamW + OneCycle
  const std::size_t comp = payload_of(bytes, "COMP");
  // COMP: u8 from_logits, string "AdamW" (4 + 5 bytes), 4 f32, then f32 weight decay, clipnorm, smoothing, the schedule's kind.
  const std::size_t kind_text = comp + 1 + 4, trailer = kind_text + 5 + 16, schedule_text = trailer + 12 + 4;
  SECTION("an unknown optimizer") {
    std::vector<std::uint8_t> bad = bytes;
    bad[kind_text] = 'X';
    fix_crc(bad);
    CHECK_THROWS_WITH(decode_model(bad), Contains("unknown optimizer \"XdamW\"") && Contains("at byte offset"));
  }
  SECTION("an unknown schedule") {
    std::vector<std::uint8_t> bad = bytes;
    bad[schedule_text] = 'X';
    fix_crc(bad);
    CHECK_THROWS_WITH(decode_model(bad), Contains("unknown learning-rate schedule \"XneCycle\"") && Contains("at byte offset"));
  }
  SECTION("a schedule option count beyond the section, before allocating") {
    std::vector<std::uint8_t> bad = bytes;
    poke<std::uint32_t>(bad, schedule_text + 8, 60);
    fix_crc(bad);
    CHECK_THROWS_WITH(decode_model(bad), Contains("schedule option") && Contains("bytes remain"));
  }
  SECTION("a bad schedule option") {
    std::vector<std::uint8_t> bad = bytes;
    poke<double>(bad, schedule_text + 8 + 4 + 8, 0.0);  // total_steps
    fix_crc(bad);
    CHECK_THROWS_WITH(decode_model(bad), Contains("total_steps must be positive, got 0"));
  }
  SECTION("a negative weight decay") {
    std::vector<std::uint8_t> bad = bytes;
    poke<float>(bad, trailer, -1.0f);
    fix_crc(bad);
    CHECK_THROWS_WITH(decode_model(bad), Contains("weight_decay must not be negative"));
  }
  SECTION("label smoothing out of range") {
    std::vector<std::uint8_t> bad = bytes;
    poke<float>(bad, trailer + 8, 1.5f);
    fix_crc(bad);
    CHECK_THROWS_WITH(decode_model(bad), Contains("label_smoothing must be in [0, 1)"));
  }
}
