#pragma once
// Which algorithm computes a convolution, chosen once per layer from its
// shapes (like a oneDNN primitive descriptor), or forced by the user.
//
// The rule (choose_algorithm), in order:
//   1. Winograd4   3x3 kernel, stride 1, at least 8 input channels and 8
//                  filters: F(4x4, 3x3), a quarter of the multiply-adds.
//   2. Direct      the layer computes no input gradient (a model's first
//                  layer), its patches hold at most 80 values and its filters
//                  are a multiple of 8 up to 64: a first layer on grey or
//                  colour images, 3x3, 5x5 or 7x7, any stride.
//   3. Im2col      everything else (strided, 1x1, 5x5, 7x7 inside a model,
//                  few channels).
// Winograd2 (F(2x2, 3x3)) is never chosen automatically: it is the option
// for 3x3 layers that need results closer to im2col's than F(4x4) gives.
// Im2col is the reference every other algorithm is tested against; force it
// for outputs and weight gradients that are bitwise those of the plain
// patch-matrix product (its dx sums the same products by phases of the
// stride: conv/phased_input_gradient.hpp).
//
// Thread safety: pure functions; safe from many threads.

#include <string>
#include <string_view>

#include "loom/conv/conv_geometry.hpp"
#include "loom/conv/direct_conv.hpp"
#include "loom/conv/winograd_conv.hpp"
#include "loom/error.hpp"

namespace loom {

enum class ConvAlgorithm { Auto, Im2col, Direct, Winograd2, Winograd4 };

inline std::string_view to_string(ConvAlgorithm a) {
  switch (a) {
    case ConvAlgorithm::Auto: return "auto";
    case ConvAlgorithm::Im2col: return "im2col";
    case ConvAlgorithm::Direct: return "direct";
    case ConvAlgorithm::Winograd2: return "winograd2x2";
    default: return "winograd4x4";
  }
}

namespace conv {

/// Channels and filters below which Winograd's transforms cost more than its
/// products save (measured: bench/bench_conv.cpp, conv/algo/*).
inline constexpr Index kWinogradMinChannels = 8;

/// Why `algorithm` cannot compute this layer, or empty when it can.
inline std::string unsupported_reason(ConvAlgorithm algorithm, const ConvGeometry& g, bool needs_dx) {
  switch (algorithm) {
    case ConvAlgorithm::Direct:
      if (needs_dx) return "the direct algorithm computes no input gradient; it serves only a model's first layer";
      if (!DirectConv::supports(g))
        return "the direct algorithm needs patches of at most " + std::to_string(DirectConv::kMaxPatch) +
               " values (KH*KW*C) and a multiple of 8 filters up to 64";
      return {};
    case ConvAlgorithm::Winograd2:
    case ConvAlgorithm::Winograd4:
      if (!WinogradConv<4>::supports(g)) return "Winograd needs a 3x3 kernel with stride 1";
      return {};
    default: return {};
  }
}

/// The algorithm for a layer: `forced` when it is not Auto (a UsageError,
/// naming `layer`, when it cannot compute this layer), else the rule above.
inline ConvAlgorithm choose_algorithm(const ConvGeometry& g, bool needs_dx, ConvAlgorithm forced,
                                      const std::string& layer) {
  if (forced != ConvAlgorithm::Auto) {
    if (const std::string why = unsupported_reason(forced, g, needs_dx); !why.empty())
      throw UsageError(layer + ": cannot use the " + std::string(to_string(forced)) + " algorithm: " + why);
    return forced;
  }
  if (WinogradConv<4>::supports(g) && g.c >= kWinogradMinChannels && g.f >= kWinogradMinChannels)
    return ConvAlgorithm::Winograd4;
  if (unsupported_reason(ConvAlgorithm::Direct, g, needs_dx).empty()) return ConvAlgorithm::Direct;
  return ConvAlgorithm::Im2col;
}

}  // namespace conv
}  // namespace loom
