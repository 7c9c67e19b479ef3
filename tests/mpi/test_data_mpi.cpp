// Data under mpiexec: every rank sees a disjoint part of each epoch, together all records, and
// the same number of batches (so collectives in training can never wait on an uneven rank).
#include "catch_torch.h"

#include <filesystem>

#include <set>
#include "modtrain/io/files.h"

#include "modtrain/data/loader.h"
#include "modtrain/data/prepare.h"
#include "modtrain/data/synth.h"
#include "mpi_fixture.h"

using namespace modtrain;
using modtrain::test::world;
namespace fs = std::filesystem;

TEST_CASE("ranks see disjoint, complete data with equal batch counts", "[mpi][data]") {
  World& w = world();
  // Rank 0 synthesises and prepares into a directory every rank can read (one host).
  std::string dir;
  if (w.is_root()) {
    std::string pattern = (fs::temp_directory_path() / "modtrain-mpi-XXXXXX").string();
    dir = mkdtemp(pattern.data());
  }
  dir = w.all_gather(dir)[0];
  Config config;
  config.data.train = {dir + "/raw/train-*.jsonl"};
  config.data.valid = {dir + "/raw/valid-*.jsonl"};
  config.data.labels = synth_labels();
  config.data.max_len = 32;
  config.data.prepared_dir = dir + "/prep";
  config.tokenizer.vocab = MODTRAIN_SOURCE_DIR "/tests/data/tokenizer/vocab-uncased.txt";
  if (w.is_root()) {
    SynthOptions synth;
    synth.out_dir = dir + "/raw";
    synth.train = 997;  // prime: no even split across ranks
    synth.valid = 10;
    synth.train_shards = 7;
    synthesize_tweets(synth);
    prepare_data(config, {1, false});
  }
  w.barrier();
  auto data = std::make_shared<PreparedDataset>(
      PreparedDataset::open(config.data.prepared_dir, "train", DataExpectations::from_config(config)));
  auto sampler =
      std::make_shared<DistributedSampler>(data->size(), SamplerOptions{11, w.rank(), w.size(), 16, true, false, 64});
  Loader loader(data, sampler, {});
  std::string mine;  // this rank's real (non-padding) indices of epoch 0, as text
  uint64_t batches = sampler->batches_per_epoch(), samples = 0;
  for (uint64_t b = 0; b < batches; ++b) {
    Batch batch = loader.next();
    samples += batch.indices.size();
    for (size_t i = 0; i < batch.indices.size(); ++i)
      if (!batch.padding[static_cast<int64_t>(i)].item<bool>()) mine += std::to_string(batch.indices[i]) + " ";
  }
  std::vector<std::string> everyone = w.all_gather(mine);
  std::vector<uint64_t> batch_counts = w.all_gather(batches), sample_counts = w.all_gather(samples);
  w.barrier();
  if (w.is_root()) io::remove_tree(dir);

  std::multiset<uint64_t> seen;
  for (const auto& text : everyone) {
    std::istringstream in(text);
    uint64_t index;
    while (in >> index) seen.insert(index);
  }
  CHECK(data->size() == 997);
  CHECK(seen.size() == 997);  // complete, and no record twice (a multiset would hold duplicates)
  CHECK(std::set<uint64_t>(seen.begin(), seen.end()).size() == 997);
  for (uint64_t c : batch_counts) CHECK(c == batch_counts[0]);
  for (uint64_t c : sample_counts) CHECK(c == sample_counts[0]);
}
