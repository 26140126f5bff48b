// Writes the seed corpora of fuzz_model, fuzz_catalog and fuzz_image: small
// valid files made by loom's own writers (model files, checkpoints, catalogs,
// PNG, JPEG) and, for the
// image formats loom does not write, tiny hand-made files (PGM, PPM, BMP,
// TGA, GIF, HDR). The fuzzers derive the near-valid ones themselves.
// Built with LOOM_FUZZ=ON; usage: build-fuzz/tests/fuzz/fuzz_make_seeds tests/fuzz/corpus

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "loom/image/image.hpp"
#include "loom/io/model_file.hpp"
#include "loom/layers/conv2d.hpp"
#include "loom/layers/dense.hpp"
#include "loom/layers/flatten.hpp"
#include "loom/layers/maxpool2d.hpp"
#include "loom/layers/relu.hpp"
#include "loom/layers/softmax.hpp"
#include "loom/optimizers/adam.hpp"
#include "loom/random.hpp"
#include "loom/search/catalog_file.hpp"
#include "loom/search/catalog_model.hpp"
#include "loom/sequential.hpp"

namespace fs = std::filesystem;
using namespace loom;

namespace {

void write(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                              static_cast<std::streamsize>(bytes.size()));
}

void write(const fs::path& path, const std::string& text) { write(path, std::vector<std::uint8_t>(text.begin(), text.end())); }

// Random inputs in [0, 1) with labels below `classes`, for one short fit.
void train(Sequential& m, Index n, Index classes, const fs::path& checkpoint = {}) {
  Random rng(3);
  Tensor x;
  resize_batch(x, n, m.input_shape());
  for (Index i = 0; i < x.size(); ++i) x.data()[i] = rng.uniform01();
  std::vector<Label> y(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) y[static_cast<std::size_t>(i)] = static_cast<Label>(i % classes);
  m.fit(x, y, {.epochs = 2, .batch_size = 4, .validation_split = 0.25, .verbose = 0, .checkpoint = checkpoint});
}

void model_seeds(const fs::path& dir) {
  fs::create_directories(dir);
  {  // a small CNN with every layer kind that has options
    Sequential m(Shape{6, 6, 1}, 1);
    m.add(Conv2D({.filters = 2, .kernel = 3, .activation = Activation::ReLU}));
    m.add(MaxPool2D({.pool = 2}));
    m.add(Conv2D({.filters = 2, .kernel = 2, .strides = 2, .padding = Padding::Same}));
    m.add(Flatten());
    m.add(Dense({.units = 3, .activation = Activation::Softmax}));
    m.compile(Adam(), SparseCategoricalCrossentropy(), {"accuracy"});
    fs::remove(dir / "cnn-checkpoint");      // else fit would resume from it
    train(m, 8, 3, dir / "cnn-checkpoint");  // fit writes a real checkpoint (TRNG section)
    write(dir / "cnn", encode_model(m));
    write(dir / "cnn-weights-only", encode_model(m, {.include_optimizer_state = false, .include_history = false}));
  }
  {  // standalone ReLU and Softmax layers on flat input
    Sequential m(Shape{5}, 2);
    m.add(Dense({.units = 4}));
    m.add(ReLU());
    m.add(Dense({.units = 3}));
    m.add(Softmax());
    m.compile(Adam({.learning_rate = 0.01f}), SparseCategoricalCrossentropy(), {"accuracy"});
    write(dir / "mlp-untrained", encode_model(m));
  }
  {  // logits out, the loss applies the softmax
    Sequential m(Shape{2, 2, 2}, 3);
    m.add(Flatten());
    m.add(Dense({.units = 2}));
    m.compile(Adam(), SparseCategoricalCrossentropy({.from_logits = true}), {"accuracy"});
    train(m, 8, 2);
    write(dir / "logits", encode_model(m));
  }
}

void catalog_seeds(const fs::path& dir) {
  using namespace loom::search;
  fs::create_directories(dir);
  Sequential m(Shape{4}, 4);  // a tiny model whose catalog keeps it
  m.add(Dense({.units = 3, .activation = Activation::ReLU}));
  m.add(Dense({.units = 2, .activation = Activation::Softmax}));
  m.compile(Adam(), SparseCategoricalCrossentropy(), {"accuracy"});
  Tensor x(5, 1, 1, 4);
  Random rng(5);
  for (Index i = 0; i < x.size(); ++i) x.data()[i] = rng.uniform01();
  const Tensor e = m.embed(x);
  const std::vector<std::int64_t> ids{0, 1, 2, 3, 4};
  const std::vector<Label> labels{0, 1, 1, 0, 1};
  for (const VectorEncoding enc : {VectorEncoding::Float32, VectorEncoding::Int8}) {
    Catalog c(catalog_info_for(m, "", {"a", "b"}, enc));
    c.add(e, ids, labels);
    write(dir / (std::string("model-") + encoding_name(enc)), encode_catalog(c));
  }
  Catalog paths(catalog_info_for(m, "", {"a", "b"}));
  paths.add(e, ids, labels, std::vector<std::string>{"a.png", "b.jpg", "c/d.png", "e.png", "f.gif"});
  write(dir / "paths", encode_catalog(paths));
  Catalog bare({.dim = 2});  // vectors from elsewhere: no model, no class names
  const std::vector<float> v{0.6f, 0.8f, 1.0f, 0.0f, 0.0f, -1.0f};
  bare.add(v.data(), std::vector<std::int64_t>{-5, 9, 100}, std::vector<Label>{0, 7, 3});
  write(dir / "no-model", encode_catalog(bare));
  write(dir / "empty", encode_catalog(Catalog({.dim = 3, .class_names = {"x"}})));
}

