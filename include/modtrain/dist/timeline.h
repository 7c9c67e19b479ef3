// A Chrome-trace timeline per rank (dist.timeline), like Horovod's: forward, backward, each
// gradient bucket's all-reduce, the wait for it and the optimiser, so users can see how much
// communication hides behind backward. Open the files in chrome://tracing or Perfetto.
// Lanes: 0 "host: compute" and 1 "host: communication" are host clock spans: on a GPU they time
// kernel queuing and launch-to-wait, not the work. With a DeviceClock (CUDA ranks), lanes 2 "GPU:
// compute stream" and 3 "GPU: NCCL stream" hold the same spans timed by CUDA events on the
// streams, converted to the host clock: those are what the GPU did, and what overlap means there.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace modtrain {

// Markers recorded on a device stream and read back later as times on Timeline::now_us()'s clock
// (CUDA events; the implementation lives with the CUDA code, dist/nccl_communicator.cpp).
class DeviceClock {
 public:
  virtual ~DeviceClock() = default;
  // Records a marker on `stream` (a cudaStream_t; nullptr: the caller's current compute stream).
  virtual uint64_t mark(void* stream) = 0;
  // The marker's time once the device passed it (waiting for that when `wait`); false while pending.
  virtual bool time_us(uint64_t marker, bool wait, double& us) = 0;
  virtual void release(uint64_t marker) = 0;
};

class Timeline {
 public:
  Timeline(bool enabled, int rank);
  bool enabled() const { return enabled_; }
  static double now_us();  // microseconds on a monotonic clock

  enum Lane { kHostCompute = 0, kHostComm = 1, kDeviceCompute = 2, kDeviceComm = 3 };
  // A complete span on a lane: 0 = compute (main thread), 1 = communication.
  void span(const std::string& name, double start_us, double end_us, int lane = 0, const std::string& args_json = "");

  // Device timing (set on CUDA ranks when the timeline is on): spans between two markers, resolved
  // into events as the device passes them (and all of them before write()).
  void set_device_clock(std::unique_ptr<DeviceClock> clock) { clock_ = std::move(clock); }
  DeviceClock* device_clock() const { return enabled_ ? clock_.get() : nullptr; }
  void device_span(const std::string& name, uint64_t start, uint64_t end, int lane);

  struct Event {
    std::string name;
    double start_us, end_us;
    int lane;
    std::string args_json;
  };
  std::vector<Event> events() const;
  void write(const std::string& path);  // Chrome trace JSON (waits for pending device spans)

  // RAII span on the compute lane (and on the device's compute stream with a DeviceClock).
  class Scope {
   public:
    Scope(Timeline* t, std::string name)
        : t_(t && t->enabled() ? t : nullptr), name_(std::move(name)), start_(now_us()) {
      if (t_ && t_->device_clock()) device_start_ = t_->device_clock()->mark(nullptr);
    }
    ~Scope() {
      if (!t_) return;
      t_->span(name_, start_, now_us());
      if (DeviceClock* clock = t_->device_clock())
        t_->device_span(name_, device_start_, clock->mark(nullptr), kDeviceCompute);
    }

   private:
    Timeline* t_;
    std::string name_;
    double start_;
    uint64_t device_start_ = 0;
  };

 private:
  struct Pending {
    std::string name;
    uint64_t start, end;
    int lane;
  };
  void resolve(bool wait);  // pending device spans -> events (mutex held)

  bool enabled_;
  int rank_;
  mutable std::mutex mutex_;
  std::vector<Event> events_;
  std::unique_ptr<DeviceClock> clock_;
  std::deque<Pending> pending_;
};

}  // namespace modtrain
