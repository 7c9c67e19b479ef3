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

std::vector<Timeline::Event> Timeline::events() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return events_;
}

void Timeline::write(const std::string& path) const {
  nlohmann::json events = nlohmann::json::array();
  events.push_back(
      {{"name", "process_name"}, {"ph", "M"}, {"pid", rank_}, {"args", {{"name", "rank " + std::to_string(rank_)}}}});
  events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", rank_}, {"tid", 0}, {"args", {{"name", "compute"}}}});
  events.push_back(
      {{"name", "thread_name"}, {"ph", "M"}, {"pid", rank_}, {"tid", 1}, {"args", {{"name", "communication"}}}});
  for (const auto& e : this->events()) {
    nlohmann::json j = {{"name", e.name}, {"ph", "X"},        {"pid", rank_},
                        {"tid", e.lane},  {"ts", e.start_us}, {"dur", e.end_us - e.start_us}};
    if (!e.args_json.empty()) j["args"] = nlohmann::json::parse(e.args_json);
    events.push_back(j);
  }
  io::write_file_atomic(path, nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump() + "\n");
}

}  // namespace modtrain
