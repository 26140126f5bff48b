#pragma once
// Sequential: a stack of layers, trained and used as in Keras.
//
//   Sequential model(Shape{28, 28, 1}, /*seed=*/42);
//   model.add(Conv2D({.filters = 32, .kernel = 3, .activation = Activation::ReLU}));
//   ...
//   model.compile(Adam(), SparseCategoricalCrossentropy(), {"accuracy"});
//   model.summary();
//   History h = model.fit(train, {.epochs = 5, .batch_size = 32});
//   Evaluation e = model.evaluate(test);
//
// Each layer is built when it is added: its input shape is the previous
// layer's output, a shape that does not fit is a ShapeError naming the layer,
// and weights are drawn from the model's seeded generator, so the seed fixes
// the initial weights.
//
// fit is a thin loop over the public training steps (train_batch = forward,
// loss_and_backward, step), so a research loop can use them directly.
//
// Thread safety: fit, train_batch and the other non-const members mutate the
// model: one thread at a time. predict and evaluate are const, keep all their
// state on the calling thread and may run from many threads at once on one
// model (as long as no thread trains it meanwhile).

#include <algorithm>
#include <cmath>
#include <concepts>
#include <filesystem>
#include <limits>
#include <optional>
#include <iostream>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "loom/activation.hpp"
#include "loom/data/samples.hpp"
#include "loom/denormals.hpp"
#include "loom/freed_memory.hpp"
#include "loom/io/model_file.hpp"
#include "loom/layer.hpp"
#include "loom/layers/layer_chain.hpp"
#include "loom/loss.hpp"
#include "loom/optimizers/optimizer.hpp"
#include "loom/parallel.hpp"
#include "loom/random.hpp"
#include "loom/sliced_inference.hpp"
#include "loom/test_time_augmentation.hpp"
#include "loom/threads.hpp"
#include "loom/training/fit_options.hpp"
#include "loom/training/history.hpp"

namespace loom {

/// Mean loss and accuracy over a data set.
struct Evaluation {
  double loss = 0.0;
  double accuracy = 0.0;
};

class Sequential {
 public:
  explicit Sequential(Shape input, std::uint64_t seed = 0) : input_(input), rng_(seed) {
    if (input.empty()) throw ShapeError("Sequential: the input shape must not be empty");
    keep_freed_memory();  // once per process: inference reuses freed memory (freed_memory.hpp)
  }

  /// Builds the layer on the current output shape and appends it.
  template <std::derived_from<Layer> L>
  L& add(L layer) {
    return static_cast<L&>(add(std::make_unique<L>(std::move(layer))));
  }

  Layer& add(std::unique_ptr<Layer> layer) {
    if (!layer) throw UsageError("Sequential::add: null layer");
    if (compiled()) throw UsageError("Sequential::add: the model is already compiled; add every layer first");
    // Names are unique over the model, sublayers of composite layers included.
    for_each_layer(*layer, [&](Layer& l) {
      if (l.name().empty()) l.set_name(unique_name(l.name_stem(), *layer));
    });
    layer->build(output_shape(), rng_);
    layers_.push_back(std::move(layer));
    chain::fuse(layers_);  // pairs that train as one pass: BatchNormalization and ReLU, Conv2D and MaxPool2D
    return *layers_.back();
  }

