// The dynamic batcher behind `modtrain serve`. HTTP threads encode their request's posts (the
// model's own normalisation and tokenizer) and queue them; worker threads cut batches from the
// queue by a token budget or a wait, whichever comes first (TEI batches by tokens, Triton by a
// maximum queue delay), score each batch in one padding-free forward pass with its posts sorted by
// length, and hand every post's scores back to its request, which answers in its own order. One
// request's posts may span batches; a batch holds posts of one model only, so a reload never mixes
// models inside a request. The queue is bounded in posts: a request that does not fit is refused
// whole (the server answers 503 with Retry-After) instead of waiting behind minutes of work.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace modtrain {

struct LoadedModel;
enum class DeviceKind;

// A model as the server holds it: loaded, checked and warmed up. Requests keep the one they started
// on: a reload swaps the server's pointer while in-flight requests finish on theirs.
struct ServedModel {
  std::shared_ptr<LoadedModel> loaded;
  std::string dir;
  std::string id;  // model.safetensors' checksum (16 hex digits): in every response and in /metrics
  std::vector<std::string> labels;
  std::vector<double> thresholds;
  bool multi_class = false;
  std::string device;       // "cpu", "cuda:0"
  double load_seconds = 0;  // reading, checking and the warm-up batch
};

// Loads `dir` (every check load_model_dir makes) onto `device` (serve.device: auto = cuda:0 when
// CUDA is available) and scores a warm-up batch. Throws UserError with one line when the directory
// is not a servable classifier, or serve.device = cuda has no GPU.
std::shared_ptr<const ServedModel> load_served_model(const std::string& dir, DeviceKind device);

struct PostScores {
  std::vector<float> scores;    // the model's calibrated probabilities, in its label order
  std::vector<float> logits;    // before the sigmoid/softmax and temperatures (TEI's raw_scores)
  std::vector<size_t> flagged;  // labels at or above their threshold (multi_class: the argmax)
  bool finite = true;           // false: a score is NaN or Inf (nothing flagged)
  int64_t tokens = 0;           // the post's tokens, special tokens included
};

// How a cut batch, sorted by length, is scored: [begin, end) ranges, one forward pass each. The
// padding-free forward pass lays each post's attention out at its pass's longest post, so one pass
// over 5- to 64-token posts would spend most of its attention on padding (attention is a quarter of
// the tiny model's work at 64 tokens). A group closes when the next post would take its laid-out
// area (posts x longest) past 1.25x its real tokens, once it holds at least `min_tokens` (fewer,
// larger matrix products are faster per token). Pure, so it is tested directly.
std::vector<std::pair<size_t, size_t>> length_groups(const std::vector<int64_t>& sorted_lengths,
                                                     int64_t min_tokens = 512);

struct BatcherOptions {
  int64_t max_batch_tokens = 8192;  // real tokens per forward pass (padding-free)
  double max_wait_ms = 0.0;         // the longest a queued post waits for a fuller batch
  int64_t max_queue_posts = 4096;   // posts queued or being scored, all requests
  int workers = 1;                  // batches scored at once
  int threads = 1;                  // LibTorch intra-op threads (shared by the workers)
};

// What one batch was, for /metrics.
struct BatchRecord {
  size_t posts = 0;
  int64_t tokens = 0;
  double forward_ms = 0;
  std::vector<double> queue_ms;  // per post: from queueing to the start of its batch's forward pass
};

class Batcher {
 public:
  using Hook = std::function<void(const BatchRecord&)>;
  explicit Batcher(BatcherOptions options, Hook hook = {});
  ~Batcher();  // scores what is queued, then joins the workers
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Scores `texts` with `model` (the caller's snapshot) and waits for every post: encoded on this
  // thread, queued, answered in the order given. Returns false, queueing nothing, when the queue
  // has no room for all of them.
  bool score(const std::shared_ptr<const ServedModel>& model, const std::vector<std::string>& texts,
             std::vector<PostScores>& out);
  int64_t queued_posts() const;  // queued or being scored

 private:
  struct Request;
  struct Item {
    std::shared_ptr<Request> request;
    size_t index;
    std::vector<int32_t> ids;
    std::shared_ptr<const ServedModel> model;
    std::chrono::steady_clock::time_point queued;
  };
  void work();

  BatcherOptions options_;
  Hook hook_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Item> queue_;
  int64_t queued_tokens_ = 0;
  int64_t in_flight_posts_ = 0;  // queued + being scored (the bound's count)
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace modtrain
