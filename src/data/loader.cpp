#include "modtrain/data/loader.h"

#include <algorithm>

#include "modtrain/data/raw_reader.h"

namespace modtrain {

namespace {

// MLM inputs for a collated batch (see Batch::mlm_*): chosen tokens rewritten in input_ids, their
// targets and their indices in both layouts.
void apply_masking(Batch& batch, const LoaderOptions& options) {
  const int64_t b = batch.input_ids.size(0), t = batch.input_ids.size(1);
  const int64_t step =
      options.mask_batches_per_epoch > 0
          ? static_cast<int64_t>(batch.position.epoch * options.mask_batches_per_epoch + batch.position.batch)
          : -1;
  int64_t* ids = batch.input_ids.data_ptr<int64_t>();
  const int64_t* attention = batch.attention_mask.data_ptr<int64_t>();
  const bool* padding = batch.padding.data_ptr<bool>();
  std::vector<int64_t> targets(static_cast<size_t>(t));
  std::vector<int64_t> labels, positions, packed;
  int64_t real = 0;  // real tokens before this row
  for (int64_t i = 0; i < b; ++i) {
    int64_t n = 0;
    while (n < t && attention[i * t + n]) ++n;
    if (!padding[i]) {
      std::fill(targets.begin(), targets.end(), kNotMasked);
      options.masker->mask(ids + i * t, targets.data(), n, options.mask_seed, step,
                           batch.indices[static_cast<size_t>(i)]);
      for (int64_t k = 0; k < n; ++k) {
        if (targets[static_cast<size_t>(k)] == kNotMasked) continue;
        labels.push_back(targets[static_cast<size_t>(k)]);
        positions.push_back(i * t + k);
        packed.push_back(real + k);
      }
    }
    real += n;
  }
  auto host = torch::TensorOptions().dtype(torch::kInt64).pinned_memory(options.pin_memory);
  auto tensor = [&](const std::vector<int64_t>& v) {
    torch::Tensor out = torch::empty({static_cast<int64_t>(v.size())}, host);
    std::copy(v.begin(), v.end(), out.data_ptr<int64_t>());
    return out;
  };
  batch.mlm_labels = tensor(labels);
  batch.mlm_positions = tensor(positions);
  batch.mlm_packed = tensor(packed);
  batch.masked = static_cast<int64_t>(labels.size());
}

}  // namespace

Batch collate(const PreparedDataset& data, const SampledBatch& sampled, const LoaderOptions& options) {
  const int64_t b = static_cast<int64_t>(sampled.indices.size());
  const int64_t num_labels = static_cast<int64_t>(data.num_labels());
  std::vector<PreparedDataset::Ref> refs(sampled.indices.size());
  int64_t longest = 1;
  for (size_t i = 0; i < refs.size(); ++i) {
    refs[i] = data.locate(sampled.indices[i]);
    longest = std::max<int64_t>(longest, data.record(refs[i]).length(refs[i].record));
  }
  const int64_t t = (longest + options.pad_multiple - 1) / options.pad_multiple * options.pad_multiple;
  auto host = torch::TensorOptions().pinned_memory(options.pin_memory);
  Batch batch;
  batch.input_ids = torch::full({b, t}, options.pad_id, host.dtype(torch::kInt64));
  batch.attention_mask = torch::zeros({b, t}, host.dtype(torch::kInt64));
  batch.labels = torch::zeros({b, num_labels}, host.dtype(torch::kFloat32));
  batch.label_mask = torch::zeros({b, num_labels}, host.dtype(torch::kFloat32));
  batch.padding = torch::zeros({b}, host.dtype(torch::kBool));
  int64_t* ids = batch.input_ids.data_ptr<int64_t>();
  int64_t* mask = batch.attention_mask.data_ptr<int64_t>();
  float* labels = batch.labels.data_ptr<float>();
  float* label_mask = batch.label_mask.data_ptr<float>();
  bool* padding = batch.padding.data_ptr<bool>();
  for (int64_t i = 0; i < b; ++i) {
    const PreparedShard& shard = data.record(refs[static_cast<size_t>(i)]);
    const uint64_t record = refs[static_cast<size_t>(i)].record;
    const uint32_t len = shard.length(record);
    shard.copy_tokens(record, ids + i * t);
    std::fill(mask + i * t, mask + i * t + len, int64_t{1});
    batch.tokens += len;
    for (int64_t k = 0; k < num_labels; ++k) {
      const float v = shard.label_value(record, static_cast<size_t>(k));  // soft labels: the share in [0, 1]
      labels[i * num_labels + k] = v >= 0.0f ? v : 0.0f;
      label_mask[i * num_labels + k] = v >= 0.0f ? 1.0f : 0.0f;
    }
    padding[i] = sampled.padding[static_cast<size_t>(i)] != 0;
  }
  data.release_pages();  // the records are copied: keep mapped only what the next batch reads
  batch.indices = sampled.indices;
  batch.position = {sampled.epoch, sampled.batch};
  if (options.masker) apply_masking(batch, options);
  return batch;
}

Loader::Loader(std::shared_ptr<const PreparedDataset> data, std::shared_ptr<const DistributedSampler> sampler,
               LoaderOptions options, SamplerState from)
    : data_(std::move(data)), sampler_(std::move(sampler)), options_(options) {
  start(from);
}

Loader::~Loader() { stop(); }

void Loader::start(SamplerState from) {
  std::lock_guard<std::mutex> lock(mutex_);
  consumer_ = from;
  stopping_ = false;
  error_ = nullptr;
  queue_.clear();
  uint64_t generation = ++generation_;
  thread_ = std::thread([this, from, generation] { produce(from, generation); });
}

void Loader::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Loader::produce(SamplerState position, uint64_t generation) {
  try {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stopping_ || queue_.size() < options_.prefetch; });
        if (stopping_ || generation != generation_) return;
      }
      Batch batch = collate(*data_, sampler_->batch(position.epoch, position.batch), options_);
      position = sampler_->next(position);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_ || generation != generation_) return;
        queue_.push_back(std::move(batch));
      }
      changed_.notify_all();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::current_exception();
    changed_.notify_all();
  }
}

Batch Loader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return !queue_.empty() || error_; });
  if (queue_.empty() && error_) std::rethrow_exception(error_);
  Batch batch = std::move(queue_.front());
  queue_.pop_front();
  consumer_ = sampler_->next(batch.position);
  lock.unlock();
  changed_.notify_all();
  return batch;
}

SamplerState Loader::state() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return consumer_;
}

void Loader::restore(SamplerState state) {
  stop();
  start(state);
}

}  // namespace modtrain
