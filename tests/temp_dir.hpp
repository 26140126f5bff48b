#pragma once
// A fresh directory under the system temp dir for one test, removed with
// everything in it when the test ends.

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace loom::testing {

struct TempDir {
  std::filesystem::path path;

  explicit TempDir(const std::string& stem = "loom-test") {
    static int counter = 0;
    path = std::filesystem::temp_directory_path() /
           (stem + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::filesystem::path operator/(const std::string& name) const { return path / name; }
};

/// Creates an empty file at p, and its directories.
inline void touch(const std::filesystem::path& p) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream{p};
}

}  // namespace loom::testing
