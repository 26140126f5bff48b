#pragma once
// Sequential::fit's loop: epochs of shuffled batches, augmented when asked
// (data/augmentation.hpp), through the public training steps (forward,
// loss_and_backward, the optimizer's step), with validation, progress,
// callbacks, checkpoints and data-parallel training.
// It lives here rather than in the model so that the model stays a stack of
// layers and this file is the one place to read what an epoch does.
//
// Thread safety: one fit at a time on a model (it mutates it).

#include <algorithm>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "loom/data/samples.hpp"
#include "loom/denormals.hpp"
#include "loom/io/model_file.hpp"
#include "loom/training/callback.hpp"
#include "loom/training/checkpoint_state.hpp"
#include "loom/training/data_parallel.hpp"
#include "loom/training/fit_options.hpp"
#include "loom/training/history.hpp"
#include "loom/training/progress.hpp"

namespace loom {

class FitLoop {
 public:
  FitLoop(Sequential& model, const Samples& data, const FitOptions& o) : m_(model), data_(data), o_(o) {}

  History run() {
    m_.require_compiled("fit");
    const FlushDenormals flush;
    check_options();
    std::optional<DataParallel> parallel;
    if (o_.collective) parallel.emplace(*o_.collective, *m_.optimizer_);
    dp_ = parallel ? &*parallel : nullptr;
    const bool leader = !dp_ || dp_->leader();
    m_.check_samples(data_, "fit");
    const Index n = data_.size();
    n_train_ = training_samples(n, o_.validation_split);
    if (n_train_ <= 0)
      throw DataError("fit: validation_split " + std::to_string(o_.validation_split) + " of " + std::to_string(n) +
                      " samples leaves none for training");
    if (o_.validation_data) m_.check_samples(*o_.validation_data, "fit (validation data)");
    const Index steps = (n_train_ + o_.batch_size - 1) / o_.batch_size;

    run_ = TrainingState{.samples = n, .batch_size = o_.batch_size, .seed = o_.seed, .shuffle = o_.shuffle,
                         .validation_split = o_.validation_split};
    run_.order.resize(static_cast<std::size_t>(n_train_));
    std::iota(run_.order.begin(), run_.order.end(), Index{0});
    Random rng(o_.seed);
    Progress progress(o_.log ? *o_.log : std::cerr, leader ? o_.verbose : 0);
    m_.history_ = {};
    TrainingContext context(m_, m_.history_, o_.epochs, steps, o_.validation_data || n_train_ < n);
    context.leader_ = leader;
    if (dp_) dp_->broadcast_weights(m_.weights_);  // moving statistics too: every rank starts alike
    // Each rank's BatchNormalization normalises over its own share of a batch,
    // so its moving statistics drift from the others'; after every epoch,
    // before validation and the checkpoint, every rank takes rank 0's (as
    // PyTorch's DistributedDataParallel broadcasts its buffers).
    std::vector<Param*> statistics;
    for (Param* p : m_.weights_)
      if (!p->trainable) statistics.push_back(p);
    if (!o_.checkpoint.empty()) resume(rng, progress);
    if (run_.stopped) context.stop_training("stopped before the checkpoint was written");

    for (Callback* c : o_.callbacks) c->on_train_begin(context);
    std::vector<Label> labels(static_cast<std::size_t>(std::min(o_.batch_size, n_train_)));
    for (int epoch = run_.epochs_done + 1; epoch <= o_.epochs && !context.stopping(); ++epoch) {
      if (o_.shuffle) rng.shuffle(std::span<Index>(run_.order));
      for (Callback* c : o_.callbacks) c->on_epoch_begin(epoch, context);
      const auto t0 = Progress::Clock::now();
      progress.begin_epoch(epoch, o_.epochs, steps);
      double loss_sum = 0.0;
      Index correct = 0, seen = 0, skipped = 0;
      for (Index b = 0; b < steps; ++b) {
        const Index begin = b * o_.batch_size, count = std::min(o_.batch_size, n_train_ - begin);
        const std::span<const Index> idx(run_.order.data() + begin, static_cast<std::size_t>(count));
        BatchScore s;
        const BatchAugmentation augment{o_.augmentation ? &*o_.augmentation : nullptr, {o_.seed, epoch, b}};
        if (const std::string where = dp_ ? shared_batch(idx, labels, augment, s) : own_batch(idx, labels, augment, s);
            !where.empty()) {
          if (o_.on_non_finite == NonFinite::Stop) {
            if (dp_) dp_->gather_optimizer_state(m_.params_, *m_.optimizer_);  // every rank stops here alike
            throw NumericError("fit: epoch " + std::to_string(epoch) + ", batch " + std::to_string(b + 1) + " of " +
                               std::to_string(steps) + ": " + where +
                               "; training stopped (FitOptions::on_non_finite = NonFinite::SkipBatch skips such batches)");
          }
          ++skipped;
          continue;
        }
        if (dp_) dp_->step(m_.params_, *m_.optimizer_);
        else m_.step();
        loss_sum += s.loss_sum;
        correct += s.correct;
        seen += count;
        const BatchLogs logs{b + 1, mean(loss_sum, seen), mean(static_cast<double>(correct), seen)};
        progress.update(logs.batch, logs.loss, logs.accuracy);
        for (Callback* c : o_.callbacks) c->on_batch_end(logs, context);
      }
      if (dp_ && !statistics.empty()) dp_->broadcast_weights(statistics);
      EpochRecord r;
      r.epoch = epoch;
      r.loss = mean(loss_sum, seen);
      r.accuracy = mean(static_cast<double>(correct), seen);
      r.skipped_batches = skipped;
      if (context.validates()) {
        const Evaluation v = o_.validation_data ? validate(*o_.validation_data, 0, o_.validation_data->size())
                                                : validate(data_, n_train_, n);
        r.val_loss = v.loss;
        r.val_accuracy = v.accuracy;
      }
      r.seconds = Progress::seconds_since(t0);
      if (dp_) {
        r.seconds = dp_->leader_value(r.seconds);  // the History is the same on every rank
        dp_->gather_optimizer_state(m_.params_, *m_.optimizer_);  // whole in checkpoints and saved models
      }
      m_.optimizer_->end_epoch(r.val_loss.value_or(r.loss));  // the schedule (ReduceOnPlateau) sees the epoch
      progress.end_epoch(r);
      m_.history_.epochs.push_back(r);
      for (Callback* c : o_.callbacks) c->on_epoch_end(r, context);
      if (context.stopping()) progress.note("Training stopped after epoch " + std::to_string(epoch) + ": " +
                                            context.stop_reason());
      if (!o_.checkpoint.empty()) {
        run_.epochs_done = epoch;
        run_.stopped = context.stopping();
        run_.shuffle_state = rng.state();
        run_.layer_generators = m_.layer_generator_states();
        run_.callback_states = callback_states();
        if (leader) write_checkpoint(m_, run_, o_.checkpoint);
      }
    }
    for (Callback* c : o_.callbacks) c->on_train_end(context);
    return m_.history_;
  }

