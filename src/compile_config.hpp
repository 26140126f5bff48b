#pragma once
// The COMP section's payload (the loss and the optimizer, with its schedule)
// and the schedule state at the end of OPTS: encoding and checked decoding.
// The layout is in docs/model-format.md. Private to src/.

#include <memory>
#include <vector>

#include "loom/io/byte_io.hpp"
#include "loom/loss.hpp"
#include "loom/optimizers/optimizer.hpp"

namespace loom {
class Sequential;
}

namespace loom::detail {

/// The COMP payload of a compiled model: UsageError for an optimizer model files cannot hold.
void put_compile(ByteWriter& w, const Sequential& m);

/// What a COMP payload decodes to.
struct Compile {
  std::unique_ptr<Optimizer> optimizer;
  SparseCategoricalCrossentropy loss;
};
/// Reads a COMP payload (to its end); DataError naming the file offset on anything malformed.
Compile get_compile(ByteReader& r);

/// OPTS's optional end: the schedule's state, written only when there is one.
void put_schedule_state(ByteWriter& w, const std::vector<double>& state);
std::vector<double> get_schedule_state(ByteReader& r);

}  // namespace loom::detail
