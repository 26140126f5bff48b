// Data augmentation (loom/data/augmentation.hpp): each step does what it says,
// draws are a pure function of (seed, epoch, batch, position), options are
// validated, and fit with augmentation resumes and threads bit for bit.

#include <catch2/catch.hpp>

#include <cmath>
#include <set>

#include "loom/data/augmentation.hpp"
#include "loom/data/sample_window.hpp"
#include "loom/threads.hpp"
#include "temp_dir.hpp"
#include "toy_model.hpp"

using namespace loom;
using namespace loom::testing;
using Catch::Contains;

namespace {

// n samples of h x w x c, every value distinct and positive: a moved or erased pixel shows.
Tensor numbered(Index n, Index h, Index w, Index c) {
  Tensor x(n, h, w, c);
  for (Index i = 0; i < x.size(); ++i) x.data()[i] = 1.0f + static_cast<float>(i);
  return x;
}

Index zeros(const float* p, Index n) {
  Index z = 0;
  for (Index i = 0; i < n; ++i) z += p[i] == 0.0f;
  return z;
}

}  // namespace

TEST_CASE("copy_window shifts with zero padding and mirrors", "[augmentation]") {
  const Tensor x = numbered(1, 2, 3, 1);  // rows 1 2 3 / 4 5 6
  Tensor out(1, 2, 3, 1);
  copy_window(x.data(), out.data(), 2, 3, 1, 0, 1, false);
  CHECK(std::vector<float>(out.data(), out.data() + 6) == std::vector<float>{2, 3, 0, 5, 6, 0});
  copy_window(x.data(), out.data(), 2, 3, 1, -1, 0, true);
  CHECK(std::vector<float>(out.data(), out.data() + 6) == std::vector<float>{0, 0, 0, 3, 2, 1});
  Tensor m;
  mirror_samples(numbered(2, 1, 2, 2), m);  // channels move together
  CHECK(std::vector<float>(m.data(), m.data() + 8) == std::vector<float>{3, 4, 1, 2, 7, 8, 5, 6});
}

TEST_CASE("Augmentation draws depend on seed, epoch, batch and position only", "[augmentation]") {
  const AugmentationOptions o{.pad = 3, .horizontal_flip = true, .erasing = 0.5f};
  const BatchKey key{.seed = 4, .epoch = 2, .batch = 7};
  Tensor a = numbered(16, 12, 10, 3), b = a;
  augment_batch(a, o, key);
  augment_batch(b, o, key);
  CHECK(same_tensor(a, b));
  // The same samples as a data-parallel rank's share (positions 8..15) draw alike.
  Tensor share(8, 12, 10, 3);
  const Index per = 12 * 10 * 3;
  for (Index i = 0; i < share.size(); ++i) share.data()[i] = 1.0f + static_cast<float>(8 * per + i);
  augment_batch(share, o, key, 8);
  CHECK(std::equal(share.data(), share.data() + share.size(), a.data() + 8 * per));
  // Another epoch, batch or seed draws otherwise.
  for (const BatchKey other : {BatchKey{4, 3, 7}, BatchKey{4, 2, 8}, BatchKey{5, 2, 7}}) {
    Tensor c = numbered(16, 12, 10, 3);
    augment_batch(c, o, other);
    CHECK(!same_tensor(a, c));
  }
  std::set<std::uint64_t> seeds;
  for (Index p = 0; p < 100; ++p) seeds.insert(sample_seed(key, p));
  CHECK(seeds.size() == 100);
}

TEST_CASE("Augmentation does not depend on the thread count", "[augmentation][threads]") {
  const AugmentationOptions o{.pad = 4, .horizontal_flip = true, .erasing = 1.0f, .erasing_fill = ErasingFill::Random};
  const int before = threads();
  Tensor one = numbered(128, 28, 28, 1), two = one;  // enough work to be spread over the threads
  set_threads(1);
  augment_batch(one, o, {1, 1, 0});
  set_threads(2);
  augment_batch(two, o, {1, 1, 0});
  set_threads(before);
  CHECK(same_tensor(one, two));
}

