#include "modtrain/train/checkpoint.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>
#include <type_traits>

#include "modtrain/core/check.h"
#include "modtrain/core/error.h"
#include "modtrain/core/fault.h"
#include "modtrain/core/log.h"
#include "modtrain/core/text.h"
#include "modtrain/data/tokenizer.h"
#include "modtrain/io/checksum.h"
#include "modtrain/io/files.h"
#include "modtrain/io/safetensors.h"
#include "modtrain/modelio/model_path.h"

namespace modtrain {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- trainer state ---------------------------------------------------------------------------

std::string TrainerState::to_json() const {
  json j = {{"format", "modtrain-trainer-state"},
            {"version", 1},
            {"step", step},
            {"total_steps", total_steps},
            {"sampler", {{"epoch", sampler.epoch}, {"batch", sampler.batch}, {"batches_per_epoch", batches_per_epoch}}},
            {"world", world},
            {"micro_batch", micro_batch},
            {"accum_steps", accum_steps},
            {"rng", {{"seed", seed}, {"scheme", "manual_seed(step_seed(seed, rank, step)) before every step"}}},
            {"loss_scale", {{"scale", loss_scale}, {"good_steps", loss_scale_good_steps}}},
            {"skipped_steps", skipped_steps},
            {"best",
             {{"metric", best_metric},
              {"value", std::isnan(best_value) ? json(nullptr) : json(best_value)},
              {"step", best_step}}},
            {"labels", labels},
            {"problem", problem},
            {"objective", objective}};
  return j.dump(2) + "\n";
}

TrainerState TrainerState::from_json(const std::string& text, const std::string& source) {
  TrainerState s;
  try {
    json j = json::parse(text);
    if (j.value("format", "") != "modtrain-trainer-state")
      throw UserError(source + ": not a modtrain trainer state (format field missing)");
    if (j.at("version").get<int>() != 1)
      throw UserError(source + ": trainer state version " + j.at("version").dump() +
                      " is not supported by this modtrain (1)");
    s.step = j.at("step").get<int64_t>();
    s.total_steps = j.at("total_steps").get<int64_t>();
    s.sampler.epoch = j.at("sampler").at("epoch").get<uint64_t>();
    s.sampler.batch = j.at("sampler").at("batch").get<uint64_t>();
    s.batches_per_epoch = j.at("sampler").at("batches_per_epoch").get<uint64_t>();
    s.world = j.at("world").get<int>();
    s.micro_batch = j.at("micro_batch").get<int>();
    s.accum_steps = j.at("accum_steps").get<int>();
    s.seed = j.at("rng").at("seed").get<uint64_t>();
    s.loss_scale = j.at("loss_scale").at("scale").get<double>();
    s.loss_scale_good_steps = j.at("loss_scale").at("good_steps").get<int64_t>();
    s.skipped_steps = j.at("skipped_steps").get<int64_t>();
    const json& best = j.at("best");
    s.best_metric = best.at("metric").get<std::string>();
    s.best_value =
        best.at("value").is_null() ? std::numeric_limits<double>::quiet_NaN() : best.at("value").get<double>();
    s.best_step = best.at("step").get<int64_t>();
    s.labels = j.at("labels").get<std::vector<std::string>>();
    s.problem = j.at("problem").get<std::string>();
    s.objective = j.value("objective", std::string("classify"));
  } catch (const json::exception& e) {
    throw UserError(source + ": malformed trainer state (" + std::string(e.what()) +
                    "); the checkpoint is damaged, resume from another one");
  }
  if (s.step < 0 || s.world < 1 || s.micro_batch < 1 || s.batches_per_epoch == 0 ||
      s.sampler.batch > s.batches_per_epoch)
    throw UserError(source +
                    ": inconsistent trainer state (step, world, micro_batch or sampler position out of range)");
  return s;
}

// ---- optimiser state -------------------------------------------------------------------------
namespace {

io::TensorBytes f32_entry(const std::string& name, const torch::Tensor& t) {
  return {name, "F32", t.sizes().vec(), t.data_ptr(), static_cast<size_t>(t.numel()) * sizeof(float)};
}

}  // namespace

void save_optimizer_state(const std::string& path, const OptimizerState& state) {
  std::vector<torch::Tensor> keep;
  std::vector<io::TensorBytes> entries;
  for (const auto& [key, t] : state.tensors) {
    keep.push_back(t.detach().to(torch::kCPU, torch::kFloat32).contiguous());
    entries.push_back(f32_entry(key, keep.back()));
  }
  // One step count per parameter (the layout earlier versions wrote; the count is shared).
  std::vector<std::string> params;
  for (const auto& [key, t] : state.tensors)
    if (key.rfind("exp_avg.", 0) == 0) params.push_back(key.substr(8));
  const std::vector<int64_t> steps(params.size(), state.step);
  for (size_t i = 0; i < params.size(); ++i)
    entries.push_back({"step." + params[i], "I64", {1}, &steps[i], sizeof(int64_t)});
  io::write_safetensors(path, entries, {{"format", "modtrain-adamw"}, {"optimizer", state.optimizer}});
}

OptimizerState load_optimizer_state(const std::string& path) {
  io::SafetensorsFile file(path);
  const io::SafetensorsView& view = file.view();
  OptimizerState out;
  const auto& meta = view.metadata();
  auto format = meta.find("format");
  if (format == meta.end() || format->second != "modtrain-adamw")
    throw UserError(path + ": not a modtrain optimiser state (metadata format is not modtrain-adamw)");
  auto kind = meta.find("optimizer");
  out.optimizer = kind == meta.end() ? "adamw" : kind->second;  // files before train.optimizer: AdamW
  const std::string* first_step = nullptr;
  bool have_step = false;
  for (const auto& [key, t] : view.tensors()) {
    auto bad = [&](const std::string& why) { return UserError(path + ": optimiser state " + t.name + " " + why); };
    if (t.name.rfind("step.", 0) == 0) {
      if (t.dtype != "I64" || t.bytes != sizeof(int64_t)) throw bad("is not one int64");
      int64_t step = 0;
      std::memcpy(&step, t.data, sizeof step);
      if (step < 0) throw bad("is negative; the file is corrupt");
      if (have_step && step != out.step)
        throw bad("is " + std::to_string(step) + ", but " + *first_step + " is " + std::to_string(out.step) +
                  "; modtrain keeps one step count for all parameters (the file is corrupt or not modtrain's)");
      out.step = step;
      first_step = &t.name;
      have_step = true;
      continue;
    }
    const bool m = t.name.rfind("exp_avg.", 0) == 0, v = t.name.rfind("exp_avg_sq.", 0) == 0;
    if (!m && !v) throw bad("is not an AdamW moment (exp_avg.*, exp_avg_sq.*, step.*)");
    if (t.dtype != "F32") throw bad("is " + t.dtype + ", not F32");
    torch::Tensor x = torch::from_blob(const_cast<void*>(t.data), t.shape, torch::kFloat32).clone();
    // Resuming from NaN/Inf moments would poison every later step (or skip them all): refuse.
    if (!torch::isfinite(x).all().item<bool>())
      throw bad("holds non-finite numbers (NaN or Inf); resume from an earlier checkpoint (--resume PATH)");
    if (v && (x < 0).any().item<bool>()) throw bad("is negative somewhere; the file is corrupt");
    out.tensors.emplace_back(t.name, x);
  }
  return out;
}

// ---- the checkpoint directory ----------------------------------------------------------------

namespace {

constexpr int kIndexVersion = 2;

std::string rank_file(int rank) {
  char buffer[48];
  std::snprintf(buffer, sizeof buffer, "optimizer.rank-%05d.safetensors", rank);
  return buffer;
}

std::string hex64(uint64_t v) {
  char buffer[24];
  std::snprintf(buffer, sizeof buffer, "%016llx", static_cast<unsigned long long>(v));
  return buffer;
}

// This process's anonymous resident memory in MB (/proc/self/status; NaN where there is none).
double rss_anon_mb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("RssAnon:", 0) == 0) return std::stod(line.substr(8)) / 1024.0;
  return std::numeric_limits<double>::quiet_NaN();
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Format 2 holds index.json (written last, before the rename); format 1 trainer_state.json and
// model.safetensors.
bool complete(const fs::path& dir) {
  return fs::exists(dir / "index.json") ||
         (fs::exists(dir / "trainer_state.json") && fs::exists(dir / "model.safetensors"));
}

// step-NNNNNNN directories, oldest first.
std::vector<std::pair<int64_t, fs::path>> list_steps(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("step-", 0) != 0 || !entry.is_directory()) continue;
    try {
      out.emplace_back(std::stoll(name.substr(5)), entry.path());
    } catch (const std::exception&) {}
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The absolute byte offset of every tensor's data in a safetensors file (its header read back).
std::map<std::string, uint64_t> data_offsets(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), sizeof n);
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  if (!in) throw UserError(path + ": cannot read back the safetensors header just written");
  std::map<std::string, uint64_t> out;
  const json parsed = json::parse(header);  // named: items() would refer to a destroyed temporary
  for (const auto& [key, value] : parsed.items())
    if (key != "__metadata__") out[key] = 8 + n + value.at("data_offsets").at(0).get<uint64_t>();
  return out;
}

