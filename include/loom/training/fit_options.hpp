#pragma once
// Options of Sequential::fit, named as in Keras.
//
// Thread safety: plain options, read by fit on the calling thread.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <ostream>
#include <vector>

#include "loom/data/augmentation.hpp"
#include "loom/data/samples.hpp"
#include "loom/tensor.hpp"
#include "loom/training/callback.hpp"
#include "loom/training/collective.hpp"

namespace loom {

/// What fit does when a batch's loss or gradients are NaN or infinite.
enum class NonFinite {
  Stop,       // throw NumericError naming the epoch, the batch and the first layer where it appeared
  SkipBatch,  // leave the weights alone for that batch, count it in EpochRecord::skipped_batches
};

struct FitOptions {
  int epochs = 1;
  Index batch_size = 32;
  bool shuffle = true;             // reshuffle the training samples every epoch
  double validation_split = 0.0;   // fraction in [0, 1) held out from the end, before shuffling, as Keras
  std::uint64_t seed = 0;          // seeds the shuffling; weights are seeded by the model
  int verbose = 1;                 // 0 silent, 1 progress bar, 2 one line per epoch
  std::ostream* log = nullptr;     // where progress goes; nullptr means std::cerr
  // Scored after every epoch as val_loss/val_accuracy instead of a split
  // (Keras's validation_data); not owned, must outlive fit. Exclusive with validation_split.
  const Samples* validation_data = nullptr;
  // When set, fit writes a checkpoint here atomically after every epoch and,
  // when the file exists at the start, resumes from it (same data and options
  // required): a run killed at any point and restarted with the same call
  // ends with the same weights, bit for bit, as an uninterrupted one. A path
  // that cannot be written (missing or read-only directory) is an IoError
  // before the first step, not after an epoch's work.
  std::filesystem::path checkpoint;
  NonFinite on_non_finite = NonFinite::Stop;
  // Data-parallel training (training/data_parallel.hpp): when set, every rank
  // calls fit with the same data and options; each trains on its share of
  // every batch of batch_size samples (the global batch) and the gradients
  // are summed over the ranks before every step, so all ranks end with the
  // same weights and History. Rank 0's weights are broadcast first; only rank
  // 0 prints progress and reads and writes the checkpoint. Not owned; nullptr
  // (the default) trains in this process alone.
  Collective* collective = nullptr;
  // Called at the points training/callback.hpp lists, in this order; not
  // owned, must outlive fit. Their state is kept in checkpoints.
  std::vector<Callback*> callbacks;
  // Augments every training batch on the fly (data/augmentation.hpp: random
  // crop, flip, erasing), drawn from seed, epoch, batch and position alone, so
  // resuming and the thread count change nothing; validation data never is.
  std::optional<AugmentationOptions> augmentation;
};

/// How many of n samples fit trains on when validation_split holds out the
/// rest: what a schedule that spans the run (models::fashion_mnist_best)
/// must count its steps from.
inline Index training_samples(Index n, double validation_split) {
  return static_cast<Index>(static_cast<double>(n) * (1.0 - validation_split));
}

}  // namespace loom
