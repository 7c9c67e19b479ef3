// Checkpoint benchmark: the time to save (write + fsync + rename + pointer, what the training
// loop waits for) and to load (validate + copy into the model and AdamW) a checkpoint of the
// tiny and the BERT-base-sized model, with the bytes written and the rate. Bound by the disk's
// write bandwidth and fsync latency (the save is synchronous on rank 0; the other ranks wait).
// Usage: modtrain_bench_checkpoint [--preset tiny|base] [--dir SCRATCH] [--repeats N] [--out FILE]
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>

#include "bench_common.h"
#include "modtrain/io/files.h"
#include "modtrain/model/model.h"
#include "modtrain/train/checkpoint.h"

using namespace modtrain;
namespace fs = std::filesystem;

int main(int argc, char** argv) {
  std::string preset = "base", dir = (fs::temp_directory_path() / "modtrain-bench-ckpt").string(), out;
  int repeats = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--preset") preset = v;
    else if (k == "--dir") dir = v;
    else if (k == "--repeats") repeats = std::stoi(v);
    else if (k == "--out") out = v;
  }
  if (out.empty()) out = "bench/results/checkpoint-" + preset + ".json";
  BertConfig c;
  c.vocab_size = 30522;
  c.num_labels = 7;
  if (preset == "tiny") c.hidden = 128, c.layers = 2, c.heads = 2, c.intermediate = 512;
  torch::manual_seed(0);
  BertForClassification model(c);
  const NamedParameters named = named_parameters(*model);
  FlatOptions flat_options;
  flat_options.no_decay = no_weight_decay(*model);
  FlatParams flat(named, flat_options);
  std::unique_ptr<Optimizer> optimizer = make_adamw(flat, AdamWOptions{}, nullptr);
  {  // one step so that the AdamW moments are not all zero
    torch::Tensor ids = torch::randint(5, c.vocab_size, {2, 16}, torch::kInt64);
    model->forward(ids, torch::ones_like(ids)).sum().backward();
    optimizer->step(1e-4, 1.0, 1.0);
  }
  io::remove_tree(dir);
  fs::create_directories(dir);
  std::string vocab = (fs::path(dir) / "vocab.txt").string();
  {
    std::string v = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
    for (int64_t i = 5; i < c.vocab_size; ++i) v += "tok" + std::to_string(i) + "\n";
    io::write_file_atomic(vocab, v);
  }
  Config config;
  config.data.labels = {"a", "b", "c", "d", "e", "f", "g"};
  config.tokenizer.vocab = vocab;
  config.train.micro_batch = 8;
  CheckpointConfig cc;
  cc.keep_last = 2;
  Checkpoints checkpoints(dir, cc, true);
  ModelMeta meta{c,
                 config.data.labels,
                 Problem::kMultiLabel,
                 std::vector<double>(7, 0.5),
                 true,
                 true,
                 128,
                 "",
                 Objective::kClassify,
                 {},
                 0.5,
                 false,
                 {},
                 {}};
  TrainerState state;
  state.total_steps = 1000;
  state.batches_per_epoch = 100;
  state.micro_batch = 8;
  state.labels = config.data.labels;
  state.problem = "multi_label";

  std::vector<double> save_s, load_s;
  std::string last;
  for (int r = 0; r < repeats; ++r) {
    state.step = r + 1;
    double t0 = bench::now_seconds();
    const OptimizerState optimizer_state = optimizer->state();
    last = checkpoints.save({*model, optimizer_state, meta, vocab, "run: {}\n", state}, false);
    save_s.push_back(bench::now_seconds() - t0);
    t0 = bench::now_seconds();
    load_checkpoint(last, *model, *optimizer, config, 1, 100);
    load_s.push_back(bench::now_seconds() - t0);
  }
  uint64_t bytes = 0;
  for (const auto& entry : fs::directory_iterator(last)) bytes += entry.file_size();
  std::sort(save_s.begin(), save_s.end());
  std::sort(load_s.begin(), load_s.end());
  const double save = save_s[save_s.size() / 2], load = load_s[load_s.size() / 2];
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  nlohmann::json result = {{"benchmark", "checkpoint"},
                           {"preset", preset},
                           {"parameters", params},
                           {"bytes", bytes},
                           {"save_s", save},
                           {"load_s", load},
                           {"save_mb_per_s", bytes / save / 1e6},
                           {"load_mb_per_s", bytes / load / 1e6},
                           {"repeats", repeats},
                           {"dir", dir},
                           {"machine", bench::machine()}};
  bench::write_result(out, result);
  std::printf(
      "checkpoint %s: %.1fM parameters, %.1f MB; save %.3f s (%.0f MB/s, with fsync), load %.3f s (%.0f MB/s) -> %s\n",
      preset.c_str(), params / 1e6, bytes / 1e6, save, bytes / save / 1e6, load, bytes / load / 1e6, out.c_str());
  io::remove_tree(dir);
  return 0;
}