// One piece of optimiser state to write: elements [begin, end) of `tensor` ("exp_avg.<param>").
struct PieceToWrite {
  std::string tensor, key;
  std::vector<int64_t> shape;  // the parameter's
  int64_t begin = 0, end = 0;
  const float* data = nullptr;
};

// What one rank's background write needs: plain bytes and strings (no LibTorch call on the thread).
struct WriteJob {
  fs::path tmp;
  int rank = 0;
  bool model = false;  // rank 0: the model directory, config.yaml and trainer_state.json
  std::vector<io::TensorBytes> model_tensors;
  ModelMeta meta;
  std::string tokenizer_path, config_yaml, trainer_state;
  std::vector<PieceToWrite> pieces;
};

// Writes one rank's files into the step's temporary directory and fsyncs them. Returns the JSON
// the index is assembled from: {"files": {name: {rank, bytes, checksum?}}, "pieces": [...], "bytes"}.
json write_rank_files(const WriteJob& job) {
  fs::create_directories(job.tmp);
  json files = json::object(), pieces = json::array();
  uint64_t bytes = 0;
  auto add_file = [&](const std::string& name, bool checksum) {
    const fs::path path = job.tmp / name;
    json entry = {{"rank", job.rank}, {"bytes", fs::file_size(path)}};
    if (checksum) {
      io::MappedFile mapped(path.string());
      entry["checksum"] = hex64(io::checksum64(mapped.data(), mapped.size()));
    }
    bytes += entry["bytes"].get<uint64_t>();
    files[name] = entry;
  };
  if (job.model) {
    save_model_dir(job.tmp.string(), job.model_tensors, job.meta, job.tokenizer_path);
    io::write_file_atomic((job.tmp / "config.yaml").string(), job.config_yaml);
    io::write_file_atomic((job.tmp / "trainer_state.json").string(), job.trainer_state);
    for (const auto& entry : fs::directory_iterator(job.tmp)) {  // the model directory's files
      const std::string name = entry.path().filename().string();
      if (entry.is_regular_file() && name.rfind("optimizer.rank-", 0) != 0 && name.find(".tmp.") == std::string::npos)
        add_file(name, true);
    }
  }
  fault::point("checkpoint-write");  // every rank (":slow" widens the save for the random-kill test)
  fault::point(("checkpoint-write-rank" + std::to_string(job.rank)).c_str());
  if (!job.pieces.empty()) {
    const std::string file = rank_file(job.rank);
    std::vector<io::TensorBytes> entries;
    for (const auto& p : job.pieces)
      entries.push_back(
          {p.key, "F32", {p.end - p.begin}, p.data, static_cast<size_t>(p.end - p.begin) * sizeof(float)});
    io::write_safetensors((job.tmp / file).string(), entries,
                          {{"format", "modtrain-optimizer-shard"}, {"rank", std::to_string(job.rank)}});
    const auto offsets = data_offsets((job.tmp / file).string());
    for (const auto& p : job.pieces)
      pieces.push_back(
          {{"tensor", p.tensor},
           {"key", p.key},
           {"shape", p.shape},
           {"file", file},
           {"offset", offsets.at(p.key)},
           {"begin", p.begin},
           {"end", p.end},
           {"checksum", hex64(io::checksum64(p.data, static_cast<size_t>(p.end - p.begin) * sizeof(float)))}});
    add_file(file, false);  // its pieces carry checksums
  }
  fault::point("checkpoint-mid-save");
  io::fsync_path(job.tmp.string());
  return {{"rank", job.rank}, {"files", files}, {"pieces", pieces}, {"bytes", bytes}};
}

