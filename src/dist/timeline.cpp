#include "modtrain/dist/timeline.h"

#include <nlohmann/json.hpp>

#include "modtrain/io/files.h"

namespace modtrain {

Timeline::Timeline(bool enabled, int rank) : enabled_(enabled), rank_(rank) {}

double Timeline::now_us() {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void Timeline::span(const std::string& name, double start_us, double end_us, int lane, const std::string& args_json) {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  events_.push_back({name, start_us, end_us, lane, args_json});
}

void Timeline::device_span(const std::string& name, uint64_t start, uint64_t end, int lane) {
  if (!enabled_ || !clock_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  pending_.push_back({name, start, end, lane});
  if (pending_.size() > 256) resolve(false);  // recycles the markers the device has passed
}

void Timeline::resolve(bool wait) {
  while (!pending_.empty()) {
    const Pending& p = pending_.front();
    double start = 0, end = 0;
    if (!clock_->time_us(p.end, wait, end)) return;  // spans complete in order per stream: stop at the first pending
    clock_->time_us(p.start, true, start);
    events_.push_back({p.name, start, end, p.lane, ""});
    clock_->release(p.start);
    clock_->release(p.end);
    pending_.pop_front();
  }
}

std::vector<Timeline::Event> Timeline::events() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return events_;
}

void Timeline::write(const std::string& path) {
  if (clock_) {
    std::lock_guard<std::mutex> lock(mutex_);
    resolve(true);
  }
  nlohmann::json events = nlohmann::json::array();
  events.push_back(
      {{"name", "process_name"}, {"ph", "M"}, {"pid", rank_}, {"args", {{"name", "rank " + std::to_string(rank_)}}}});
  const char* lanes[] = {"host: compute", "host: communication", "GPU: compute stream (CUDA events)",
                         "GPU: NCCL stream (CUDA events)"};
  for (int lane = 0; lane < (clock_ ? 4 : 2); ++lane)
    events.push_back(
        {{"name", "thread_name"}, {"ph", "M"}, {"pid", rank_}, {"tid", lane}, {"args", {{"name", lanes[lane]}}}});
  for (const auto& e : this->events()) {
    nlohmann::json j = {{"name", e.name}, {"ph", "X"},        {"pid", rank_},
                        {"tid", e.lane},  {"ts", e.start_us}, {"dur", e.end_us - e.start_us}};
    if (!e.args_json.empty()) j["args"] = nlohmann::json::parse(e.args_json);
    events.push_back(j);
  }
  io::write_file_atomic(path, nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump() + "\n");
}

}  // namespace modtrain
