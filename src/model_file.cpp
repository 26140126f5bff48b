// Model files (loom/io/model_file.hpp); the layout is in docs/model-format.md.

#include "loom/io/model_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>

#include "loom/io/byte_io.hpp"
#include "compile_config.hpp"
#include "framed_file.hpp"
#include "read_whole_file.hpp"
#include "loom/io/crc32.hpp"
#include "loom/io/layer_config.hpp"
#include "loom/layer_registry.hpp"
#include "loom/sequential.hpp"

namespace loom {
namespace {

namespace fs = std::filesystem;
using detail::ByteReader;
using detail::ByteWriter;
using Tag = std::array<char, 4>;

constexpr detail::FrameKind kModelFrame{"loom model file", {'L', 'O', 'O', 'M', 'M', 'O', 'D', 'L'}, kModelFormatVersion};
constexpr std::size_t kMaxName = 1024;   // layer names, kinds, optimizer names
constexpr std::size_t kMaxText = std::size_t{1} << 26;  // a callback's text (the CSV log a CSVLogger appends to)
// Limits on what a file may describe, far beyond any model loom trains, so a
// hostile file cannot make the loader allocate without bound.
constexpr Index kMaxInputValues = Index{1} << 30;  // values in one input sample
constexpr std::uint64_t kMaxFileBytes = std::uint64_t{1} << 34;  // 16 GiB

// Sections in the order they are written; ARCH, COMP and WGHT are required.
constexpr Tag kArch{'A', 'R', 'C', 'H'};  // input shape, layers and their configuration
constexpr Tag kComp{'C', 'O', 'M', 'P'};  // loss and optimizer configuration
constexpr Tag kWeights{'W', 'G', 'H', 'T'};
constexpr Tag kOptState{'O', 'P', 'T', 'S'};
constexpr Tag kHistory{'H', 'I', 'S', 'T'};
constexpr Tag kTraining{'T', 'R', 'N', 'G'};
constexpr std::array<Tag, 6> kSectionOrder{kArch, kComp, kWeights, kOptState, kHistory, kTraining};

std::string tag_text(const Tag& t) {
  std::string s;
  for (char c : t) s += (c >= 32 && c < 127) ? c : '?';
  return s;
}

// ---- encoding -----------------------------------------------------------

void put_shape(ByteWriter& w, const Shape& s) {
  w.put<std::uint32_t>(static_cast<std::uint32_t>(s.rank()));
  for (int i = 0; i < s.rank(); ++i) w.put<std::uint64_t>(static_cast<std::uint64_t>(s[i]));
}

std::vector<std::uint8_t> arch_payload(const Sequential& m) {
  ByteWriter w;
  put_shape(w, m.input_shape());
  w.put<std::uint32_t>(static_cast<std::uint32_t>(m.size()));
  LayerConfigWriter layers(w);
  for (std::size_t i = 0; i < m.size(); ++i) layers.put_layer(m.layer(i));
  return std::move(w.bytes());
}

std::vector<std::uint8_t> comp_payload(const Sequential& m) {
  ByteWriter w;
  detail::put_compile(w, m);
  return std::move(w.bytes());
}

// fn(layer index, the parameter's name in the file, param) for every
// parameter of the model, in file order: a composite layer's sublayers'
// parameters are named "sublayer/param".
template <typename Model, typename Fn>
void for_each_weight(Model& m, Fn&& fn) {
  for (std::size_t i = 0; i < m.size(); ++i) {
    auto& top = m.layer(i);
    for_each_param(top, [&](auto& owner, auto& p) {
      fn(static_cast<std::uint32_t>(i), &owner == &top ? p.name : owner.name() + "/" + p.name, p);
    });
  }
}

void put_weights(ByteWriter& w, const Sequential& m) {
  std::uint32_t count = 0;
  for_each_weight(m, [&](std::uint32_t, const std::string&, const Param&) { ++count; });
  w.put(count);
  for_each_weight(m, [&](std::uint32_t layer, const std::string& name, const Param& p) {
    w.put<std::uint32_t>(layer);
    w.put_string(name);
    w.put<std::uint32_t>(static_cast<std::uint32_t>(p.shape.size()));
    for (Index d : p.shape) w.put<std::uint64_t>(static_cast<std::uint64_t>(d));
    w.put_floats({p.value.data(), static_cast<std::size_t>(p.size())});
  });
}

void put_optimizer_state(ByteWriter& w, const Optimizer::State& s) {
  w.put<std::int64_t>(s.steps);
  w.put<std::uint32_t>(static_cast<std::uint32_t>(s.slots.size()));
  for (const Eigen::VectorXf& v : s.slots) {
    w.put<std::uint64_t>(static_cast<std::uint64_t>(v.size()));
    w.put_floats({v.data(), static_cast<std::size_t>(v.size())});
  }
  detail::put_schedule_state(w, s.schedule);
}

void put_history(ByteWriter& w, const History& h) {
  w.put<std::uint32_t>(static_cast<std::uint32_t>(h.epochs.size()));
  for (const EpochRecord& e : h.epochs) {
    w.put<std::int32_t>(e.epoch);
    w.put(e.loss);
    w.put(e.accuracy);
    w.put<std::uint8_t>((e.val_loss ? 1 : 0) | (e.val_accuracy ? 2 : 0));
    w.put(e.val_loss.value_or(0.0));
    w.put(e.val_accuracy.value_or(0.0));
    w.put(e.seconds);
    w.put<std::int64_t>(e.skipped_batches);
  }
}

void put_training(ByteWriter& w, const TrainingState& t) {
  w.put<std::int32_t>(t.epochs_done);
  for (std::uint64_t s : t.shuffle_state) w.put(s);
  w.put<std::int64_t>(t.samples);
  w.put<std::int64_t>(t.batch_size);
  w.put<std::uint64_t>(t.seed);
  w.put<std::uint8_t>(t.shuffle ? 1 : 0);
  w.put(t.validation_split);
  w.put<std::uint64_t>(t.order.size());
  for (Index i : t.order) w.put<std::int64_t>(i);
  // Optional trailing fields, written only when used, so checkpoints of runs
  // without them keep their bytes: the layers' generators (a layer draws),
  // then whether a callback stopped the run and the callbacks' states.
  const bool callbacks = t.stopped || !t.callback_states.empty();
  if (t.layer_generators.empty() && !callbacks) return;
  w.put<std::uint32_t>(static_cast<std::uint32_t>(t.layer_generators.size()));
  for (const Random::State& g : t.layer_generators)
    for (std::uint64_t s : g) w.put(s);
  if (!callbacks) return;
  w.put<std::uint8_t>(t.stopped ? 1 : 0);
  w.put<std::uint32_t>(static_cast<std::uint32_t>(t.callback_states.size()));
  for (const CallbackState& c : t.callback_states) {
    w.put<std::uint32_t>(static_cast<std::uint32_t>(c.numbers.size()));
    for (double x : c.numbers) w.put(x);
    w.put<std::uint32_t>(static_cast<std::uint32_t>(c.arrays.size()));
    for (const Eigen::VectorXf& a : c.arrays) {
      w.put<std::uint64_t>(static_cast<std::uint64_t>(a.size()));
      w.put_floats({a.data(), static_cast<std::size_t>(a.size())});
    }
    w.put_string(c.text);
  }
}

template <typename Fill>
void put_section(ByteWriter& w, const Tag& tag, Fill&& fill) {
  for (char c : tag) w.put(c);
  const std::size_t length_at = w.size();
  w.put<std::uint64_t>(0);
  fill();
  w.patch<std::uint64_t>(length_at, w.size() - length_at - sizeof(std::uint64_t));
}

// ---- decoding -------------------------------------------------------------

Shape get_shape(ByteReader& r) {
  const auto rank = r.get<std::uint32_t>("input rank");
  if (rank != 1 && rank != 3) r.fail("input rank " + std::to_string(rank) + " is not 1 or 3");
  ParamBudget none;
  LayerConfigReader fields(r, Shape{}, none);
  Index d[3] = {0, 0, 0};
  for (std::uint32_t i = 0; i < rank; ++i) d[i] = fields.get_dim("input dimension");
  if (rank == 1) return Shape{d[0]};
  // Each factor is at most 2^24, so neither product below overflows.
  if (d[0] * d[1] > kMaxInputValues || d[0] * d[1] * d[2] > kMaxInputValues) r.fail("input shape is too large");
  return Shape{d[0], d[1], d[2]};
}

Sequential decode_arch(ByteReader& r, std::size_t file_bytes) {
  Sequential model(get_shape(r));
  const auto layers = r.get<std::uint32_t>("layer count");
  r.need_items(layers, 8, "layers");  // each at least two string lengths
  // Weights follow as float32: a configuration claiming more than the file
  // can hold is corrupt, and is refused before the layer allocates them.
  ParamBudget budget{.limit = file_bytes / sizeof(float)};
  for (std::uint32_t i = 0; i < layers; ++i) {
    auto layer = read_layer(r, model.output_shape(), budget);
    try {
      model.add(std::move(layer));
    } catch (const Error& e) {  // a ShapeError: the layers do not fit together
      r.fail(std::string("the architecture does not fit together: ") + e.what());
    }
  }
  r.expect_end("ARCH section");
  return model;
}

void decode_comp(ByteReader& r, Sequential& model) {
  detail::Compile c = detail::get_compile(r);
  try {
    model.compile(*c.optimizer, c.loss, {"accuracy"});
  } catch (const Error& e) {
    r.fail(std::string("invalid loss or optimizer: ") + e.what());
  }
}

void decode_weights(ByteReader& r, Sequential& model) {
  std::uint32_t expected = 0;
  for_each_weight(model, [&](std::uint32_t, const std::string&, Param&) { ++expected; });
  const auto count = r.get<std::uint32_t>("parameter count");
  if (count != expected)
    r.fail("the file has " + std::to_string(count) + " parameter tensors, the architecture " + std::to_string(expected));
  std::size_t p = 0;
  for_each_weight(model, [&](std::uint32_t i, const std::string& name, Param& param) {
    const std::string where = model.layer(i).name() + "/" + name;
    const auto layer = r.get<std::uint32_t>("parameter layer index");
    const std::string file_name = r.get_string("parameter name", kMaxName);
    if (layer != i || file_name != name)
      r.fail("parameter " + std::to_string(p) + " is " + file_name + " of layer " + std::to_string(layer) + ", expected " + where);
    const auto rank = r.get<std::uint32_t>("parameter rank");
    if (rank != param.shape.size()) r.fail(where + ": rank " + std::to_string(rank) + " does not match the architecture");
    for (Index d : param.shape)
      if (r.get<std::uint64_t>("parameter dimension") != static_cast<std::uint64_t>(d))
        r.fail(where + ": shape does not match the architecture");
    r.get_floats(param.value, static_cast<std::uint64_t>(param.size()), "parameter values");
    ++p;
  });
  r.expect_end("WGHT section");
}

void decode_optimizer_state(ByteReader& r, Sequential& model) {
  Optimizer::State s;
  s.steps = r.get<std::int64_t>("optimizer steps");
  if (s.steps < 0) r.fail("negative optimizer step count " + std::to_string(s.steps));
  const auto slots = r.get<std::uint32_t>("optimizer slot count");
  r.need_items(slots, 8, "optimizer slots");
  s.slots.resize(slots);
  for (Eigen::VectorXf& v : s.slots) r.get_floats(v, r.get<std::uint64_t>("optimizer slot length"), "optimizer slot");
  s.schedule = detail::get_schedule_state(r);
  r.expect_end("OPTS section");
  try {
    model.optimizer().set_state(std::move(s));
  } catch (const UsageError& e) {
    r.fail(std::string("optimizer state: ") + e.what());
  }
}

History decode_history(ByteReader& r) {
  constexpr std::size_t kRecordBytes = 4 + 8 + 8 + 1 + 8 + 8 + 8 + 8;
  const auto n = r.get<std::uint32_t>("history length");
  r.need_items(n, kRecordBytes, "history records");
  History h;
  h.epochs.resize(n);
  for (EpochRecord& e : h.epochs) {
    e.epoch = r.get<std::int32_t>("epoch");
    e.loss = r.get<double>("loss");
    e.accuracy = r.get<double>("accuracy");
    const auto flags = r.get<std::uint8_t>("validation flags");
    if (flags > 3) r.fail("validation flags " + std::to_string(flags) + " are not in [0, 3]");
    const double val_loss = r.get<double>("val_loss"), val_accuracy = r.get<double>("val_accuracy");
    if (flags & 1) e.val_loss = val_loss;
    if (flags & 2) e.val_accuracy = val_accuracy;
    e.seconds = r.get<double>("seconds");
    e.skipped_batches = r.get<std::int64_t>("skipped batches");
  }
  r.expect_end("HIST section");
  return h;
}

TrainingState decode_training(ByteReader& r) {
  TrainingState t;
  t.epochs_done = r.get<std::int32_t>("epochs done");
  for (std::uint64_t& s : t.shuffle_state) s = r.get<std::uint64_t>("generator state");
  t.samples = r.get<std::int64_t>("samples");
  t.batch_size = r.get<std::int64_t>("batch size");
  t.seed = r.get<std::uint64_t>("seed");
  t.shuffle = r.get<std::uint8_t>("shuffle flag") != 0;
  t.validation_split = r.get<double>("validation split");
  const auto n = r.get<std::uint64_t>("order length");
  r.need_items(n, 8, "sample order");
  if (t.epochs_done < 0 || t.samples <= 0 || t.batch_size <= 0 || n > static_cast<std::uint64_t>(t.samples))
    r.fail("training state is inconsistent");
  t.order.resize(n);
  for (Index& i : t.order) {
    i = r.get<std::int64_t>("sample index");
    if (i < 0 || i >= t.samples) r.fail("sample index " + std::to_string(i) + " is out of range");
  }
  if (!r.done()) {
    const auto generators = r.get<std::uint32_t>("layer generator count");
    r.need_items(generators, sizeof(Random::State), "layer generators");
    t.layer_generators.resize(generators);
    for (Random::State& g : t.layer_generators)
      for (std::uint64_t& s : g) s = r.get<std::uint64_t>("layer generator state");
  }
  if (!r.done()) {
    t.stopped = r.get<std::uint8_t>("stopped flag") != 0;
    const auto callbacks = r.get<std::uint32_t>("callback count");
    r.need_items(callbacks, 12, "callback states");
    t.callback_states.resize(callbacks);
    for (CallbackState& c : t.callback_states) {
      const auto numbers = r.get<std::uint32_t>("callback number count");
      r.need_items(numbers, 8, "callback numbers");
      c.numbers.resize(numbers);
      for (double& x : c.numbers) x = r.get<double>("callback number");
      const auto arrays = r.get<std::uint32_t>("callback array count");
      r.need_items(arrays, 8, "callback arrays");
      c.arrays.resize(arrays);
      for (Eigen::VectorXf& a : c.arrays) r.get_floats(a, r.get<std::uint64_t>("callback array length"), "callback array");
      c.text = r.get_string("callback text", kMaxText);
    }
  }
  r.expect_end("TRNG section");
  return t;
}

// The whole file: header and CRC checked first, then each section in order.
Sequential decode(std::span<const std::uint8_t> bytes, const std::string& source, std::optional<TrainingState>* training) {
  const detail::Frame frame = detail::open_frame(bytes, source, kModelFrame);
  ByteReader r(frame.content, source, detail::kFrameHeaderSize);
  std::optional<Sequential> model;
  std::size_t next = 0;  // index into kSectionOrder
  while (!r.done()) {
    Tag tag;
    for (char& c : tag) c = r.get<char>("section tag");
    const auto length = r.get<std::uint64_t>("section length");
    const std::size_t payload_at = r.offset();
    const auto payload = r.get_bytes(length, "section");
    std::size_t index = next;
    while (index < kSectionOrder.size() && kSectionOrder[index] != tag) ++index;
    if (index == kSectionOrder.size())
      r.fail("unexpected section \"" + tag_text(tag) + "\" (unknown, repeated or out of order)");
    if (index > 0 && !model) r.fail("section \"" + tag_text(tag) + "\" before the ARCH section");
    if (index > 2 && next <= 2) r.fail("section \"" + tag_text(tag) + "\" before the WGHT section");
    if (index == 2 && next < 2) r.fail("the COMP section is missing");
    ByteReader s(payload, source, payload_at);
    if (tag == kArch) model.emplace(decode_arch(s, bytes.size()));
    else if (tag == kComp) decode_comp(s, *model);
    else if (tag == kWeights) decode_weights(s, *model);
    else if (tag == kOptState) decode_optimizer_state(s, *model);
    else if (tag == kHistory) model->set_history(decode_history(s));
    else if (training) *training = decode_training(s);
    next = index + 1;
  }
  if (next < 3) r.fail("the " + tag_text(kSectionOrder[next]) + " section is missing");
  return std::move(*model);
}

std::vector<std::uint8_t> read_file(const fs::path& path) {
  return detail::read_whole_file(path, kMaxFileBytes, "any loom model file");
}

// The comparable identity of a model: its ARCH and COMP payloads (encoding is
// canonical, so a model decoded from a file gives that file's bytes back).
std::vector<std::uint8_t> arch_comp_of(const Sequential& m) {
  std::vector<std::uint8_t> b = arch_payload(m);
  const std::vector<std::uint8_t> c = comp_payload(m);
  b.insert(b.end(), c.begin(), c.end());
  return b;
}

}  // namespace

std::vector<std::uint8_t> encode_model(const Sequential& model, const SaveOptions& options, const TrainingState* training) {
  if (!model.compiled()) throw UsageError("save: compile the model first; a model file records its loss and optimizer");
  ByteWriter w;
  detail::begin_frame(w, kModelFrame);
  put_section(w, kArch, [&] { w.put_bytes(arch_payload(model)); });
  put_section(w, kComp, [&] { w.put_bytes(comp_payload(model)); });
  put_section(w, kWeights, [&] { put_weights(w, model); });
  if (options.include_optimizer_state || training)
    put_section(w, kOptState, [&] { put_optimizer_state(w, model.optimizer().state()); });
  if (options.include_history || training) put_section(w, kHistory, [&] { put_history(w, model.history()); });
  if (training) put_section(w, kTraining, [&] { put_training(w, *training); });
  return detail::finish_frame(w);
}

Sequential decode_model(std::span<const std::uint8_t> bytes, const std::string& source) {
  return decode(bytes, source, nullptr);
}

void save_model(const Sequential& model, const fs::path& path, const SaveOptions& options) {
  write_file_atomically(path, encode_model(model, options));
}

Sequential load_model(const fs::path& path) { return decode(read_file(path), path.string(), nullptr); }

void write_checkpoint(const Sequential& model, const TrainingState& state, const fs::path& path) {
  write_file_atomically(path, encode_model(model, {}, &state));
}

std::vector<std::uint8_t> read_checkpoint(const fs::path& path) {
  std::error_code ec;
  return fs::exists(path, ec) ? read_file(path) : std::vector<std::uint8_t>{};
}

std::optional<TrainingState> restore_checkpoint(Sequential& model, const fs::path& path,
                                                const TrainingState* this_run) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  return restore_checkpoint(model, read_file(path), path.string(), this_run);
}

