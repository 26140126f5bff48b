// Finding and loading the Fashion-MNIST files (loom/data/fashion_mnist.hpp).

#include "loom/data/fashion_mnist.hpp"

#include <cstdlib>
#include <system_error>
#include <utility>

#include "loom/error.hpp"

namespace loom::fashion_mnist {
namespace {

namespace fs = std::filesystem;

constexpr std::array<std::string_view, 4> kFiles = {train_images, train_labels, test_images, test_labels};

constexpr std::string_view kHowToGet =
    "To get them: sudo apt-get install dataset-fashion-mnist (Debian, Ubuntu), or run data/fetch.sh "
    "(downloads into data/fashion-mnist); then pass the directory that holds them, or set LOOM_DATA_DIR.";

// "data/fashion-mnist (/home/me/loom/data/fashion-mnist)": relative paths depend
// on the working directory, which is often not what the user thinks it is.
std::string show(const fs::path& dir) {
  if (dir.is_absolute()) return dir.string();
  std::error_code ec;
  const fs::path abs = fs::absolute(dir, ec);
  return ec ? dir.string() : dir.string() + " (" + abs.string() + ")";
}

std::string join(std::span<const std::string_view> names) {
  std::string s;
  for (auto name : names) s += (s.empty() ? "" : ", ") + std::string(name);
  return s;
}

// Why dir does not hold the files named, or "" when it does.
std::string why_not(const fs::path& dir, std::span<const std::string_view> names) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return "does not exist";
  if (!fs::is_directory(dir, ec)) return "is not a directory";
  std::vector<std::string_view> missing;
  for (auto name : names)
    if (!find_file(dir, name)) missing.push_back(name);
  return missing.empty() ? "" : "lacks " + join(missing);
}

using Looked = std::vector<std::pair<std::string, std::string>>;  // (directory, why it was passed over)

DataError not_found(const Looked& looked) {
  std::string msg = "Fashion-MNIST not found. Looked in:\n";
  for (const auto& [dir, why] : looked) msg += "  " + dir + ": " + why + "\n";
  msg += "for the files " + join(kFiles) + " (each also accepted as " + spellings(train_images)[1] +
         " and so on, raw or .gz).\n" + std::string(kHowToGet);
  return DataError(msg);
}

fs::path absolute_normal(const fs::path& dir) {
  std::error_code ec;
  const fs::path abs = fs::absolute(dir, ec);
  return ec ? dir : abs.lexically_normal();
}

Dataset load_split(const fs::path& dir, std::string_view images, std::string_view labels) {
  const std::string_view names[] = {images, labels};
  const std::string why = why_not(dir, names);
  if (!why.empty()) {
    std::string looked_for;
    for (auto name : names)
      for (const auto& s : spellings(name)) looked_for += (looked_for.empty() ? "" : ", ") + s;
    throw DataError("Fashion-MNIST: " + show(dir) + " " + why + " (looked for " + looked_for + "). " +
                    std::string(kHowToGet));
  }
  return Dataset::from_idx(*find_file(dir, images), *find_file(dir, labels), num_classes);
}

}  // namespace

std::vector<std::string> spellings(std::string_view name) {
  std::vector<std::string> out{std::string(name)};
  // LeCun's site and Zalando use "train-images-idx3-ubyte"; some mirrors "train-images.idx3-ubyte".
  if (const auto at = name.find("-idx"); at != std::string_view::npos) {
    std::string dotted(name);
    dotted[at] = '.';
    out.push_back(std::move(dotted));
  }
  const std::size_t raw = out.size();
  for (std::size_t i = 0; i < raw; ++i) out.push_back(out[i] + ".gz");
  return out;
}

std::optional<fs::path> find_file(const fs::path& dir, std::string_view name) {
  std::error_code ec;
  for (const auto& s : spellings(name))
    if (fs::is_regular_file(dir / s, ec)) return dir / s;
  return std::nullopt;
}

fs::path first_data_dir(std::span<const fs::path> dirs) {
  Looked looked;
  for (const auto& dir : dirs) {
    std::string why = why_not(dir, kFiles);
    if (why.empty()) return absolute_normal(dir);
    looked.emplace_back(show(dir), std::move(why));
  }
  throw not_found(looked);
}

fs::path find_data_dir(const std::optional<fs::path>& dir) {
  if (dir) {
    const std::string why = why_not(*dir, kFiles);
    if (why.empty()) return absolute_normal(*dir);
    throw not_found({{show(*dir) + " (given explicitly)", why}});
  }
  if (const char* env = std::getenv(env_var); env && *env) {
    const fs::path root(env), sub = root / "fashion-mnist";
    const std::string why_root = why_not(root, kFiles);
    if (why_root.empty()) return absolute_normal(root);
    const std::string why_sub = why_not(sub, kFiles);
    if (why_sub.empty()) return absolute_normal(sub);
    throw not_found({{show(root) + " (from $" + env_var + ")", why_root},
                     {show(sub) + " (from $" + env_var + ")", why_sub}});
  }
  const std::vector<fs::path> dirs(default_dirs.begin(), default_dirs.end());
  return first_data_dir(dirs);
}

Dataset load_train(const fs::path& dir) { return load_split(dir, train_images, train_labels); }
Dataset load_test(const fs::path& dir) { return load_split(dir, test_images, test_labels); }

}  // namespace loom::fashion_mnist
