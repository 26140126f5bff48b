#pragma once
// Catalog files: a Catalog in one versioned binary file, and back. The
// layout (docs/visual-search.md has it byte by byte):
//   the frame of every loom file: magic "LOOMCTLG", format version, reserved,
//   content length, ..., CRC-32 of everything before it;
//   content: model fingerprint (u64), the model file's length (u64) and
//   bytes (catalog_model.hpp), layer name, dim (u64), encoding (u8),
//   class names, item count (u64), per item id (i64) and label (i32), a flag
//   and per item path when the items have paths, then the vectors: float32
//   (count x dim) or int8 scales (count floats) and codes (count x dim).
// Numbers little-endian.
//
// Saving encodes in memory and writes through write_file_atomically. Loading
// checks magic, version, length and CRC before decoding, then every count
// against the bytes that remain before allocating, every label against the
// class count and every value for finiteness: a truncated, flipped, foreign
// or newer file is a DataError naming the file and what was expected.
//
// An approximate index (hnsw_index.hpp) is not saved: it is rebuilt from the
// catalog, so the catalog file is the one persistent format to validate.
//
// Thread safety: free functions; saving reads the catalog only.

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "loom/search/catalog.hpp"

namespace loom::search {

/// The format version this build writes; it reads every version up to it.
inline constexpr std::uint32_t kCatalogFormatVersion = 1;

std::vector<std::uint8_t> encode_catalog(const Catalog& catalog);
/// DataError (naming source) on anything malformed.
Catalog decode_catalog(std::span<const std::uint8_t> bytes, const std::string& source = "<memory>");
void save_catalog(const Catalog& catalog, const std::filesystem::path& path);
/// IoError when the file cannot be read, DataError when it is not a valid catalog.
Catalog load_catalog(const std::filesystem::path& path);

}  // namespace loom::search