void image_seeds(const fs::path& dir) {
  fs::create_directories(dir);
  for (int c = 1; c <= 4; ++c) {
    Image im(5, 4, c);
    for (std::size_t i = 0; i < im.pixels.size(); ++i) im.pixels[i] = static_cast<std::uint8_t>(i * 37);
    write_png(dir / ("png-" + std::to_string(c) + "ch"), im);
    if (c == 3) write_jpeg(dir / "jpeg-rgb", Image(im), 75);
  }
  Image big(20, 12, 1);  // a JPEG of more than one 8x8 block, with a gradient
  for (int y = 0; y < big.height; ++y)
    for (int x = 0; x < big.width; ++x) big.at(x, y) = static_cast<std::uint8_t>(x * 12 + y * 5);
  write_jpeg(dir / "jpeg-grey", big, 90);

  {  // the JPEG again with an EXIF block (little-endian, "II") saying "turn 90 degrees clockwise"
    std::ifstream in(dir / "jpeg-rgb", std::ios::binary);
    std::vector<std::uint8_t> jpeg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::vector<std::uint8_t> app1{0xFF, 0xE1, 0, 34, 'E', 'x', 'i', 'f', 0, 0,           // APP1, length, id
                                         'I', 'I', 0x2A, 0, 8, 0, 0, 0,                        // TIFF header
                                         1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0,       // 1 entry: Orientation = 6
                                         0, 0, 0, 0};                                          // no next IFD
    jpeg.insert(jpeg.begin() + 2, app1.begin(), app1.end());  // after SOI
    write(dir / "jpeg-exif-rotated", jpeg);
  }
  write(dir / "pgm", std::string("P5\n3 2\n255\n") + std::string("\x00\x40\x80\xc0\xff\x10", 6));
  write(dir / "ppm", std::string("P6\n2 1\n255\n") + std::string("\xff\x00\x00\x00\xff\x00", 6));
  // BMP: 2x2, 24-bit, rows of 6 bytes padded to 8, bottom-up.
  write(dir / "bmp", std::vector<std::uint8_t>{
                         'B', 'M', 70, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0,              // file header
                         40, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 24, 0,             // info header...
                         0, 0, 0, 0, 16, 0, 0, 0, 0x13, 0x0B, 0, 0, 0x13, 0x0B, 0, 0,  //
                         0, 0, 0, 0, 0, 0, 0, 0,                                       //
                         0, 0, 255, 255, 255, 255, 0, 0,                               // pixels
                         255, 0, 0, 0, 255, 0, 0, 0});
  // TGA: 2x1, uncompressed true-colour, 24-bit.
  write(dir / "tga", std::vector<std::uint8_t>{0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1, 0, 24, 0,
                                               255, 0, 0, 0, 255, 0});
  // GIF: the classic 1x1 transparent pixel.
  write(dir / "gif", std::vector<std::uint8_t>{'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0x80, 0, 0, 0, 0, 0,
                                               0xFF, 0xFF, 0xFF, 0x21, 0xF9, 4, 1, 0, 0, 0, 0, 0x2C, 0, 0, 0,
                                               0, 1, 0, 1, 0, 0, 2, 2, 0x44, 1, 0, 0x3B});
  write(dir / "hdr", std::string("#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 2\n") +
                         std::string("\x80\x40\x20\x81\x10\x20\x30\x80", 8));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_make_seeds CORPUS_DIR   (writes CORPUS_DIR/model, CORPUS_DIR/catalog and CORPUS_DIR/image)\n";
    return 2;
  }
  const fs::path root = argv[1];
  model_seeds(root / "model");
  catalog_seeds(root / "catalog");
  image_seeds(root / "image");
  // Every seed written here must be valid: each fuzzer starts from files loom
  // accepts. (Files named regression-* are inputs that once found a bug, kept
  // as seeds; they need not be valid.)
  for (const char* kind : {"model", "catalog", "image"})
    for (const auto& e : fs::directory_iterator(root / kind)) {
      if (e.path().filename().string().starts_with("regression-")) continue;
      if (kind == std::string("model")) (void)load_model(e.path());
      else if (kind == std::string("catalog")) (void)loom::search::load_catalog(e.path());
      else (void)read_image(e.path());
    }
  if (read_image(root / "image" / "jpeg-exif-rotated").width != 4) {  // turned: 5 x 4 became 4 x 5
    std::cerr << "fuzz_make_seeds: the EXIF seed was not turned upright\n";
    return 1;
  }
  std::cout << "wrote the model, catalog and image seeds under " << root << '\n';
}
