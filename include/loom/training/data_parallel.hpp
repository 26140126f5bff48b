#pragma once
// Data parallelism inside fit (FitOptions::collective): what one step and one
// epoch exchange with the other ranks. Every rank holds the whole model and
// draws the same shuffled order from the shared seed; of each global batch it
// trains on its own contiguous share. Then the ranks sum their gradients, and
// the batch's loss and accuracy counts, so that every rank ends the step with
// the same weights and keeps the same History. Two ways:
//
// - Sharded (ZeRO-1; when the optimizer steps_in_parts, as Adam does): the
//   parameters laid end to end are cut into one block per rank. A
//   reduce-scatter gives each rank the summed gradients of its own block, the
//   rank updates that block alone (its part of the optimizer's work), and an
//   allgather brings every rank the others' updated blocks. The optimizer's
//   state is current only for a rank's own block until
//   gather_optimizer_state, which fit calls after every epoch (checkpoints
//   and saved models hold the whole state).
// - Otherwise: one allreduce of every gradient; every rank applies the whole
//   update itself, alike.
//
// Gradients are sums, not means: a rank's gradient is the mean over its n_r
// samples, so it enters the sum weighted n_r / N, and the result is the mean
// over all N samples of the global batch (also when the last batch does not
// split evenly, or leaves a rank none). The weights are powers of two when a
// batch splits evenly over a power of two of ranks, as 32 over 2.
//
// Thread safety: as fit, one thread.

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "loom/io/model_file.hpp"
#include "loom/layer.hpp"
#include "loom/loss.hpp"
#include "loom/optimizers/optimizer.hpp"
#include "loom/parallel.hpp"
#include "loom/training/checkpoint_state.hpp"
#include "loom/training/collective.hpp"

namespace loom {

/// The part [first, first + count) of n items that falls to one rank.
struct Share {
  Index first = 0;
  Index count = 0;
};

class DataParallel {
 public:
  DataParallel(Collective& c, const Optimizer& optimizer) : c_(c), sharded_(optimizer.steps_in_parts()) {}

  int rank() const { return c_.rank(); }
  int ranks() const { return c_.size(); }
  /// Rank 0 prints, reads and writes files.
  bool leader() const { return c_.rank() == 0; }

  /// This rank's contiguous share of n items; shares differ by at most one.
  Share share(Index n) const {
    const Index r = c_.rank(), s = c_.size();
    const Index first = n * r / s;
    return {first, n * (r + 1) / s - first};
  }

  /// Rank 0's weights on every rank, so all start identical whatever drew them.
  void broadcast_weights(std::span<Param* const> params) {
    const Parts parts = values(params);
    pack(parts, 1.0f);
    c_.broadcast(std::as_writable_bytes(std::span<float>(flat_)), 0);
    unpack(parts, 0, flat_.size());
  }

  /// Before: every grad is dL/dw of the mean loss over this rank's `local`
  /// samples (not read when local is 0) and score holds their sums. After:
  /// when every summed value is finite, step() may follow and score holds
  /// the batch's sums, the same on every rank, and it returns true. Otherwise
  /// it returns false on every rank and leaves the grads alone (for
  /// non_finite_in_last_batch).
  /// Sharded: this rank's block of the summed gradients waits in flat_ for
  /// step(), and the grads are left as they were. Otherwise every grad becomes
  /// dL/dw of the mean over the `global` samples of the batch, and the loss
  /// sum travels as a float with them (relative error 1e-7, in the History only).
  bool reduce_gradients(std::span<Param* const> params, Index local, Index global, BatchScore& score) {
    const float weight = static_cast<float>(local) / static_cast<float>(global);
    const Parts parts = grads(params);
    if (local > 0) pack(parts, weight);
    else flat_.assign(flat_size(parts), 0.0f);
    if (sharded_) return reduce_scatter(score);
    flat_.push_back(static_cast<float>(score.loss_sum));
    flat_.push_back(static_cast<float>(score.correct));  // at most a batch: exact in a float
    c_.allreduce_sum(flat_);
    if (!all_finite(flat_.data(), static_cast<Index>(flat_.size()))) return false;
    score.correct = static_cast<Index>(flat_.back());
    flat_.pop_back();
    score.loss_sum = flat_.back();
    flat_.pop_back();
    unpack(parts, 0, flat_.size());
    return true;
  }

