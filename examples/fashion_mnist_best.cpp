// loom's best Fashion-MNIST recipe (models/fashion_mnist_best.hpp): a small
// BatchNorm ResNet trained with SGD (Nesterov momentum 0.9, decoupled weight
// decay on the kernels), a one-cycle learning rate over the whole run and
// on-the-fly augmentation (random crop of the image padded by 2, horizontal
// flip); no label smoothing. In Keras terms:
//
//   model = small_resnet(filters=(32, 64, 128), strides=(2, 2, 2), stem_pool=False,  # models/small_resnet.hpp
//                        dropout=0)  # a Dropout layer of rate 0: the identity
//   steps = epochs * ceil(60000 / 128)
//   lr = OneCycle(max_lr=0.1, total_steps=steps, pct_start=0.25)
//   model.compile(SGD(lr, momentum=0.9, nesterov=True, weight_decay=2.5e-3),
//                 SparseCategoricalCrossentropy(), ["accuracy"])
//   model.fit(augment(x_train), y_train, epochs=36, batch_size=128)
//
// The test set is scored after every epoch outside the timed training (to
// draw the curve and find when an accuracy is reached), and at the end with
// and without flip test-time augmentation; it never chooses anything. Prints
// the summary, per-epoch progress and one JSON line (the seed example's keys,
// plus test_accuracy_flip_tta, epoch_seconds and epoch_test_accuracy).
//
// Every ingredient has a flag, for the ablation in docs/best-recipe.md
// (bench/best_recipe.py runs them):
//
//   fashion_mnist_best [--epochs 36] [--batch-size 128] [--seed 7] [--threads N]
//                      [--augment pad=2,flip|none|...] [--label-smoothing 0]
//                      [--weight-decay 0.0025] [--schedule one-cycle|constant]
//                      [--max-lr 0.1] [--dropout 0] [--width 32] [--blocks 1,1,1] [--strides 2,2,2]
//                      [--stem-pool 0] [--zero-init-residual 0] [--pooled-shortcut 1]
//                      [--pool-downsample 0] [--ema 0]
//                      [--limit N] [--data DIR] [--save FILE]

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "loom/loom.hpp"
#include "loom/models/fashion_mnist_best.hpp"
#include "loom/training/example_program.hpp"

namespace {

bool parse_switch(const std::string& flag, const char* v) {
  const long long z = loom::cli::parse_int(flag, v, 0);
  if (z > 1) throw loom::UsageError(flag + ": expected 0 or 1, got \"" + std::string(v) + "\"");
  return z == 1;
}

// One value per stage of the small ResNet ("1,2,1").
std::array<loom::Index, 3> parse_per_stage(const std::string& flag, const char* v) {
  const std::vector<long long> n = loom::cli::parse_int_list(flag, v, 3, 1);
  return {n[0], n[1], n[2]};
}

}  // namespace

int main(int argc, char** argv) {
  using namespace loom;
  models::BestRecipe recipe;
  std::optional<ExponentialMovingAverage> ema;
  cli::TrainingFlags defaults;
  defaults.epochs = recipe.epochs;
  defaults.batch_size = recipe.batch_size;
  return cli::run_fashion_mnist_example(
      argc, argv,
      {.program = "fashion_mnist_best",
       .description = "Trains loom's best Fashion-MNIST recipe (docs/best-recipe.md).",
       .defaults = defaults,
       .extra_help = "  --augment LIST   pad=N, flip, erasing=P, comma-separated, or none\n"
                     "                   (default pad=2,flip)\n"
                     "  --label-smoothing X  (default 0)\n"
                     "  --weight-decay X decoupled, on the kernels (default 0.0025)\n"
                     "  --schedule S     one-cycle (default) or constant (max-lr / 10)\n"
                     "  --max-lr X       the one-cycle peak (default 0.1)\n"
                     "  --dropout X      rate of the dropout before the classifier (default 0)\n"
                     "  --width N        filters of the blocks: N, 2N, 4N (default 32)\n"
                     "  --blocks A,B,C   basic blocks per stage (default 1,1,1)\n"
                     "  --strides A,B,C  strides of the stages' first blocks (default 2,2,2)\n"
                     "  --stem-pool 0|1  max pool after the stem (default 0)\n"
                     "  --zero-init-residual 0|1  start each residual branch at zero (default 0)\n"
                     "  --pooled-shortcut 0|1  projections average 2x2 windows, then a 1x1 conv\n"
                     "                   of stride 1, instead of a strided 1x1 (default 1)\n"
                     "  --pool-downsample 0|1  a strided stage max-pools, then runs its 3x3\n"
                     "                   convolutions at stride 1 (default 0)\n"
                     "  --ema DECAY      end with the exponential moving average of the weights,\n"
                     "                   this decay per step (default 0: the last step's weights)\n",
       .extra_flag =
           [&](const std::string& flag, const char* v) {
             if (flag == "--augment") {
               recipe.augmentation = AugmentationOptions::parse(v);
               recipe.augmentation.validate(fashion_mnist::sample_shape());  // before the data is read
             }
             else if (flag == "--label-smoothing") recipe.label_smoothing = static_cast<float>(cli::parse_number(flag, v));
             else if (flag == "--weight-decay") recipe.weight_decay = static_cast<float>(cli::parse_number(flag, v));
             else if (flag == "--max-lr") recipe.max_learning_rate = static_cast<float>(cli::parse_number(flag, v));
             else if (flag == "--dropout") {
               recipe.dropout = static_cast<float>(cli::parse_number(flag, v));
               if (!(recipe.dropout >= 0.0f && recipe.dropout < 1.0f))  // before the data is read
                 throw UsageError("--dropout: expected a rate in [0, 1), got \"" + std::string(v) + "\"");
             }
             else if (flag == "--width") {
               const Index w = cli::parse_int(flag, v, 1);
               recipe.filters = {w, 2 * w, 4 * w};
             }
             else if (flag == "--blocks") recipe.blocks = parse_per_stage(flag, v);
             else if (flag == "--strides") recipe.strides = parse_per_stage(flag, v);
             else if (flag == "--zero-init-residual") recipe.zero_init_residual = parse_switch(flag, v);
             else if (flag == "--stem-pool") recipe.stem_pool = parse_switch(flag, v);
             else if (flag == "--pooled-shortcut") recipe.pooled_shortcut = parse_switch(flag, v);
             else if (flag == "--pool-downsample") recipe.pool_downsample = parse_switch(flag, v);
             else if (flag == "--ema") {
               const auto decay = static_cast<float>(cli::parse_number(flag, v));
               if (decay != 0.0f) ema.emplace(ExponentialMovingAverageOptions{.decay = decay});  // refuses a bad decay
               else ema.reset();
             }
             else if (flag == "--schedule") {
               const std::string s = v;
               if (s != "one-cycle" && s != "constant")
                 throw UsageError("--schedule: expected one-cycle or constant, got \"" + s + "\"");
               recipe.one_cycle = s == "one-cycle";
             } else return false;
             return true;
           },
       .check_flags = [&] { models::check_best_recipe(recipe); },  // --weight-decay -1 before the data
       .configure_fit =
           [&](FitOptions& fit) {
             fit.augmentation = models::best_fit_options(recipe, fit.seed).augmentation;
             if (ema) fit.callbacks.push_back(&*ema);
           },
       .score_each_epoch = true,
       .flip_tta = true},
      cli::RunModelBuilder([&](const cli::RunSpec& run) {
        recipe.epochs = run.epochs;
        recipe.batch_size = run.batch_size;
        return models::fashion_mnist_best(run.seed, run.train_samples, recipe);
      }));
}
