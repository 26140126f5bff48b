#pragma once
// Whole-tensor elementwise passes, in fixed blocks over the threads
// (for_blocks): the sum of a composite layer's paths, and the gradient writes
// of Layer::backward_into.
//
// Thread safety: callable from many threads on distinct outputs.

#include <cstring>
#include <string>

#include "loom/activation.hpp"
#include "loom/error.hpp"
#include "loom/parallel.hpp"
#include "loom/tensor.hpp"

namespace loom {

/// out = act(a + b), elementwise, for act None or ReLU; a and b of the same
/// dimensions; out may be a or b.
inline void add_tensors(const Tensor& a, const Tensor& b, Tensor& out, Activation act = Activation::None) {
  if (a.dimensions() != b.dimensions())
    throw ShapeError("add_tensors: dimensions " + dims_string(a) + " and " + dims_string(b) + " differ");
  if (act != Activation::None && act != Activation::ReLU)
    throw UsageError("add_tensors: the activation must be none or relu, got " + std::string(to_string(act)));
  if (&out != &a && &out != &b) resize_like(out, a);
  const float *pa = a.data(), *pb = b.data();
  float* po = out.data();
  for_blocks(out.size(), [&](Index i, Index len) {
    if (act == Activation::ReLU)
      ArrayMap(po + i, len) = (ConstArrayMap(pa + i, len) + ConstArrayMap(pb + i, len)).max(0.0f);
    else
      ArrayMap(po + i, len) = ConstArrayMap(pa + i, len) + ConstArrayMap(pb + i, len);
  });
}

/// out = a, in one parallel pass (a plain tensor assignment copies on one thread).
inline void copy_tensor(const Tensor& a, Tensor& out) {
  if (&out == &a) return;
  resize_like(out, a);
  const float* pa = a.data();
  float* po = out.data();
  for_blocks(out.size(), [&](Index i, Index len) { std::memcpy(po + i, pa + i, sizeof(float) * len); });
}

/// How Layer::backward_into (and the convolution engines) write dL/dx into the caller's tensor: Assign
/// (resized to x's dimensions) or Add (onto what it holds, x's dimensions).
enum class GradientWrite { Assign, Add };

/// Readies the caller's dx of a layer that writes there directly (named `layer`
/// in the error): resized to n samples of `input` for Assign; for Add it must
/// hold them already, or a ShapeError.
inline void prepare_gradient_target(Tensor& dx, Index n, const Shape& input, GradientWrite how,
                                    const std::string& layer) {
  if (how == GradientWrite::Assign) return resize_batch(dx, n, input);
  if (dx.dimension(0) != n || !holds(dx, input))
    throw ShapeError(layer + ": backward_into adds onto dx of dimensions " + dims_string(dx) + ", expected " +
                     std::to_string(n) + " samples of shape " + input.to_string());
}

/// Writes a dL/dx computed in a tensor of the layer's own into the caller's,
/// as `how` says: backward_into's default.
inline void write_gradient(const Tensor& own, Tensor& dx, GradientWrite how) {
  if (how == GradientWrite::Assign) return copy_tensor(own, dx);
  if (dx.dimensions() != own.dimensions())
    throw ShapeError("backward_into adds onto dx of dimensions " + dims_string(dx) + ", the input gradient has " +
                     dims_string(own));
  add_tensors(dx, own, dx);
}

}  // namespace loom
