// Catalog files (loom/search/catalog_file.hpp); the layout is in docs/visual-search.md.

#include "loom/search/catalog_file.hpp"

#include <cmath>

#include "loom/io/byte_io.hpp"
#include "framed_file.hpp"
#include "read_whole_file.hpp"
#include "loom/io/model_file.hpp"
#include "loom/search/catalog_model.hpp"

namespace loom::search {
namespace {

using detail::ByteReader;
using detail::ByteWriter;

constexpr detail::FrameKind kCatalogFrame{"loom catalog file", {'L', 'O', 'O', 'M', 'C', 'T', 'L', 'G'},
                                          kCatalogFormatVersion};
// Limits far beyond any catalog loom makes, so a hostile file cannot make the
// loader allocate without bound (every count is also checked against the bytes left).
constexpr std::size_t kMaxName = 1024;     // layer and class names
constexpr std::size_t kMaxPath = 4096;     // an item's source path
constexpr std::uint64_t kMaxDim = 1 << 20;  // values per vector
constexpr auto kMaxClasses = static_cast<std::uint32_t>(kMaxLabels);
constexpr std::uint64_t kMaxFileBytes = std::uint64_t{1} << 38;  // 256 GiB

}  // namespace

std::vector<std::uint8_t> encode_catalog(const Catalog& c) {
  ByteWriter w;
  detail::begin_frame(w, kCatalogFrame);
  const CatalogInfo& info = c.info();
  w.put<std::uint64_t>(info.model_fingerprint);
  w.put<std::uint64_t>(info.model.size());
  w.put_bytes(info.model);
  w.put_string(info.layer);
  w.put<std::uint64_t>(static_cast<std::uint64_t>(info.dim));
  w.put<std::uint8_t>(static_cast<std::uint8_t>(info.encoding));
  w.put<std::uint32_t>(static_cast<std::uint32_t>(info.class_names.size()));
  for (const std::string& name : info.class_names) w.put_string(name);
  w.put<std::uint64_t>(static_cast<std::uint64_t>(c.size()));
  for (Index i = 0; i < c.size(); ++i) {
    w.put<std::int64_t>(c.id(i));
    w.put<std::int32_t>(c.label(i));
  }
  bool has_paths = false;
  for (Index i = 0; i < c.size() && !has_paths; ++i) has_paths = !c.path(i).empty();
  w.put<std::uint8_t>(has_paths ? 1 : 0);
  if (has_paths)
    for (Index i = 0; i < c.size(); ++i) w.put_string(c.path(i));
  if (c.encoding() == VectorEncoding::Int8) {
    w.put_floats(c.scale_storage());
    const auto codes = c.code_storage();
    w.put_bytes({reinterpret_cast<const std::uint8_t*>(codes.data()), codes.size()});
  } else {
    w.put_floats(c.float_storage());
  }
  return detail::finish_frame(w);
}

Catalog decode_catalog(std::span<const std::uint8_t> bytes, const std::string& source) {
  const detail::Frame frame = detail::open_frame(bytes, source, kCatalogFrame);
  ByteReader r(frame.content, source, detail::kFrameHeaderSize);
  CatalogInfo info;
  info.model_fingerprint = r.get<std::uint64_t>("model fingerprint");
  const auto model_bytes = r.get<std::uint64_t>("model length");
  const auto model = r.get_bytes(model_bytes, "model");
  info.model.assign(model.begin(), model.end());
  if (!info.model.empty() && fingerprint_of_bytes(info.model) != info.model_fingerprint)
    r.fail("the model it holds has fingerprint " + std::to_string(fingerprint_of_bytes(info.model)) +
           ", the catalog says " + std::to_string(info.model_fingerprint));
  info.layer = r.get_string("layer name", kMaxName);
  const auto dim = r.get<std::uint64_t>("vector dimension");
  if (dim == 0 || dim > kMaxDim)
    r.fail("vector dimension " + std::to_string(dim) + " is outside [1, " + std::to_string(kMaxDim) + "]");
  info.dim = static_cast<Index>(dim);
  const auto encoding = r.get<std::uint8_t>("vector encoding");
  if (encoding > 1) r.fail("unknown vector encoding " + std::to_string(encoding) + " (expected 0 float32 or 1 int8)");
  info.encoding = static_cast<VectorEncoding>(encoding);
  const auto classes = r.get<std::uint32_t>("class count");
  if (classes > kMaxClasses)
    r.fail("class count " + std::to_string(classes) + " is more than the " + std::to_string(kMaxClasses) + " allowed");
  r.need_items(classes, 4, "class names");
  for (std::uint32_t i = 0; i < classes; ++i) info.class_names.push_back(r.get_string("class name", kMaxName));

  const auto count = r.get<std::uint64_t>("item count");
  r.need_items(count, 12, "items");  // id and label each, at least
  const auto n = static_cast<std::size_t>(count);
  std::vector<std::int64_t> ids(n);
  std::vector<Label> labels(n);
  for (std::size_t i = 0; i < n; ++i) {
    ids[i] = r.get<std::int64_t>("item id");
    labels[i] = r.get<std::int32_t>("item label");
    if (!valid_label(labels[i], classes))
      r.fail("item " + std::to_string(i) + " has label " + std::to_string(labels[i]) + ", expected " + label_range(classes));
  }
  const auto has_paths = r.get<std::uint8_t>("paths flag");
  if (has_paths > 1) r.fail("paths flag is " + std::to_string(has_paths) + ", expected 0 or 1");
  std::vector<std::string> paths(has_paths ? 0 : n);
  if (has_paths) {
    r.need_items(count, 4, "item paths");
    paths.reserve(n);
    for (std::size_t i = 0; i < n; ++i) paths.push_back(r.get_string("item path", kMaxPath));
  }

  std::vector<float> floats, scales;
  std::vector<std::int8_t> codes;
  const std::uint64_t values = count * dim;  // count <= file size / 12 and dim <= 2^20: no overflow
  if (info.encoding == VectorEncoding::Int8) {
    r.need_items(count, 4 + dim, "int8 vectors");
    r.get_floats(scales, count, "vector scales");
    const auto b = r.get_bytes(values, "int8 codes");
    codes.assign(reinterpret_cast<const std::int8_t*>(b.data()), reinterpret_cast<const std::int8_t*>(b.data()) + b.size());
  } else {
    r.need_items(count, 4 * dim, "float32 vectors");
    r.get_floats(floats, values, "vectors");
  }
  r.expect_end("the catalog");
  // from_storage refuses a vector that is not of unit length (or has a value that is not finite).
  return Catalog::from_storage(std::move(info), std::move(ids), std::move(labels), std::move(paths), std::move(floats),
                               std::move(codes), std::move(scales), source);
}

void save_catalog(const Catalog& catalog, const std::filesystem::path& path) {
  write_file_atomically(path, encode_catalog(catalog));
}

Catalog load_catalog(const std::filesystem::path& path) {
  return decode_catalog(detail::read_whole_file(path, kMaxFileBytes, "any loom catalog file"), path.string());
}

}  // namespace loom::search
