#pragma once
// Residual: a block y = act(main(x) + shortcut(x)), the ResNet basic block's
// form. The main path is a chain of layers; the shortcut is the identity, or a
// chain of its own (a projection: a strided 1x1 Conv2D, with BatchNorm, when
// the main path changes the shape).
//
//   Residual block({.activation = Activation::ReLU});
//   block.add(Conv2D({.filters = 32, .kernel = 3, .padding = Padding::Same}));
//   block.add(BatchNormalization());
//   block.add(ReLU());
//   block.add(Conv2D({.filters = 32, .kernel = 3, .padding = Padding::Same}));
//   block.add(BatchNormalization());
//   model.add(std::move(block));            // identity shortcut: shapes must match
//
// The block is a Layer like any other (composite: its sublayers are its
// children(), main path first): it saves and loads through the registry,
// shows its sublayers in summary(), gets the model's mode, and the gradient
// checker differentiates every sublayer's parameters through it. Why a
// composite layer and not a functional graph: docs/architecture.md.
//
//   forward:  h = main(x);  s = shortcut(x) (or x);  z = h + s;  y = act(z)
//   backward: dz = act'(y) . dy;  dx = main'(dz) + shortcut'(dz) (or + dz),
//             each path's first layer writing into dx (Layer::backward_into)
//
// A pooled projection's average pool rides along the main path's first
// convolution (pool_rider): forward pools each chunk of samples right after
// the convolution read them, backward adds the pool's share onto each chunk
// of dx right after the convolution wrote it, on the same thread, while
// those samples are in its cache. Apart, each was a pass of its own over the
// block's input (12.8 MB in the recipe's first block) after it had left the
// caches. The same operations in the same order: the bits of the layers
// apart (set_pool_riding(false), which the tests compare against).
//
// Thread safety: as every Layer (layer.hpp): infer from many threads,
// forward/backward from one.

#include <concepts>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "loom/activation.hpp"
#include "loom/io/layer_config.hpp"
#include "loom/layer.hpp"
#include "loom/layers/average_pooling2d.hpp"
#include "loom/layers/conv2d.hpp"
#include "loom/layers/layer_chain.hpp"

namespace loom {

struct ResidualOptions {
  Activation activation = Activation::None;  // after the sum: None or ReLU
};

class Residual final : public Layer {
 public:
  static constexpr std::string_view kKind = "Residual";

  explicit Residual(ResidualOptions o = {}) : o_(o) {
    if (o.activation == Activation::Softmax)
      throw UsageError("Residual: the activation after the sum must be None or ReLU, not softmax");
  }

  std::string_view kind() const override { return kKind; }
  std::string_view name_stem() const override { return "residual"; }
  const ResidualOptions& options() const { return o_; }

  /// Appends a layer to the main path.
  template <std::derived_from<Layer> L>
  Residual& add(L layer) {
    return add(std::make_unique<L>(std::move(layer)));
  }
  Residual& add(std::unique_ptr<Layer> layer) {
    insert(std::move(layer), children_.begin() + static_cast<std::ptrdiff_t>(main_count_), "add");
    ++main_count_;
    return *this;
  }
  /// Appends a layer to the shortcut path (none: the identity).
  template <std::derived_from<Layer> L>
  Residual& add_shortcut(L layer) {
    return add_shortcut(std::make_unique<L>(std::move(layer)));
  }
  Residual& add_shortcut(std::unique_ptr<Layer> layer) {
    insert(std::move(layer), children_.end(), "add_shortcut");
    return *this;
  }

  std::span<const std::unique_ptr<Layer>> children() const override { return children_; }
  chain::Layers main_path() const { return chain::Layers(children_).first(main_count_); }
  chain::Layers shortcut_path() const { return chain::Layers(children_).subspan(main_count_); }

