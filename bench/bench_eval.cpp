// Evaluation at scale, under mpiexec: what one evaluation of a prepared validation split costs each
// rank. Each rank scores its share with a small classifier and sends its scores to rank 0, which
// computes the exact figures (train/evaluator.h). Per rank: the seconds scoring its share, the
// seconds from then to the end (rank 0: receiving and computing the figures; the others: sending
// and waiting for the figures), and the peak resident memory the evaluation added (VmHWM after
// /proc/self/clear_refs reset it, less the resident memory before). The model is deliberately
// small (hidden 32, one layer): the forward pass is O(share) and measured elsewhere
// (bench/results/train-*.json); this measures what grows with the split.
// Usage: mpiexec -np W modtrain_bench_eval --config FILE [--set key=value ...] [--batch B] [--out FILE]
//   (data.valid of the config must be prepared under data.prepared_dir)
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "bench_common.h"
#include "modtrain/config/loader.h"
#include "modtrain/data/dataset.h"
#include "modtrain/data/tokenizer.h"
#include "modtrain/dist/collectives.h"
#include "modtrain/dist/timeline.h"
#include "modtrain/dist/world.h"
#include "modtrain/model/bert.h"
#include "modtrain/model/model.h"
#include "modtrain/train/evaluator.h"

using namespace modtrain;

namespace {
double status_mb(const char* key) {  // a /proc/self/status field in MB
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(std::strlen(key) + 1)) / 1024.0;
  return -1;
}
}  // namespace

int main(int argc, char** argv) {
  World world;
  std::string config_path, out = "bench/results/eval_scale.json";
  std::vector<std::string> overrides;
  int64_t batch = 256;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--config") config_path = v;
    else if (k == "--set") overrides.push_back(v);
    else if (k == "--batch") batch = std::stoll(v);
    else if (k == "--out") out = v;
  }
  const Config c = load_config(config_path, overrides).config;
  torch::set_num_threads(1);
  const auto tokenizer = load_tokenizer(c.tokenizer);
  PreparedDataset valid = PreparedDataset::open(c.data.prepared_dir, "valid", DataExpectations::from_config(c));
  ModelConfig small = c.model;
  small.hidden = 32, small.layers = 1, small.heads = 2, small.intermediate = 64;
  torch::manual_seed(0);
  auto model = make_classifier(BertConfig::from(small, static_cast<int64_t>(tokenizer->vocab_size()),
                                                static_cast<int64_t>(c.data.labels.size()), c.data.max_len,
                                                tokenizer->special_ids().pad));
  Timeline timeline(true, world.rank());
  auto collectives = make_mpi_collectives(world, 600.0, &timeline);
  EvalOptions o;
  o.labels = c.data.labels;
  o.problem = c.data.problem;
  o.loss.problem = c.data.problem;
  o.batch = batch;
  o.pad_id = tokenizer->special_ids().pad;
  o.unpad = true;
  o.collectives = collectives.get();
  o.calibrate = true;  // the figures' whole cost: temperatures, thresholds, calibration, AUCs

  world.barrier();
  const double rss_before = status_mb("VmRSS:");
  std::ofstream("/proc/self/clear_refs") << "5";  // VmHWM := VmRSS
  const double start = Timeline::now_us();
  const EvalResult r = evaluate_model(*model, valid, o);
  const double end = Timeline::now_us();
  const double peak = status_mb("VmHWM:");
  double scored = end;  // the gather's start: the share is scored
  for (const auto& e : timeline.events())
    if (e.name.rfind("gather to rank 0 of evaluation scores", 0) == 0) scored = std::min(scored, e.start_us);
  const nlohmann::json mine = {{"rank", world.rank()},
                               {"score_share_s", (scored - start) / 1e6},
                               {"gather_and_figures_s", (end - scored) / 1e6},
                               {"evaluation_s", (end - start) / 1e6},
                               {"rss_before_mb", rss_before},
                               {"peak_added_mb", peak - rss_before},
                               {"rss_anon_after_mb", status_mb("RssAnon:")},
                               {"rss_file_after_mb", status_mb("RssFile:")},
                               {"scores_held", r.probs.size()}};
  const std::vector<std::string> all = world.all_gather(mine.dump());
  if (world.is_root()) {
    nlohmann::json ranks = nlohmann::json::array();
    for (const auto& s : all) ranks.push_back(nlohmann::json::parse(s));
    const nlohmann::json result = {{"benchmark", "eval_scale"},
                                   {"machine", bench::machine()},
                                   {"records", valid.size()},
                                   {"labels", c.data.labels.size()},
                                   {"world", world.size()},
                                   {"macro_pr_auc", r.report.macro_pr_auc},
                                   {"ranks", ranks}};
    bench::write_result(out, result);
    std::printf("%s\n", result.dump(2).c_str());
  }
  return 0;
}
