// Catalog exports (loom/search/catalog_export.hpp).

#include "loom/search/catalog_export.hpp"

#include <cstdint>
#include <string>
#include <system_error>

#include "loom/io/byte_io.hpp"
#include "loom/io/json.hpp"
#include "loom/io/model_file.hpp"

namespace loom::search {
namespace {

namespace fs = std::filesystem;

// NumPy format 1.0: magic, version, header length, a Python dict literal
// padded with spaces to a multiple of 64 bytes (ending in '\n'), the data.
std::vector<std::uint8_t> npy(const std::string& descr, const std::string& shape, std::span<const std::uint8_t> data) {
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  detail::ByteWriter w;
  static constexpr std::uint8_t kMagicAndVersion[] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  w.put_bytes(kMagicAndVersion);
  w.put<std::uint16_t>(static_cast<std::uint16_t>(header.size()));
  w.put_bytes({reinterpret_cast<const std::uint8_t*>(header.data()), header.size()});
  w.put_bytes(data);
  return std::move(w.bytes());
}

// One JSON object per item, with or without its vector.
std::string jsonl(const Catalog& c, bool with_vector) {
  std::string out;
  std::vector<float> scratch;
  for (Index i = 0; i < c.size(); ++i) {
    JsonObject o;
    o.integer("id", c.id(i)).integer("label", c.label(i)).str("class", c.class_name(c.label(i)));
    if (!c.path(i).empty()) o.str("path", c.path(i));
    if (with_vector) {
      const float* v = c.decode_rows(i, 1, scratch);
      o.raw("vector", json_array(std::span<const float>(v, static_cast<std::size_t>(c.dim())),
                                 [](float x) { return json_number(x, 9); }));
    }
    out += o.text();
    out += '\n';
  }
  return out;
}

void write_text(const fs::path& path, const std::string& text) {
  write_file_atomically(path, {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()});
}

}  // namespace

void write_npy_vectors(const Catalog& c, const fs::path& path) {
  const std::vector<float> v = c.all_vectors();
  write_file_atomically(path, npy("<f4", "(" + std::to_string(c.size()) + ", " + std::to_string(c.dim()) + ")",
                                  {reinterpret_cast<const std::uint8_t*>(v.data()), v.size() * sizeof(float)}));
}

void write_npy_ids(const Catalog& c, const fs::path& path) {
  const auto ids = c.ids();
  write_file_atomically(path, npy("<i8", "(" + std::to_string(c.size()) + ",)",
                                  {reinterpret_cast<const std::uint8_t*>(ids.data()), ids.size_bytes()}));
}

void write_metadata_jsonl(const Catalog& c, const fs::path& path) { write_text(path, jsonl(c, false)); }
void write_items_jsonl(const Catalog& c, const fs::path& path) { write_text(path, jsonl(c, true)); }

void write_fvecs(const Catalog& c, const fs::path& path) {
  detail::ByteWriter w;
  std::vector<float> scratch;
  for (Index i = 0; i < c.size(); ++i) {
    w.put<std::int32_t>(static_cast<std::int32_t>(c.dim()));
    w.put_floats({c.decode_rows(i, 1, scratch), static_cast<std::size_t>(c.dim())});
  }
  write_file_atomically(path, w.bytes());
}

std::vector<fs::path> export_catalog(const Catalog& c, const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError(dir.string() + ": cannot create the export folder: " + ec.message());
  const std::vector<fs::path> files{dir / "vectors.npy", dir / "ids.npy", dir / "metadata.jsonl", dir / "items.jsonl",
                                    dir / "vectors.fvecs"};
  write_npy_vectors(c, files[0]);
  write_npy_ids(c, files[1]);
  write_metadata_jsonl(c, files[2]);
  write_items_jsonl(c, files[3]);
  write_fvecs(c, files[4]);
  return files;
}

}  // namespace loom::search