// One line for a failed write.
std::string describe_failure(const std::exception& e) {
  if (const auto* f = dynamic_cast<const fs::filesystem_error*>(&e))
    return f->code().message() + " (" + f->path1().string() + ")";
  std::string what = e.what();
  return what.substr(0, what.find('\n'));
}

}  // namespace

namespace {
// A host buffer of `numel` float32 (pinned when the state is on CUDA), reused when it fits.
torch::Tensor& host_buffer(torch::Tensor& buffer, int64_t numel, bool pin) {
  if (!buffer.defined() || buffer.numel() != numel)
    buffer = torch::empty({numel}, torch::TensorOptions().dtype(torch::kFloat32).pinned_memory(pin));
  return buffer;
}
}  // namespace

struct Checkpoints::Buffers {
  torch::Tensor params;              // rank 0: every parameter (params_all() order)
  std::vector<torch::Tensor> state;  // per state tensor: this rank's pieces back to back
};

struct Checkpoints::Pending {
  int64_t step = 0;
  bool best = false;
  std::thread thread;
  std::atomic<bool> done{false};
  std::string outcome;  // the JSON of write_rank_files, or "!" and the error line
  double snapshot_s = 0, begin_s = 0, write_s = 0;
  double rss_before_mb = 0;
};

Checkpoints::Checkpoints(const std::string& run_dir, const CheckpointConfig& config, Collectives& collectives)
    : dir_((fs::path(run_dir) / "checkpoints").string()),
      config_(config),
      collectives_(collectives),
      rank_(collectives.rank()),
      buffers_(std::make_unique<Buffers>()) {}

void Checkpoints::reserve(const FlatParams& params, Optimizer& optimizer) {
  if (reserver_.joinable()) reserver_.join();
  const bool pin = params.params_all().is_cuda();
  const int64_t param_numel = rank_ == 0 ? params.params_all().numel() : 0;
  int64_t state_numel = 0;
  for (const auto& p : optimizer.sharded_state().to_write()) state_numel += p.numel();
  const size_t tensors = optimizer.sharded_state().names().size();
  // Allocating and first touching a gigabyte takes a few hundred milliseconds (page faults): done
  // here, beside training, instead of inside the first save's snapshot.
  reserver_ = std::thread([this, pin, param_numel, state_numel, tensors] {
    try {
      auto touch = [](torch::Tensor& t) {  // memset: one thread, not LibTorch's pool
        std::memset(t.data_ptr(), 0, static_cast<size_t>(t.numel()) * sizeof(float));
      };
      if (param_numel > 0) touch(host_buffer(buffers_->params, param_numel, pin));
      buffers_->state.resize(tensors);
      for (auto& b : buffers_->state) touch(host_buffer(b, state_numel, pin));
    } catch (const std::exception&) {  // out of memory now: the first save allocates and reports it
      buffers_->params = torch::Tensor();
      buffers_->state.clear();
    }
  });
}

