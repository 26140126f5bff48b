#pragma once
// Reading a whole file into memory, for the loaders that parse from bytes
// (model files, images). Internal to the library.

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "loom/error.hpp"

namespace loom::detail {

/// The bytes of the file at path. IoError when it cannot be opened or read;
/// DataError, before anything is read, when it holds more than max_bytes,
/// saying "more than <what> can take".
inline std::vector<std::uint8_t> read_whole_file(const std::filesystem::path& path, std::uintmax_t max_bytes,
                                                 const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path.string() + ": cannot open for reading: " + std::strerror(errno));
  std::error_code ec;
  const std::uintmax_t size = std::filesystem::file_size(path, ec);  // fails on a directory, as it should
  if (ec) throw IoError(path.string() + ": cannot read it: " + ec.message());
  if (size > max_bytes)
    throw DataError(path.string() + ": " + std::to_string(size) + " bytes is more than " + what + " can take (" +
                    std::to_string(max_bytes) + " bytes)");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size)))
    throw IoError(path.string() + ": reading failed after " + std::to_string(in.gcount()) + " of " +
                  std::to_string(size) + " bytes");
  return bytes;
}

}  // namespace loom::detail
