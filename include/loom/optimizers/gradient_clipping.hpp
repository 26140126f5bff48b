#pragma once
// Gradient clipping by global norm (Keras's global_clipnorm, PyTorch's
// clip_grad_norm_): when the L2 norm of every gradient taken together
// exceeds `limit`, every gradient is scaled by limit / norm, so the norm
// becomes the limit and the direction is kept; below it nothing changes.
//
// The norm is summed in double, parameter by parameter in order, on one
// thread: the same bits for any thread count.

#include <cmath>
#include <span>

#include "loom/layer.hpp"
#include "loom/optimizers/check_option.hpp"

namespace loom {

/// The L2 norm of all the parameters' gradients together.
inline double global_gradient_norm(std::span<Param* const> params) {
  double sum = 0.0;
  for (const Param* p : params) sum += p->grad.cast<double>().squaredNorm();
  return std::sqrt(sum);
}

/// Scales the gradients in place so that their global norm is at most limit
/// (positive and finite, else UsageError). A non-finite norm is left for fit's checks to report.
inline void clip_by_global_norm(std::span<Param* const> params, double limit) {
  detail::check_option(limit > 0 && std::isfinite(limit), "clip_by_global_norm", "limit", limit,
                       "be positive and finite");
  const double norm = global_gradient_norm(params);
  if (!(norm > limit) || !std::isfinite(norm)) return;
  const float scale = static_cast<float>(limit / norm);
  for (Param* p : params) p->grad *= scale;
}

}  // namespace loom
