#pragma once
// The per-epoch record that fit returns, as Keras's History.
//
// Thread safety: a plain value; const members are safe from many threads.

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "loom/error.hpp"
#include "loom/tensor.hpp"

namespace loom {

struct EpochRecord {
  int epoch = 0;              // 1-based
  double loss = 0.0;          // mean training loss over the epoch's samples
  double accuracy = 0.0;      // training accuracy over the epoch's samples
  std::optional<double> val_loss;
  std::optional<double> val_accuracy;
  double seconds = 0.0;       // wall time of the epoch, validation included
  Index skipped_batches = 0;  // batches skipped for a non-finite loss or gradient (NonFinite::SkipBatch)
};

struct History {
  std::vector<EpochRecord> epochs;

  bool empty() const { return epochs.empty(); }
  const EpochRecord& last() const {
    if (epochs.empty()) throw UsageError("History::last: no epochs were trained");
    return epochs.back();
  }

  /// One row per epoch: epoch,loss,accuracy,val_loss,val_accuracy,seconds
  /// (validation columns empty when there was no validation).
  void write_csv(const std::string& path) const {
    std::ofstream f(path);
    if (!f) throw IoError("History::write_csv: cannot open " + path + " for writing");
    f << csv_header() << csv_rows();
    if (!f.flush()) throw IoError("History::write_csv: writing " + path + " failed");
  }
  static std::string csv_header(char sep = ',') {
    std::string h = "epoch,loss,accuracy,val_loss,val_accuracy,seconds\n";
    std::replace(h.begin(), h.end(), ',', sep);
    return h;
  }
  std::string csv_rows(char sep = ',') const {
    std::ostringstream f;
    f.precision(9);
    for (const EpochRecord& e : epochs) {
      f << e.epoch << sep << e.loss << sep << e.accuracy << sep;
      if (e.val_loss) f << *e.val_loss;
      f << sep;
      if (e.val_accuracy) f << *e.val_accuracy;
      f << sep << e.seconds << '\n';
    }
    return f.str();
  }
};

}  // namespace loom