 private:
  static double mean(double sum, Index count) {
    return count > 0 ? sum / static_cast<double>(count) : std::numeric_limits<double>::quiet_NaN();
  }

  void check_options() const {
    const FitOptions& o = o_;
    if (o.batch_size <= 0) throw UsageError("fit: batch_size must be positive, got " + std::to_string(o.batch_size));
    if (o.epochs < 0) throw UsageError("fit: epochs must not be negative, got " + std::to_string(o.epochs));
    if (!(o.validation_split >= 0.0 && o.validation_split < 1.0))
      throw UsageError("fit: validation_split must be in [0, 1), got " + detail::option_value_text(o.validation_split));
    if (o.validation_data && o.validation_split > 0.0)
      throw UsageError("fit: give validation_data or validation_split, not both");
    if (o.augmentation) o.augmentation->validate(m_.input_);
    if (o.verbose < 0 || o.verbose > 2) throw UsageError("fit: verbose must be 0, 1 or 2, got " + std::to_string(o.verbose));
    if (o.collective && o.batch_size < o.collective->size())
      throw UsageError("fit: batch_size " + std::to_string(o.batch_size) + " is the global batch, shared by " +
                       std::to_string(o.collective->size()) + " ranks; give at least one sample per rank");
    for (const Callback* c : o.callbacks)
      if (!c) throw UsageError("fit: callbacks holds a null pointer");
  }