  /// The optimizer's step after reduce_gradients returned true; every rank
  /// ends it with the same weights.
  void step(std::span<Param* const> params, Optimizer& optimizer) {
    if (!sharded_) return optimizer.step(params);
    const std::span<float> mine = own_block();
    optimizer.step_part(params, static_cast<Index>(bounds_[rank_index()]), mine);
    share_own_blocks(values(params));
  }

  /// Sharded: the optimizer's state of every block from the rank that
  /// updates it, so that every rank holds all of it (for a checkpoint, a
  /// saved model, or a fit with another rank count). Otherwise nothing to do.
  void gather_optimizer_state(std::span<Param* const> params, Optimizer& optimizer) {
    if (!sharded_) return;
    Optimizer::State state = optimizer.state();
    const std::size_t n = params.size();
    bool fits = n > 0 && state.slots.size() % n == 0;
    for (std::size_t i = 0; fits && i < state.slots.size(); ++i) fits = state.slots[i].size() == params[i % n]->size();
    if (!fits)
      throw UsageError(std::string(optimizer.kind()) +
                       ": its state is not one slot per parameter, so it cannot be sharded (steps_in_parts)");
    for (std::size_t group = 0; group < state.slots.size(); group += n) {
      Parts parts;  // the group's slots, laid end to end like the parameters
      for (std::size_t i = 0; i < n; ++i) parts.emplace_back(state.slots[group + i].data(), params[i]->size());
      flat_.resize(flat_size(parts));
      set_bounds();
      share_own_blocks(parts);
    }
    optimizer.set_state(std::move(state));
  }

  /// The blocks of n values, one per rank, of the sharded step (as
  /// Collective::reduce_scatter_sum takes them): as even as can be, each
  /// starting on a multiple of 16 floats (64 bytes: whole cache lines and vectors).
  static std::vector<std::size_t> block_bounds(std::size_t n, int ranks) {
    const std::size_t count = static_cast<std::size_t>(ranks);
    std::vector<std::size_t> bounds(count + 1, n);
    for (std::size_t r = 0; r < count; ++r) bounds[r] = n * r / count / 16 * 16;
    return bounds;
  }

  /// After reduce_gradients returned false (on every rank, alike): the error
  /// text of this rank, given `here`, where its own values are not finite
  /// (empty when they all are). Every rank calls it: a collective.
  std::string where_not_finite(const std::string& here) {
    double ranks = here.empty() ? 0.0 : 1.0;  // with a non-finite value of their own
    c_.allreduce_sum(std::span<double>(&ranks, 1));
    if (!here.empty()) return here + " (on rank " + std::to_string(c_.rank()) + ")";
    if (ranks > 0.0) return "a value on another rank is not finite";
    return "the gradients summed over the ranks are not finite, though every rank's own are (the sum overflowed)";
  }

  /// Sums of a score over every rank (validation, evaluated in shares).
  BatchScore reduce_score(const BatchScore& local) {
    double sums[2] = {local.loss_sum, static_cast<double>(local.correct)};
    c_.allreduce_sum(std::span<double>(sums));
    return {sums[0], static_cast<Index>(sums[1])};
  }

  /// Rank 0's value of v on every rank (an epoch's seconds: History stays the same everywhere).
  double leader_value(double v) {
    broadcast_value(c_, v);
    return v;
  }

  /// restore_checkpoint for every rank from rank 0's file: rank 0 reads it,
  /// every rank restores the same bytes, so they resume identical (and fail
  /// alike on a checkpoint of another run). No other rank needs the file.
  std::optional<TrainingState> restore_checkpoint(Sequential& model, const std::filesystem::path& path,
                                                  const TrainingState& run) {
    std::vector<std::uint8_t> bytes;
    if (leader()) bytes = read_checkpoint(path);
    broadcast_bytes(c_, bytes);
    if (bytes.empty()) return std::nullopt;
    return loom::restore_checkpoint(model, bytes, path.string(), &run);
  }

