#pragma once
// Test-time augmentation for predict and evaluate: with Tta::Flip, a model's
// answer for an image is the mean of its softmax probabilities for the image
// and for its mirror image (left-right). It costs two passes of inference.
//
// The mean is handed on as the model's own output would be: probabilities
// for a model ending in softmax, log-probabilities for a from_logits model
// (softmax(log p) = p, and cross-entropy from logits of log p is -log p), so
// scoring and predict treat it as they treat a single pass.
//
// Thread safety: FlipMean is scratch of one thread; parse_tta is pure.

#include <cfloat>
#include <string>
#include <string_view>

#include "loom/activation.hpp"
#include "loom/data/sample_window.hpp"
#include "loom/error.hpp"
#include "loom/parallel.hpp"
#include "loom/tensor.hpp"

namespace loom {

enum class Tta { None, Flip };

/// "none" or "flip"; anything else is a UsageError naming the value.
inline Tta parse_tta(std::string_view v) {
  if (v == "none") return Tta::None;
  if (v == "flip") return Tta::Flip;
  throw UsageError("test-time augmentation: expected \"flip\" or \"none\", got \"" + std::string(v) + "\"");
}

/// UsageError unless flip TTA can apply to samples of `input` (images, H, W, C).
inline void check_tta(Tta tta, const Shape& input, const std::string& what) {
  if (tta == Tta::Flip && input.rank() != 3)
    throw UsageError(what + ": flip test-time augmentation needs image inputs (H, W, C), but the model takes " +
                     input.to_string());
}

/// The flip mean of one slice, with scratch kept across a thread's slices.
struct FlipMean {
  Tensor mirrored, mean, other;

  /// infer(x) returns the model's output for x (valid until its next call).
  template <typename Infer>
  const Tensor& operator()(const Tensor& x, bool logits, Infer&& infer) {
    as_probabilities(infer(x), logits, mean);
    mirror_samples(x, mirrored);
    as_probabilities(infer(mirrored), logits, other);
    ArrayMap m(mean.data(), mean.size());
    m = (m + ConstArrayMap(other.data(), other.size())) * 0.5f;
    if (logits) m = m.max(FLT_MIN).log();  // a probability that underflowed stays finite
    return mean;
  }

 private:
  static void as_probabilities(const Tensor& y, bool logits, Tensor& p) {
    if (logits) activate(Activation::Softmax, y, p);
    else {
      resize_like(p, y);
      p = y;
    }
  }
};

}  // namespace loom
