// The timeline's device clock over a device's timing events (CUDA events on GPU ranks), written
// once for any event API so that its arithmetic is tested on CPU with exact fake events.
//
// A device reports the time between two events only as float milliseconds
// (cudaEventElapsedTime). Measured from one base event recorded at start, a float loses resolution
// as the run goes on: 24 bits of mantissa are 1 us at 16 s, 0.25 ms at an hour and 4 ms at 12 hours,
// so GPU spans in a long run's timeline became meaningless. The clock therefore moves its
// base forward: once an event it has timed lies more than kRebaseMs after the base, that (completed)
// event becomes the base, with the host time just computed for it. Every reading is then a float of
// at most a few kRebaseMs (resolution under 1 us); the error each move adds is one reading's
// (under 1 us at 10 s), so drift grows with the number of moves, not with the square of the run's
// length: tens of microseconds after a day, against seconds for one fixed base.
//
// Api (a policy; every call under the clock's lock):
//   using Event = ...;                 Event create();  void destroy(Event);
//   void record(Event, void* stream);  bool query(Event) (completed?);  void synchronize(Event);
//   float elapsed_ms(Event from, Event to)  (to - from, negative when `to` came first)
#pragma once

#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "modtrain/core/check.h"
#include "modtrain/dist/timeline.h"

namespace modtrain {

template <class Api>
class RebasingEventClock : public DeviceClock {
 public:
  static constexpr double kRebaseMs = 10000.0;

  // `start_stream`: where the first base is recorded; it is synchronised and its host time taken
  // right after (the one offset error of every reading: a few microseconds).
  RebasingEventClock(Api api, void* start_stream) : api_(std::move(api)) {
    base_.event = api_.create();
    api_.record(base_.event, start_stream);
    api_.synchronize(base_.event);
    base_.us = Timeline::now_us();
    base_.marker = 0;
    base_.released = true;  // owned by the clock alone
  }
  ~RebasingEventClock() override {
    for (auto& [id, e] : live_) api_.destroy(e);  // the base's event too while its marker is live
    for (auto e : free_) api_.destroy(e);
    if (base_.released) api_.destroy(base_.event);
  }
  RebasingEventClock(const RebasingEventClock&) = delete;
  RebasingEventClock& operator=(const RebasingEventClock&) = delete;

  uint64_t mark(void* stream) override {
    std::lock_guard<std::mutex> lock(mutex_);
    typename Api::Event e;
    if (free_.empty()) {
      e = api_.create();
    } else {
      e = free_.back();
      free_.pop_back();
    }
    api_.record(e, stream);
    live_[++next_] = e;
    return next_;
  }

  bool time_us(uint64_t marker, bool wait, double& us) override {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = live_.find(marker);
    MT_CHECK(it != live_.end(), "unknown device-clock marker " << marker);
    if (wait) {
      api_.synchronize(it->second);
    } else if (!api_.query(it->second)) {
      return false;
    }
    const double ms = static_cast<double>(api_.elapsed_ms(base_.event, it->second));
    us = base_.us + 1000.0 * ms;
    if (ms > kRebaseMs && marker != base_.marker) {  // this completed event becomes the base
      Base old = base_;
      base_ = {it->second, us, marker, false};
      if (old.released) free_.push_back(old.event);  // nobody holds the old base any more
      ++rebases_;
    }
    return true;
  }

  void release(uint64_t marker) override {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = live_.find(marker);
    if (it == live_.end()) return;
    if (marker == base_.marker) {
      base_.released = true;  // still the base: recycled when the base moves on
    } else {
      free_.push_back(it->second);
    }
    live_.erase(it);
  }

  int64_t rebases() const { return rebases_; }
  size_t events_created() const { return live_.size() + free_.size() + (base_.released ? 1 : 0); }

 private:
  struct Base {
    typename Api::Event event;
    double us = 0;
    uint64_t marker = 0;
    bool released = true;
  };
  Api api_;
  std::mutex mutex_;
  Base base_;
  std::unordered_map<uint64_t, typename Api::Event> live_;
  std::vector<typename Api::Event> free_;
  uint64_t next_ = 0;
  int64_t rebases_ = 0;
};

}  // namespace modtrain
