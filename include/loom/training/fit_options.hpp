#pragma once
// Options of Sequential::fit, named as in Keras.

#include <cstdint>
#include <ostream>

#include "loom/tensor.hpp"

namespace loom {

struct FitOptions {
  int epochs = 1;
  Index batch_size = 32;
  bool shuffle = true;             // reshuffle the training samples every epoch
  double validation_split = 0.0;   // fraction in [0, 1) held out from the end, before shuffling, as Keras
  std::uint64_t seed = 0;          // seeds the shuffling; weights are seeded by the model
  int verbose = 1;                 // 0 silent, 1 progress bar, 2 one line per epoch
  std::ostream* log = nullptr;     // where progress goes; nullptr means std::cerr
};

}  // namespace loom
