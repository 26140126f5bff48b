#pragma once
// The layer registry: for each layer kind ("Conv2D", or a kind of your own),
// the function that reads its options back from a model file. Saving writes
// a layer's kind(), name and write_config; loading looks the kind up here.
// The built-in layers are registered from the start; register your own before
// you load a model that holds it:
//
//   class Scale final : public loom::Layer {
//    public:
//     static constexpr std::string_view kKind = "Scale";
//     std::string_view kind() const override { return kKind; }
//     void write_config(loom::LayerConfigWriter& w) const override { w.put_f32(factor_); }
//     static std::unique_ptr<loom::Layer> from_config(loom::LayerConfigReader& r) {
//       return std::make_unique<Scale>(r.get_f32("Scale factor"));
//     }
//     ...
//   };
//   loom::register_layer<Scale>();
//
// examples/custom_layer.cpp is a whole program. Parameters need nothing of
// the registry: the layer's build creates them, and the file's weights are
// loaded into them by name and shape.
//
// Thread safety: registering and looking up are guarded by a mutex; register
// before loading, not while another thread loads.

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "loom/io/layer_config.hpp"
#include "loom/layer.hpp"

namespace loom {

/// Reads a layer's options (what its write_config wrote) and returns the unbuilt layer.
using LayerReader = std::function<std::unique_ptr<Layer>(LayerConfigReader&)>;

/// Registers how to read layers of `kind`. Registering a kind again replaces
/// its reader; a built-in kind cannot be replaced (UsageError).
void register_layer(std::string kind, LayerReader read);

/// The same for a layer class with `static constexpr std::string_view kKind`
/// and `static std::unique_ptr<Layer> from_config(LayerConfigReader&)`.
template <typename L>
void register_layer() {
  register_layer(std::string(L::kKind), [](LayerConfigReader& r) -> std::unique_ptr<Layer> { return L::from_config(r); });
}

bool layer_registered(std::string_view kind);
/// Every registered kind, sorted.
std::vector<std::string> registered_layers();

/// Reads one layer (kind, name, options) written by LayerConfigWriter::put_layer,
/// for per-sample `input`; a DataError for an unknown kind or bad options.
std::unique_ptr<Layer> read_layer(detail::ByteReader& r, const Shape& input, ParamBudget& budget);

}  // namespace loom
