#pragma once
// Where a fit stands after an epoch, as a checkpoint records it (FitOptions::
// checkpoint). With the weights, the optimizer state and the history, this is
// everything the rest of the run depends on, so a resumed run ends bit for bit
// where an uninterrupted one would.
//
// Thread safety: a plain value.

#include <cstdint>
#include <string>
#include <vector>

#include "loom/error.hpp"
#include "loom/random.hpp"
#include "loom/training/callback.hpp"
#include "loom/tensor.hpp"

namespace loom {

struct TrainingState {
  int epochs_done = 0;             // epochs of this run completed
  Random::State shuffle_state{};   // fit's shuffling generator after those epochs
  std::vector<Index> order;        // the training samples' order after those epochs' shuffles
  std::vector<Random::State> layer_generators;  // the generators of layers that draw (Dropout), depth first
  bool stopped = false;                         // a callback stopped training after epochs_done
  std::vector<CallbackState> callback_states;   // FitOptions::callbacks' state(), in order

  // The run it belongs to: resuming under other settings is refused.
  Index samples = 0;               // samples given to fit, validation included
  Index batch_size = 0;
  std::uint64_t seed = 0;
  bool shuffle = true;
  double validation_split = 0.0;

  /// Empty when `other` describes the same run; else what differs, for the error message.
  std::string run_difference(const TrainingState& other) const {
    std::string d;
    auto note = [&](const char* what, const std::string& mine, const std::string& theirs) {
      if (mine != theirs) d += std::string(d.empty() ? "" : ", ") + what + " " + theirs + " (checkpoint) vs " + mine;
    };
    note("samples", std::to_string(samples), std::to_string(other.samples));
    note("batch_size", std::to_string(batch_size), std::to_string(other.batch_size));
    note("seed", std::to_string(seed), std::to_string(other.seed));
    note("shuffle", shuffle ? "true" : "false", other.shuffle ? "true" : "false");
    note("validation_split", detail::option_value_text(validation_split), detail::option_value_text(other.validation_split));
    return d;
  }
};

}  // namespace loom