  /// Fixes the optimizer (copied), the loss and the metrics; checks that the
  /// output fits the loss. Metrics: "accuracy" (alias "acc") or none.
  void compile(const Optimizer& optimizer, SparseCategoricalCrossentropy loss = SparseCategoricalCrossentropy(),
               const std::vector<std::string>& metrics = {"accuracy"}) {
    if (layers_.empty()) throw UsageError("Sequential::compile: the model has no layers");
    const Shape out = output_shape();
    if (out.rank() != 1 || out[0] < 2)
      throw ShapeError("Sequential::compile: sparse categorical cross-entropy needs a flat output of at least 2 "
                       "class scores, but the last layer " + layers_.back()->name() + " (" +
                       std::string(layers_.back()->kind()) + ") outputs " + out.to_string());
    for (const std::string& m : metrics)
      if (m != "accuracy" && m != "acc")
        throw UsageError("Sequential::compile: unknown metric \"" + m + "\"; supported: \"accuracy\"");
    loss_ = loss;
    fused_softmax_ = !loss.from_logits() && layers_.back()->ends_with_softmax();
    // Nothing consumes dL/d(input), so the first layer may skip computing it.
    for (auto& l : layers_) l->set_needs_input_gradient(l != layers_.front());
    params_.clear();
    weights_.clear();
    for (auto& l : layers_)
      for_each_param(*l, [&](Layer&, Param& p) {
        weights_.push_back(&p);
        if (p.trainable) params_.push_back(&p);
      });
    optimizer_ = optimizer.clone();
    optimizer_->build(params_);
  }

  bool compiled() const { return optimizer_ != nullptr; }
  /// Whether training fuses the last layer's softmax into the loss
  /// (loss_and_backward scores its logits and calls backward_from_logits).
  bool fuses_softmax() const { return fused_softmax_; }
  const Shape& input_shape() const { return input_; }
  Shape output_shape() const { return layers_.empty() ? input_ : layers_.back()->output_shape(); }
  Index num_classes() const { return output_shape().channels(); }
  std::size_t size() const { return layers_.size(); }
  /// The layers in order, for tools that walk them (as a composite's children()).
  chain::Layers layers() const { return layers_; }
  Layer& layer(std::size_t i) { return *layers_.at(i); }
  const Layer& layer(std::size_t i) const { return *layers_.at(i); }
  Optimizer& optimizer() {
    require_compiled("optimizer");
    return *optimizer_;
  }
  /// The trainable parameters, which the optimizer updates (after compile).
  std::span<Param* const> params() { return params_; }
  /// Every parameter, trainable or not (BatchNorm's moving statistics): what
  /// a model file holds (after compile).
  std::span<Param* const> weights() { return weights_; }
  Index param_count() const {
    Index n = 0;
    for (const auto& l : layers_) n += l->param_count();
    return n;
  }
  Index trainable_param_count() const {
    Index n = 0;
    for (const auto& l : layers_) n += l->trainable_param_count();
    return n;
  }

  const SparseCategoricalCrossentropy& loss() const { return loss_; }
  const Optimizer& optimizer() const {
    require_compiled("optimizer");
    return *optimizer_;
  }
  /// The History of the most recent fit (as Keras's model.history); restored
  /// with the model from a file that holds one.
  const History& history() const { return history_; }
  void set_history(History h) { history_ = std::move(h); }

  /// Saves the model to a file (see io/model_file.hpp), atomically.
  void save(const std::filesystem::path& path, const SaveOptions& options = {}) const { save_model(*this, path, options); }

  /// The Keras table: layer (type), output shape, parameter count, and
  /// totals, trainable and not. A composite layer's sublayers follow it,
  /// indented, their parameters counted in its row.
  void summary(std::ostream& os = std::cout) const {
    std::size_t first = 28;  // Keras's column width, wider when a layer's label needs it
    for (const auto& top : layers_)
      for_each_nested(static_cast<const Layer&>(*top), [&](const Layer& l, int depth) {
        first = std::max(first, 2 * static_cast<std::size_t>(depth) + l.name().size() + l.kind().size() + 4);
      });
    const std::string rule(first + 37, '_'), double_rule(first + 37, '=');
    auto row = [&](const std::string& a, const std::string& b, const std::string& c) {
      os << ' ' << a << std::string(first - a.size(), ' ') << b
         << std::string(b.size() < 26 ? 26 - b.size() : 1, ' ') << c << '\n';
    };
    os << "Model: \"sequential\"\n" << rule << '\n';
    row("Layer (type)", "Output Shape", "Param #");
    os << double_rule << '\n';
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      for_each_nested(static_cast<const Layer&>(*layers_[i]), [&](const Layer& l, int depth) {
        row(std::string(2 * static_cast<std::size_t>(depth), ' ') + l.name() + " (" + std::string(l.kind()) + ")",
            l.output_shape().to_string(), std::to_string(l.param_count()));
      });
      if (i + 1 < layers_.size()) os << '\n';
    }
    os << double_rule << '\n';
    os << "Total params: " << with_commas(param_count()) << '\n';
    os << "Trainable params: " << with_commas(trainable_param_count()) << '\n';
    os << "Non-trainable params: " << with_commas(param_count() - trainable_param_count()) << '\n' << rule << '\n';
  }
  std::string summary_string() const {
    std::ostringstream s;
    summary(s);
    return s.str();
  }

