// The server's metrics in Prometheus' text exposition format (version 0.0.4), for GET /metrics:
// requests by route and status, request latency, batch size, tokens per batch and queue time
// histograms, queue depth, UTF-8 repairs, and the model's id and load time. Written here rather than
// with prometheus-cpp: Debian 12 does not package prometheus-cpp (cpp-httplib it does), and the
// server needs a handful of counters and four fixed-bucket histograms.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace modtrain {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  // "<name>_bucket{le=...} n" lines (cumulative), _sum and _count; `labels` goes inside the braces.
  std::string render(const std::string& name, const std::string& labels = "") const;
  uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, the last one +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class ServeMetrics {
 public:
  ServeMetrics();
  void request(const std::string& route, int status, double seconds);
  void batch(size_t posts, int64_t tokens, double forward_seconds, const std::vector<double>& queue_ms);
  void utf8_repairs(size_t n);
  void model(const std::string& id, const std::string& dir, double load_seconds);
  void reload(bool ok);
  std::string render(int64_t queue_depth, int64_t queue_limit) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // (route, status) -> count
  std::map<std::string, Histogram> latency_;                  // per route, seconds
  Histogram batch_posts_, batch_tokens_, forward_seconds_, queue_seconds_;
  uint64_t batches_ = 0, utf8_repairs_ = 0, reloads_ok_ = 0, reloads_failed_ = 0;
  std::string model_id_, model_dir_;
  double model_load_seconds_ = 0;
};

}  // namespace modtrain