Checkpoints::~Checkpoints() {
  if (reserver_.joinable()) reserver_.join();
  if (pending_ && pending_->thread.joinable()) pending_->thread.join();
  if (pruner_.joinable()) pruner_.join();
}

std::string Checkpoints::name(int64_t step) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "step-%07lld", static_cast<long long>(step));
  return buffer;
}

bool Checkpoints::in_flight() const { return pending_ != nullptr; }
bool Checkpoints::written() const { return pending_ && pending_->done.load(); }

void Checkpoints::begin(const CheckpointContent& c, bool best) {
  MT_CHECK(!pending_, "a checkpoint save began before the previous one finished");
  if (pruner_.joinable()) pruner_.join();
  if (reserver_.joinable()) reserver_.join();
  torch::NoGradGuard no_grad;
  const auto start = std::chrono::steady_clock::now();
  auto pending = std::make_unique<Pending>();
  pending->rss_before_mb = rss_anon_mb();
  pending->step = c.state.step;
  pending->best = best;
  auto job = std::make_shared<WriteJob>();
  job->tmp = fs::path(dir_) / (".tmp-" + name(c.state.step));
  job->rank = rank_;
  job->model = rank_ == 0;
  // ---- the snapshot: the only part the training loop waits for ----
  const bool pin = c.params.params_all().is_cuda();
  auto host = [&](torch::Tensor& buffer, int64_t numel) { return host_buffer(buffer, numel, pin); };
  if (job->model) {
    torch::Tensor params = host(buffers_->params, c.params.params_all().numel());
    params.copy_(c.params.params_all());
    const float* base = params.data_ptr<float>();
    for (size_t k : c.params.registration_order()) {
      const auto& s = c.params.slots()[k];
      const int64_t at = c.params.buckets()[s.bucket].offset + s.offset;
      job->model_tensors.push_back(
          {s.name, "F32", s.param.sizes().vec(), base + at, static_cast<size_t>(s.numel) * sizeof(float)});
    }
    job->meta = c.meta;
    job->tokenizer_path = c.tokenizer_path;
    job->config_yaml = c.config_yaml;
    job->trainer_state = c.state.to_json();
  }
  ShardedState& state = c.optimizer.sharded_state();
  const auto& pieces = state.to_write();
  int64_t total = 0;
  for (const auto& p : pieces) total += p.numel();
  buffers_->state.resize(state.names().size());
  for (size_t i = 0; i < state.names().size(); ++i) {
    torch::Tensor buffer = host(buffers_->state[i], total);
    const torch::Tensor& source = state.tensor(i);
    // Contiguous runs of pieces are copied at once (they are contiguous in the update space but
    // for the padding at a bucket's end).
    int64_t at = 0;
    for (size_t j = 0; j < pieces.size();) {
      size_t e = j + 1;
      int64_t n = pieces[j].numel();
      while (e < pieces.size() && pieces[e].space == pieces[j].space + n) n += pieces[e++].numel();
      buffer.narrow(0, at, n).copy_(source.narrow(0, pieces[j].space, n));
      at += n;
      j = e;
    }
    at = 0;
    const float* base = buffer.data_ptr<float>();
    for (const auto& p : pieces) {
      const auto& slot = state.flat().slots()[p.slot];
      const std::string tensor = state.names()[i] + "." + slot.name;
      job->pieces.push_back({tensor, tensor + "[" + std::to_string(p.begin) + ":" + std::to_string(p.end) + "]",
                             slot.param.sizes().vec(), p.begin, p.end, base + at});
      at += p.numel();
    }
  }
  optimizer_meta_ = {{"name", c.optimizer.name()},
                     {"updates", c.optimizer.updates()},
                     {"state", state.names()},
                     {"zero", c.params.sharded()}};
  pending->snapshot_s = seconds_since(start);
  // ---- the write: on a background thread with checkpoint.async ----
  Pending* out = pending.get();
  auto run = [job, out] {
    const auto write_start = std::chrono::steady_clock::now();
    try {
      out->outcome = write_rank_files(*job).dump();
    } catch (const std::exception& e) {
      out->outcome = "!" + describe_failure(e);
    } catch (...) {
      out->outcome = "!an unknown error";
    }
    out->write_s = seconds_since(write_start);
    out->done = true;
  };
  pending_ = std::move(pending);
  if (config_.async) pending_->thread = std::thread(run);
  else run();
  pending_->begin_s = seconds_since(start);
}

SavedCheckpoint Checkpoints::save(const CheckpointContent& content, bool best) {
  begin(content, best);
  return finish();
}