  // ---- training steps, public for custom loops -----------------------------

  /// Forward pass over a batch; layers keep what backward needs, and may
  /// read x again in loss_and_backward: keep x unchanged until then. Training
  /// mode (fit's) by default: batch statistics, dropout. A custom loop may
  /// ask for Mode::Inference and still backpropagate (fine-tuning with
  /// frozen statistics); predict and evaluate always infer.
  const Tensor& forward(const Tensor& x, Mode mode = Mode::Training) {
    check_batch(x, "forward");
    for (auto& l : layers_)
      if (l->mode() != mode) l->set_mode(mode);
    const Tensor* h = &x;
    outputs_.resize(layers_.size());
    for (std::size_t i = 0; i < layers_.size(); ++i) outputs_[i] = h = &layers_[i]->forward(*h);
    last_output_ = h;
    return *h;
  }

  /// After forward: scores the batch against labels and backpropagates, so
  /// every parameter's grad holds dL/dw of the batch mean loss.
  BatchScore loss_and_backward(std::span<const Label> labels) {
    require_compiled("loss_and_backward");
    if (!last_output_) throw UsageError("loss_and_backward called before forward");
    Layer& last = *layers_.back();
    BatchScore score;
    const Tensor* g;
    if (fused_softmax_) {
      score = loss_.score_logits(last.logits(), labels, &dout_);
      g = &last.backward_from_logits(dout_);
    } else {
      const Tensor& out = *last_output_;
      score = loss_.from_logits() ? loss_.score_logits(out, labels, &dout_) : loss_.score_probabilities(out, labels, &dout_);
      g = &last.backward(dout_);
    }
    for (std::size_t i = layers_.size() - 1; i-- > 0;) g = &layers_[i]->backward(*g);
    return score;
  }

  /// One optimizer update from the current gradients.
  void step() {
    require_compiled("step");
    optimizer_->step(params_);
  }

  /// forward + loss_and_backward + step on one batch.
  BatchScore train_batch(const Tensor& x, std::span<const Label> labels) {
    require_compiled("train_batch");
    const FlushDenormals flush;
    forward(x);
    const BatchScore s = loss_and_backward(labels);
    step();
    return s;
  }

  // ---- Keras-style training and use ---------------------------------------

  /// Trains for o.epochs over data and returns their History (also kept as
  /// history(), and saved with the model). After every epoch the optimizer
  /// hears the validation loss (else the training loss): Optimizer::end_epoch,
  /// for its learning-rate schedule. With o.checkpoint, writes a
  /// checkpoint after every epoch and resumes from one it finds. With
  /// o.collective, trains data-parallel with the other ranks; o.callbacks
  /// are called along the way (FitOptions). The loop is training/fit_loop.hpp.
  History fit(const Samples& data, const FitOptions& o = {});

  History fit(const Tensor& x, std::span<const Label> y, const FitOptions& o = {}) {
    return fit(TensorSamples(x, y, input_), o);
  }

  /// Mean loss and accuracy over every sample, in batches of batch_size.
  /// batch_size only bounds how many samples go through the layers at once:
  /// inference cuts batches into cache-sized slices (sliced_inference.hpp).
  /// Tta::Flip scores the mean probabilities of each image and its mirror
  /// (test_time_augmentation.hpp).
  Evaluation evaluate(const Samples& data, Index batch_size = 32, Tta tta = Tta::None) const {
    require_compiled("evaluate");
    check_samples(data, "evaluate");
    if (batch_size <= 0) throw UsageError("evaluate: batch_size must be positive, got " + std::to_string(batch_size));
    check_tta(tta, input_, "evaluate");
    return evaluate_range(data, 0, data.size(), batch_size, tta);
  }
  Evaluation evaluate(const Tensor& x, std::span<const Label> y, Index batch_size = 32, Tta tta = Tta::None) const {
    return evaluate(TensorSamples(x, y, input_), batch_size, tta);
  }