  Shape build(const Shape& input, Random& rng) override {
    if (main_count_ == 0) throw UsageError(label() + ": the main path is empty; add layers to it before adding the block");
    const Shape main_out = chain::build(main_path(), input, rng);
    const Shape shortcut_out = chain::build(shortcut_path(), input, rng);
    if (!(main_out == shortcut_out))
      throw ShapeError(label() + ": the main path outputs " + main_out.to_string() + " but the shortcut " +
                       shortcut_out.to_string() + " for input " + input.to_string() +
                       (shortcut_path().empty() ? std::string("; add a projection to the shortcut (add_shortcut: a 1x1 Conv2D "
                                                              "with the main path's filters and strides)")
                                                : std::string()));
    chain::fuse(main_path());
    chain::fuse(shortcut_path());
    return set_shapes(input, main_out);
  }

  const Tensor& forward(const Tensor& x) override {
    check_input(x);
    if (const auto r = pool_rider()) {
      r->pool.begin_forward(x);
      const auto pool = [&](Index s0, Index s1) { r->pool.forward_samples(x, s0, s1); };
      const Tensor& c = with_hook(r->conv, conv::SampleHook(pool), [&]() -> const Tensor& { return r->conv.forward(x); });
      const Tensor& h = chain::forward(main_path().subspan(1), c);
      const Tensor& s = chain::forward(shortcut_path().subspan(1), r->pool.output());
      add_tensors(h, s, z_, o_.activation);
      return z_;
    }
    const Tensor& h = chain::forward(main_path(), x);
    const Tensor& s = chain::forward(shortcut_path(), x);
    add_tensors(h, s, z_, o_.activation);
    return z_;
  }

  const Tensor& backward(const Tensor& dy) override {
    const Tensor* dz = &dy;
    if (o_.activation == Activation::ReLU) {
      activate_backward(Activation::ReLU, z_, dy, dz_);
      dz = &dz_;
    }
    // Each path's first layer writes its dx straight into the block's: the
    // shortcut's adds onto the main path's (a strided 1x1 convolution touches
    // a quarter of it) instead of both writing their own and a pass summing them.
    if (const auto r = pool_rider()) {  // both paths but their first layers, then the pool's share with each chunk
      const Tensor& g_main = chain::backward(main_path().subspan(1), *dz);
      const Tensor& g_pool = chain::backward(shortcut_path().subspan(1), *dz);
      resize_batch(dx_, dz->dimension(0), input_shape());
      r->pool.begin_spread(g_pool, dx_);
      const auto spread = [&](Index s0, Index s1) { r->pool.spread_samples(g_pool, dx_, s0, s1); };
      with_hook(r->conv, conv::SampleHook(spread), [&] { r->conv.backward_into(g_main, dx_, GradientWrite::Assign); });
      return dx_;
    }
    chain::backward_into(main_path(), *dz, dx_, GradientWrite::Assign);
    chain::backward_into(shortcut_path(), *dz, dx_, GradientWrite::Add);
    return dx_;
  }

  /// Whether a pooled projection's average pool may ride along the main
  /// path's first convolution (on by default): off, the layers run apart, as
  /// the tests compare. The results are the same either way.
  void set_pool_riding(bool on) { pool_riding_ = on; }
  /// Whether the pool rides along now: riding on, and the paths of that form (pool_rider).
  bool pool_rides() const { return pool_rider().has_value(); }

  void infer(const Tensor& x, Tensor& y) const override {
    check_input(x);
    Tensor h;
    chain::infer(main_path(), x, h);
    if (shortcut_path().empty()) {
      add_paths(h, x, y);
    } else {
      Tensor s;
      chain::infer(shortcut_path(), x, s);
      add_paths(h, s, y);
    }
  }
  /// y = activation(h + s): the block's sum of its main path's output h and
  /// its shortcut's s (infer's last step; public for tools that time it).
  void add_paths(const Tensor& h, const Tensor& s, Tensor& y) const { add_tensors(h, s, y, o_.activation); }

