// Data-parallel fit under mpirun, checked from inside (tests/mpi/CMakeLists.txt
// runs it with mpirun -np 2). Exits 0 when every check holds on every rank.
//
//   mpi_fit_check same            every rank ends every epoch with rank 0's
//                                 weights, optimizer state and History, bit
//                                 for bit, and within float tolerance of one
//                                 process alone
//   mpi_fit_check batch_norm      a model with BatchNormalization: every rank
//                                 ends every epoch with the same weights,
//                                 moving statistics included, and History
//   mpi_fit_check train CKPT OUT [--die-at N] [--stop-at N]
//                                 4 epochs with a checkpoint; rank 0 writes the
//                                 final weights' and optimizer state's bytes
//                                 to OUT. --die-at N: rank 1 kills itself
//                                 (SIGKILL) at its N-th batch;
//                                 --stop-at N: it stops (SIGSTOP), so that only
//                                 the collectives' timeout can end the job.
//
// The data: tests/toy_model.hpp's quadrants, 289 samples in global batches of
// 32, so the last batch holds one sample and one of two ranks trains on none.

#include <signal.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "loom/cli.hpp"
#include "loom/distributed/mpi_communicator.hpp"
#include "loom/loom.hpp"
#include "toy_model.hpp"

namespace {

using namespace loom;

constexpr Index kSamples = 289, kBatch = 32;

// Samples that end (or stop) this process at its n-th gather: a rank dying mid-epoch.
class DyingSamples final : public Samples {
 public:
  DyingSamples(const Samples& inner, long long at, int signal) : inner_(inner), at_(at), signal_(signal) {}
  Index size() const override { return inner_.size(); }
  Shape shape() const override { return inner_.shape(); }
  Label label(Index i) const override { return inner_.label(i); }
  void gather(std::span<const Index> idx, Tensor& x, std::span<Label> labels) const override {
    if (++gathers_ == at_) raise(signal_);
    inner_.gather(idx, x, labels);
  }

