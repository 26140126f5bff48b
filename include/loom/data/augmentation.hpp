#pragma once
// Data augmentation on the fly: each training batch, as fit gathers it
// (N, H, W, C floats), is changed in place before the forward pass, never
// validation or evaluation data. In this order, each step optional:
//
//   1. random crop: the sample zero-padded by `pad` on every side, then a
//      random H x W window of that (the usual "pad 4 + random crop"; 2 to 4
//      for 28 x 28 images);
//   2. horizontal flip, with probability 0.5;
//   3. random erasing (Zhong et al., 2017), with probability `erasing`: a
//      rectangle of a random area fraction in [erasing_min_area,
//      erasing_max_area] and aspect ratio (height / width, drawn uniformly in
//      log space) in [erasing_min_aspect, erasing_max_aspect], at a random
//      place, filled with 0 or with uniform noise in [0, 1); up to 10 draws
//      until one fits, else the sample is left alone (torchvision's
//      RandomErasing; the defaults are its own).
//
// Determinism: every draw of a sample comes from a Random seeded by a hash of
// (fit's seed, the epoch, the batch index, the sample's position in the
// global batch) and nothing else. So a run resumed from a checkpoint draws
// exactly what an uninterrupted one would, with no generator state to save,
// and the result does not depend on the thread count or the rank count of a
// data-parallel fit. Samples are spread over the threads.
//
// Thread safety: the options are plain values; augment_batch writes only x.

#include <cstdint>
#include <string>

#include "loom/tensor.hpp"

namespace loom {

enum class ErasingFill { Zero, Random };

struct AugmentationOptions {
  Index pad = 0;                   // random crop after zero padding by pad pixels; 0: no crop
  bool horizontal_flip = false;    // mirror left-right with probability 0.5
  float erasing = 0.0f;            // probability of random erasing; 0: none (torchvision's p is 0.5)
  float erasing_min_area = 0.02f;  // area fraction of the erased rectangle, torchvision's scale
  float erasing_max_area = 0.33f;
  float erasing_min_aspect = 0.3f; // height / width, torchvision's ratio
  float erasing_max_aspect = 3.3f;
  ErasingFill erasing_fill = ErasingFill::Zero;

  bool operator==(const AugmentationOptions&) const = default;

  /// Throws UsageError naming the option and its value when one is out of
  /// range, or when samples of `input` are not images (H, W, C) or pad
  /// exceeds their height or width.
  void validate(const Shape& input) const;
  /// "pad 4, horizontal flip, erasing 0.5 (area 0.02-0.33, aspect 0.3-3.3, fill zero)"; "none".
  std::string to_string() const;
  /// The options a list names: "pad=2,flip,erasing=0.5" (any of the three,
  /// comma-separated) or "none"; a UsageError names an item it does not know.
  /// The values are checked by validate.
  static AugmentationOptions parse(const std::string& list);
};

/// Where a batch stands in a run: all its augmentations are drawn from this.
struct BatchKey {
  std::uint64_t seed = 0;  // FitOptions::seed
  int epoch = 0;           // from 1
  Index batch = 0;         // from 0, within the epoch
};

/// The generator seed of the sample at `position` in the batch `key`: a mixed
/// hash of the four, so neighbouring batches and positions draw unrelated streams.
std::uint64_t sample_seed(const BatchKey& key, Index position);

/// Augments every sample of x (N, H, W, C) in place; sample i is drawn as
/// position first + i of the global batch (first > 0 for a data-parallel
/// rank's share). Throws UsageError when x does not hold images options fit.
void augment_batch(Tensor& x, const AugmentationOptions& options, const BatchKey& key, Index first = 0);

/// fit's one call per training batch: augment_batch with the run's options,
/// nothing when there are none.
struct BatchAugmentation {
  const AugmentationOptions* options = nullptr;
  BatchKey key;
  void operator()(Tensor& x, Index first = 0) const {
    if (options) augment_batch(x, *options, key, first);
  }
};

}  // namespace loom