  // One batch of fit in this process alone: gather, forward, loss and
  // backward. Returns where a value is not finite, empty when all are.
  std::string own_batch(std::span<const Index> idx, std::vector<Label>& labels, const BatchAugmentation& augment,
                        BatchScore& s) {
    const std::span<Label> y(labels.data(), idx.size());
    data_.gather(idx, batch_, y);
    augment(batch_);
    m_.forward(batch_);
    s = m_.loss_and_backward(y);
    return m_.non_finite_in_last_batch(batch_, s);
  }

  // The same for one rank of a data-parallel fit: its share of the global
  // batch idx, then the gradients and s summed over every rank. Every rank
  // returns empty or not alike (the decision is made on the summed values);
  // the rank where the value appeared names its place.
  std::string shared_batch(std::span<const Index> idx, std::vector<Label>& labels, const BatchAugmentation& augment,
                           BatchScore& s) {
    const Share mine = dp_->share(static_cast<Index>(idx.size()));
    BatchScore local;
    if (mine.count > 0) {
      const std::span<Label> y(labels.data(), static_cast<std::size_t>(mine.count));
      data_.gather(idx.subspan(static_cast<std::size_t>(mine.first), y.size()), batch_, y);
      augment(batch_, mine.first);  // drawn by position in the global batch, as in one process
      m_.forward(batch_);
      local = m_.loss_and_backward(y);
    }
    s = local;
    if (dp_->reduce_gradients(m_.params_, mine.count, static_cast<Index>(idx.size()), s)) return {};
    const std::string where = mine.count > 0 ? m_.non_finite_in_last_batch(batch_, local) : std::string();
    return dp_->where_not_finite(where);
  }

  // Validation of an epoch: this process alone, or each rank scores its share
  // and the sums are added up, the same on every rank.
  Evaluation validate(const Samples& data, Index begin, Index end) const {
    if (!dp_) return m_.evaluate_range(data, begin, end);
    const Share mine = dp_->share(end - begin);
    const BatchScore sums =
        dp_->reduce_score(mine.count > 0 ? m_.score_range(data, begin + mine.first, begin + mine.first + mine.count)
                                         : BatchScore{});
    const double n = static_cast<double>(end - begin);
    return {sums.loss_sum / n, static_cast<double>(sums.correct) / n};
  }

  // Loads the checkpoint when it exists and belongs to this run (else the
  // model is left alone and fit throws). A checkpoint that cannot be written
  // fails here, not after the first epoch.
  // Distributed: rank 0 reads the file and every rank restores its bytes.
  void resume(Random& rng, Progress& progress) {
    const std::optional<TrainingState> saved = dp_ ? dp_->restore_checkpoint(m_, o_.checkpoint, run_)
                                                   : restore_checkpoint(m_, o_.checkpoint, &run_);
    if (!dp_ || dp_->leader()) check_writable(o_.checkpoint);
    if (!saved) return;
    run_ = *saved;
    rng.set_state(run_.shuffle_state);
    m_.set_layer_generator_states(run_.layer_generators, o_.checkpoint.string());
    restore_callback_states(run_.callback_states);
    progress.note("Resuming from checkpoint " + o_.checkpoint.string() + ": " + std::to_string(run_.epochs_done) +
                  " of " + std::to_string(o_.epochs) + " epochs done");
  }

  std::vector<CallbackState> callback_states() const {
    std::vector<CallbackState> states;
    for (const Callback* c : o_.callbacks) states.push_back(c->state());
    return states;
  }

  void restore_callback_states(const std::vector<CallbackState>& states) {
    if (states.size() != o_.callbacks.size())
      throw UsageError("fit: checkpoint " + o_.checkpoint.string() + " was written with " +
                       std::to_string(states.size()) + " callbacks, this fit has " +
                       std::to_string(o_.callbacks.size()) + "; resume with the same callbacks");
    for (std::size_t i = 0; i < states.size(); ++i) o_.callbacks[i]->set_state(states[i]);
  }

  Sequential& m_;
  const Samples& data_;
  const FitOptions& o_;
  DataParallel* dp_ = nullptr;
  Index n_train_ = 0;
  TrainingState run_;
  Tensor batch_;  // (B, input) the current training batch
};

inline History Sequential::fit(const Samples& data, const FitOptions& o) { return FitLoop(*this, data, o).run(); }

}  // namespace loom
