// loom train: the Fashion-MNIST CNN (loom::models::fashion_mnist_cnn), trained
// with the example's flags, saved with its history; on Fashion-MNIST, or on a
// folder of images with one sub-folder per class (--images). It checkpoints after every
// epoch, so the same command run again after a crash resumes where it stopped.
// With --distributed (under mpirun), the ranks train data-parallel and rank 0
// alone prints and writes the model, its history and the checkpoints.

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "commands.hpp"
#include "loom/data/fashion_mnist.hpp"
#include "loom/data/image_folder.hpp"
#include "loom/io/json.hpp"
#include "loom/io/model_file.hpp"
#include "loom/models/fashion_mnist_best.hpp"
#include "loom/models/fashion_mnist_cnn.hpp"
#include "loom/report/class_names.hpp"
#include "loom/training/command_line.hpp"
#include "loom/training/exponential_moving_average.hpp"

namespace loom::tool {
namespace {

namespace fs = std::filesystem;

const std::string kUsage = std::string(
    "usage: loom train --out MODEL [options]\n"
    "Trains the Keras Fashion-MNIST CNN and writes MODEL (weights, optimizer state and\n"
    "history) and MODEL's history as CSV beside it (model.loom -> model.history.csv).\n"
    "  --out PATH       where to write the model (required; its directory is created)\n") +
    cli::TrainingFlags{}.help() +
    "  --images FOLDER  train on image files instead of Fashion-MNIST (not with --data): one\n"
    "                   sub-folder per class, class names sorted, each image converted as loom\n"
    "                   predict converts it; the class names go to MODEL.classes.txt\n"
    "  --refuse-unreadable  with --images, stop at a file that cannot be read (default: skip\n"
    "                   it and list it)\n"
    "  --recipe NAME    seed (default): the Keras CNN with Adam; best: the small BatchNorm ResNet\n"
    "                   with SGD, one-cycle and augmentation (docs/best-recipe.md;\n"
    "                   its own defaults: 36 epochs, batch 128, --augment pad=2,flip)\n"
    "  --max-lr X       with --recipe best: the one-cycle peak rate (default 0.1, for batch\n"
    "                   128; with another --batch-size, scaling it with the batch keeps the\n"
    "                   rate per image)\n"
    "  --augment LIST   augment every training batch: any of pad=N (random crop after zero\n"
    "                   padding), flip (left-right, half the time), erasing=P (random erasing\n"
    "                   with probability P), comma-separated, e.g. pad=2,flip,erasing=0.5\n"
    "  --validation WHAT  scored after every epoch as val_loss/val_accuracy: \"test\" (the test\n"
    "                   set, as Keras's validation_data; the default), \"none\", or a fraction\n"
    "                   held out of the training images, e.g. 0.1 (with --images: \"none\", the\n"
    "                   default, or a fraction, a seeded random choice of the images)\n"
    "  --ema DECAY      end with the exponential moving average of the weights over the\n"
    "                   steps, DECAY per step in (0, 1), e.g. 0.999 (default 0: the last\n"
    "                   step's weights)\n"
    "  --checkpoint PATH  checkpoint written after every epoch (default MODEL.checkpoint, removed\n"
    "                   once MODEL is saved; \"none\" for no checkpoint). If it exists, training\n"
    "                   resumes from it, ending exactly as an uninterrupted run would\n"
    "  --json           print one JSON object on stdout instead of the text summary\n";

/// The decimal number v is, if it is one.
std::optional<double> parse_number(const std::string& v) {
  char* end = nullptr;
  const double f = std::strtod(v.c_str(), &end);
  if (end == v.c_str() || *end != '\0') return std::nullopt;
  return f;
}

/// --max-lr's rate: a positive number below 1e6 (no rate near that trains;
/// the bound keeps infinities and typos of many digits out).
float parse_max_lr(const std::string& v) {
  const double r = parse_number(v).value_or(-1.0);
  if (!(r > 0.0 && r < 1e6))
    throw UsageError("--max-lr expects a positive learning rate below 1e6, e.g. 0.05; got \"" + v + "\"");
  return static_cast<float>(r);
}

/// --ema's decay: 0 (none) or in (0, 1).
float parse_ema(const std::string& v) {
  const double d = parse_number(v).value_or(-1.0);
  if (d != 0.0 && !(d > 0.0 && d < 1.0))
    throw UsageError("--ema expects a decay in (0, 1), e.g. 0.999, or 0 for none; got \"" + v + "\"");
  return static_cast<float>(d);
}

/// --validation's fraction of the training images.
double parse_fraction(const std::string& v) {
  const double f = parse_number(v).value_or(-1.0);
  if (!(f > 0.0 && f < 1.0))
    throw UsageError("--validation expects \"test\", \"none\" or a fraction in (0, 1), got \"" + v + "\"");
  return f;
}

struct Args {
  cli::TrainingFlags training;
  std::optional<fs::path> out;
  std::optional<fs::path> images;
  bool refuse_unreadable = false;
  std::optional<AugmentationOptions> augment;
  std::string recipe = "seed";      // "seed": the Keras CNN as Keras trains it; "best": models/fashion_mnist_best.hpp
  bool epochs_given = false, batch_size_given = false;  // --recipe best has its own defaults
  std::optional<std::string> validation;  // "test" for Fashion-MNIST, "none" for --images by default
  std::optional<std::string> checkpoint;
  float ema = 0.0f;  // ExponentialMovingAverage's decay; 0: none
  std::optional<float> max_lr;  // --recipe best's one-cycle peak
  bool json = false;
};

Args parse(int argc, char** argv) {
  Args a;
  cli::parse_args(
      argc, argv, 1, kUsage, {"--json", "--distributed", "--refuse-unreadable"},
      [&](const std::string& flag, const char* v) {
        a.epochs_given = a.epochs_given || flag == "--epochs";
        a.batch_size_given = a.batch_size_given || flag == "--batch-size";
        if (a.training.take(flag, v)) return true;
        if (flag == "--out") a.out = v;
        else if (flag == "--validation") {
          a.validation = v;
          if (a.validation != "test" && a.validation != "none") (void)parse_fraction(v);  // refused before any loading
        }
        else if (flag == "--images") a.images = v;
        else if (flag == "--refuse-unreadable") a.refuse_unreadable = true;
        else if (flag == "--augment") {
          a.augment = AugmentationOptions::parse(v);
          a.augment->validate(fashion_mnist::sample_shape());  // a value out of range: refused before any loading
        }
        else if (flag == "--checkpoint") a.checkpoint = v;
        else if (flag == "--recipe") a.recipe = v;
        else if (flag == "--ema") a.ema = parse_ema(v);
        else if (flag == "--max-lr") a.max_lr = parse_max_lr(v);
        else if (flag == "--json") a.json = true;
        else return false;
        return true;
      },
      [&](const std::string& arg) { throw UsageError("unexpected argument \"" + arg + "\"\n" + kUsage); });
  if (!a.out) throw UsageError("--out PATH is required\n" + kUsage);
  if (a.recipe != "seed" && a.recipe != "best")
    throw UsageError("--recipe: expected \"seed\" or \"best\", got \"" + a.recipe + "\"\n" + kUsage);
  if (a.max_lr && a.recipe != "best")
    throw UsageError("--max-lr goes with --recipe best (the seed recipe trains with Adam at Keras's rate)\n" + kUsage);
  if (a.images && a.training.data) throw UsageError("give --images or --data, not both\n" + kUsage);
  if (a.refuse_unreadable && !a.images) throw UsageError("--refuse-unreadable goes with --images\n" + kUsage);
  if (a.images && a.validation == "test")
    throw UsageError("--validation test scores the Fashion-MNIST test set; with --images give \"none\" or a fraction");
  return a;
}

/// model.loom -> model.history.csv (extension ".history.csv")
fs::path sibling(const fs::path& model, const std::string& extension) {
  fs::path p = model;
  return p.replace_extension(extension);
}

void write_lines(const fs::path& path, const std::vector<std::string>& lines) {
  std::ofstream out(path);
  for (const std::string& line : lines) out << line << '\n';
  if (!out.flush()) throw IoError(path.string() + ": cannot write the class names");
}

/// What to train on and what to score after training.
struct TrainingSet {
  Dataset train;
  std::optional<Dataset> held;           // Fashion-MNIST's test set, or the folder's validation images
  std::vector<std::string> class_names;  // one per label
  long long skipped = 0;                 // unreadable image files passed over

