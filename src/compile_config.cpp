// The COMP section: loss, optimizer and schedule (compile_config.hpp).

#include "compile_config.hpp"

#include <cmath>
#include <string>

#include "loom/optimizers/adamw.hpp"
#include "loom/optimizers/rmsprop.hpp"
#include "loom/optimizers/sgd.hpp"
#include "loom/schedules/cosine_decay.hpp"
#include "loom/schedules/exponential_decay.hpp"
#include "loom/schedules/one_cycle.hpp"
#include "loom/schedules/reduce_on_plateau.hpp"
#include "loom/schedules/step_decay.hpp"
#include "loom/sequential.hpp"

namespace loom::detail {
namespace {

constexpr std::size_t kMaxKind = 1024;
constexpr std::uint32_t kMaxScheduleValues = 64;

// ---- encoding -------------------------------------------------------------

// Each kind's own options, in the order of its table in docs/model-format.md.
void put_own_options(ByteWriter& w, const ElementwiseOptimizer& o) {
  if (const auto* adam = dynamic_cast<const Adam*>(&o)) {  // AdamW too
    const AdamOptions& a = adam->options();
    for (float v : {a.learning_rate, a.beta1, a.beta2, a.epsilon}) w.put(v);
  } else if (const auto* sgd = dynamic_cast<const SGD*>(&o)) {
    w.put(sgd->options().learning_rate);
    w.put(sgd->options().momentum);
    w.put<std::uint8_t>(sgd->options().nesterov ? 1 : 0);
  } else {
    const RMSpropOptions& r = dynamic_cast<const RMSprop&>(o).options();
    for (float v : {r.learning_rate, r.rho, r.momentum, r.epsilon}) w.put(v);
    w.put<std::uint8_t>(r.centered ? 1 : 0);
  }
}

const ElementwiseOptimizer& saveable(const Optimizer& o) {
  const auto* e = dynamic_cast<const ElementwiseOptimizer*>(&o);
  const bool known = e && (dynamic_cast<const Adam*>(e) || dynamic_cast<const SGD*>(e) || dynamic_cast<const RMSprop*>(e));
  if (!known)
    throw UsageError("save: optimizer " + std::string(o.kind()) +
                     " cannot be saved; model files hold Adam, AdamW, SGD and RMSprop");
  return *e;
}

// ---- decoding -------------------------------------------------------------

// A whole count saved as a double (steps, patience).
long long get_count(ByteReader& r, double v, const char* what) {
  if (!(v >= 0 && v <= 9e15 && v == std::floor(v))) r.fail(std::string(what) + " " + option_value_text(v) + " is not a whole count");
  return static_cast<long long>(v);
}

std::unique_ptr<LearningRateSchedule> make_schedule(ByteReader& r, const std::string& kind, const std::vector<double>& o) {
  auto need = [&](std::size_t n) {
    if (o.size() != n)
      r.fail("learning-rate schedule " + kind + " takes " + std::to_string(n) + " options, the file has " +
             std::to_string(o.size()));
  };
  if (kind == "StepDecay") {
    need(3);
    return std::make_unique<StepDecay>(StepDecayOptions{o[0], get_count(r, o[1], "step_size"), o[2]});
  }
  if (kind == "ExponentialDecay") {
    need(4);
    if (o[3] != 0 && o[3] != 1) r.fail("ExponentialDecay staircase flag is not 0 or 1");
    return std::make_unique<ExponentialDecay>(
        ExponentialDecayOptions{o[0], get_count(r, o[1], "decay_steps"), o[2], o[3] == 1});
  }
  if (kind == "CosineDecay") {
    need(5);
    CosineDecayOptions c{o[0], get_count(r, o[1], "decay_steps"), o[2], get_count(r, o[3], "warmup_steps"), {}};
    if (!std::isnan(o[4])) c.warmup_target = o[4];
    return std::make_unique<CosineDecay>(c);
  }
  if (kind == "OneCycle") {
    need(5);
    return std::make_unique<OneCycle>(OneCycleOptions{o[0], get_count(r, o[1], "total_steps"), o[2], o[3], o[4]});
  }
  if (kind == "ReduceOnPlateau") {
    need(5);
    return std::make_unique<ReduceOnPlateau>(
        ReduceOnPlateauOptions{o[0], o[1], get_count(r, o[2], "patience"), o[3], o[4]});
  }
  r.fail("unknown learning-rate schedule \"" + kind + "\"");
}

std::vector<double> get_doubles(ByteReader& r, const char* count_what, const char* what) {
  const auto n = r.get<std::uint32_t>(count_what);
  if (n > kMaxScheduleValues) r.fail(std::string(count_what) + " " + std::to_string(n) + " is more than " + std::to_string(kMaxScheduleValues));
  r.need_items(n, sizeof(double), what);
  std::vector<double> v(n);
  for (double& x : v) x = r.get<double>(what);
  return v;
}

std::uint8_t get_flag(ByteReader& r, const char* what) {
  const auto f = r.get<std::uint8_t>(what);
  if (f > 1) r.fail(std::string(what) + " " + std::to_string(f) + " is not 0 or 1");
  return f;
}

}  // namespace

void put_compile(ByteWriter& w, const Sequential& m) {
  const ElementwiseOptimizer& o = saveable(m.optimizer());
  w.put<std::uint8_t>(m.loss().from_logits() ? 1 : 0);
  w.put_string(std::string(o.kind()));
  put_own_options(w, o);
  // The recipe's options, only when one is not the default: files of plain
  // Adam keep the bytes of format version 1's first files.
  const LearningRateSchedule* s = o.schedule();
  if (o.weight_decay() == 0 && o.global_clipnorm() == 0 && m.loss().label_smoothing() == 0 && !s) return;
  w.put(o.weight_decay());
  w.put(o.global_clipnorm());
  w.put(m.loss().label_smoothing());
  w.put_string(s ? std::string(s->kind()) : std::string());
  const std::vector<double> options = s ? s->options() : std::vector<double>{};
  w.put<std::uint32_t>(static_cast<std::uint32_t>(options.size()));
  for (double v : options) w.put(v);
}

Compile get_compile(ByteReader& r) {
  const std::uint8_t from_logits = get_flag(r, "loss from_logits flag");
  const std::string kind = r.get_string("optimizer kind", kMaxKind);
  if (kind != "Adam" && kind != "AdamW" && kind != "SGD" && kind != "RMSprop") r.fail("unknown optimizer \"" + kind + "\"");
  float f[4] = {};
  std::uint8_t flag = 0;
  const int floats = kind == "SGD" ? 2 : 4;
  for (int i = 0; i < floats; ++i) f[i] = r.get<float>((kind + " option").c_str());
  if (kind == "SGD" || kind == "RMSprop") flag = get_flag(r, (kind + " flag").c_str());

  float weight_decay = 0, clipnorm = 0, smoothing = 0;
  std::shared_ptr<const LearningRateSchedule> schedule;
  if (!r.done()) {
    weight_decay = r.get<float>("weight decay");
    clipnorm = r.get<float>("global clipnorm");
    smoothing = r.get<float>("label smoothing");
    const std::string schedule_kind = r.get_string("schedule kind", kMaxKind);
    const std::vector<double> options = get_doubles(r, "schedule option count", "schedule option");
    if (!schedule_kind.empty()) {
      try {
        schedule = make_schedule(r, schedule_kind, options);
      } catch (const UsageError& e) {
        r.fail(std::string("invalid learning-rate schedule: ") + e.what());
      }
    } else if (!options.empty()) {
      r.fail("schedule options without a schedule");
    }
  }
  r.expect_end("COMP section");
  try {
    Compile c{nullptr, SparseCategoricalCrossentropy({.from_logits = from_logits == 1, .label_smoothing = smoothing})};
    if (kind == "Adam" || kind == "AdamW") {
      const AdamOptions o{f[0], f[1], f[2], f[3], weight_decay, clipnorm, schedule};
      c.optimizer = kind == "Adam" ? std::make_unique<Adam>(o) : std::make_unique<AdamW>(o);
    } else if (kind == "SGD") {
      c.optimizer = std::make_unique<SGD>(SGDOptions{f[0], f[1], flag == 1, weight_decay, clipnorm, schedule});
    } else {
      c.optimizer =
          std::make_unique<RMSprop>(RMSpropOptions{f[0], f[1], f[2], f[3], flag == 1, weight_decay, clipnorm, schedule});
    }
    return c;
  } catch (const Error& e) {
    r.fail(std::string("invalid loss or optimizer: ") + e.what());
  }
}

void put_schedule_state(ByteWriter& w, const std::vector<double>& state) {
  if (state.empty()) return;
  w.put<std::uint32_t>(static_cast<std::uint32_t>(state.size()));
  for (double v : state) w.put(v);
}

std::vector<double> get_schedule_state(ByteReader& r) {
  if (r.done()) return {};
  return get_doubles(r, "schedule state length", "schedule state");
}

}  // namespace loom::detail
