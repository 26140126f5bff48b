#pragma once
// CSVLogger: the History as a CSV file, rewritten after every epoch (as
// Keras's callback; columns as History::write_csv). Each write is atomic, so
// the file always holds whole rows. With append, rows follow what the file
// held when training began (its header kept); that earlier text is kept in
// fit's checkpoints, so a resumed run writes the same file as an
// uninterrupted one.
//
// Thread safety: one fit at a time.

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "loom/io/model_file.hpp"
#include "loom/training/callback.hpp"

namespace loom {

struct CSVLoggerOptions {
  char separator = ',';  // not a letter, digit, '.', '-', '+', '_', '"' or a line break
  bool append = false;  // keep what the file holds and add rows after it
};

class CSVLogger final : public Callback {
 public:
  explicit CSVLogger(std::filesystem::path path, CSVLoggerOptions o = {}) : path_(std::move(path)), o_(o) {
    if (path_.empty()) throw UsageError("CSVLogger: the path is empty");
    // Numbers are written as 0.25, 1e-05, nan or inf, the header's names as val_loss: no letter, digit,
    // sign, point or underscore may separate them.
    const char c = o_.separator;
    if (c == '\n' || c == '\r' || c == '.' || c == '-' || c == '+' || c == '_' || c == '"' || (c >= '0' && c <= '9') ||
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
      throw UsageError(std::string("CSVLogger: separator '") + c +
                       "' would be read as part of a number or row, or need quoting");
  }

  void on_train_begin(TrainingContext& c) override {
    if (!c.leader()) return;
    check_writable(path_);
    if (!c.history().empty()) return;  // resumed: set_state brought back what the file began with
    before_.clear();
    if (o_.append && std::filesystem::exists(path_)) {
      std::ifstream f(path_, std::ios::binary);
      if (!f) throw IoError("CSVLogger: cannot read " + path_.string() + " to append to it");
      before_.assign(std::istreambuf_iterator<char>(f), {});
      if (!before_.empty() && before_.back() != '\n') before_ += '\n';
    }
  }

  void on_epoch_end(const EpochRecord&, TrainingContext& c) override {
    if (!c.leader()) return;
    const std::string text = (before_.empty() ? History::csv_header(o_.separator) : before_) +
                             c.history().csv_rows(o_.separator);
    write_file_atomically(path_, {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()});
  }

  CallbackState state() const override { return {{}, {}, before_}; }
  void set_state(const CallbackState& s) override { before_ = s.text; }

 private:
  std::filesystem::path path_;
  CSVLoggerOptions o_;
  std::string before_;  // the file's text when training began (append)
};

}  // namespace loom