TEST_CASE("Each augmentation step does what it says", "[augmentation]") {
  const Index n = 200, h = 8, w = 6, per = h * w;
  const Tensor x = numbered(n, h, w, 1);
  SECTION("no step on: the batch is unchanged") {
    Tensor y = x;
    augment_batch(y, {}, {0, 1, 0});
    CHECK(same_tensor(x, y));
  }
  SECTION("flip alone mirrors about half the samples and leaves the rest") {
    Tensor y = x, m;
    augment_batch(y, {.horizontal_flip = true}, {0, 1, 0});
    mirror_samples(x, m);
    Index flipped = 0;
    for (Index i = 0; i < n; ++i) {
      const bool same = std::equal(y.data() + i * per, y.data() + (i + 1) * per, x.data() + i * per);
      const bool mirrored = std::equal(y.data() + i * per, y.data() + (i + 1) * per, m.data() + i * per);
      CHECK(same != mirrored);
      flipped += mirrored;
    }
    CHECK(flipped > 70);
    CHECK(flipped < 130);
  }
  SECTION("crop alone shifts by at most pad, filling with zeros; every shift occurs") {
    const Index pad = 2;
    Tensor y = x;
    augment_batch(y, {.pad = pad}, {0, 1, 0});
    std::set<std::pair<Index, Index>> shifts;
    for (Index i = 0; i < n; ++i) {
      bool found = false;
      Tensor expect(1, h, w, 1);
      for (Index dy = -pad; dy <= pad && !found; ++dy)
        for (Index dx = -pad; dx <= pad && !found; ++dx) {
          copy_window(x.data() + i * per, expect.data(), h, w, 1, dy, dx, false);
          if (std::equal(expect.data(), expect.data() + per, y.data() + i * per)) {
            found = true;
            shifts.insert({dy, dx});
          }
        }
      CHECK(found);
    }
    CHECK(shifts.size() == 25);
  }
  SECTION("erasing with probability 1 zeroes one rectangle within the area range") {
    const AugmentationOptions o{.erasing = 1.0f, .erasing_min_area = 0.1f, .erasing_max_area = 0.3f};
    Tensor y = x;
    augment_batch(y, o, {3, 1, 0});
    for (Index i = 0; i < n; ++i) {
      const float* s = y.data() + i * per;
      const Index z = zeros(s, per);
      CHECK(z <= static_cast<Index>(std::ceil(0.3 * per * 1.5)));
      if (z == 0) continue;  // ten draws that did not fit: left alone, as torchvision does
      Index top = h, bottom = -1, left = w, right = -1;
      for (Index r = 0; r < h; ++r)
        for (Index c = 0; c < w; ++c)
          if (s[r * w + c] == 0.0f) top = std::min(top, r), bottom = std::max(bottom, r), left = std::min(left, c),
                                    right = std::max(right, c);
      CHECK((bottom - top + 1) * (right - left + 1) == z);  // one solid rectangle
    }
    CHECK(zeros(y.data(), y.size()) > n);  // most samples were erased
  }
  SECTION("erasing with random fill writes values in [0, 1)") {
    Tensor y = x;
    augment_batch(y, {.erasing = 1.0f, .erasing_fill = ErasingFill::Random}, {3, 1, 0});
    Index noise = 0;
    for (Index i = 0; i < y.size(); ++i) noise += y.data()[i] < 1.0f;
    CHECK(noise > n);
  }
}

TEST_CASE("Bad augmentation options are UsageErrors naming the option and value", "[augmentation]") {
  const Shape s = Shape::image(28, 28, 1);
  auto error = [&](const AugmentationOptions& o) {
    try {
      o.validate(s);
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(error({.pad = -1}), Contains("pad") && Contains("-1"));
  CHECK_THAT(error({.pad = 29}), Contains("pad") && Contains("29"));
  CHECK_THAT(error({.erasing = 1.5f}), Contains("erasing must be") && Contains("1.5"));
  CHECK_THAT(error({.erasing_min_area = 0.0f}), Contains("erasing_min_area") && Contains("0"));
  CHECK_THAT(error({.erasing_min_area = 0.5f, .erasing_max_area = 0.2f}), Contains("erasing_max_area") && Contains("0.2"));
  CHECK_THAT(error({.erasing_min_aspect = -1.0f}), Contains("erasing_min_aspect"));
  CHECK_THAT(error({.erasing_min_aspect = 2.0f, .erasing_max_aspect = 1.0f}), Contains("erasing_max_aspect"));
  CHECK(error({.pad = 4, .horizontal_flip = true, .erasing = 0.5f}) == "no error");
  CHECK_THROWS_WITH(AugmentationOptions{}.validate(Shape::flat(10)), Contains("image samples"));
  // fit checks before training.
  const Quadrants d = quadrants(32, 1);
  Sequential m = small_cnn(1);
  CHECK_THROWS_AS(m.fit(d.x, d.y, {.verbose = 0, .augmentation = AugmentationOptions{.pad = 9}}), UsageError);
  CHECK(AugmentationOptions{.pad = 4, .horizontal_flip = true}.to_string() == "pad 4, horizontal flip");
}

TEST_CASE("fit with augmentation: changes training, resumes bit for bit, the same on 1 and 2 threads",
          "[augmentation][checkpoint]") {
  const Quadrants d = quadrants(96, 6);
  FitOptions o{.epochs = 3, .batch_size = 16, .seed = 2, .verbose = 0,
               .augmentation = AugmentationOptions{.pad = 1, .horizontal_flip = true, .erasing = 0.5f}};
  Sequential straight = small_cnn(5);
  straight.fit(d.x, d.y, o);

  FitOptions plain = o;
  plain.augmentation.reset();
  Sequential unaugmented = small_cnn(5);
  unaugmented.fit(d.x, d.y, plain);
  CHECK(!same_params(straight, unaugmented));

  TempDir dir;
  FitOptions first = o;
  first.epochs = 1;
  first.checkpoint = dir / "ckpt.loom";
  small_cnn(5).fit(d.x, d.y, first);
  FitOptions rest = o;
  rest.checkpoint = first.checkpoint;
  Sequential resumed = small_cnn(5);
  resumed.fit(d.x, d.y, rest);
  CHECK(same_params(resumed, straight));

  const int before = threads();
  set_threads(1);
  Sequential one = small_cnn(5);
  one.fit(d.x, d.y, o);
  set_threads(2);
  Sequential two = small_cnn(5);
  two.fit(d.x, d.y, o);
  set_threads(before);
  CHECK(same_params(one, two));
}