  const Dataset* scored() const { return held ? &*held : nullptr; }
};

TrainingSet load_fashion_mnist(const Args& args, std::ostream* text, const std::string& per_rank) {
  auto [dir, train, test] = args.training.load();
  if (text)
    *text << "Fashion-MNIST from " << dir.string() << ": " << train.size() << " training and " << test.size()
          << " test images, " << threads() << " threads" << per_rank << "\n";
  return {std::move(train), std::move(test), to_class_names(fashion_mnist::class_names)};
}

TrainingSet load_folder(const Args& args, std::ostream* text, const std::string& per_rank) {
  const cli::TrainingFlags& t = args.training;
  if (t.threads) set_threads(*t.threads);
  const std::string validation = args.validation.value_or("none");
  ImageFolder f = load_image_folder(*args.images, {.validation_split = validation == "none" ? 0.0 : parse_fraction(validation),
                                                   .seed = t.seed,
                                                   .skip_unreadable = !args.refuse_unreadable,
                                                   .progress = t.verbose > 0 ? text : nullptr});
  if (f.class_names.size() < 2)
    throw DataError(args.images->string() + ": only one class folder (\"" + f.class_names[0] +
                    "\"); a classifier needs at least 2");
  if (text) {
    *text << "Images from " << args.images->string() << ": " << f.train.size() << " training"
          << (f.validation ? " and " + std::to_string(f.validation->size()) + " validation" : std::string()) << " images in "
          << f.class_names.size() << " classes, " << threads() << " threads" << per_rank << "\n";
    constexpr std::size_t kListed = 10;
    for (std::size_t i = 0; i < f.skipped.size() && i < kListed; ++i)
      *text << "  skipped " << f.skipped[i].path.string() << ": " << f.skipped[i].reason << "\n";
    if (f.skipped.size() > kListed) *text << "  ... and " << f.skipped.size() - kListed << " more files skipped\n";
  }
  if (t.limit) f.train = f.train.head(std::min(*t.limit, f.train.size()));
  return {std::move(f.train), std::move(f.validation), std::move(f.class_names),
          static_cast<long long>(f.skipped.size())};
}

}  // namespace

/// Creates path's directory if needed and checks a file can be written there,
/// so a bad --out or --checkpoint fails now rather than after the training.
void prepare_output(const fs::path& path) {
  if (path.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    if (ec) throw IoError(path.string() + ": cannot create its directory: " + ec.message());
  }
  check_writable(path);
}

int train_command(int argc, char** argv) {
  const Args args = parse(argc, argv);
  const cli::TrainingFlags& t = args.training;
  std::ostream& text = args.json ? std::cerr : std::cout;  // stdout holds only the JSON with --json
  const fs::path checkpoint = args.checkpoint.value_or(args.out->string() + ".checkpoint");
  const auto world = t.connect();  // nullptr without --distributed
  const int ranks = world ? world->size() : 1;
  const bool leader = !world || world->rank() == 0;
  if (leader) {
    prepare_output(*args.out);
    if (checkpoint != "none") prepare_output(checkpoint);
  }
  const std::string per_rank = world ? " per rank, " + std::to_string(ranks) + " ranks" : "";
  const TrainingSet data = args.images ? load_folder(args, leader ? &text : nullptr, per_rank)
                                       : load_fashion_mnist(args, leader ? &text : nullptr, per_rank);
  const Dataset& train = data.train;

  const Index class_count = static_cast<Index>(data.class_names.size());
  models::BestRecipe recipe;
  if (args.epochs_given) recipe.epochs = t.epochs;
  if (args.batch_size_given) recipe.batch_size = t.batch_size;
  if (args.augment) recipe.augmentation = *args.augment;
  if (args.max_lr) recipe.max_learning_rate = *args.max_lr;
  const bool best = args.recipe == "best";
  FitOptions fit = best ? models::best_fit_options(recipe, t.seed)
                        : FitOptions{.epochs = t.epochs, .batch_size = t.batch_size, .seed = t.seed};
  fit.verbose = t.verbose;
  if (!best) fit.augmentation = args.augment;
  const std::string validation = args.validation.value_or(args.images ? "none" : "test");
  if (validation == "test" || (args.images && data.scored())) fit.validation_data = data.scored();
  else if (validation != "none") fit.validation_split = parse_fraction(validation);

  // The best recipe's schedule spans the images fit trains on, a split's held-out share left out.
  Sequential model =
      best ? models::fashion_mnist_best(t.seed, training_samples(train.size(), fit.validation_split), recipe,
                                        class_count)
           : models::fashion_mnist_cnn(t.seed, class_count);
  if (leader && !args.json) model.summary(text);
  if (checkpoint != "none") fit.checkpoint = checkpoint;
  fit.collective = world.get();
  std::optional<ExponentialMovingAverage> ema;
  if (args.ema != 0.0f) fit.callbacks.push_back(&ema.emplace(ExponentialMovingAverageOptions{.decay = args.ema}));

  const auto t0 = std::chrono::steady_clock::now();
  const History history = model.fit(train, fit);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!leader) return 0;  // every rank holds the same model; rank 0 writes it

