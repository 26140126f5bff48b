#pragma once
// SlicedInference: how a model's inference runs over many samples (predict,
// evaluate, embed), apart from what a model is (sequential.hpp).
//
// Samples go through the layers in slices: at most batch_size, at most 32,
// and few enough that the largest activation of a slice stays within 1M
// floats (4 MB). Each thread takes whole slices through every layer with
// scratch of its own, while their activations are in cache, instead of
// every layer streaming the whole batch through memory with its threads:
// measured on 2 cores, 256 images went 1.4x (vgg) to 2x (seed) faster in
// slices of 16 to 32 than in one (bench/suite.py). Layers then run
// single-threaded (OpenMP does not nest), with no barrier between layers;
// a batch of 1,000 never materialises 1,000 images' worth of feature maps.
// Every output is per sample, so it does not depend on how the samples are
// cut into slices nor on the thread count.
//
// Thread safety: const, state on the calling thread and its workers: many
// threads may run inference over one model at once (not while it trains).

#include <algorithm>
#include <exception>
#include <limits>
#include <string>
#include <vector>

#include "loom/denormals.hpp"
#include "loom/layers/layer_chain.hpp"
#include "loom/loss.hpp"
#include "loom/parallel.hpp"
#include "loom/test_time_augmentation.hpp"
#include "loom/threads.hpp"

namespace loom {

class SlicedInference {
 public:
  /// Inference through `layers`, which take samples of shape `input`;
  /// from_logits: whether the last layer's output is logits (for Tta::Flip's mean).
  SlicedInference(chain::Layers layers, const Shape& input, bool from_logits)
      : layers_(layers), input_(input), from_logits_(from_logits) {}

  /// Samples per slice: at most batch_size, at most 32, and the largest
  /// activation within 1M floats. The thread count does not enter.
  Index cache_slice(Index batch_size) const {
    constexpr Index kMaxSamples = 32, kMaxFloats = Index{1} << 20;
    Index largest = input_.size();
    for (const auto& l : layers_) largest = std::max(largest, l->output_shape().size());
    return std::max<Index>(1, std::min({batch_size, kMaxSamples, kMaxFloats / largest}));
  }

  /// Inference through the first `depth` layers, ping-ponging between two
  /// scratch tensors of the caller's; returns the one holding the output.
  /// A BatchNormalization (and its ReLU) runs in place on the output of the
  /// layer before (chain::infer_step), never past `depth`.
  const Tensor& infer(const Tensor& x, Tensor& a, Tensor& b, std::size_t depth) const {
    const Tensor* in = &x;
    Tensor* out = &a;
    for (std::size_t i = 0; i < depth;) {
      i += chain::infer_step(layers_, i, depth, *in, *out);
      in = out;
      out = out == &a ? &b : &a;
    }
    return *in;
  }

  /// Inference over samples [begin, end) in slices of `slice` samples, spread
  /// over the threads, through the first `depth` layers (all by default;
  /// fewer for embed):
  ///   load(first, count, x, labels)   fills a slice's input (and labels)
  ///   visit(slice, first, y, labels)  consumes its output; slices are disjoint
  /// Both run on worker threads; an exception in either is rethrown here.
  /// Tta::Flip hands visit the flip mean instead of one pass (test_time_augmentation.hpp).
  template <typename Load, typename Visit>
  void run(Index begin, Index end, Index slice, Load&& load, Visit&& visit,
           std::size_t depth = std::numeric_limits<std::size_t>::max(), Tta tta = Tta::None) const {
    depth = std::min(depth, layers_.size());
    const Index slices = (end - begin + slice - 1) / slice;
    const FlushDenormals flush(slices > 1);
    std::exception_ptr error;
    struct Scratch {
      Tensor x, a, b;
      FlipMean flip;
      std::vector<Label> labels;
    };
    parallel_for_with<Scratch, Schedule::Dynamic>(slices, true, [&](Index i, Scratch& s) {
      try {
        const Index first = begin + i * slice, count = std::min(slice, end - first);
        load(first, count, s.x, s.labels);
        const auto pass = [&](const Tensor& in) -> const Tensor& { return infer(in, s.a, s.b, depth); };
        visit(i, first, tta == Tta::Flip ? s.flip(s.x, from_logits_, pass) : pass(s.x), s.labels);
      } catch (...) {
#pragma omp critical(loom_infer_error)
        if (!error) error = std::current_exception();
      }
    });
    if (error) std::rethrow_exception(error);
  }

  /// The outputs after `depth` layers of n samples, which load(first, count,
  /// x, labels) fills slice by slice, in one tensor (N, that layer's output
  /// shape): the body of predict and embed. `what` names the caller in errors.
  template <typename Load>
  Tensor collect(Index n, std::size_t depth, Index batch_size, const char* what, Load&& load,
                 Tta tta = Tta::None) const {
    if (batch_size <= 0)
      throw UsageError(std::string(what) + ": batch_size must be positive, got " + std::to_string(batch_size));
    const Shape shape = depth == 0 ? input_ : layers_[depth - 1]->output_shape();
    Tensor out;
    resize_batch(out, n, shape);
    const Index k = shape.size();
    // Outputs are per sample, the same however the batch is cut: every thread gets a slice.
    const Index per_thread = (n + threads() - 1) / threads();
    run(
        0, n, std::max<Index>(1, std::min(cache_slice(batch_size), per_thread)), load,
        [&](Index, Index first, const Tensor& y, const std::vector<Label>&) {
          std::copy_n(y.data(), y.size(), out.data() + first * k);
        },
        depth, tta);
    return out;
  }

 private:
  chain::Layers layers_;
  Shape input_;
  bool from_logits_;
};

}  // namespace loom
