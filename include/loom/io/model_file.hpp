#pragma once
// Model files: a Sequential model (architecture, weights, loss and optimizer,
// optionally the optimizer's state and the training history) in one versioned
// binary file, and back. The format is documented byte by byte in
// docs/model-format.md; its essentials:
//   - magic "LOOMMODL", a format version, the content length, then tagged
//     sections (ARCH, COMP, WGHT, OPTS, HIST, TRNG), then a CRC32 over everything before it;
//   - numbers little-endian, weights float32, so a saved and loaded model
//     predicts bit for bit as the original did.
//
//   model.save("model.loom");                         // Sequential::save calls save_model
//   loom::Sequential m = loom::load_model("model.loom");
//
// Saving encodes in memory and writes through write_file_atomically: a temporary
// file beside the target, flushed to disk, renamed over it. A crash leaves the
// old file or the new one, never half of one.
// Loading checks the magic, version, length and CRC before it decodes, and
// every size against the bytes that remain before it allocates: a truncated,
// corrupt, foreign or newer-version file is a DataError naming the file and
// the problem; a file that cannot be read is an IoError.
//
// Layers that can be saved: every kind the layer registry holds (the built-in
// ones, and those a program registers: layer_registry.hpp); saving another is
// a UsageError. Optimizers: Adam, AdamW, SGD, RMSprop, with their schedules
// (docs/training.md).
//
// Thread safety: every function here only reads the model it is given, so
// saving from several threads at once is safe while nobody trains the model.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "loom/training/checkpoint_state.hpp"

namespace loom {

class Sequential;

/// The format version this build writes; it reads every version up to it.
inline constexpr std::uint32_t kModelFormatVersion = 1;

struct SaveOptions {
  bool include_optimizer_state = true;  // Adam's moments and step count: needed to resume training
  bool include_history = true;          // the per-epoch History, for reports and curves
};

/// The model as a file's bytes. training, when given, adds a TRNG section (a checkpoint).
std::vector<std::uint8_t> encode_model(const Sequential& model, const SaveOptions& options = {},
                                       const TrainingState* training = nullptr);

/// Decodes a whole file's bytes into a compiled model, with its optimizer
/// state and history when they were saved; `source` names the file in errors.
/// DataError on anything malformed.
Sequential decode_model(std::span<const std::uint8_t> bytes, const std::string& source = "<memory>");

/// Writes encode_model(model, options) to path atomically.
void save_model(const Sequential& model, const std::filesystem::path& path, const SaveOptions& options = {});

/// Reads a model file.
Sequential load_model(const std::filesystem::path& path);

/// Writes bytes to path atomically: a temporary file in the same directory,
/// fsync'd, renamed over path, and the directory fsync'd. IoError on failure
/// (the temporary file is removed).
void write_file_atomically(const std::filesystem::path& path, std::span<const std::uint8_t> bytes);

/// Checks, before long work, that write_file_atomically(path, ...) could
/// create its temporary file and rename it to path: IoError naming path when
/// its directory is missing or not writable, or path is a directory. Leaves
/// nothing behind.
void check_writable(const std::filesystem::path& path);

/// Checkpoints, for Sequential::fit (FitOptions::checkpoint).
/// Writes the model with its optimizer state, history and the training state.
void write_checkpoint(const Sequential& model, const TrainingState& state, const std::filesystem::path& path);
/// When path exists: checks that it was written for a model of this very
/// architecture and, when this_run is given, for the same run (data size,
/// batch size, seed, shuffle, validation split), else UsageError with model
/// untouched; then loads its weights, optimizer state and history into model
/// and returns the training state. std::nullopt when there is no file at path.
std::optional<TrainingState> restore_checkpoint(Sequential& model, const std::filesystem::path& path,
                                                const TrainingState* this_run = nullptr);
/// The same from a checkpoint's bytes (read_checkpoint), `source` naming them in errors.
std::optional<TrainingState> restore_checkpoint(Sequential& model, std::span<const std::uint8_t> bytes,
                                                const std::string& source, const TrainingState* this_run = nullptr);
/// The bytes of the checkpoint at path; none when there is no file there.
/// (Distributed fit: rank 0 reads, every rank restores the same bytes.)
std::vector<std::uint8_t> read_checkpoint(const std::filesystem::path& path);

}  // namespace loom

// Last, so that including this header alone gives a complete Sequential to
// load into, while sequential.hpp (which includes this header first, for save)
// still sees the declarations above.
#include "loom/sequential.hpp"  // IWYU pragma: export
