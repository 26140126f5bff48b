// The layer registry (loom/layer_registry.hpp) and the nested layer encoding
// of LayerConfigWriter::put_layer and LayerConfigReader::get_layer.

#include "loom/layer_registry.hpp"

#include <algorithm>
#include <map>
#include <mutex>

#include "loom/layers/average_pooling2d.hpp"
#include "loom/layers/batch_normalization.hpp"
#include "loom/layers/conv2d.hpp"
#include "loom/layers/dense.hpp"
#include "loom/layers/dropout.hpp"
#include "loom/layers/flatten.hpp"
#include "loom/layers/global_average_pooling2d.hpp"
#include "loom/layers/leaky_relu.hpp"
#include "loom/layers/maxpool2d.hpp"
#include "loom/layers/relu.hpp"
#include "loom/layers/residual.hpp"
#include "loom/layers/softmax.hpp"

namespace loom {
namespace {

constexpr std::size_t kMaxName = 1024;  // layer kinds and names

struct Registry {
  std::mutex mutex;
  std::map<std::string, LayerReader, std::less<>> readers;
  std::vector<std::string> built_in;

  template <typename L>
  void add_built_in() {
    built_in.emplace_back(L::kKind);
    readers.emplace(std::string(L::kKind), [](LayerConfigReader& r) -> std::unique_ptr<Layer> { return L::from_config(r); });
  }

  Registry() {
    add_built_in<AveragePooling2D>();
    add_built_in<BatchNormalization>();
    add_built_in<Conv2D>();
    add_built_in<Dense>();
    add_built_in<Dropout>();
    add_built_in<Flatten>();
    add_built_in<GlobalAveragePooling2D>();
    add_built_in<LeakyReLU>();
    add_built_in<MaxPool2D>();
    add_built_in<ReLU>();
    add_built_in<Residual>();
    add_built_in<Softmax>();
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

LayerReader reader_of(std::string_view kind) {
  Registry& reg = registry();
  const std::lock_guard lock(reg.mutex);
  const auto it = reg.readers.find(kind);
  return it == reg.readers.end() ? LayerReader() : it->second;
}

}  // namespace

void register_layer(std::string kind, LayerReader read) {
  if (kind.empty() || kind.size() > kMaxName)
    throw UsageError("register_layer: a layer kind must have 1 to " + std::to_string(kMaxName) + " characters");
  if (!read) throw UsageError("register_layer: no reader given for layer kind \"" + kind + "\"");
  Registry& reg = registry();
  const std::lock_guard lock(reg.mutex);
  if (std::find(reg.built_in.begin(), reg.built_in.end(), kind) != reg.built_in.end())
    throw UsageError("register_layer: \"" + kind + "\" is a built-in layer kind; give your layer a kind of its own");
  reg.readers.insert_or_assign(std::move(kind), std::move(read));
}

bool layer_registered(std::string_view kind) { return static_cast<bool>(reader_of(kind)); }

std::vector<std::string> registered_layers() {
  Registry& reg = registry();
  const std::lock_guard lock(reg.mutex);
  std::vector<std::string> kinds;
  for (const auto& [kind, read] : reg.readers) kinds.push_back(kind);
  return kinds;
}

void LayerConfigWriter::put_layer(const Layer& layer) {
  const std::string kind(layer.kind());
  if (!layer_registered(kind))
    throw UsageError("save: layer " + layer.name() + " (" + kind +
                     ") cannot be saved: its kind is not registered; call loom::register_layer for it "
                     "(see loom/layer_registry.hpp)");
  put_string(kind);
  put_string(layer.name());
  layer.write_config(*this);
}

std::unique_ptr<Layer> read_layer(detail::ByteReader& r, const Shape& input, ParamBudget& budget) {
  LayerConfigReader config(r, input, budget);
  const std::string kind = r.get_string("layer kind", kMaxName);
  config.name_ = r.get_string("layer name", kMaxName);
  const LayerReader read = reader_of(kind);
  if (!read)
    r.fail("unknown layer kind \"" + kind + "\" (a layer defined in code must be registered with "
           "loom::register_layer before loading)");
  std::unique_ptr<Layer> layer;
  try {
    layer = read(config);
  } catch (const UsageError& e) {  // an option the layer refuses
    r.fail(std::string("invalid layer configuration: ") + e.what());
  }
  if (!layer) r.fail("the reader of layer kind \"" + kind + "\" returned no layer");
  if (layer->kind() != kind)
    r.fail("the reader of layer kind \"" + kind + "\" returned a " + std::string(layer->kind()) + " layer");
  layer->set_name(config.name_);
  return layer;
}

std::unique_ptr<Layer> LayerConfigReader::get_layer(const Shape& input) { return read_layer(r_, input, budget_); }

}  // namespace loom