  model.save(*args.out);
  const fs::path csv = sibling(*args.out, ".history.csv");
  history.write_csv(csv.string());
  std::optional<fs::path> classes;
  if (args.images) {  // the model file holds no class names: they go beside it
    classes = class_names_path(*args.out);
    write_lines(*classes, data.class_names);
  }
  if (!fit.checkpoint.empty()) fs::remove(fit.checkpoint);  // the model now holds all it had

  // Fashion-MNIST's test set, or the images held out for validation, if any.
  const std::optional<Evaluation> e =
      data.scored() ? std::optional<Evaluation>(model.evaluate(*data.scored())) : std::nullopt;
  const std::string scored = args.images ? "validation" : "test";
  if (args.json) {
    JsonObject json;
    json.str("model", args.out->string()).str("history_csv", csv.string());
    if (classes) json.str("classes_txt", classes->string()).integer("skipped_files", data.skipped);
    if (e) json.num(scored + "_accuracy", e->accuracy).num(scored + "_loss", e->loss);
    std::cout << json.integer("epochs", static_cast<long long>(history.epochs.size()))
                     .integer("train_images", static_cast<long long>(train.size()))
                     .integer("params", static_cast<long long>(model.param_count()))
                     .num("train_seconds", seconds, 4)
                     .integer("seed", static_cast<long long>(t.seed))
                     .integer("ranks", ranks)
                     .text()
              << '\n';
  } else {
    if (e) std::printf("%s accuracy: %.4f, %s loss: %.4f\n", args.images ? "Validation" : "Test", e->accuracy,
                       scored.c_str(), e->loss);
    std::printf("Saved the model to %s and its history to %s\n", args.out->c_str(), csv.c_str());
    if (classes) std::printf("Class names, one per label, in %s\n", classes->c_str());
  }
  return 0;
}

}  // namespace loom::tool
