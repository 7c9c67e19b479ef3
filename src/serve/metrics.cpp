#include "modtrain/serve/metrics.h"

#include <cstdio>
#include <sstream>

namespace modtrain {

namespace {
std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}
// A label value as the exposition format escapes it: backslash, double quote and newline.
std::string escaped(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\', out += c;
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}
const std::vector<double> kSeconds = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10};
}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += value;
  ++count_;
}

std::string Histogram::render(const std::string& name, const std::string& labels) const {
  std::string out, sep = labels.empty() ? "" : ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += name + "_bucket{" + labels + sep + "le=\"" + (i < bounds_.size() ? number(bounds_[i]) : "+Inf") + "\"} " +
           std::to_string(cumulative) + "\n";
  }
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out += name + "_sum" + braces + " " + number(sum_) + "\n";
  out += name + "_count" + braces + " " + std::to_string(count_) + "\n";
  return out;
}

ServeMetrics::ServeMetrics()
    : batch_posts_({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}),
      batch_tokens_({64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536}),
      forward_seconds_(kSeconds),
      queue_seconds_(kSeconds) {}

void ServeMetrics::request(const std::string& route, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{route, status}];
  latency_.try_emplace(route, kSeconds).first->second.observe(seconds);
}

void ServeMetrics::batch(size_t posts, int64_t tokens, double forward_seconds, const std::vector<double>& queue_ms) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++batches_;
  batch_posts_.observe(static_cast<double>(posts));
  batch_tokens_.observe(static_cast<double>(tokens));
  forward_seconds_.observe(forward_seconds);
  for (double ms : queue_ms) queue_seconds_.observe(ms / 1e3);
}

void ServeMetrics::utf8_repairs(size_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  utf8_repairs_ += n;
}

void ServeMetrics::model(const std::string& id, const std::string& dir, double load_seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  model_id_ = id, model_dir_ = dir, model_load_seconds_ = load_seconds;
}

void ServeMetrics::reload(bool ok) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++(ok ? reloads_ok_ : reloads_failed_);
}

std::string ServeMetrics::render(int64_t queue_depth, int64_t queue_limit) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::ostringstream os;
  os << "# HELP modtrain_serve_requests_total HTTP requests by route and status.\n"
     << "# TYPE modtrain_serve_requests_total counter\n";
  for (const auto& [key, n] : requests_)
    os << "modtrain_serve_requests_total{route=\"" << escaped(key.first) << "\",status=\"" << key.second << "\"} " << n
       << "\n";
  os << "# HELP modtrain_serve_request_seconds Request latency, received to answered.\n"
     << "# TYPE modtrain_serve_request_seconds histogram\n";
  for (const auto& [route, h] : latency_)
    os << h.render("modtrain_serve_request_seconds", "route=\"" + escaped(route) + "\"");
  os << "# HELP modtrain_serve_batch_posts Posts per forward pass.\n# TYPE modtrain_serve_batch_posts histogram\n"
     << batch_posts_.render("modtrain_serve_batch_posts")
     << "# HELP modtrain_serve_batch_tokens Tokens per forward pass (padding-free).\n"
     << "# TYPE modtrain_serve_batch_tokens histogram\n"
     << batch_tokens_.render("modtrain_serve_batch_tokens")
     << "# HELP modtrain_serve_forward_seconds A batch's forward pass and scores (TEI: te_inference_duration).\n"
     << "# TYPE modtrain_serve_forward_seconds histogram\n"
     << forward_seconds_.render("modtrain_serve_forward_seconds")
     << "# HELP modtrain_serve_queue_seconds Time a post waited for its batch.\n"
     << "# TYPE modtrain_serve_queue_seconds histogram\n"
     << queue_seconds_.render("modtrain_serve_queue_seconds")
     << "# HELP modtrain_serve_queue_posts Posts queued or being scored.\n# TYPE modtrain_serve_queue_posts gauge\n"
     << "modtrain_serve_queue_posts " << queue_depth << "\n"
     << "# HELP modtrain_serve_queue_limit_posts serve.max_queue_posts.\n# TYPE modtrain_serve_queue_limit_posts "
        "gauge\n"
     << "modtrain_serve_queue_limit_posts " << queue_limit << "\n"
     << "# HELP modtrain_serve_utf8_repairs_total Invalid UTF-8 sequences replaced in request bodies.\n"
     << "# TYPE modtrain_serve_utf8_repairs_total counter\nmodtrain_serve_utf8_repairs_total " << utf8_repairs_ << "\n"
     << "# HELP modtrain_serve_reloads_total Model reloads by outcome.\n# TYPE modtrain_serve_reloads_total counter\n"
     << "modtrain_serve_reloads_total{outcome=\"ok\"} " << reloads_ok_ << "\n"
     << "modtrain_serve_reloads_total{outcome=\"refused\"} " << reloads_failed_ << "\n"
     << "# HELP modtrain_serve_model_info The model answering requests (its weights' checksum).\n"
     << "# TYPE modtrain_serve_model_info gauge\n"
     << "modtrain_serve_model_info{id=\"" << escaped(model_id_) << "\",dir=\"" << escaped(model_dir_) << "\"} 1\n"
     << "# HELP modtrain_serve_model_load_seconds Reading, checking and warming up the model.\n"
     << "# TYPE modtrain_serve_model_load_seconds gauge\nmodtrain_serve_model_load_seconds "
     << number(model_load_seconds_) << "\n";
  return os.str();
}

}  // namespace modtrain
