// The model card (README.md) an export writes: what the model is (family, objective, problem),
// how it was trained (modtrain version, tweet normalisation, max length), its decision
// thresholds and temperatures, its evaluation (eval.json: per-label metrics, calibration, bias)
// and how to load it with transformers so that it reproduces `modtrain predict`.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

namespace modtrain {

// The card of the model directory `model_dir` (its modtrain.json, config.json and eval.json).
// `skew` non-empty: the train/serve skew the export was allowed to carry, said in bold.
// Throws UserError naming a malformed file.
std::string model_card(const std::string& model_dir, const std::string& skew = "");
// The same from an already parsed modtrain.json and the config's model_type.
std::string model_card(const nlohmann::ordered_json& meta, const std::string& family, const std::string& model_dir,
                       const std::string& skew);

}  // namespace modtrain
