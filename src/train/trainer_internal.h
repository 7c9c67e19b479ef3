// Helpers shared by the trainer's files (trainer.cpp: construction and the step loop; resume.cpp:
// resume and cross-rank agreement; report.cpp: the start banner and evaluation records;
// trainer_checkpoint.cpp: when to save, and the save). Not part of the public headers.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "modtrain/dist/flat_params.h"

namespace modtrain::trainer_detail {

using json = nlohmann::ordered_json;  // keys in insertion order: labels in the model's order

inline double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace modtrain::trainer_detail
