// Where a training step goes: one model of the benchmark suite
// (suite_models.hpp), or any model file (your own model, with the optimizer
// it was saved with), trained on one batch of random images, each layer's
// forward and backward timed on its own, and inside a Residual block each
// sublayer too. A table for people, one JSON line for machines.
//
// The step is the one Sequential::train_batch runs (denormals flushed,
// forward in training mode, the loss fused with the softmax where the model
// does, backward, the optimizer's update), cut at layer boundaries:
//
//   forward_ms[i]   median over the repetitions of layer i's forward
//   backward_ms[i]  median of its backward (the last layer's from the loss's
//                   gradient, as training runs it)
//   loss_ms, update_ms  the loss with its gradient; the optimizer's step
//   step_ms         median of the whole step timed around all of it
//
// A Residual block's sublayers are timed in a second pass, after the model's
// step: the main path forward from the block's input, then the shortcut, each
// path's backward from the gradient the block received. Their sum can differ
// from the block's own time (the block also adds the paths and applies its
// activation, and the sublayers run with less of the step's data in cache).
//
// With --inference it times inference instead, as predict runs it: one slice
// of images (predict's cache-sized slice, 32 by default) on one thread, since
// predict hands each thread whole slices and the layers then run alone. Each
// row is one inference step (chain::infer_step): a layer, or a Conv2D with
// the BatchNormalization and ReLU it applies in its output stage, or with the
// MaxPool2D it pools for. Inside a Residual block: its paths' steps and the
// sum (with the block's activation), timed in a second pass.
//
//   loom_layer_times --model NAME | --model-file FILE [--threads 2] [--batch N] [--reps 50] [--seed 42] [--inference]

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cstdio>
#include <string>
#include <vector>

#include "loom/cli.hpp"
#include "loom/io/json.hpp"
#include "loom/loom.hpp"
#include "measure.hpp"
#include "suite_models.hpp"
#include "synthetic.hpp"

