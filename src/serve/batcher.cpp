#include "modtrain/serve/batcher.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <numeric>

#include "modtrain/config/config.h"
#include "modtrain/core/error.h"
#include "modtrain/infer/predictor.h"
#include "modtrain/io/checksum.h"
#include "modtrain/io/files.h"
#include "modtrain/modelio/model_dir.h"

namespace modtrain {

std::shared_ptr<const ServedModel> load_served_model(const std::string& dir, DeviceKind kind) {
  const auto start = std::chrono::steady_clock::now();
  const bool cuda = torch::cuda::is_available();
  if (kind == DeviceKind::kCuda && !cuda)
    throw UserError(
        "serve.device = cuda, but LibTorch sees no usable GPU (a CPU-only LibTorch, no driver, or "
        "CUDA_VISIBLE_DEVICES empty); use serve.device=auto or cpu",
        kExitUsage);
  const torch::Device device = kind != DeviceKind::kCpu && cuda ? torch::Device(torch::kCUDA, 0) : torch::kCPU;
  auto served = std::make_shared<ServedModel>();
  served->dir = dir;
  served->device = device.str();
  served->loaded = std::make_shared<LoadedModel>(load_model_dir(dir, device));
  const ModelMeta& meta = served->loaded->meta;
  served->labels = meta.labels;
  served->thresholds = meta.thresholds;
  served->multi_class = meta.problem == Problem::kMultiClass;
  // The id answers "which model said this": the weights' checksum, so two directories holding the
  // same weights have the same id and a retrained model never shares one.
  // Over a read-only map: page-cache pages, no second copy of the weights in memory.
  const io::MappedFile weights((std::filesystem::path(dir) / "model.safetensors").string());
  char id[17];
  std::snprintf(id, sizeof id, "%016llx",
                static_cast<unsigned long long>(io::checksum64(weights.data(), weights.size())));
  served->id = id;
  // Warm-up: one batch of short and long posts, so the first request does not pay for LibTorch's
  // first-call set-up, and a model that cannot score fails here, before it serves.
  const std::string long_post(static_cast<size_t>(meta.max_len) * 4, 'a');
  std::vector<std::vector<int32_t>> warm = {encode_for_model(*served->loaded, "warm up"),
                                            encode_for_model(*served->loaded, long_post)};
  std::vector<const std::vector<int32_t>*> records = {&warm[0], &warm[1]};
  const std::vector<float> scores = logits_of_encoded(*served->loaded, records);
  if (scores.size() != 2 * served->labels.size())
    throw UserError("model " + dir + ": the warm-up batch gave " + std::to_string(scores.size()) + " scores for " +
                        std::to_string(2 * served->labels.size()) + "; the model directory is inconsistent",
                    kExitUsage);
  served->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return served;
}

std::vector<std::pair<size_t, size_t>> length_groups(const std::vector<int64_t>& sorted_lengths, int64_t min_tokens) {
  std::vector<std::pair<size_t, size_t>> groups;
  size_t begin = 0;
  int64_t tokens = 0;
  for (size_t i = 0; i < sorted_lengths.size(); ++i) {
    const int64_t n = sorted_lengths[i];
    const auto area = static_cast<int64_t>(i + 1 - begin) * n;  // sorted: n is the group's longest
    if (i > begin && tokens >= min_tokens && area * 4 > (tokens + n) * 5) {
      groups.emplace_back(begin, i);
      begin = i, tokens = 0;
    }
    tokens += n;
  }
  if (begin < sorted_lengths.size()) groups.emplace_back(begin, sorted_lengths.size());
  return groups;
}

struct Batcher::Request {
  std::vector<PostScores>* out;
  size_t remaining;
  std::mutex mutex;
  std::condition_variable done;
};

Batcher::Batcher(BatcherOptions options, Hook hook) : options_(options), hook_(std::move(hook)) {
  torch::set_num_threads(std::max(1, options_.threads));
  for (int w = 0; w < std::max(1, options_.workers); ++w) workers_.emplace_back([this] { work(); });
}

Batcher::~Batcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

int64_t Batcher::queued_posts() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return in_flight_posts_;
}