std::optional<TrainingState> restore_checkpoint(Sequential& model, std::span<const std::uint8_t> bytes,
                                                const std::string& source, const TrainingState* this_run) {
  std::optional<TrainingState> training;
  Sequential saved = decode(bytes, source, &training);
  if (!training)
    throw UsageError(source + " is a model file without training state, not a checkpoint; "
                     "give fit a new checkpoint path or delete the file");
  if (arch_comp_of(saved) != arch_comp_of(model))
    throw UsageError(source + " is a checkpoint of a different model (architecture, loss or optimizer "
                     "settings differ); give fit a new checkpoint path or delete the file");
  if (this_run) {
    if (const std::string d = this_run->run_difference(*training); !d.empty())
      throw UsageError("fit: checkpoint " + source + " belongs to a different run (" + d +
                       "); use a new checkpoint path or delete the file");
    if (training->order.size() != this_run->order.size())
      throw UsageError("fit: checkpoint " + source + " holds an order of " +
                       std::to_string(training->order.size()) + " samples, this run trains on " +
                       std::to_string(this_run->order.size()));
  }
  const std::span<Param* const> from = saved.weights(), to = model.weights();
  for (std::size_t i = 0; i < to.size(); ++i) to[i]->value = from[i]->value;
  model.optimizer().set_state(saved.optimizer().state());
  model.set_history(saved.history());
  return training;
}

