// Keeping freed memory for reuse (freed_memory.hpp): when loom's malloc
// settings apply, and that a repeated predict then faults no pages in.

#include <sys/resource.h>

#include <catch2/catch.hpp>

#include "loom/freed_memory.hpp"
#include "loom/layers/batch_normalization.hpp"
#include "loom/layers/conv2d.hpp"
#include "loom/layers/dense.hpp"
#include "loom/layers/global_average_pooling2d.hpp"
#include "loom/layers/relu.hpp"
#include "loom/layers/residual.hpp"
#include "loom/optimizers/adam.hpp"
#include "loom/sequential.hpp"
#include "loom/threads.hpp"

using namespace loom;

namespace {

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

}  // namespace

TEST_CASE("loom keeps freed memory unless the environment says otherwise", "[freed_memory]") {
  using loom::detail::wants_kept_memory;
  CHECK(wants_kept_memory(nullptr, nullptr, nullptr, nullptr));
  CHECK(wants_kept_memory("1", nullptr, nullptr, nullptr));
  CHECK_FALSE(wants_kept_memory("0", nullptr, nullptr, nullptr));
  CHECK_FALSE(wants_kept_memory(nullptr, "glibc.malloc.trim_threshold=0", nullptr, nullptr));
  CHECK(wants_kept_memory(nullptr, "glibc.rtld.nns=2", nullptr, nullptr));  // not a malloc setting
  CHECK_FALSE(wants_kept_memory(nullptr, nullptr, "65536", nullptr));
  CHECK_FALSE(wants_kept_memory(nullptr, nullptr, nullptr, "0"));
}

TEST_CASE("A repeated predict reuses its memory instead of faulting pages in again", "[freed_memory]") {
  // A conv stem and a residual block on 28x28 maps: each slice of 32 images
  // allocates and frees activations of 3.2 MB (800 pages each). With glibc's
  // defaults every call maps them again: 6,208 page faults per call, against
  // none from the third call on with loom's settings (measured).
  Sequential model(Shape{28, 28, 1}, 3);
  if (!keep_freed_memory()) {
    WARN("not checked: glibc's malloc settings are not loom's here (another allocator, or the environment)");
    return;
  }
  model.add(Conv2D({.filters = 32, .kernel = 3, .padding = Padding::Same}));
  model.add(BatchNormalization());
  model.add(ReLU());
  Residual block({.activation = Activation::ReLU});
  block.add(Conv2D({.filters = 32, .kernel = 3, .padding = Padding::Same}));
  block.add(BatchNormalization());
  model.add(std::move(block));
  model.add(GlobalAveragePooling2D());
  model.add(Dense({.units = 10, .activation = Activation::Softmax}));
  model.compile(Adam(), SparseCategoricalCrossentropy());

  // One thread: glibc gives each thread an arena of its own, and which thread
  // takes which slice depends on the machine's load, so with two a third call
  // can still be one thread's first large slice (seen under ctest -j2: 784
  // faults, one 3.2 MB map). The settings are what is tested, not the schedule.
  struct OneThread {
    int before = threads();
    OneThread() { set_threads(1); }
    ~OneThread() { set_threads(before); }
  } one_thread;
  Tensor x(64, 28, 28, 1);
  x.setConstant(0.5f);
  const Tensor first = model.predict(x, 64);  // grows the heaps (the first two calls
  model.predict(x, 64);                        // still fault pages in: 1,568 in the second)
  const long before = minor_faults();
  const Tensor again = model.predict(x, 64);  // the third call
  const long faults = minor_faults() - before;
  INFO("page faults during the second predict: " << faults);
  CHECK(faults < 200);
  CHECK(std::equal(first.data(), first.data() + first.size(), again.data()));
}
