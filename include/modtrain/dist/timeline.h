// A Chrome-trace timeline per rank (dist.timeline), like Horovod's: forward, backward, each
// gradient bucket's all-reduce, the wait for it and the optimiser, so users can see how much
// communication hides behind backward. Open the files in chrome://tracing or Perfetto.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace modtrain {

class Timeline {
 public:
  Timeline(bool enabled, int rank);
  bool enabled() const { return enabled_; }
  static double now_us();  // microseconds on a monotonic clock

  // A complete span on a lane: 0 = compute (main thread), 1 = communication.
  void span(const std::string& name, double start_us, double end_us, int lane = 0, const std::string& args_json = "");

  struct Event {
    std::string name;
    double start_us, end_us;
    int lane;
    std::string args_json;
  };
  std::vector<Event> events() const;
  void write(const std::string& path) const;  // Chrome trace JSON

  // RAII span on the compute lane.
  class Scope {
   public:
    Scope(Timeline* t, std::string name)
        : t_(t && t->enabled() ? t : nullptr), name_(std::move(name)), start_(now_us()) {}
    ~Scope() {
      if (t_) t_->span(name_, start_, now_us());
    }

   private:
    Timeline* t_;
    std::string name_;
    double start_;
  };

 private:
  bool enabled_;
  int rank_;
  mutable std::mutex mutex_;
  std::vector<Event> events_;
};

}  // namespace modtrain