namespace {

using namespace loom;
using bench::median;
using Clock = std::chrono::steady_clock;

struct Args {
  std::string model;
  std::string model_file;
  int threads = 2;
  Index batch = 0;  // 0: the model's training batch
  int reps = 50;
  std::uint64_t seed = 42;
  bool inference = false;
};

const char* kUsage =
    "usage: loom_layer_times (--model NAME | --model-file FILE) [options]\n"
    "Times each layer's forward and backward in one training step of a model, on random data.\n"
    "  --model NAME       a suite model: seed, vgg, photo, wide, odd, mlp or resnet\n"
    "  --model-file FILE  a model file (loom train, Sequential::save), with its optimizer\n"
    "  --threads N        threads (default 2)\n"
    "  --batch N          training batch (default: the suite model's own; 32 for a file)\n"
    "  --reps N           timed steps; each time is the median over them (default 50)\n"
    "  --seed N           seed of a suite model's weights (default 42)\n"
    "  --inference        time inference steps instead: one slice (--batch, default 32) on one thread\n";

Args parse(int argc, char** argv) {
  using cli::parse_int;
  Args a;
  const auto positional = [&](const std::string& arg) {
    throw UsageError("unexpected argument \"" + arg + "\"\n" + kUsage);
  };
  cli::parse_args(argc, argv, 1, kUsage, {"--inference"}, [&](const std::string& flag, const char* v) {
    if (flag == "--model") a.model = v;
    else if (flag == "--model-file") a.model_file = v;
    else if (flag == "--threads") a.threads = parse_int<int>(flag, v, 1);
    else if (flag == "--batch") a.batch = parse_int(flag, v, 1);
    else if (flag == "--reps") a.reps = parse_int<int>(flag, v, 1);
    else if (flag == "--seed") a.seed = static_cast<std::uint64_t>(parse_int(flag, v, 0));
    else if (flag == "--inference") a.inference = true;
    else return false;
    return true;
  }, positional);
  if (a.model.empty() == a.model_file.empty()) throw UsageError("give one of --model and --model-file");
  return a;
}

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// One layer's samples, and its sublayers' when it is a Residual block.
struct LayerTimes {
  const Layer* layer = nullptr;
  std::vector<double> forward, backward;
  std::vector<LayerTimes> children;
};

// Times the sublayers of a Residual block given its input x and the gradient
// dy it received: main path then shortcut, forward, then each backward.
void time_block(const Residual& block, const Tensor& x, const Tensor& dy, std::vector<LayerTimes>& out) {
  if (out.empty())
    for (const auto& c : block.children()) out.push_back({.layer = c.get()});
  std::size_t k = 0;
  for (const auto path : {block.main_path(), block.shortcut_path()}) {
    const std::size_t first = k;
    const Tensor* h = &x;
    for (const auto& l : path) {
      const auto t0 = Clock::now();
      h = &l->forward(*h);
      out[k++].forward.push_back(ms_since(t0));
    }
    const Tensor* g = &dy;
    for (std::size_t i = path.size(); i-- > 0;) {
      const auto t0 = Clock::now();
      g = &path[i]->backward(*g);
      out[first + i].backward.push_back(ms_since(t0));
    }
  }
}

void print_row(const LayerTimes& t, int depth, double step) {
  const double f = median(t.forward), b = median(t.backward);
  const std::string name = std::string(static_cast<std::size_t>(2 * depth), ' ') + std::string(t.layer->name());
  std::printf("%-30s %-22s %9.3f %9.3f %6.1f %%\n", name.c_str(), std::string(t.layer->kind()).c_str(), f, b,
              100.0 * (f + b) / step);
  for (const LayerTimes& c : t.children) print_row(c, depth + 1, step);
}

void print_json(const LayerTimes& t) {
  std::printf("{\"name\": %s, \"kind\": %s, \"forward_ms\": %.4f, \"backward_ms\": %.4f",
              json_string(t.layer->name()).c_str(), json_string(t.layer->kind()).c_str(), median(t.forward),
              median(t.backward));
  if (!t.children.empty()) {
    std::printf(", \"children\": [");
    for (std::size_t i = 0; i < t.children.size(); ++i) {
      if (i) std::printf(", ");
      print_json(t.children[i]);
    }
    std::printf("]");
  }
  std::printf("}");
}

int time_training(Sequential& model, const std::string& name, Index batch, const Args& a) {
  Random rng(7);
  const Tensor x = bench::random_images(batch, model.input_shape(), rng);
  const auto y = bench::random_labels(batch, model.num_classes(), rng);
  const bool fused = model.fuses_softmax();

  std::vector<LayerTimes> times(model.size());
  for (std::size_t i = 0; i < model.size(); ++i) times[i].layer = &model.layer(i);
  std::vector<double> loss_ms, update_ms, step_ms;
  std::vector<const Tensor*> inputs(model.size());
  // The gradient each layer received, for its sublayers: the next layer's dx,
  // valid until that layer's next backward (layer.hpp), so no copy in the step.
  std::vector<const Tensor*> grads(model.size());
  Tensor dlogits;
  const int warm = 3;
  for (int r = 0; r < warm + a.reps; ++r) {
    const bool timed = r >= warm;
    const FlushDenormals flush;
    for (std::size_t i = 0; i < model.size(); ++i) model.layer(i).set_mode(Mode::Training);
    const auto t_step = Clock::now();
    const Tensor* h = &x;
    for (std::size_t i = 0; i < model.size(); ++i) {
      inputs[i] = h;
      const auto t0 = Clock::now();
      h = &model.layer(i).forward(*h);
      if (timed) times[i].forward.push_back(ms_since(t0));
    }
    Layer& last = model.layer(model.size() - 1);
    auto t0 = Clock::now();
    if (fused) model.loss().score_logits(last.logits(), y, &dlogits);
    else if (model.loss().from_logits()) model.loss().score_logits(*h, y, &dlogits);
    else model.loss().score_probabilities(*h, y, &dlogits);
    if (timed) loss_ms.push_back(ms_since(t0));
    const Tensor* g = &dlogits;
    for (std::size_t i = model.size(); i-- > 0;) {
      grads[i] = g;
      t0 = Clock::now();
      g = fused && i + 1 == model.size() ? &last.backward_from_logits(*g) : &model.layer(i).backward(*g);
      if (timed) times[i].backward.push_back(ms_since(t0));
    }
    t0 = Clock::now();
    model.step();
    if (timed) {
      update_ms.push_back(ms_since(t0));
      step_ms.push_back(ms_since(t_step));
    }
    // The blocks' sublayers, outside the timed step.
    if (timed)
      for (std::size_t i = 0; i < model.size(); ++i)
        if (const auto* block = dynamic_cast<const Residual*>(&model.layer(i)))
          time_block(*block, *inputs[i], *grads[i], times[i].children);
  }

  const double step = median(step_ms);
  std::printf("%s, batch %lld, %d threads, median of %d steps (ms)\n", name.c_str(),
              static_cast<long long>(batch), a.threads, a.reps);
  std::printf("%-30s %-22s %9s %9s %8s\n", "layer", "kind", "forward", "backward", "of step");
  for (const LayerTimes& t : times) print_row(t, 0, step);
  std::printf("%-30s %-22s %9.3f %9s %6.1f %%\n", "loss", "", median(loss_ms), "", 100.0 * median(loss_ms) / step);
  std::printf("%-30s %-22s %9s %9.3f %6.1f %%\n", "optimizer step", "", "", median(update_ms),
              100.0 * median(update_ms) / step);
  std::printf("%-30s %-22s %9.3f\n", "whole step", "", step);
  std::printf("{\"model\": %s, \"batch\": %lld, \"threads\": %d, \"reps\": %d, \"step_ms\": %.4f, "
              "\"loss_ms\": %.4f, \"update_ms\": %.4f, \"layers\": [",
              json_string(name).c_str(), static_cast<long long>(batch), a.threads, a.reps, step,
              median(loss_ms), median(update_ms));
  for (std::size_t i = 0; i < times.size(); ++i) {
    if (i) std::printf(", ");
    print_json(times[i]);
  }
  std::printf("]}\n");
  return 0;
}

// One inference step's samples (chain::infer_step: one layer, or a Conv2D
// with what it applies in its output stage), and a Residual block's steps.
struct StepTimes {
  std::string name, kind;  // of the step's layers, joined by '+'
  std::vector<double> ms;
  std::vector<StepTimes> children;
};

StepTimes step_row(chain::Layers layers, std::size_t i, std::size_t n) {
  StepTimes t;
  for (std::size_t k = i; k < i + n; ++k) {
    t.name += (k > i ? "+" : "") + std::string(layers[k]->name());
    t.kind += (k > i ? "+" : "") + std::string(layers[k]->kind());
  }
  return t;
}

// Runs a chain's inference on x step by step as SlicedInference::infer does (sliced_inference.hpp),
// ping-ponging between a and b, each step's time into rows[row], rows[row +
// 1], ... (made on the first run; `row` ends past the chain's). Returns the
// tensor holding the output.
const Tensor& time_chain(chain::Layers layers, const Tensor& x, Tensor& a, Tensor& b, std::vector<StepTimes>& rows,
                         std::size_t& row, bool timed) {
  const Tensor* in = &x;
  Tensor* out = &a;
  for (std::size_t i = 0; i < layers.size(); ++row) {
    const std::size_t n = chain::step_size(layers, i, layers.size());
    if (rows.size() == row) rows.push_back(step_row(layers, i, n));
    const auto t0 = Clock::now();
    chain::infer_step(layers, i, layers.size(), *in, *out);
    if (timed) rows[row].ms.push_back(ms_since(t0));
    i += n;
    in = out;
    out = out == &a ? &b : &a;
  }
  return *in;
}

// A Residual block's inference cut into the steps Residual::infer runs: its
// main path's, its shortcut's, then the sum through the block's activation.
void time_block_inference(const Residual& block, const Tensor& x, std::vector<StepTimes>& rows) {
  Tensor a, b, c, d, y;
  std::size_t row = 0;
  const Tensor& h = time_chain(block.main_path(), x, a, b, rows, row, true);
  const Tensor& s = block.shortcut_path().empty() ? x : time_chain(block.shortcut_path(), x, c, d, rows, row, true);
  if (rows.size() == row) rows.push_back({.name = "sum", .kind = "Add"});
  const auto t0 = Clock::now();
  block.add_paths(h, s, y);
  rows[row].ms.push_back(ms_since(t0));
}

void print_step(const StepTimes& t, int depth, double pass) {
  const double ms = median(t.ms);
  const std::string name = std::string(static_cast<std::size_t>(2 * depth), ' ') + t.name;
  std::printf("%-42s %-40s %9.3f %6.1f %%\n", name.c_str(), t.kind.c_str(), ms, 100.0 * ms / pass);
  for (const StepTimes& c : t.children) print_step(c, depth + 1, pass);
}

void print_step_json(const StepTimes& t) {
  std::printf("{\"name\": %s, \"kind\": %s, \"ms\": %.4f", json_string(t.name).c_str(), json_string(t.kind).c_str(),
              median(t.ms));
  if (!t.children.empty()) {
    std::printf(", \"children\": [");
    for (std::size_t i = 0; i < t.children.size(); ++i) {
      if (i) std::printf(", ");
      print_step_json(t.children[i]);
    }
    std::printf("]");
  }
  std::printf("}");
}

// predict's work on one slice: every inference step of the model, one thread.
int time_inference(const Sequential& model, const std::string& name, Index batch, const Args& a) {
  set_threads(1);
  Random rng(7);
  const Tensor x = bench::random_images(batch, model.input_shape(), rng);
  std::vector<StepTimes> rows;
  std::vector<double> pass_ms;
  Tensor ping, pong;
  const FlushDenormals flush;
  const int warm = 3;
  for (int r = 0; r < warm + a.reps; ++r) {
    const bool timed = r >= warm;
    std::size_t row = 0;
    const auto t0 = Clock::now();
    time_chain(model.layers(), x, ping, pong, rows, row, timed);
    if (!timed) continue;
    pass_ms.push_back(ms_since(t0));
    // The blocks' steps, outside the timed pass, from the input the block had.
    const Tensor* in = &x;
    Tensor* out = &ping;
    row = 0;
    for (std::size_t i = 0; i < model.size(); ++row) {
      if (const auto* block = dynamic_cast<const Residual*>(&model.layer(i)))
        time_block_inference(*block, *in, rows[row].children);
      i += chain::infer_step(model.layers(), i, model.size(), *in, *out);
      in = out;
      out = out == &ping ? &pong : &ping;
    }
  }
  const double pass = median(pass_ms);
  std::printf("%s inference, a slice of %lld images on 1 thread, median of %d passes (ms)\n", name.c_str(),
              static_cast<long long>(batch), a.reps);
  std::printf("%-42s %-40s %9s %8s\n", "step", "kind", "ms", "of pass");
  for (const StepTimes& t : rows) print_step(t, 0, pass);
  std::printf("%-42s %-40s %9.3f   (%.0f images/s on this thread)\n", "whole pass", "", pass,
              1000.0 * static_cast<double>(batch) / pass);
  std::printf("{\"model\": %s, \"mode\": \"inference\", \"batch\": %lld, \"threads\": 1, \"reps\": %d, "
              "\"pass_ms\": %.4f, \"steps\": [",
              json_string(name).c_str(), static_cast<long long>(batch), a.reps, pass);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (i) std::printf(", ");
    print_step_json(rows[i]);
  }
  std::printf("]}\n");
  return 0;
}

int run(const Args& a) {
  const bench::SuiteModel* m = a.model.empty() ? nullptr : bench::find_suite_model(a.model);
  if (!a.model.empty() && !m)
    throw UsageError("--model: unknown model \"" + a.model + "\"; expected seed, vgg, photo, wide, odd, mlp or resnet");
  set_threads(a.threads);
  Sequential model = m ? m->build(a.seed) : load_model(a.model_file);
  const std::string name = m ? std::string(m->name) : std::filesystem::path(a.model_file).filename().string();
  if (a.inference) return time_inference(model, name, a.batch > 0 ? a.batch : 32, a);
  return time_training(model, name, a.batch > 0 ? a.batch : m ? m->train_batch : 32, a);
}

}  // namespace

int main(int argc, char** argv) {
  return loom::cli::run_main("loom_layer_times", [&] { return run(parse(argc, argv)); });
}