SavedCheckpoint Checkpoints::finish() {
  MT_CHECK(pending_, "Checkpoints::finish without a save in flight");
  const auto start = std::chrono::steady_clock::now();
  if (pending_->thread.joinable()) pending_->thread.join();
  const double join_s = seconds_since(start);
  std::unique_ptr<Pending> pending = std::move(pending_);
  const std::vector<std::string> outcomes =
      collectives_.all_gather_text(pending->outcome, "checkpoint written by every rank");
  SavedCheckpoint saved;
  saved.step = pending->step;
  saved.best = pending->best;
  saved.join_s = join_s;
  saved.snapshot_s = pending->snapshot_s;
  saved.begin_s = pending->begin_s;
  saved.write_s = pending->write_s;
  saved.rss_anon_before_mb = pending->rss_before_mb;
  saved.dir = (fs::path(dir_) / name(pending->step)).string();
  for (size_t r = 0; r < outcomes.size(); ++r) {
    if (outcomes[r].empty() || outcomes[r][0] == '!') continue;
    const uint64_t bytes = json::parse(outcomes[r]).at("bytes").get<uint64_t>();
    if (static_cast<int>(r) == rank_) saved.bytes = bytes;
    saved.max_bytes = std::max(saved.max_bytes, bytes);
  }
  commit(pending->step, pending->best, outcomes);
  saved.commit_s = seconds_since(start);
  saved.rss_anon_after_mb = rss_anon_mb();
  return saved;
}

void Checkpoints::commit(int64_t step, bool best, const std::vector<std::string>& outcomes) {
  const fs::path final_dir = fs::path(dir_) / name(step);
  const fs::path tmp = fs::path(dir_) / (".tmp-" + name(step));
  const std::string latest = read_pointer_file((fs::path(dir_) / "latest").string());
  const std::string kept = latest.empty() ? "no earlier checkpoint exists" : "checkpoints/latest still names " + latest;
  auto fail = [&](const std::string& line) {
    if (rank_ == 0) {
      io::remove_tree(tmp.string());  // a partial checkpoint helps nobody and takes the room the next save needs
      log::error(line);
    }
    std::fflush(stderr);
    throw CollectiveError(line, kExitRuntime, /*already_reported=*/true);
  };
  // Phase 2a: every rank must have written and fsynced its files.
  std::vector<std::string> failed;
  std::string first;
  for (size_t r = 0; r < outcomes.size(); ++r) {
    if (!outcomes[r].empty() && outcomes[r][0] != '!') continue;
    failed.push_back(std::to_string(r));
    if (first.empty()) first = outcomes[r].empty() ? "no outcome" : outcomes[r].substr(1);
  }
  if (!failed.empty())
    fail("cannot write checkpoint " + final_dir.string() + ": rank " + failed[0] + " failed: " + first +
         (failed.size() > 1 ? " (rank(s) " + text::join(failed, ",") + " failed)" : "") + "; " + kept +
         "; is run.dir writable on every node, with room for the model and optimiser state?");
  // Phase 2b: rank 0 writes the index, renames the directory into place, then moves `latest`.
  std::string error;
  if (rank_ == 0) {
    try {
      json index = {{"format", "modtrain-checkpoint"},
                    {"version", kIndexVersion},
                    {"step", step},
                    {"world", static_cast<int>(outcomes.size())},
                    {"files", json::object()},
                    {"tensors", json::object()}};
      for (const auto& outcome : outcomes) {
        const json o = json::parse(outcome);
        for (const auto& [file, entry] : o.at("files").items()) index["files"][file] = entry;
        for (const auto& p : o.at("pieces")) {
          json& t = index["tensors"][p.at("tensor").get<std::string>()];
          if (t.is_null()) t = {{"dtype", "F32"}, {"shape", p.at("shape")}, {"pieces", json::array()}};
          t["pieces"].push_back({{"file", p.at("file")},
                                 {"key", p.at("key")},
                                 {"offset", p.at("offset")},
                                 {"begin", p.at("begin")},
                                 {"end", p.at("end")},
                                 {"checksum", p.at("checksum")}});
        }
      }
      for (auto& [name, t] : index["tensors"].items())
        std::sort(t["pieces"].begin(), t["pieces"].end(), [](const json& x, const json& y) {
          return x.at("begin").get<int64_t>() < y.at("begin").get<int64_t>();
        });
      index["optimizer"] = optimizer_meta_;
      // Every rank's file must be where rank 0 commits it (one directory listing, not a stat per
      // file): a rank whose run.dir is another node's scratch wrote it elsewhere.
      std::set<std::string> present;
      for (const auto& entry : fs::directory_iterator(tmp)) present.insert(entry.path().filename().string());
      for (const auto& [file, entry] : index["files"].items())
        if (!present.count(file))
          throw UserError("rank " + std::to_string(entry.at("rank").get<int>()) + " wrote " + file +
                          ", but it is not in " + tmp.string() +
                          " as rank 0 sees it (is run.dir the same directory on every node?)");
      io::write_file_atomic((tmp / "index.json").string(), index.dump(1) + "\n");  // last: marks it complete
      io::fsync_path(tmp.string());
      fault::point("checkpoint-before-rename");
      if (fs::exists(final_dir)) {  // the same step saved again (e.g. preempted right after a resume)
        const fs::path old = fs::path(dir_) / (".old-" + name(step));
        io::remove_tree(old.string());
        fs::rename(final_dir, old);
        fs::rename(tmp, final_dir);
        io::remove_tree(old.string());
      } else {
        fs::rename(tmp, final_dir);
      }
      io::fsync_path(dir_);
      fault::point("checkpoint-before-latest");
      io::write_file_atomic((fs::path(dir_) / "latest").string(), name(step) + "\n");
      if (best) io::write_file_atomic((fs::path(dir_) / "best").string(), name(step) + "\n");
      // Removing old checkpoints (gigabytes of unlinks) is not the training loop's business: a
      // thread does it, joined before the next save and at exit.
      if (pruner_.joinable()) pruner_.join();
      pruner_ = std::thread([this] {
        try {
          prune();
        } catch (const std::exception& e) {
          log::warn("cannot remove old checkpoints in " + dir_ + ": " + describe_failure(e));
        }
      });
    } catch (const std::exception& e) {
      error = describe_failure(e);
    }
  }
  const std::string committed = collectives_.all_gather_text(error, "checkpoint committed by rank 0")[0];
  if (!committed.empty())
    fail("cannot write checkpoint " + final_dir.string() + ": rank 0 failed to commit it: " + committed + "; " + kept);
}

