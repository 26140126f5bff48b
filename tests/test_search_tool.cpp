// loom index and loom search end to end, as a user runs them, on an
// untrained seed CNN (its embeddings are as valid to search as a trained
// one's) and a few hundred Fashion-MNIST images: JSON lines, the grid, the
// evaluation, exports, folders of photos, and every bad input the tool must
// refuse with a clear message and exit status.

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "loom/data/fashion_mnist.hpp"
#include "loom/image/image.hpp"
#include "loom/io/model_file.hpp"
#include "loom/models/fashion_mnist_cnn.hpp"
#include "loom_tool.hpp"
#include "photo_like.hpp"
#include "subprocess.hpp"
#include "temp_dir.hpp"
#include "test_scale.hpp"

#ifdef LOOM_TOOL_PATH

using namespace loom;
using namespace loom::testing;
using Catch::Contains;

namespace fs = std::filesystem;

namespace {

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("loom index and search: catalogs of the training set, queries by photo", "[tool][search][fashion_mnist]") {
  TempDir dir;
  const std::string model = (dir / "m.loom").string(), other = (dir / "other.loom").string();
  models::fashion_mnist_cnn(1).save(model);
  models::fashion_mnist_cnn(2).save(other);
  const std::string data = fashion_mnist::find_data_dir().string();
  const std::string catalog = (dir / "c.ctlg").string();
  const Index items = scaled(400, 100);

  const ProcessResult index = loom_tool(dir, {"index", model, "--out", catalog, "--data", data, "--limit",
                                              std::to_string(items), "--json", "--verbose", "0", "--export",
                                              (dir / "export").string()});
  INFO(index.output);
  REQUIRE(index.exit_code == 0);
  CHECK_THAT(index.output, Contains("\"items\": " + std::to_string(items) + ", \"dim\": 128, \"layer\": \"dense\"") &&
                               Contains("\"encoding\": \"float32\""));
  for (const char* f : {"vectors.npy", "ids.npy", "metadata.jsonl", "items.jsonl", "vectors.fvecs"})
    CHECK(fs::file_size(dir / "export" / f) > 0);

  const Dataset test = fashion_mnist::load_test(data);
  const std::string first = (dir / "first.png").string(), second = (dir / "second.jpg").string();
  write_png(first, light_background_photo(test, 0));
  write_jpeg(second, light_background_photo(test, 1), 90);

  // --json: one line per image, in the order given, k neighbours each; --grid: a picture.
  const std::string grid = (dir / "grid" / "g.png").string();
  const ProcessResult found = loom_tool(dir, {"search", catalog, second, first, "--k", "4", "--json", "--grid", grid});
  INFO(found.output);
  REQUIRE(found.exit_code == 0);
  REQUIRE(count(found.output, "\n") == 2);
  CHECK(found.output.find("{\"file\": \"" + second + "\", \"neighbours\": [{\"id\": ") == 0);
  CHECK(found.output.find("{\"file\": \"" + first + "\", \"neighbours\": [{\"id\": ") != std::string::npos);
  CHECK(count(found.output, "\"score\": ") == 8);
  CHECK(count(found.output, "\"path\"") == 0);  // items of the data set came from no file
  const Image picture = read_image(grid);
  CHECK(picture.width > 4 * 84);
  CHECK(picture.height > 2 * 84);

  // Text output, a class filter, the approximate backend.
  const ProcessResult text = loom_tool(dir, {"search", catalog, first, "--class", "Sneaker,Sandal", "--k", "5"});
  INFO(text.output);
  CHECK(text.exit_code == 0);
  CHECK(count(text.output, "Sneaker") + count(text.output, "Sandal") == 5);
  const ProcessResult approx = loom_tool(dir, {"search", catalog, first, "--approximate", "--json", "--k", "3"});
  CHECK(approx.exit_code == 0);
  CHECK(count(approx.output, "\"score\": ") == 3);
  const ProcessResult ivf = loom_tool(dir, {"search", catalog, first, "--approximate", "--index", "ivf", "--json", "--k", "3"});
  CHECK(ivf.exit_code == 0);
  CHECK(count(ivf.output, "\"score\": ") == 3);
  const ProcessResult lsh = loom_tool(dir, {"search", catalog, first, "--approximate", "--index", "lsh"});
  CHECK(lsh.exit_code == 2);
  CHECK_THAT(lsh.output, Contains("--index expects hnsw or ivf, got \"lsh\""));
  const ProcessResult lone_index = loom_tool(dir, {"search", catalog, first, "--index", "ivf"});
  CHECK(lone_index.exit_code == 2);
  CHECK_THAT(lone_index.output, Contains("--index chooses the approximate backend: give --approximate too"));

  // An unreadable image among good ones: its own error line and JSON object, the others answered, status 1.
  const std::string missing = (dir / "missing.png").string();
  const ProcessResult partly = loom_tool(dir, {"search", catalog, missing, first, "--json", "--k", "2"});
  CHECK(partly.exit_code == 1);
  CHECK_THAT(partly.output, Contains("loom search: " + missing) &&
                                Contains("{\"file\": \"" + missing + "\", \"error\": ") &&
                                Contains("{\"file\": \"" + first + "\", \"neighbours\": [{"));

  // Bad k, unknown class, another model's queries, a damaged catalog.
  const ProcessResult k0 = loom_tool(dir, {"search", catalog, first, "--k", "0"});
  CHECK(k0.exit_code == 2);
  CHECK_THAT(k0.output, Contains("--k expects a whole number >= 1, got \"0\""));
  const ProcessResult k_big = loom_tool(dir, {"search", catalog, first, "--k", std::to_string(items + 1)});
  CHECK(k_big.exit_code == 2);
  CHECK_THAT(k_big.output, Contains("k = " + std::to_string(items + 1) + " is more than the catalog's " +
                                    std::to_string(items) + " items"));
  const ProcessResult hat = loom_tool(dir, {"search", catalog, first, "--class", "Hat"});
  CHECK(hat.exit_code == 2);
  CHECK_THAT(hat.output, Contains("--class \"Hat\" is not a class of " + catalog) && Contains("\"Ankle boot\""));
  const ProcessResult foreign = loom_tool(dir, {"search", catalog, first, "--model", other});
  CHECK(foreign.exit_code == 1);
  CHECK_THAT(foreign.output, Contains(catalog + ": the catalog was made by another model") && Contains(other));
  fs::copy_file(catalog, dir / "cut.ctlg");
  fs::resize_file(dir / "cut.ctlg", fs::file_size(catalog) / 2);
  const ProcessResult cut = loom_tool(dir, {"search", (dir / "cut.ctlg").string(), first});
  CHECK(cut.exit_code == 1);
  CHECK_THAT(cut.output, Contains((dir / "cut.ctlg").string() + ": truncated"));
  const ProcessResult not_catalog = loom_tool(dir, {"search", model, first});
  CHECK(not_catalog.exit_code == 1);
  CHECK_THAT(not_catalog.output, Contains("not a loom catalog file"));

  // --evaluate: the test images as queries, next to raw pixels.
  const ProcessResult eval = loom_tool(dir, {"search", catalog, "--evaluate", "--data", data, "--limit", "50", "--json"});
  INFO(eval.output);
  REQUIRE(eval.exit_code == 0);
  CHECK_THAT(eval.output, Contains("\"queries\": 50") && Contains("\"embedding\": {\"precision_at_1\": ") &&
                              Contains("\"map_at_10\": ") && Contains("\"raw_pixels\": {\"precision_at_1\": "));
}

TEST_CASE("loom index --images: a folder of photos, labelled by the model, and an empty folder refused",
          "[tool][search][fashion_mnist]") {
  TempDir dir;
  const std::string model = (dir / "m.loom").string();
  models::fashion_mnist_cnn(1).save(model);
  const Dataset test = fashion_mnist::load_test(fashion_mnist::find_data_dir());
  fs::create_directories(dir / "shop" / "tops");
  for (int i = 0; i < 4; ++i) write_png(dir / "shop" / "tops" / ("p" + std::to_string(i) + ".png"), light_background_photo(test, i));
  std::ofstream(dir / "shop" / "notes.txt") << "not an image";
  const std::string catalog = (dir / "shop.ctlg").string();
  const ProcessResult index = loom_tool(dir, {"index", model, "--out", catalog, "--images", (dir / "shop").string(),
                                              "--int8", "--json", "--verbose", "0"});
  INFO(index.output);
  CHECK(index.exit_code == 1);  // notes.txt is reported, the photos are indexed
  CHECK_THAT(index.output, Contains("notes.txt") && Contains("\"items\": 4") && Contains("\"encoding\": \"int8\""));
  const ProcessResult found =
      loom_tool(dir, {"search", catalog, (dir / "shop" / "tops" / "p2.png").string(), "--k", "1", "--json"});
  INFO(found.output);
  CHECK(found.exit_code == 0);
  CHECK_THAT(found.output, Contains("\"score\": 1") && Contains("\"path\": \"" + (dir / "shop" / "tops" / "p2.png").string()));

  fs::create_directories(dir / "empty");
  const ProcessResult empty =
      loom_tool(dir, {"index", model, "--out", (dir / "e.ctlg").string(), "--images", (dir / "empty").string()});
  CHECK(empty.exit_code == 1);
  CHECK_THAT(empty.output, Contains((dir / "empty").string() + ": the folder holds no files"));
  CHECK_FALSE(fs::exists(dir / "e.ctlg"));
  CHECK(loom_tool(dir, {"index", "--help"}).exit_code == 0);
  CHECK(loom_tool(dir, {"search", "--help"}).exit_code == 0);
  CHECK(loom_tool(dir, {"index", model, "--out", catalog}).exit_code == 2);  // neither --data nor --images
}

#endif  // LOOM_TOOL_PATH
