#pragma once
// AdamW (Loshchilov & Hutter): Adam with decoupled weight decay, as Keras's
// and PyTorch's AdamW. It is Adam (adam.hpp) with weight_decay set; only
// the default differs: Keras's 0.004 when the options leave it unset.
//   w -= lr * weight_decay * w      (parameters that decay: Param::decays())
//   then Adam's update.

#include "loom/optimizers/adam.hpp"

namespace loom {

class AdamW final : public Adam {
 public:
  static constexpr float kDefaultWeightDecay = 0.004f;

  /// Options as Adam's; a weight_decay of 0 (unset) becomes kDefaultWeightDecay.
  /// (For no decay at all, use Adam.)
  explicit AdamW(AdamOptions o = {}) : Adam(with_default_decay(std::move(o)), "AdamW") {}

  std::string_view kind() const override { return "AdamW"; }
  std::unique_ptr<Optimizer> clone() const override { return std::make_unique<AdamW>(*this); }

 private:
  static AdamOptions with_default_decay(AdamOptions o) {
    if (o.weight_decay == 0.0f) o.weight_decay = kDefaultWeightDecay;
    return o;
  }
};

}  // namespace loom