size_t Checkpoints::remove_stale_temporaries() const {
  if (rank_ != 0) return 0;
  size_t removed = 0;
  std::error_code ec;
  std::vector<fs::path> stale;
  for (auto it = fs::directory_iterator(dir_, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string entry = it->path().filename().string();
    // .tmp-step-N/: never renamed into place (incomplete by construction); NAME.tmp.PID: an atomic
    // write that did not finish. (.old-step-N/ may be the only copy of a step: resolve() handles it.)
    if (entry.rfind(".tmp-step-", 0) == 0 || entry.find(".tmp.") != std::string::npos) stale.push_back(it->path());
  }
  for (const auto& path : stale) {
    io::remove_tree(path.string());
    removed += !fs::exists(path, ec);
  }
  return removed;
}

void Checkpoints::prune() const {
  const std::string keep_best = read_pointer_file((fs::path(dir_) / "best").string());
  const std::string keep_latest = read_pointer_file((fs::path(dir_) / "latest").string());
  auto steps = list_steps(dir_);
  const size_t keep = static_cast<size_t>(config_.keep_last);
  for (size_t i = 0; i + keep < steps.size(); ++i) {
    const std::string name = steps[i].second.filename().string();
    if (name == keep_best || name == keep_latest) continue;
    io::remove_tree(steps[i].second.string());
  }
}

std::string Checkpoints::resolve(const std::string& resume, const std::string& run_dir, bool report) {
  fs::path where = resume == "auto" ? fs::path(run_dir) / "checkpoints" : fs::path(resume);
  if (resume != "auto" && !fs::exists(where))
    throw UserError("--resume " + resume + ": no such checkpoint or run directory");
  if (complete(where)) return where.string();
  if (fs::is_regular_file(where) && where.filename() == "latest") {  // the pointer file itself, as eval accepts
    const std::string named = read_pointer_file(where.string());
    if (!named.empty() && complete(where.parent_path() / named)) return (where.parent_path() / named).string();
    where = where.parent_path();
  }
  if (fs::exists(where / "checkpoints")) where /= "checkpoints";
  const std::string latest = read_pointer_file((where / "latest").string());
  if (!latest.empty() && complete(where / latest)) return (where / latest).string();
  auto steps = list_steps(where);
  for (auto it = steps.rbegin(); it != steps.rend(); ++it)
    if (complete(it->second)) {
      if (report)
        log::warn((where / "latest").string() +
                  (latest.empty() ? " is missing" : " names " + latest + ", which is incomplete or gone") +
                  "; resuming from " + it->second.string() + ", the newest complete checkpoint");
      return it->second.string();
    }
  if (resume == "auto") return "";
  throw UserError("--resume " + resume +
                  ": no complete checkpoint there (a checkpoint directory holds trainer_state.json)");
}

// ---- loading ---------------------------------------------------------------------------------
namespace {

const char* kDamaged = "the checkpoint is damaged; resume from an earlier one (--resume PATH)";

json read_index(const fs::path& dir) {
  const std::string path = (dir / "index.json").string();
  json index;
  try {
    index = json::parse(io::read_file(path, io::kMaxReadBytes, "checkpoint index"));
  } catch (const json::exception& e) {
    throw UserError(path + ": malformed checkpoint index (" + std::string(e.what()) + "); " + kDamaged);
  }
  if (!index.is_object() || index.value("format", "") != "modtrain-checkpoint")
    throw UserError(path + ": not a modtrain checkpoint index (format field missing)");
  if (!index.contains("version") || index.at("version") != kIndexVersion)
    throw UserError(path + ": checkpoint format " + (index.contains("version") ? index.at("version").dump() : "?") +
                    " is not supported by this modtrain (it reads formats 1 and " + std::to_string(kIndexVersion) +
                    "); use the modtrain that wrote it");
  return index;
}

// The files of a format-2 checkpoint, checked against its index before use: present, of the size
// recorded, and with the checksum recorded (whole files) or per piece (optimiser state).
class CheckpointFiles {
 public:
  CheckpointFiles(fs::path dir, const json& index) : dir_(std::move(dir)), index_(index) {}

  std::string writer(const std::string& file) const {
    const auto& files = index_.at("files");
    return files.contains(file) ? "rank " + files.at(file).at("rank").dump() : "an unknown rank";
  }

  const io::MappedFile& open(const std::string& file) {
    auto it = open_.find(file);
    if (it != open_.end()) return *it->second;
    const fs::path path = dir_ / file;
    const auto& files = index_.at("files");
    if (!files.contains(file))
      throw UserError((dir_ / "index.json").string() + " lists no file " + file + "; " + kDamaged);
    if (!fs::exists(path))
      throw UserError((dir_ / "index.json").string() + " names " + file + " (written by " + writer(file) +
                      "), which is missing; " + kDamaged);
    auto mapped = std::make_unique<io::MappedFile>(path.string());
    const uint64_t expected = files.at(file).at("bytes").get<uint64_t>();
    if (mapped->size() != expected)
      throw UserError(path.string() + " (written by " + writer(file) + ") is " + std::to_string(mapped->size()) +
                      " bytes, the index says " + std::to_string(expected) + " (truncated or overwritten); " +
                      kDamaged);
    return *open_.emplace(file, std::move(mapped)).first->second;
  }

  // A whole file verified by its checksum (model.safetensors, trainer_state.json).
  const io::MappedFile& verified(const std::string& file) {
    const io::MappedFile& f = open(file);
    const json& entry = index_.at("files").at(file);
    if (entry.contains("checksum") &&
        entry.at("checksum").get<std::string>() != hex64(io::checksum64(f.data(), f.size())))
      throw UserError((dir_ / file).string() + " (written by " + writer(file) + ") fails its checksum; " + kDamaged);
    return f;
  }

  // Elements [begin, end) of `tensor` from the pieces that hold them, each verified once.
  void read(const std::string& tensor, int64_t begin, int64_t end, float* out) {
    int64_t covered = 0;
    for (const json& piece : index_.at("tensors").at(tensor).at("pieces")) {
      const int64_t pb = piece.at("begin").get<int64_t>(), pe = piece.at("end").get<int64_t>();
      const int64_t a = std::max(begin, pb), e = std::min(end, pe);
      if (a >= e) continue;
      const std::string file = piece.at("file").get<std::string>();
      const io::MappedFile& f = open(file);
      const uint64_t offset = piece.at("offset").get<uint64_t>();
      const uint64_t bytes = static_cast<uint64_t>(pe - pb) * sizeof(float);
      if (pe <= pb || offset > f.size() || bytes > f.size() - offset)
        throw UserError((dir_ / file).string() + " (written by " + writer(file) + "): piece " +
                        piece.at("key").get<std::string>() + " lies outside the file; " + kDamaged);
      const uint8_t* data = f.data() + offset;
      const std::string id = file + "@" + std::to_string(offset);
      if (!checked_.count(id)) {
        if (piece.at("checksum").get<std::string>() != hex64(io::checksum64(data, bytes)))
          throw UserError((dir_ / file).string() + " (written by " + writer(file) + "): piece " +
                          piece.at("key").get<std::string>() + " fails its checksum; " + kDamaged);
        checked_.insert(id);
      }
      std::memcpy(out + (a - begin), data + static_cast<size_t>(a - pb) * sizeof(float),
                  static_cast<size_t>(e - a) * sizeof(float));
      covered += e - a;
    }
    if (covered != end - begin)
      throw UserError((dir_ / "index.json").string() + ": the pieces of " + tensor + " do not cover elements [" +
                      std::to_string(begin) + ", " + std::to_string(end) + ") exactly; " + kDamaged);
  }

 private:
  fs::path dir_;
  const json& index_;
  std::map<std::string, std::unique_ptr<io::MappedFile>> open_;
  std::set<std::string> checked_;
};

// Each rank reads the pieces of optimiser state it holds in this run, whatever wrote them.
void load_sharded_optimizer(const fs::path& dir, const json& index, CheckpointFiles& files, Optimizer& optimizer) {
  const std::string source = (dir / "index.json").string();
  const json& meta = index.at("optimizer");
  optimizer.check_kind(meta.at("name").get<std::string>(), source);
  ShardedState& state = optimizer.sharded_state();
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& [key, t] : index.at("tensors").items()) shapes[key] = t.at("shape").get<std::vector<int64_t>>();
  state.check_shapes(shapes, source);
  state.load_pieces([&](const std::string& name, const FlatParams::Slot& slot, int64_t begin, int64_t end, float* out) {
    files.read(name + "." + slot.name, begin, end, out);
    // Resuming from NaN/Inf state would poison every later step (or skip them all): refuse.
    for (int64_t i = 0; i < end - begin; ++i)
      if (!std::isfinite(out[i]))
        throw UserError(source + ": optimiser state " + name + "." + slot.name +
                        " holds non-finite numbers (NaN or Inf); resume from an earlier checkpoint (--resume PATH)");
  });
  optimizer.set_updates(meta.at("updates").get<int64_t>());
}

}  // namespace