namespace {

// A new file beside path (same directory, so a rename over path is atomic):
// its descriptor and name. IoError when the directory does not take one.
struct TempFile {
  int fd;
  std::string name;
};

fs::path directory_of(const fs::path& path) { return path.has_parent_path() ? path.parent_path() : fs::path("."); }

TempFile create_temp_beside(const fs::path& path) {
  const fs::path dir = directory_of(path);
  std::string name = (dir / ("." + path.filename().string() + ".tmp-XXXXXX")).string();
  const int fd = ::mkstemp(name.data());
  if (fd < 0) throw IoError(path.string() + ": cannot create a temporary file in " + dir.string() + ": " + std::strerror(errno));
  return {fd, std::move(name)};
}

}  // namespace

void check_writable(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec))  // the final rename over it would fail, after the work
    throw IoError(path.string() + ": is a directory; give the path of a file to write");
  const TempFile probe = create_temp_beside(path);
  ::close(probe.fd);
  ::unlink(probe.name.c_str());
}

void write_file_atomically(const fs::path& path, std::span<const std::uint8_t> bytes) {
  const TempFile file = create_temp_beside(path);  // not a structured binding: clang 14 cannot capture one
  const int fd = file.fd;
  const std::string& temp = file.name;
  auto fail = [&](const std::string& what) {
    const std::string why = std::strerror(errno);
    ::unlink(temp.c_str());
    throw IoError(path.string() + ": " + what + ": " + why);
  };
  for (std::size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      fail("writing failed");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fchmod(fd, 0644) != 0 || ::fsync(fd) != 0) {
    ::close(fd);
    fail("flushing to disk failed");
  }
  if (::close(fd) != 0) fail("closing failed");
  if (::rename(temp.c_str(), path.c_str()) != 0) fail("renaming the temporary file over it failed");
  // The rename itself is durable once the directory is.
  if (const int dfd = ::open(directory_of(path).c_str(), O_RDONLY | O_DIRECTORY); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace loom
