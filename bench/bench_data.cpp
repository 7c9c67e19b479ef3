// Data benchmark: `data prepare` throughput (records/s on all cores) and loader throughput
// (collate on one core, and the prefetching Loader), from prepared synthetic shards.
// Target: the loader at >= 200k samples/s on one core, far above what training consumes.
// Usage: modtrain_bench_data [--out FILE] [--records N] [--batch B]
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <fstream>
#include "modtrain/io/files.h"

#include "bench_common.h"
#include "modtrain/data/loader.h"
#include "modtrain/data/prepare.h"
#include "modtrain/data/synth.h"
#include "modtrain/data/vocab_trainer.h"

using namespace modtrain;
namespace fs = std::filesystem;

int main(int argc, char** argv) {
  std::string out = "bench/results/data.json";
  uint64_t records = 100000;
  uint32_t batch = 32;
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--out")) out = argv[i + 1];
    if (!std::strcmp(argv[i], "--records")) records = std::stoull(argv[i + 1]);
    if (!std::strcmp(argv[i], "--batch")) batch = static_cast<uint32_t>(std::stoul(argv[i + 1]));
  }
  std::string pattern = (fs::temp_directory_path() / "modtrain-bench-XXXXXX").string();
  const std::string dir = mkdtemp(pattern.data());
  SynthOptions synth;
  synth.out_dir = dir + "/raw";
  synth.train = records;
  synth.valid = 100;
  synth.train_shards = 4;
  synthesize_tweets(synth);

  Config config;
  config.data.train = {synth.out_dir + "/train-*.jsonl"};
  config.data.valid = {synth.out_dir + "/valid-*.jsonl"};
  config.data.labels = synth_labels();
  config.data.max_len = 64;
  config.data.prepared_dir = dir + "/prep";
  config.tokenizer.vocab = dir + "/vocab.txt";
  {
    VocabTrainer trainer({});
    std::vector<std::string> texts;
    for (uint64_t i = 0; i < std::min<uint64_t>(records, 20000); ++i)
      texts.push_back(synth_record(synth.seed, "train", i, synth));
    trainer.add_texts(texts);
    std::ofstream v(config.tokenizer.vocab);
    for (const auto& t : trainer.train()) v << t << "\n";
  }
  uint64_t raw_bytes = 0;
  for (const auto& f : fs::directory_iterator(synth.out_dir)) raw_bytes += fs::file_size(f.path());

  double t0 = bench::now_seconds();
  PrepareReport report = prepare_data(config, {0, false});
  double prepare_s = bench::now_seconds() - t0;
  std::printf("prepare: %.0f records/s, %.1f MB/s on %u threads\n", (records + 100) / prepare_s,
              raw_bytes / prepare_s / 1e6, std::thread::hardware_concurrency());

  // What opening costs: every shard verified (structure, token ids, checksum against the manifest)
  // from a warm page cache, i.e. the CPU cost on top of reading the files.
  const DataExpectations expect = DataExpectations::from_config(config);
  uint64_t shard_bytes = 0;
  for (const auto& f : fs::directory_iterator(config.data.prepared_dir))
    if (f.path().extension() == ".bin" && f.path().filename().string().rfind("train-", 0) == 0)
      shard_bytes += fs::file_size(f.path());
  const double open_s =
      bench::time_per_call([&] { PreparedDataset::open(config.data.prepared_dir, "train", expect); }, 2.0);
  const double verify_gb_per_s = shard_bytes / open_s / 1e9;
  std::printf("open + verify: %.2f GB/s of shards (%.1f MB in %.1f ms): %.1f s per rank for 10 GB\n", verify_gb_per_s,
              shard_bytes / 1e6, open_s * 1e3, 10.0 / verify_gb_per_s);
  auto data = std::make_shared<PreparedDataset>(PreparedDataset::open(config.data.prepared_dir, "train", expect));
  auto sampler = std::make_shared<DistributedSampler>(data->size(), SamplerOptions{1, 0, 1, batch, true, false, 64});
  LoaderOptions options;
  uint64_t b = 0;
  double collate_s = bench::time_per_call(
      [&] {
        collate(*data, sampler->batch(0, b % sampler->batches_per_epoch()), options);
        ++b;
      },
      2.0);
  double collate_rate = batch / collate_s;
  Loader loader(data, sampler, options);
  double loader_s = bench::time_per_call([&] { loader.next(); }, 2.0);
  double loader_rate = batch / loader_s;
  std::printf("loader: collate %.0f samples/s on one core; prefetching Loader %.0f samples/s (batch %u)\n",
              collate_rate, loader_rate, batch);
  io::remove_tree(dir);

  nlohmann::json result = {{"benchmark", "data"},
                           {"machine", bench::machine()},
                           {"records", records},
                           {"raw_bytes", raw_bytes},
                           {"open_verify",
                            {{"shard_bytes", shard_bytes},
                             {"seconds", open_s},
                             {"gb_per_s", verify_gb_per_s},
                             {"seconds_per_10_gb", 10.0 / verify_gb_per_s}}},
                           {"prepare",
                            {{"seconds", prepare_s},
                             {"records_per_s", (records + 100) / prepare_s},
                             {"mb_per_s", raw_bytes / prepare_s / 1e6},
                             {"threads", std::thread::hardware_concurrency()}}},
                           {"loader",
                            {{"batch", batch},
                             {"collate_samples_per_s_one_core", collate_rate},
                             {"prefetch_loader_samples_per_s", loader_rate},
                             {"target_samples_per_s", 200000}}}};
  bench::write_result(out, result);
  return 0;
}