TrainerState load_checkpoint(const std::string& dir, torch::nn::Module& model, Optimizer& optimizer,
                             const Config& config, int world, uint64_t batches_per_epoch, bool report) {
  const fs::path d(dir);
  const bool sharded = fs::exists(d / "index.json");  // format 2; else format 1 (one optimizer.safetensors)
  json index;
  std::unique_ptr<CheckpointFiles> files;
  std::string state_text;
  if (sharded) {
    index = read_index(d);
    files = std::make_unique<CheckpointFiles>(d, index);
    try {
      const io::MappedFile& f = files->verified("trainer_state.json");
      state_text.assign(reinterpret_cast<const char*>(f.data()), f.size());
    } catch (const json::exception& e) {
      throw UserError((d / "index.json").string() + ": malformed checkpoint index (" + std::string(e.what()) + "); " +
                      kDamaged);
    }
  } else {
    state_text = io::read_file((d / "trainer_state.json").string());
  }
  TrainerState s = TrainerState::from_json(state_text, (d / "trainer_state.json").string());
  if (s.objective != to_string(config.train.objective))
    throw UserError(dir + ": a checkpoint of train.objective " + s.objective + ", but this run's is " +
                    to_string(config.train.objective) +
                    (config.train.objective == Objective::kClassify
                         ? "; to fine-tune a classifier from it, start a new run with model.init_from: " + dir
                         : "; resume with the objective it was trained with") +
                    " (not --resume)");
  if (s.labels != config.data.labels)
    throw UserError(dir + ": checkpoint labels [" + text::join(s.labels, ", ") + "] differ from data.labels [" +
                    text::join(config.data.labels, ", ") +
                    "]; resume with the same label set, or start a new run (model.init_from for a new head)");
  if (s.problem != to_string(config.data.problem))
    throw UserError(dir + ": checkpoint problem " + s.problem + " differs from data.problem " +
                    to_string(config.data.problem));
  if (find_tokenizer_files(dir).fingerprint() != find_tokenizer_files(config.tokenizer.vocab).fingerprint())
    throw UserError(dir + ": the checkpoint's tokenizer differs from tokenizer.vocab (" + config.tokenizer.vocab +
                    "); token ids would change meaning. Resume with the tokenizer the run was trained with");
  if (sharded) {
    try {
      const io::MappedFile& f = files->verified("model.safetensors");
      const io::SafetensorsView weights(f.data(), f.size(), (d / "model.safetensors").string());
      load_state(model, weights, (d / "model.safetensors").string());  // shape mismatches name the tensor
      load_sharded_optimizer(d, index, *files, optimizer);
    } catch (const json::exception& e) {
      throw UserError((d / "index.json").string() + ": malformed checkpoint index (" + std::string(e.what()) + "); " +
                      kDamaged);
    }
  } else {
    io::SafetensorsFile weights((d / "model.safetensors").string());
    load_state(model, weights.view(), (d / "model.safetensors").string());  // shape mismatches name the tensor
    optimizer.load_state(load_optimizer_state((d / "optimizer.safetensors").string()),
                         (d / "optimizer.safetensors").string());
  }

  if (s.world != world || s.micro_batch != config.train.micro_batch || s.batches_per_epoch != batches_per_epoch) {
    // Same fraction of the epoch: the permutation is per epoch, so the records of this epoch
    // before that point are (nearly) those already seen; the order from here differs.
    const uint64_t batch = static_cast<uint64_t>(
        std::llround(static_cast<double>(s.sampler.batch) / static_cast<double>(s.batches_per_epoch) *
                     static_cast<double>(batches_per_epoch)));
    // Name what changed: the world, the micro-batch, or (both equal) the batching itself.
    const std::string changed =
        s.world != world || s.micro_batch != config.train.micro_batch
            ? "written by " + std::to_string(s.world) + " rank(s) x micro_batch " + std::to_string(s.micro_batch) +
                  ", resuming on " + std::to_string(world) + " x " + std::to_string(config.train.micro_batch)
            : "written with " + std::to_string(s.batches_per_epoch) + " batches per epoch, resuming with " +
                  std::to_string(batches_per_epoch) +
                  " (train.tokens_per_batch, data.group_by_length or the prepared data changed)";
    if (report)
      log::warn(dir + ": " + changed +
                ": the data order from here differs from an "
                "uninterrupted run (resuming at epoch " +
                std::to_string(s.sampler.epoch) + ", batch " + std::to_string(batch) + " of " +
                std::to_string(batches_per_epoch) + ", the same fraction of the epoch)");
    s.sampler.batch = std::min(batch, batches_per_epoch);
    s.batches_per_epoch = batches_per_epoch;
  }
  if (s.sampler.batch == s.batches_per_epoch) s.sampler = {s.sampler.epoch + 1, 0};
  return s;
}

}  // namespace modtrain