  /// Class probabilities (N, 1, 1, K) for a batch x (N, input shape): the
  /// model's output, with a softmax applied when it was compiled with
  /// from_logits (before compile, the output as it is). Always (N, 1, 1, K)
  /// for a compiled model. Inference path: const, safe from many threads.
  /// batch_size bounds the samples per pass; the outputs do not depend on it
  /// nor on the thread count. Tta::Flip: the mean probabilities of each
  /// image and its mirror (test_time_augmentation.hpp).
  Tensor predict(const Tensor& x, Index batch_size = 32, Tta tta = Tta::None) const {
    return probabilities(layer_outputs(x, layers_.size(), batch_size, "predict", tta));
  }
  /// The same over every sample of a data set, in order, without copying it into one tensor first.
  Tensor predict(const Samples& data, Index batch_size = 32, Tta tta = Tta::None) const {
    return probabilities(layer_outputs(data, layers_.size(), batch_size, "predict", tta));
  }

  /// Embeddings: the output of the named layer (default: the input of the
  /// last Dense layer) for every sample, flattened to (N, 1, 1, D) and
  /// L2-normalised. The inference path of predict: const, safe from many
  /// threads. Defined in search/embed.hpp.
  Tensor embed(const Tensor& x, std::string_view layer = {}, Index batch_size = 32) const;
  Tensor embed(const Samples& data, std::string_view layer = {}, Index batch_size = 32) const;

