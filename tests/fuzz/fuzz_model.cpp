// libFuzzer target: the model-file decoder (loom::decode_model, the decoder
// behind load_model) and checkpoint restoring (restore_checkpoint) on
// arbitrary bytes. A loom::Error is the expected answer to a bad file; any
// other exception, crash, sanitizer finding, leak or runaway allocation is a bug.
//
// Each input is decoded twice: as it is (the header, length and CRC checks),
// and with its content length and CRC32 repaired, so that mutations reach the
// section decoders behind the CRC. A model that decodes must also re-encode to
// a file that decodes to the same bytes, predict when its activations are
// small, and survive restore_checkpoint (the only reader of TRNG sections).

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "loom/error.hpp"
#include "repaired_frame.hpp"
#include "loom/io/model_file.hpp"
#include "loom/sequential.hpp"

namespace {


void check(bool ok) {
  if (!ok) __builtin_trap();
}

// Activations small enough to run one sample through in well under a second.
bool small_enough_to_predict(const loom::Sequential& m) {
  constexpr loom::Index kMaxFloats = 4096;
  if (m.input_shape().size() > kMaxFloats) return false;
  for (std::size_t i = 0; i < m.size(); ++i)
    if (m.layer(i).output_shape().size() > kMaxFloats) return false;
  return true;
}

void exercise(const loom::Sequential& m) {
  // Re-encoding is stable: what was read is what gets written.
  const std::vector<std::uint8_t> once = loom::encode_model(m);
  check(loom::encode_model(loom::decode_model(once, "<re-encoded>")) == once);

  if (small_enough_to_predict(m)) {
    loom::Tensor x;
    loom::resize_batch(x, 1, m.input_shape());
    x.setZero();
    const loom::Tensor y = m.predict(x);
    check(y.dimension(0) == 1 && y.size() == m.output_shape().size());
  }
}

void restore(std::span<const std::uint8_t> bytes) {
  static const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("loom-fuzz-model-" + std::to_string(::getpid()) + ".ckpt");
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  loom::Sequential m = loom::decode_model(bytes, "<fuzz input>");
  (void)loom::restore_checkpoint(m, path);
}

void one(std::span<const std::uint8_t> bytes) {
  try {
    const loom::Sequential m = loom::decode_model(bytes, "<fuzz input>");
    exercise(m);
    restore(bytes);
  } catch (const loom::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  loom::fuzzing::as_given_and_repaired(data, size, one);
  return 0;
}