 private:
  const Samples& inner_;
  long long at_;
  int signal_;
  mutable long long gathers_ = 0;
};

// The bytes of the trainable parameters (params) or of every weight (weights: BatchNorm's moving statistics too).
std::vector<std::uint8_t> weight_bytes(Sequential& m, bool every_weight = false) {
  std::vector<std::uint8_t> b;
  for (const Param* p : every_weight ? m.weights() : m.params()) {
    const auto* f = reinterpret_cast<const std::uint8_t*>(p->value.data());
    b.insert(b.end(), f, f + p->size() * static_cast<Index>(sizeof(float)));
  }
  return b;
}

// The optimizer's state (Adam's moments, gathered from the ranks' blocks after every epoch) and step count.
std::vector<std::uint8_t> state_bytes(const Sequential& m) {
  const Optimizer::State s = m.optimizer().state();
  std::vector<std::uint8_t> b(reinterpret_cast<const std::uint8_t*>(&s.steps),
                              reinterpret_cast<const std::uint8_t*>(&s.steps) + sizeof s.steps);
  for (const Eigen::VectorXf& slot : s.slots) {
    const auto* f = reinterpret_cast<const std::uint8_t*>(slot.data());
    b.insert(b.end(), f, f + slot.size() * static_cast<Index>(sizeof(float)));
  }
  return b;
}

std::vector<std::uint8_t> history_bytes(const History& h) {
  std::vector<std::uint8_t> b;
  for (const EpochRecord& r : h.epochs) {
    const double v[] = {r.loss, r.accuracy, r.val_loss.value_or(-1), r.val_accuracy.value_or(-1), r.seconds};
    const auto* f = reinterpret_cast<const std::uint8_t*>(v);
    b.insert(b.end(), f, f + sizeof v);
  }
  return b;
}

int failures = 0;
void fail(int rank, const std::string& what) {
  std::fprintf(stderr, "FAIL (rank %d): %s\n", rank, what.c_str());
  ++failures;
}

// Whether every rank holds rank 0's bytes; the verdict is the same on every rank.
bool same_everywhere(Collective& world, const std::vector<std::uint8_t>& mine) {
  std::vector<std::uint8_t> leader = mine;
  broadcast_bytes(world, leader);
  double differ = leader != mine ? 1.0 : 0.0;
  world.allreduce_sum(std::span<double>(&differ, 1));
  return differ == 0.0;
}

int same(distributed::MpiCommunicator& world) {
  const int rank = world.rank();
  const testing::Quadrants train = testing::quadrants(kSamples, 11), val = testing::quadrants(51, 12);
  const TensorSamples data(train.x, train.y, Shape{8, 8, 1}), validation(val.x, val.y, Shape{8, 8, 1});
  // Each rank draws other initial weights: fit must start from rank 0's.
  Sequential parallel = testing::small_cnn(3 + static_cast<std::uint64_t>(rank));
  Sequential alone = testing::small_cnn(3);
  for (int epoch = 1; epoch <= 3; ++epoch) {
    const FitOptions o{.epochs = 1, .batch_size = kBatch, .seed = static_cast<std::uint64_t>(epoch), .verbose = 0,
                       .validation_data = &validation};
    FitOptions shared = o;
    shared.collective = &world;
    const History h = parallel.fit(data, shared);
    const History reference = alone.fit(data, o);
    if (!same_everywhere(world, weight_bytes(parallel))) fail(rank, "epoch " + std::to_string(epoch) + ": weights differ between ranks");
    if (!same_everywhere(world, state_bytes(parallel)))
      fail(rank, "epoch " + std::to_string(epoch) + ": optimizer state differs between ranks");
    if (!same_everywhere(world, history_bytes(h))) fail(rank, "epoch " + std::to_string(epoch) + ": History differs between ranks");
    const double d = testing::max_relative_difference(parallel, alone);
    if (!(d < 1e-4)) fail(rank, "epoch " + std::to_string(epoch) + ": weights differ from one process by " + std::to_string(d));
    const EpochRecord &p = h.epochs.at(0), &r = reference.epochs.at(0);
    if (!(std::abs(p.loss - r.loss) < 1e-5 * std::abs(r.loss) + 1e-7 && p.accuracy == r.accuracy &&
          std::abs(*p.val_loss - *r.val_loss) < 1e-5 * std::abs(*r.val_loss) + 1e-7 && p.val_accuracy == r.val_accuracy))
      fail(rank, "epoch " + std::to_string(epoch) + ": History differs from one process");
    if (rank == 0)
      std::printf("epoch %d: loss %.6f (alone %.6f), val_accuracy %.4f (alone %.4f), max relative weight difference %.2e\n",
                  epoch, p.loss, r.loss, *p.val_accuracy, *r.val_accuracy, d);
  }
  // A global batch smaller than the ranks is refused on every rank alike.
  try {
    parallel.fit(data, {.batch_size = 1, .verbose = 0, .collective = &world});
    fail(rank, "a global batch of 1 over 2 ranks was accepted");
  } catch (const UsageError&) {
  }
  return failures == 0 ? 0 : 1;
}

// Each rank normalises over its own share of a batch, so its moving
// statistics would drift from the others'; fit hands every rank rank 0's
// after each epoch, before validation and the checkpoint.
int batch_norm(distributed::MpiCommunicator& world) {
  const int rank = world.rank();
  const testing::Quadrants train = testing::quadrants(kSamples, 11), val = testing::quadrants(51, 12);
  const TensorSamples data(train.x, train.y, Shape{8, 8, 1}), validation(val.x, val.y, Shape{8, 8, 1});
  Sequential m = testing::conv_bn_relu_model(3);
  for (int epoch = 1; epoch <= 2; ++epoch) {
    const History h = m.fit(data, {.epochs = 1, .batch_size = kBatch, .seed = static_cast<std::uint64_t>(epoch),
                                   .verbose = 0, .validation_data = &validation, .collective = &world});
    if (!same_everywhere(world, weight_bytes(m, true)))
      fail(rank, "epoch " + std::to_string(epoch) + ": weights or moving statistics differ between ranks");
    if (!same_everywhere(world, history_bytes(h)))
      fail(rank, "epoch " + std::to_string(epoch) + ": History differs between ranks");
  }
  return failures == 0 ? 0 : 1;
}

int train(distributed::MpiCommunicator& world, const std::string& checkpoint, const std::string& out, long long at,
          int signal) {
  const testing::Quadrants d = testing::quadrants(kSamples, 11);
  const TensorSamples data(d.x, d.y, Shape{8, 8, 1});
  const DyingSamples dying(data, world.rank() == 1 ? at : -1, signal);
  Sequential m = testing::small_cnn(3);
  m.fit(dying, {.epochs = 4, .batch_size = kBatch, .seed = 5, .verbose = 2, .checkpoint = checkpoint, .collective = &world});
  if (world.rank() == 0) {
    std::vector<std::uint8_t> b = weight_bytes(m);
    const std::vector<std::uint8_t> state = state_bytes(m);  // the checkpoints' moments, gathered from both ranks
    b.insert(b.end(), state.begin(), state.end());
    std::ofstream(out, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return cli::run_main("mpi_fit_check", [&] {
    distributed::MpiCommunicator world;
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "same") return same(world);
    if (mode == "batch_norm") return batch_norm(world);
    if (mode == "train" && (argc == 4 || argc == 6)) {
      long long at = -1;
      int signal = SIGKILL;
      if (argc == 6) {
        at = std::atoll(argv[5]);
        signal = std::string(argv[4]) == "--stop-at" ? SIGSTOP : SIGKILL;
      }
      return train(world, argv[2], argv[3], at, signal);
    }
    throw UsageError("usage: mpi_fit_check same | batch_norm | train CHECKPOINT OUT [--die-at N | --stop-at N]");
  });
}
