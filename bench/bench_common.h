// Shared helpers for the benchmarks: timing, the machine description, and JSON results.
#pragma once

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "modtrain/core/build_info.h"

namespace modtrain::bench {

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Runs fn() repeatedly for at least `min_seconds` (after one warm-up call); returns seconds per call (median of 5
// rounds).
template <class Fn>
double time_per_call(Fn fn, double min_seconds = 0.5) {
  fn();
  std::vector<double> rounds;
  for (int r = 0; r < 5; ++r) {
    int calls = 0;
    double start = now_seconds(), elapsed = 0;
    do {
      fn();
      ++calls;
      elapsed = now_seconds() - start;
    } while (elapsed < min_seconds / 5);
    rounds.push_back(elapsed / calls);
  }
  std::sort(rounds.begin(), rounds.end());
  return rounds[2];
}

inline nlohmann::json machine() {
  std::string cpu = "unknown";
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; std::getline(info, line);) {
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  return {{"cpu", cpu},
          {"cores", std::thread::hardware_concurrency()},
          {"commit", build_commit()},
          {"version", build_version()}};
}

inline void write_result(const std::string& path, const nlohmann::json& result) {
  std::ofstream(path) << result.dump(2) << "\n";
}

}  // namespace modtrain::bench
