#pragma once
// The Keras-like training display. On a terminal (verbose 1): a progress bar
// per epoch, redrawn in place at most ten times a second, with batches done,
// elapsed time or ETA, and the running loss and accuracy:
//
//   Epoch 1/5
//    640/1875 [=========>....................] - ETA: 6s - loss: 0.5521 - accuracy: 0.8013
//   1875/1875 [==============================] - 9s 5ms/step - loss: 0.4512 - accuracy: 0.8375
//
// Otherwise (verbose 2, or the stream is not a terminal: a log file, CI), one
// plain line per epoch. verbose 0 prints nothing.
//
// begin_task / update(done) / end_task show the same bar for other long
// work, without loss and accuracy (loom index embedding a catalog).
//
// Thread safety: one Progress per training loop.

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

#include "loom/tensor.hpp"
#include "loom/training/history.hpp"

namespace loom {

class Progress {
 public:
  using Clock = std::chrono::steady_clock;

  Progress(std::ostream& out, int verbose) : out_(out), verbose_(verbose) {
    // Only std::cerr and std::cout can be a terminal we know of.
    const int fd = &out == &std::cerr ? STDERR_FILENO : &out == &std::cout ? STDOUT_FILENO : -1;
    bar_ = verbose == 1 && fd >= 0 && isatty(fd);
  }

  void begin_epoch(int epoch, int epochs, Index steps) {
    epoch_ = epoch;
    epochs_ = epochs;
    steps_ = steps;
    start_ = Clock::now();
    last_draw_ = start_ - std::chrono::seconds(1);
    if (bar_) out_ << "Epoch " << epoch << '/' << epochs << '\n' << std::flush;
  }

  /// After `done` batches, with running means of loss and accuracy.
  void update(Index done, double loss, double accuracy) { advance(done, metrics(loss, accuracy)); }

  /// Other long work (embedding a catalog's images): a bar titled `title`
  /// over `steps` units, updated with update(done), closed with end_task.
  void begin_task(const std::string& title, Index steps) {
    title_ = title;
    steps_ = steps;
    start_ = Clock::now();
    last_draw_ = start_ - std::chrono::seconds(1);
    if (bar_) out_ << title << '\n' << std::flush;
  }
  void update(Index done) { advance(done, ""); }
  void end_task() {
    if (verbose_ == 0) return;
    const std::string tail = " - " + duration(seconds_since(start_));
    if (bar_) {
      draw(counter(steps_) + ' ' + bar(steps_) + tail);
      out_ << '\n' << std::flush;
    } else {
      out_ << title_ << " - " << counter(steps_) << tail << '\n' << std::flush;
    }
  }

  void end_epoch(const EpochRecord& r) {
    if (verbose_ == 0) return;
    const double per_step_ms = steps_ > 0 ? r.seconds * 1000.0 / static_cast<double>(steps_) : 0.0;
    std::string tail = " - " + duration(r.seconds) + ' ' + fixed(per_step_ms, 0) + "ms/step" +
                       metrics(r.loss, r.accuracy);
    if (r.val_loss) tail += " - val_loss: " + fixed(*r.val_loss, 4);
    if (r.val_accuracy) tail += " - val_accuracy: " + fixed(*r.val_accuracy, 4);
    if (r.skipped_batches) tail += " - skipped " + std::to_string(r.skipped_batches) + " non-finite batches";
    if (bar_) {
      draw(counter(steps_) + ' ' + bar(steps_) + tail);
      out_ << '\n' << std::flush;
    } else {
      out_ << "Epoch " << epoch_ << '/' << epochs_ << " - " << counter(steps_) << tail << '\n' << std::flush;
    }
  }

  /// A line of its own, such as "Resuming from ...", when progress is shown.
  void note(const std::string& line) {
    if (verbose_ != 0) out_ << line << '\n' << std::flush;
  }

  static double seconds_since(Clock::time_point t0, Clock::time_point t1 = Clock::now()) {
    return std::chrono::duration<double>(t1 - t0).count();
  }

 private:
  void advance(Index done, const std::string& tail) {
    if (!bar_) return;
    const auto now = Clock::now();
    if (done < steps_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const double elapsed = seconds_since(start_, now);
    const double eta = done > 0 ? elapsed / static_cast<double>(done) * static_cast<double>(steps_ - done) : 0.0;
    draw(counter(done) + ' ' + bar(done) + " - ETA: " + duration(eta) + tail);
  }
  static std::string fixed(double v, int digits) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", digits, v);
    return buf;
  }
  static std::string duration(double s) {
    if (s < 60) return fixed(s, 0) + "s";
    const long long t = static_cast<long long>(s + 0.5);
    return std::to_string(t / 60) + "m " + std::to_string(t % 60) + "s";
  }
  static std::string metrics(double loss, double accuracy) {
    return " - loss: " + fixed(loss, 4) + " - accuracy: " + fixed(accuracy, 4);
  }
  std::string counter(Index done) const {
    const std::string total = std::to_string(steps_);
    std::string d = std::to_string(done);
    return std::string(total.size() - std::min(total.size(), d.size()), ' ') + d + '/' + total;
  }
  std::string bar(Index done) const {
    constexpr Index width = 30;
    const Index filled = steps_ > 0 ? done * width / steps_ : width;
    std::string b(static_cast<std::size_t>(width), '.');
    for (Index i = 0; i < filled; ++i) b[static_cast<std::size_t>(i)] = '=';
    if (filled < width && filled > 0) b[static_cast<std::size_t>(filled - 1)] = '>';
    if (filled == 0 && done > 0) b[0] = '>';
    return '[' + b + ']';
  }
  // Redraws the current line, blanking what a longer previous line left behind.
  void draw(const std::string& line) {
    std::string padded = line;
    if (padded.size() < drawn_) padded.append(drawn_ - padded.size(), ' ');
    drawn_ = line.size();
    out_ << '\r' << padded << std::flush;
  }

  std::ostream& out_;
  int verbose_;
  bool bar_ = false;
  int epoch_ = 0, epochs_ = 0;
  std::string title_;
  Index steps_ = 0;
  Clock::time_point start_, last_draw_;
  std::size_t drawn_ = 0;
};

}  // namespace loom