 private:
  // Arrays laid end to end in flat_: every parameter's value, or grad, or an optimizer's slots.
  using Parts = std::vector<std::span<float>>;
  static Parts values(std::span<Param* const> params) {
    Parts parts;
    for (Param* p : params) parts.emplace_back(p->value.data(), p->size());
    return parts;
  }
  static Parts grads(std::span<Param* const> params) {
    Parts parts;
    for (Param* p : params) parts.emplace_back(p->grad.data(), p->size());
    return parts;
  }
  static std::size_t flat_size(const Parts& parts) {
    std::size_t n = 0;
    for (std::span<float> part : parts) n += part.size();
    return n;
  }

  std::size_t rank_index() const { return static_cast<std::size_t>(c_.rank()); }
  std::span<float> own_block() {
    return std::span<float>(flat_).subspan(bounds_[rank_index()], bounds_[rank_index() + 1] - bounds_[rank_index()]);
  }

  void set_bounds() { bounds_ = block_bounds(flat_.size(), c_.size()); }

  // Sharded reduce_gradients: the gradients summed into this rank's block;
  // then the score's sums, and whether a rank's block is not finite, in one
  // small allreduce (the score is summed in double here).
  bool reduce_scatter(BatchScore& score) {
    set_bounds();
    c_.reduce_scatter_sum(flat_, bounds_);
    const std::span<const float> mine = own_block();
    double sums[3] = {score.loss_sum, static_cast<double>(score.correct),
                      all_finite(mine.data(), static_cast<Index>(mine.size())) ? 0.0 : 1.0};
    c_.allreduce_sum(std::span<double>(sums));
    if (sums[2] != 0.0 || !std::isfinite(sums[0])) return false;
    score = {sums[0], static_cast<Index>(sums[1])};
    return true;
  }

  // This rank's block of the parts to every rank, and every other rank's
  // block into them (through flat_).
  void share_own_blocks(const Parts& parts) {
    const std::size_t r = rank_index();
    pack_range(parts, bounds_[r], bounds_[r + 1]);
    c_.allgather(flat_, bounds_);
    unpack(parts, 0, bounds_[r]);
    unpack(parts, bounds_[r + 1], flat_.size());
  }

  // f(part, offset in it, count, offset in flat_) for every piece of a part
  // inside [first, last) of the parts laid end to end.
  template <typename F>
  static void for_pieces(const Parts& parts, std::size_t first, std::size_t last, F f) {
    for_pieces_end_to_end(
        parts.size(), [&](std::size_t i) { return static_cast<Index>(parts[i].size()); }, static_cast<Index>(first),
        static_cast<Index>(last), [&](std::size_t i, Index offset, Index count, Index at) {
          f(parts[i], static_cast<std::size_t>(offset), static_cast<std::size_t>(count), static_cast<std::size_t>(at));
        });
  }

  // Every part times scale, end to end in flat_.
  void pack(const Parts& parts, float scale) {
    flat_.resize(flat_size(parts));
    float* out = flat_.data();
    for (std::span<float> part : parts) {
      const Index n = static_cast<Index>(part.size());
      ArrayMap(out, n) = ConstArrayMap(part.data(), n) * scale;
      out += n;
    }
  }

  // [first, last) of flat_ from the parts, or back into them.
  void pack_range(const Parts& parts, std::size_t first, std::size_t last) {
    for_pieces(parts, first, last, [&](std::span<float> part, std::size_t j, std::size_t n, std::size_t at) {
      std::copy_n(part.data() + j, n, flat_.data() + at);
    });
  }
  void unpack(const Parts& parts, std::size_t first, std::size_t last) const {
    for_pieces(parts, first, last, [&](std::span<float> part, std::size_t j, std::size_t n, std::size_t at) {
      std::copy_n(flat_.data() + at, n, part.data() + j);
    });
  }

  Collective& c_;
  bool sharded_;
  std::vector<float> flat_;            // every parameter end to end (then the score, unsharded); kept across steps
  std::vector<std::size_t> bounds_;    // sharded: flat_'s block of each rank
};

}  // namespace loom