 /// After forward(x) and loss_and_backward: empty when the batch's loss and
  /// every gradient are finite; otherwise where a NaN or infinity first
  /// appeared, for an error message ("the output of dense_1 (Dense) is not finite").
  std::string non_finite_in_last_batch(const Tensor& x, const BatchScore& s) const {
    bool gradients_finite = true;
    for (const Param* p : params_) gradients_finite = gradients_finite && all_finite(p->grad.data(), p->size());
    if (std::isfinite(s.loss_sum) && gradients_finite) return {};
    // Rare path: find the first place, in the order values flow, with a non-finite value.
    if (!all_finite(x)) return "the input batch is not finite";
    auto label = [](const Layer& l) { return l.name() + " (" + std::string(l.kind()) + ")"; };
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      std::string bad;
      for_each_param(static_cast<const Layer&>(*layers_[i]), [&](const Layer& owner, const Param& p) {
        if (bad.empty() && !all_finite(p.value.data(), p.size())) bad = "the " + p.name + " of " + label(owner) + " is not finite";
      });
      if (!bad.empty()) return bad;
      if (!all_finite(*outputs_[i])) return "the output of " + label(*layers_[i]) + " is not finite";
    }
    if (!std::isfinite(s.loss_sum)) return "the loss is not finite";
    for (std::size_t i = layers_.size(); i-- > 0;) {  // backward order: where backpropagation met it first
      std::string bad;
      for_each_param(static_cast<const Layer&>(*layers_[i]), [&](const Layer& owner, const Param& p) {
        if (bad.empty() && p.trainable && !all_finite(p.grad.data(), p.size()))
          bad = "the gradient of " + label(owner) + " " + p.name + " is not finite";
      });
      if (!bad.empty()) return bad;
    }
    return {};
  }

 private:
  friend class FitLoop;  // training/fit_loop.hpp: the training loop, with access to the parameters and optimizer

  // The output of the first `depth` layers for every sample, (N, that layer's output shape);
  // the body of predict and embed.
  Tensor layer_outputs(const Tensor& x, std::size_t depth, Index batch_size, const char* what,
                       Tta tta = Tta::None) const {
    if (layers_.empty()) throw UsageError(std::string(what) + ": the model has no layers");
    check_batch(x, what);
    check_tta(tta, input_, what);
    const Index per = input_.size();
    return inference().collect(x.dimension(0), depth, batch_size, what,
                               [&](Index first, Index count, Tensor& xs, std::vector<Label>&) {
                                 resize_batch(xs, count, input_);
                                 std::copy_n(x.data() + first * per, count * per, xs.data());
                               }, tta);
  }
  Tensor layer_outputs(const Samples& data, std::size_t depth, Index batch_size, const char* what,
                       Tta tta = Tta::None) const {
    if (layers_.empty()) throw UsageError(std::string(what) + ": the model has no layers");
    check_sample_shape(data, what);
    check_tta(tta, input_, what);
    return inference().collect(data.size(), depth, batch_size, what,
                               [&](Index first, Index count, Tensor& xs, std::vector<Label>& labels) {
                                 gather_range(data, first, count, xs, labels);
                               }, tta);
  }

  // How inference runs over many samples: in cache-sized slices, one per
  // thread at a time (sliced_inference.hpp).
  SlicedInference inference() const { return {layers_, input_, loss_.from_logits()}; }

  // A from_logits model's outputs as probabilities all the same.
  Tensor probabilities(Tensor out) const {
    if (!ends_in_probabilities()) activate(Activation::Softmax, out, out);
    return out;
  }

  static bool all_finite(const float* p, Index n) { return loom::all_finite(p, n); }  // parallel.hpp
  static bool all_finite(const Tensor& t) { return all_finite(t.data(), t.size()); }
  static double mean(double sum, Index count) {
    return count > 0 ? sum / static_cast<double>(count) : std::numeric_limits<double>::quiet_NaN();
  }

  bool ends_in_probabilities() const { return !loss_.from_logits(); }

  // The generators of the layers that draw (Dropout), depth first: saved in
  // checkpoints, so a resumed run draws what an uninterrupted one would.
  std::vector<Random*> layer_generators() {
    std::vector<Random*> generators;
    for (auto& l : layers_)
      for_each_layer(*l, [&](Layer& sub) {
        if (Random* g = sub.generator()) generators.push_back(g);
      });
    return generators;
  }
  std::vector<Random::State> layer_generator_states() {
    std::vector<Random::State> states;
    for (const Random* g : layer_generators()) states.push_back(g->state());
    return states;
  }
  void set_layer_generator_states(const std::vector<Random::State>& states, const std::string& source) {
    const std::vector<Random*> generators = layer_generators();
    if (generators.size() != states.size())
      throw UsageError("fit: checkpoint " + source + " holds " + std::to_string(states.size()) +
                       " layer generators, the model has " + std::to_string(generators.size()));
    for (std::size_t i = 0; i < states.size(); ++i) generators[i]->set_state(states[i]);
  }

  Evaluation evaluate_range(const Samples& data, Index begin, Index end, Index batch_size = 32,
                            Tta tta = Tta::None) const {
    const BatchScore total = score_range(data, begin, end, batch_size, tta);
    const double n = static_cast<double>(end - begin);
    return {total.loss_sum / n, static_cast<double>(total.correct) / n};
  }

  // Summed loss and correct predictions over samples [begin, end), in slices
  // independent of the thread count: the loss is summed slice by slice.
  BatchScore score_range(const Samples& data, Index begin, Index end, Index batch_size = 32,
                         Tta tta = Tta::None) const {
    const SlicedInference slices = inference();
    const Index slice = slices.cache_slice(batch_size);
    std::vector<BatchScore> scores(static_cast<std::size_t>((end - begin + slice - 1) / slice));
    slices.run(
        begin, end, slice,
        [&](Index first, Index count, Tensor& x, std::vector<Label>& labels) {
          gather_range(data, first, count, x, labels);
        },
        [&](Index slice, Index, const Tensor& out, const std::vector<Label>& labels) {
          // Scored as Keras does: probabilities (clipped) from a softmax model, logits from a from_logits one.
          scores[static_cast<std::size_t>(slice)] =
              loss_.from_logits() ? loss_.score_logits(out, labels) : loss_.score_probabilities(out, labels);
        },
        std::numeric_limits<std::size_t>::max(), tta);
    BatchScore total;  // summed in slice order: the same result for any thread count
    for (const BatchScore& sc : scores) {
      total.loss_sum += sc.loss_sum;
      total.correct += sc.correct;
    }
    return total;
  }

  // Samples [first, first + count) of data into x and labels.
  static void gather_range(const Samples& data, Index first, Index count, Tensor& x, std::vector<Label>& labels) {
    std::vector<Index> idx(static_cast<std::size_t>(count));
    std::iota(idx.begin(), idx.end(), first);
    labels.resize(static_cast<std::size_t>(count));
    data.gather(idx, x, labels);
  }

  void require_compiled(const char* what) const {
    if (!compiled())
      throw UsageError(std::string(what) + " called before compile: call model.compile(optimizer, loss, metrics) first");
  }

  void check_sample_shape(const Samples& data, const char* what) const {
    if (data.size() <= 0) throw DataError(std::string(what) + ": the data set is empty");
    if (data.shape() != input_)
      throw ShapeError(std::string(what) + ": samples of shape " + data.shape().to_string() +
                       " do not fit the model's input " + input_.to_string());
  }

  // Checked before the first batch, so bad data never half-trains a model.
  void check_samples(const Samples& data, const char* what) const {
    check_sample_shape(data, what);
    const Index k = num_classes();
    for (Index i = 0; i < data.size(); ++i)
      if (const Label y = data.label(i); y < 0 || y >= k)
        throw DataError(std::string(what) + ": label " + std::to_string(y) + " of sample " + std::to_string(i) +
                        " is outside the model's " + std::to_string(k) + " classes [0, " + std::to_string(k - 1) + "]");
  }

  void check_batch(const Tensor& x, const char* what) const {
    if (x.dimension(0) <= 0) throw DataError(std::string(what) + ": the batch is empty");
    if (!holds(x, input_))
      throw ShapeError(std::string(what) + ": a batch of dimensions " + dims_string(x) +
                       " does not fit the model's input " + input_.to_string());
  }

  // The stem, numbered after the layers of that stem already named (in the
  // model, and in `adding`, the layer being added, named depth first).
  std::string unique_name(std::string_view stem, const Layer& adding) const {
    std::size_t same = 0;
    auto count = [&](const Layer& l) { same += l.name_stem() == stem && !l.name().empty(); };
    for (const auto& l : layers_) for_each_layer(static_cast<const Layer&>(*l), count);
    for_each_layer(adding, count);
    return same == 0 ? std::string(stem) : std::string(stem) + "_" + std::to_string(same);
  }

  // Appended digit by digit: g++ 12 warns (falsely) about string::insert here once inlined.
  static std::string with_commas(Index v) {
    const std::string digits = std::to_string(v);
    std::string s;
    for (std::size_t i = 0; i < digits.size(); ++i) {
      if (i > 0 && digits[i - 1] != '-' && (digits.size() - i) % 3 == 0) s += ',';
      s += digits[i];
    }
    return s;
  }

  Shape input_;
  Random rng_;
  std::vector<std::unique_ptr<Layer>> layers_;
  SparseCategoricalCrossentropy loss_;
  bool fused_softmax_ = false;
  std::unique_ptr<Optimizer> optimizer_;
  std::vector<Param*> params_;   // every layer's trainable parameters, in layer order
  std::vector<Param*> weights_;  // every parameter, trainable or not, in model-file order
  const Tensor* last_output_ = nullptr;  // what the last forward returned (owned by the last layer)
  std::vector<const Tensor*> outputs_;    // every layer's output of the last forward (owned by the layers)
  History history_;
  Tensor dout_;   // (B, K) dL/d(output or logits)
};

}  // namespace loom

// Sequential::fit and Sequential::embed, last so that they see the whole class
// (as model_file.hpp does with Sequential).
#include "loom/training/fit_loop.hpp"  // IWYU pragma: export
#include "loom/search/embed.hpp"      // IWYU pragma: export