  // Activation, the two paths' lengths, then each sublayer (kind, name, options).
  void write_config(LayerConfigWriter& w) const override {
    w.put_activation(o_.activation);
    w.put_u32(static_cast<std::uint32_t>(main_count_));
    w.put_u32(static_cast<std::uint32_t>(children_.size() - main_count_));
    for (const auto& c : children_) w.put_layer(*c);
  }
  static std::unique_ptr<Layer> from_config(LayerConfigReader& r) {
    constexpr std::uint32_t kMaxPath = 1024;
    ResidualOptions o;
    o.activation = r.get_activation("Residual activation");
    const std::uint32_t main = r.get_u32("Residual main path length"), shortcut = r.get_u32("Residual shortcut length");
    if (main == 0 || main > kMaxPath || shortcut > kMaxPath)
      r.fail("Residual paths of " + std::to_string(main) + " and " + std::to_string(shortcut) +
             " layers: the main path needs 1 to " + std::to_string(kMaxPath) + ", the shortcut 0 to " + std::to_string(kMaxPath));
    auto block = std::make_unique<Residual>(o);
    // Each sublayer is read for the shape it will be built on, so it can
    // claim its parameters; building it here (weights come later) gives the next one's.
    Random scratch;
    auto read_path = [&](std::uint32_t n, bool is_main) {
      Shape s = r.input_shape();
      for (std::uint32_t i = 0; i < n; ++i) {
        std::unique_ptr<Layer> l = r.get_layer(s);
        try {
          s = l->build(s, scratch);
        } catch (const Error& e) {
          r.fail(std::string("the block's sublayers do not fit together: ") + e.what());
        }
        if (is_main) block->add(std::move(l));
        else block->add_shortcut(std::move(l));
      }
    };
    read_path(main, true);
    read_path(shortcut, false);
    return block;
  }

 private:
  // The main path's first layer, a Conv2D, and the shortcut's first, an
  // AveragePooling2D whose windows do not overlap (each input gets at most
  // one share, so adding by chunks keeps backward_into's bits): the pair
  // that rides together. None when riding is off or the paths are otherwise.
  struct PoolRider {
    Conv2D& conv;
    AveragePooling2D& pool;
  };
  std::optional<PoolRider> pool_rider() const {
    if (!pool_riding_ || shortcut_path().empty()) return std::nullopt;
    auto* conv = dynamic_cast<Conv2D*>(children_.front().get());
    auto* pool = dynamic_cast<AveragePooling2D*>(shortcut_path().front().get());
    if (!conv || !pool || !pool->windows_disjoint()) return std::nullopt;
    return PoolRider{*conv, *pool};
  }
  // call() (the convolution's forward or backward_into) with a sample hook,
  // cleared however the call ends.
  template <typename Call>
  static std::invoke_result_t<Call> with_hook(Conv2D& conv, const conv::SampleHook& hook, Call&& call) {
    struct Clear {
      Conv2D& conv;
      ~Clear() { conv.set_sample_hook(nullptr); }
    } clear{conv};
    conv.set_sample_hook(&hook);
    return call();
  }

  void insert(std::unique_ptr<Layer> layer, std::vector<std::unique_ptr<Layer>>::iterator at, const char* what) {
    if (!layer) throw UsageError(label() + "::" + what + ": null layer");
    if (built()) throw UsageError(label() + "::" + what + ": the block is already in a model; add its layers first");
    if (layer->ends_with_softmax())
      throw UsageError(label() + "::" + what + ": " + std::string(layer->kind()) + " ends with softmax; a residual path cannot");
    children_.insert(at, std::move(layer));
  }

  ResidualOptions o_;
  std::vector<std::unique_ptr<Layer>> children_;  // the main path, then the shortcut
  std::size_t main_count_ = 0;
  bool pool_riding_ = true;  // set_pool_riding
  Tensor z_;   // (N, out) the sum; after ReLU, the output itself
  Tensor dz_;  // (N, out) dL/dz
  Tensor dx_;  // (N, in)
};

}  // namespace loom
