#pragma once
// Data parallelism inside fit (FitOptions::collective): what one step and one
// epoch exchange with the other ranks. Every rank holds the whole model and
// draws the same shuffled order from the shared seed; of each global batch it
// trains on its own contiguous share. Then, in one allreduce per step, the
// ranks sum their gradients together with the batch's loss and accuracy
// counts, so every rank applies the same gradient and keeps the same History.
//
// Gradients are sums, not means: a rank's gradient is the mean over its n_r
// samples, so it enters the sum weighted n_r / N, and the result is the mean
// over all N samples of the global batch (also when the last batch does not
// split evenly, or leaves a rank none). The weights are powers of two when a
// batch splits evenly over a power of two of ranks, as 32 over 2.
//
// Thread safety: as fit, one thread.

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "loom/io/model_file.hpp"
#include "loom/layer.hpp"
#include "loom/loss.hpp"
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
  explicit DataParallel(Collective& c) : c_(c) {}

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
    pack(params, [](const Param& p) { return p.value.data(); }, 1.0f);
    c_.broadcast(std::as_writable_bytes(std::span<float>(flat_)), 0);
    unpack(params, [](Param& p) { return p.value.data(); });
  }

  /// Before: every grad is dL/dw of the mean loss over this rank's `local`
  /// samples (not read when local is 0) and score holds their sums. After:
  /// when every summed value is finite, every grad is dL/dw of the mean over
  /// the `global` samples of the batch and score holds the batch's sums, the
  /// same on every rank, and it returns true. Otherwise it returns false on
  /// every rank and leaves the grads alone (for non_finite_in_last_batch).
  /// One allreduce of every gradient plus two floats: the loss sum travels as
  /// a float (relative error 1e-7, in the History only).
  bool reduce_gradients(std::span<Param* const> params, Index local, Index global, BatchScore& score) {
    const float weight = static_cast<float>(local) / static_cast<float>(global);
    if (local > 0) pack(params, [](const Param& p) { return p.grad.data(); }, weight);
    else flat_.assign(flat_size(params), 0.0f);
    flat_.push_back(static_cast<float>(score.loss_sum));
    flat_.push_back(static_cast<float>(score.correct));  // at most a batch: exact in a float
    c_.allreduce_sum(flat_);
    if (!all_finite(flat_.data(), static_cast<Index>(flat_.size()))) return false;
    score.correct = static_cast<Index>(flat_.back());
    flat_.pop_back();
    score.loss_sum = flat_.back();
    flat_.pop_back();
    unpack(params, [](Param& p) { return p.grad.data(); });
    return true;
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
  static std::size_t flat_size(std::span<Param* const> params) {
    std::size_t n = 0;
    for (const Param* p : params) n += static_cast<std::size_t>(p->size());
    return n;
  }

  // Every parameter's field(p) times scale, end to end in flat_.
  template <typename Field>
  void pack(std::span<Param* const> params, Field field, float scale) {
    flat_.resize(flat_size(params));
    float* out = flat_.data();
    for (const Param* p : params) {
      ArrayMap(out, p->size()) = ConstArrayMap(field(*p), p->size()) * scale;
      out += p->size();
    }
  }

  template <typename Field>
  void unpack(std::span<Param* const> params, Field field) const {
    const float* in = flat_.data();
    for (Param* p : params) {
      std::copy_n(in, p->size(), field(*p));
      in += p->size();
    }
  }

  Collective& c_;
  std::vector<float> flat_;  // every parameter end to end, then the score; kept across steps
};

}  // namespace loom
