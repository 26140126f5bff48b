// Data augmentation on the fly (loom/data/augmentation.hpp).

#include "loom/data/augmentation.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "loom/data/sample_window.hpp"
#include "loom/error.hpp"
#include "loom/parallel.hpp"
#include "loom/random.hpp"

namespace loom {
namespace {

// splitmix64's finaliser: every input bit moves every output bit.
std::uint64_t mix(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

void require(bool ok, const char* option, double value, const char* expected) {
  if (!ok)
    throw UsageError(std::string("AugmentationOptions::") + option + " must be " + expected + ", got " + number(value));
}

// Zhong et al.'s random erasing of one sample, torchvision's RandomErasing draw.
void erase(float* s, Index h, Index w, Index c, const AugmentationOptions& o, Random& r) {
  const float area = static_cast<float>(h * w);
  const float log_lo = std::log(o.erasing_min_aspect), log_hi = std::log(o.erasing_max_aspect);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const float target = area * r.uniform(o.erasing_min_area, o.erasing_max_area);
    const float aspect = std::exp(r.uniform(log_lo, log_hi));
    const auto eh = static_cast<Index>(std::lround(std::sqrt(target * aspect)));
    const auto ew = static_cast<Index>(std::lround(std::sqrt(target / aspect)));
    if (eh < 1 || ew < 1 || eh >= h || ew >= w) continue;
    const auto top = static_cast<Index>(r.below(static_cast<std::uint64_t>(h - eh + 1)));
    const auto left = static_cast<Index>(r.below(static_cast<std::uint64_t>(w - ew + 1)));
    for (Index y = top; y < top + eh; ++y) {
      float* run = s + (y * w + left) * c;
      if (o.erasing_fill == ErasingFill::Zero) std::fill_n(run, ew * c, 0.0f);
      else
        for (Index j = 0; j < ew * c; ++j) run[j] = r.uniform01();
    }
    return;
  }
}

// One sample in place; scratch holds h * w * c floats.
void augment_sample(float* s, float* scratch, Index h, Index w, Index c, const AugmentationOptions& o, Random& r) {
  const Index pad = o.pad;
  const Index dy = pad > 0 ? static_cast<Index>(r.below(static_cast<std::uint64_t>(2 * pad + 1))) - pad : 0;
  const Index dx = pad > 0 ? static_cast<Index>(r.below(static_cast<std::uint64_t>(2 * pad + 1))) - pad : 0;
  const bool mirror = o.horizontal_flip && (r.next() >> 63) != 0;
  if (dy != 0 || dx != 0 || mirror) {
    std::copy_n(s, h * w * c, scratch);
    copy_window(scratch, s, h, w, c, dy, dx, mirror);
  }
  if (o.erasing > 0.0f && r.uniform01() < o.erasing) erase(s, h, w, c, o, r);
}

}  // namespace

void AugmentationOptions::validate(const Shape& input) const {
  if (input.rank() != 3)
    throw UsageError("AugmentationOptions: augmentation needs image samples (H, W, C), but the samples are " +
                     input.to_string());
  require(pad >= 0 && pad <= std::min(input.height(), input.width()), "pad", static_cast<double>(pad),
          ("in [0, " + std::to_string(std::min(input.height(), input.width())) + "] for samples " + input.to_string())
              .c_str());
  require(erasing >= 0.0f && erasing <= 1.0f, "erasing", erasing, "a probability in [0, 1]");
  require(erasing_min_area > 0.0f && erasing_min_area <= 1.0f, "erasing_min_area", erasing_min_area, "in (0, 1]");
  require(erasing_max_area >= erasing_min_area && erasing_max_area <= 1.0f, "erasing_max_area", erasing_max_area,
          "in [erasing_min_area, 1]");
  require(erasing_min_aspect > 0.0f && std::isfinite(erasing_min_aspect), "erasing_min_aspect", erasing_min_aspect,
          "positive");
  require(erasing_max_aspect >= erasing_min_aspect && std::isfinite(erasing_max_aspect), "erasing_max_aspect",
          erasing_max_aspect, "at least erasing_min_aspect");
}

AugmentationOptions AugmentationOptions::parse(const std::string& list) {
  AugmentationOptions o;
  if (list == "none") return o;
  const auto fail = [&](const std::string& item) {
    throw UsageError("augmentation: unknown item \"" + item + "\" in \"" + list +
                     "\"; expected pad=N, flip or erasing=P, comma-separated (e.g. pad=2,flip), or none");
  };
  for (std::size_t at = 0; at <= list.size();) {
    const std::size_t comma = std::min(list.find(',', at), list.size());
    const std::string item = list.substr(at, comma - at), key = item.substr(0, item.find('='));
    const std::string value = item.size() > key.size() ? item.substr(key.size() + 1) : "";
    char* end = nullptr;
    if (item == "flip") {
      o.horizontal_flip = true;
    } else if (key == "pad" && !value.empty()) {
      const long pad = std::strtol(value.c_str(), &end, 10);
      if (*end != '\0' || pad < 0) fail(item);
      o.pad = pad;
    } else if (key == "erasing" && !value.empty()) {
      o.erasing = std::strtof(value.c_str(), &end);
      if (*end != '\0') fail(item);
    } else {
      fail(item);
    }
    at = comma + 1;
  }
  return o;
}

std::string AugmentationOptions::to_string() const {
  std::string s;
  auto add = [&](const std::string& part) { s += (s.empty() ? "" : ", ") + part; };
  if (pad > 0) add("pad " + std::to_string(pad));
  if (horizontal_flip) add("horizontal flip");
  if (erasing > 0.0f)
    add("erasing " + number(erasing) + " (area " + number(erasing_min_area) + "-" + number(erasing_max_area) +
        ", aspect " + number(erasing_min_aspect) + "-" + number(erasing_max_aspect) + ", fill " +
        (erasing_fill == ErasingFill::Zero ? "zero" : "random") + ")");
  return s.empty() ? "none" : s;
}

std::uint64_t sample_seed(const BatchKey& key, Index position) {
  std::uint64_t h = mix(key.seed ^ 0x6C6F6F6D61756721ull);  // a constant of augmentation's own: other streams differ
  h = mix(h ^ static_cast<std::uint64_t>(key.epoch));
  h = mix(h ^ static_cast<std::uint64_t>(key.batch));
  return mix(h ^ static_cast<std::uint64_t>(position));
}

void augment_batch(Tensor& x, const AugmentationOptions& options, const BatchKey& key, Index first) {
  const Index n = x.dimension(0), h = x.dimension(1), w = x.dimension(2), c = x.dimension(3), per = h * w * c;
  options.validate(Shape::image(h, w, c));
  // About 1.5 ns a float on one thread: below some 100 us of work (a batch of
  // 32 28 x 28 images takes 37 us) a team's start and barrier save little, and
  // on a busy machine a descheduled team member costs milliseconds.
  constexpr Index kParallelFloats = Index{1} << 16;
  parallel_for_with<std::vector<float>>(n, n * per >= kParallelFloats, [&](Index i, std::vector<float>& scratch) {
    scratch.resize(static_cast<std::size_t>(per));
    Random r(sample_seed(key, first + i));
    augment_sample(x.data() + i * per, scratch.data(), h, w, c, options, r);
  });
}

}  // namespace loom