bool Batcher::score(const std::shared_ptr<const ServedModel>& model, const std::vector<std::string>& texts,
                    std::vector<PostScores>& out) {
  out.assign(texts.size(), PostScores{});
  if (texts.empty()) return true;
  auto request = std::make_shared<Request>();
  request->out = &out;
  request->remaining = texts.size();
  std::vector<Item> items;
  items.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {  // encoded here, on the request's own thread
    items.push_back({request, i, encode_for_model(*model->loaded, texts[i]), model, {}});
    out[i].tokens = static_cast<int64_t>(items.back().ids.size());
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ || in_flight_posts_ + static_cast<int64_t>(items.size()) > options_.max_queue_posts) return false;
    const auto now = std::chrono::steady_clock::now();
    for (Item& item : items) {
      item.queued = now;
      queued_tokens_ += static_cast<int64_t>(item.ids.size());
      queue_.push_back(std::move(item));
    }
    in_flight_posts_ += static_cast<int64_t>(texts.size());
  }
  wake_.notify_all();
  std::unique_lock<std::mutex> lock(request->mutex);
  request->done.wait(lock, [&] { return request->remaining == 0; });
  return true;
}

void Batcher::work() {
  for (;;) {
    std::vector<Item> batch;
    int64_t tokens = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      // Wait for a full token budget, at most until the oldest post has waited max_wait_ms.
      const auto deadline =
          queue_.front().queued + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                      std::chrono::duration<double, std::milli>(options_.max_wait_ms));
      while (!stopping_ && queued_tokens_ < options_.max_batch_tokens && std::chrono::steady_clock::now() < deadline)
        if (wake_.wait_until(lock, deadline) == std::cv_status::timeout || queue_.empty()) break;
      if (queue_.empty()) continue;  // another worker took it
      // Cut: posts in arrival order within the budget (always at least one), one model only.
      const ServedModel* model = queue_.front().model.get();
      while (!queue_.empty() && queue_.front().model.get() == model &&
             (batch.empty() || tokens + static_cast<int64_t>(queue_.front().ids.size()) <= options_.max_batch_tokens)) {
        tokens += static_cast<int64_t>(queue_.front().ids.size());
        queued_tokens_ -= static_cast<int64_t>(queue_.front().ids.size());
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      if (!queue_.empty()) wake_.notify_one();  // more work for another worker
    }
    // Sorted by length: the attention layout is close to the posts' lengths.
    std::stable_sort(batch.begin(), batch.end(),
                     [](const Item& a, const Item& b) { return a.ids.size() < b.ids.size(); });
    BatchRecord record;
    record.posts = batch.size();
    record.tokens = tokens;
    const auto start = std::chrono::steady_clock::now();
    for (const Item& item : batch)
      record.queue_ms.push_back(std::chrono::duration<double, std::milli>(start - item.queued).count());
    const LoadedModel& loaded = *batch.front().model->loaded;
    const size_t L = batch.front().model->labels.size();
    std::vector<float> logits, scores;
    try {
      std::vector<int64_t> lengths;
      for (const Item& item : batch) lengths.push_back(static_cast<int64_t>(item.ids.size()));
      for (const auto& [begin, end] : length_groups(lengths)) {
        std::vector<const std::vector<int32_t>*> records;
        for (size_t i = begin; i < end; ++i) records.push_back(&batch[i].ids);
        const std::vector<float> part = logits_of_encoded(loaded, records);
        logits.insert(logits.end(), part.begin(), part.end());
      }
      scores = scores_from_logits(loaded.meta, logits, batch.size());
    } catch (const std::exception& e) {  // NaN scores: the posts answer "not a finite number", the server stays up
      logits.assign(batch.size() * L, std::numeric_limits<float>::quiet_NaN());
      scores = logits;
      std::fprintf(stderr, "serve: a batch of %zu posts failed: %s\n", batch.size(), e.what());
    }
    record.forward_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    {  // before any answer goes back: a client that reads /metrics after its answer sees the queue without it
      std::lock_guard<std::mutex> lock(mutex_);
      in_flight_posts_ -= static_cast<int64_t>(batch.size());
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      Item& item = batch[i];
      PostScores& p = (*item.request->out)[item.index];
      p.scores.assign(scores.begin() + static_cast<std::ptrdiff_t>(i * L),
                      scores.begin() + static_cast<std::ptrdiff_t>((i + 1) * L));
      p.logits.assign(logits.begin() + static_cast<std::ptrdiff_t>(i * L),
                      logits.begin() + static_cast<std::ptrdiff_t>((i + 1) * L));
      p.flagged = flagged_labels(loaded.meta, p.scores, &p.finite);
      std::lock_guard<std::mutex> lock(item.request->mutex);
      if (--item.request->remaining == 0) item.request->done.notify_all();
    }
    if (hook_) hook_(record);
  }
}

}  // namespace modtrain
