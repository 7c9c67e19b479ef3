// Checkpoint benchmark, one process: what the training loop waits for per save (sync: the whole
// save; async: the snapshot into host buffers), the whole save (write + fsync + index + renames)
// and the load, of the tiny and the BERT-base-sized model. Across ranks and under training:
// scripts/bench_checkpoint.sh.
// Usage: modtrain_bench_checkpoint [--preset tiny|base] [--dir SCRATCH] [--repeats N] [--out FILE]
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>

#include "bench_common.h"
#include "modtrain/dist/collectives.h"
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
  auto local = make_local_collectives();
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

  // Per mode: the first save apart (fresh host buffers), then `repeats` saves: what the step loop
  // waits for (begin: the snapshot; + finish when sync), the whole save, and the load.
  nlohmann::json modes = nlohmann::json::object();
  uint64_t bytes = 0;
  for (const bool async : {false, true}) {
    cc.async = async;
    Checkpoints checkpoints(dir, cc, *local);
    std::vector<double> blocked_s, total_s, load_s;
    double first_blocked = 0;
    std::string last;
    for (int r = 0; r <= repeats; ++r) {
      state.step = r + 1;
      const double t0 = bench::now_seconds();
      checkpoints.begin({flat, *optimizer, meta, vocab, "run: {}\n", state}, false);
      const double t1 = bench::now_seconds();
      const SavedCheckpoint saved = checkpoints.finish();
      const double t2 = bench::now_seconds();
      last = saved.dir;
      bytes = saved.bytes;
      (void)t1;
      // What a training loop would wait for: begin(), and the commit without waiting for the write
      // (the trainer commits once every rank's write has ended; sync: the write is inside begin()).
      const double blocked = saved.begin_s + saved.commit_s - saved.join_s;
      if (r == 0) {
        first_blocked = blocked;
        continue;
      }
      blocked_s.push_back(blocked);
      total_s.push_back(t2 - t0);
      const double t3 = bench::now_seconds();
      load_checkpoint(last, *model, *optimizer, config, 1, 100);
      load_s.push_back(bench::now_seconds() - t3);
    }
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    modes[async ? "async" : "sync"] = {{"first_blocked_s", first_blocked},
                                       {"blocked_s", median(blocked_s)},
                                       {"save_s", median(total_s)},
                                       {"load_s", median(load_s)}};
    std::printf("checkpoint %s %s: training blocked %.3f s (first save %.3f s), whole save %.3f s, load %.3f s\n",
                preset.c_str(), async ? "async" : "sync", median(blocked_s), first_blocked, median(total_s),
                median(load_s));
  }
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  nlohmann::json result = {
      {"benchmark", "checkpoint"}, {"preset", preset}, {"parameters", params},       {"bytes", bytes}, {"modes", modes},
      {"repeats", repeats},        {"dir", dir},       {"machine", bench::machine()}};
  bench::write_result(out, result);
  io::remove_tree(dir);
  return 0;
}
