#include "modtrain/train/checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <type_traits>

#include "modtrain/core/error.h"
#include "modtrain/core/fault.h"
#include "modtrain/core/log.h"
#include "modtrain/core/text.h"
#include "modtrain/data/tokenizer.h"
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

Checkpoints::Checkpoints(const std::string& run_dir, const CheckpointConfig& config, bool writer)
    : dir_((fs::path(run_dir) / "checkpoints").string()), config_(config), writer_(writer) {}

std::string Checkpoints::name(int64_t step) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "step-%07lld", static_cast<long long>(step));
  return buffer;
}

namespace {

bool complete(const fs::path& dir) {
  return fs::exists(dir / "trainer_state.json") && fs::exists(dir / "model.safetensors");
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

}  // namespace

std::string Checkpoints::save(const CheckpointContent& c, bool best) {
  const fs::path final_dir = fs::path(dir_) / name(c.state.step);
  if (!writer_) return final_dir.string();
  const std::string tmp = (fs::path(dir_) / (".tmp-" + name(c.state.step))).string();
  try {
    write(c, best);
  } catch (const fs::filesystem_error& e) {
    io::remove_tree(tmp);  // a partial checkpoint helps nobody and takes the room the next save needs
    throw UserError("cannot write checkpoint " + final_dir.string() + ": " + e.code().message() + " (" +
                        e.path1().string() + "); is run.dir writable, with room for the model and optimiser state?",
                    kExitRuntime);
  } catch (...) {
    io::remove_tree(tmp);
    throw;
  }
  return final_dir.string();
}

size_t Checkpoints::remove_stale_temporaries() const {
  if (!writer_) return 0;
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

void Checkpoints::write(const CheckpointContent& c, bool best) {
  const fs::path final_dir = fs::path(dir_) / name(c.state.step);
  fs::create_directories(dir_);
  const fs::path tmp = fs::path(dir_) / (".tmp-" + name(c.state.step));
  io::remove_tree(tmp.string());  // a save that was killed earlier
  fs::create_directories(tmp);
  save_model_dir(tmp.string(), c.model, c.meta, c.tokenizer_path);
  save_optimizer_state((tmp / "optimizer.safetensors").string(), c.optimizer);
  io::write_file_atomic((tmp / "config.yaml").string(), c.config_yaml);
  fault::point("checkpoint-mid-save");
  io::write_file_atomic((tmp / "trainer_state.json").string(), c.state.to_json());  // last: marks it complete
  io::fsync_path(tmp.string());
  if (fs::exists(final_dir)) {  // the same step saved again (e.g. preempted right after a resume)
    const fs::path old = fs::path(dir_) / (".old-" + name(c.state.step));
    io::remove_tree(old.string());
    fs::rename(final_dir, old);
    fs::rename(tmp, final_dir);
    io::remove_tree(old.string());
  } else {
    fs::rename(tmp, final_dir);
  }
  io::fsync_path(dir_);
  fault::point("checkpoint-before-latest");
  io::write_file_atomic((fs::path(dir_) / "latest").string(), name(c.state.step) + "\n");
  if (best) io::write_file_atomic((fs::path(dir_) / "best").string(), name(c.state.step) + "\n");
  prune();
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

TrainerState load_checkpoint(const std::string& dir, torch::nn::Module& model, Optimizer& optimizer,
                             const Config& config, int world, uint64_t batches_per_epoch, bool report) {
  const fs::path d(dir);
  TrainerState s =
      TrainerState::from_json(io::read_file((d / "trainer_state.json").string()), (d / "trainer_state.json").string());
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
  io::SafetensorsFile weights((d / "model.safetensors").string());
  load_state(model, weights.view(), (d / "model.safetensors").string());  // shape mismatches name the tensor
  optimizer.load_state(load_optimizer_state((d / "optimizer.safetensors").string()),
                       (d / "optimizer.safetensors").string());

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
