#pragma once
// Pooling2D: what the windowed pooling layers (MaxPool2D, AveragePooling2D)
// share, so that only the arithmetic inside a window differs between them:
//
//   - the options (pool, strides defaulting to the pool as in Keras, padding),
//     their checks, and how a model file stores and reads them back;
//   - build: images in, (OH, OW, C) out by window.hpp's Keras/TensorFlow rules,
//     a ShapeError naming the layer when a valid window does not fit;
//   - for_each_tap, the one walk over every window's taps inside the input,
//     and tiles_input, whether the windows cover the input exactly once.
//
// Thread safety: as every Layer (layer.hpp): infer from many threads, forward/backward from one.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "loom/io/layer_config.hpp"
#include "loom/layer.hpp"
#include "loom/layers/window.hpp"

namespace loom {

struct Pooling2DOptions {
  Size2 pool = 2;
  Size2 strides = 0;  // 0: the pool size, as Keras
  Padding padding = Padding::Valid;
};

class Pooling2D : public Layer {
 public:
  const Pooling2DOptions& options() const { return o_; }

  void write_config(LayerConfigWriter& w) const final {
    w.put_size2(o_.pool);
    w.put_size2(o_.strides);
    w.put_padding(o_.padding);
  }

  Shape build(const Shape& input, Random&) override {
    if (input.rank() != 3)
      throw ShapeError(label() + ": expects images (height, width, channels), got " + input.to_string());
    win_ = {window_axis(input[0], o_.pool.h, o_.strides.h, o_.padding),
            window_axis(input[1], o_.pool.w, o_.strides.w, o_.padding)};
    if (win_.y.out <= 0 || win_.x.out <= 0)
      throw ShapeError(label() + ": pool " + o_.pool.to_string() + " does not fit input " + input.to_string() +
                       " with valid padding");
    return set_shapes(input, Shape{win_.y.out, win_.x.out, input[2]});
  }

 protected:
  // `layer` (the class name) starts option errors: the constructor cannot ask kind().
  Pooling2D(std::string_view layer, Pooling2DOptions o) : o_(o) {
    if (o_.strides.h == 0 && o_.strides.w == 0) o_.strides = o_.pool;
    if (o_.pool.h <= 0 || o_.pool.w <= 0)
      throw UsageError(std::string(layer) + ": pool size must be positive, got " + o_.pool.to_string());
    if (o_.strides.h <= 0 || o_.strides.w <= 0)
      throw UsageError(std::string(layer) + ": strides must be positive, got " + o_.strides.to_string());
  }

  /// What write_config wrote, for the from_config of layer L.
  template <typename L>
  static std::unique_ptr<Layer> read_config(LayerConfigReader& r) {
    const std::string kind(L::kKind);
    Pooling2DOptions o;
    o.pool = r.get_size2((kind + " pool size").c_str());
    o.strides = r.get_size2((kind + " strides").c_str());
    o.padding = r.get_padding((kind + " padding").c_str());
    return std::make_unique<L>(o);
  }

  const Window& window() const { return win_; }

  // fn(output offset, input offset, tap) for every tap inside the input of
  // every window of sample s, window by window, taps in (ky, kx) order.
  // Offsets are of the first channel, into y (N, OH, OW, C) and x (N, H, W, C).
  template <typename Fn>
  void for_each_tap(Index s, Fn&& fn) const {
    const Index h = input_shape()[0], w = input_shape()[1], c = input_shape()[2];
    const Index oh = win_.y.out, ow = win_.x.out;
    for (Index oy = 0; oy < oh; ++oy)
      for (Index ox = 0; ox < ow; ++ox) {
        const Index out = ((s * oh + oy) * ow + ox) * c;
        for (Index ky = 0; ky < o_.pool.h; ++ky) {
          const Index iy = oy * o_.strides.h + ky - win_.y.pad_before;
          if (iy < 0 || iy >= h) continue;
          for (Index kx = 0; kx < o_.pool.w; ++kx) {
            const Index ix = ox * o_.strides.w + kx - win_.x.pad_before;
            if (ix < 0 || ix >= w) continue;
            fn(out, ((s * h + iy) * w + ix) * c, static_cast<std::int32_t>(ky * o_.pool.w + kx));
          }
        }
      }
  }

  // Whether the windows cover the input exactly once (stride = pool, no
  // padding, sizes multiples of the pool), as the seed model's 26x26 -> 13x13:
  // backward can then assign dx instead of zeroing it and adding.
  bool tiles_input() const {
    return o_.strides.h == o_.pool.h && o_.strides.w == o_.pool.w && win_.y.pad_before == 0 &&
           win_.x.pad_before == 0 && win_.y.out * o_.pool.h == input_shape()[0] &&
           win_.x.out * o_.pool.w == input_shape()[1];
  }

 private:
  Pooling2DOptions o_;
  Window win_;
};

}  // namespace loom
