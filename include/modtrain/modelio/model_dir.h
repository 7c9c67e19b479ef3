// A trained model on disk: model.safetensors (Hugging Face parameter names), config.json (HF
// BertConfig fields, id2label/label2id, problem_type), the tokenizer's files (vocab.txt,
// tokenizer.json, vocab.json + merges.txt or sentencepiece.bpe.model) and modtrain.json (labels,
// problem, thresholds, tokenizer settings, max_len). What `train` writes at the end, and what
// `eval` (and later `predict` and `export`) read.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "modtrain/config/config.h"
#include "modtrain/data/tokenizer.h"
#include "modtrain/io/safetensors.h"
#include "modtrain/model/bert.h"

namespace modtrain {

struct ModelMeta {
  BertConfig bert;
  std::vector<std::string> labels;
  Problem problem = Problem::kMultiLabel;
  std::vector<double> thresholds;  // one per label
  bool lowercase = true, normalize_tweets = true;
  int64_t max_len = 128;
  // The evaluation behind the thresholds, as JSON ({"step", "train_records", "data", "metrics"}):
  // written to eval.json and shown in the exported model card. "" = none.
  std::string evaluation;
  Objective objective = Objective::kClassify;  // mlm: a ...ForMaskedLM model (no labels, no thresholds)
  // eval.calibrate: per label, scores are sigmoid(logit / T); empty = not calibrated (T = 1). The
  // thresholds apply to the calibrated scores.
  std::vector<double> temperatures;
  // How the training data was read, so that `eval` reads new data alike.
  double positive_at = 0.5;
  bool soft_labels = false;
  std::vector<std::string> subgroups, slice_by;
};

// The model's tensors as safetensors entries (float32 on the CPU; `keep` holds the copies).
std::vector<io::TensorBytes> state_tensors(torch::nn::Module& model, std::vector<torch::Tensor>& keep);

// Copies one stored tensor (F32/F16/BF16/F64) into a parameter; a shape mismatch is a UserError
// naming the tensor and `source`.
void copy_tensor(torch::Tensor& param, const io::TensorBytes& t, const std::string& name, const std::string& source);

// Copies tensors into the model's parameters by name. Every parameter must be present with its
// shape (a mismatch names the tensor); tensors listed in `skip` are left as initialised.
void load_state(torch::nn::Module& model, const io::SafetensorsView& view, const std::string& source,
                const std::vector<std::string>& skip = {});

// Writes the model, its metadata and the tokenizer at `tokenizer_path` (a model directory or
// tokenizer file, as tokenizer.vocab) under its model-directory names.
void save_model_dir(const std::string& dir, torch::nn::Module& model, const ModelMeta& meta,
                    const std::string& tokenizer_path);
// The same from the parameters as safetensors entries (a checkpoint's snapshot in host memory,
// written by a background thread: no LibTorch call).
void save_model_dir(const std::string& dir, std::vector<io::TensorBytes> tensors, const ModelMeta& meta,
                    const std::string& tokenizer_path);

// The tokenizer against the model's config.json: one embedding row per token, the same pad id.
void check_tokenizer_fits(const Tokenizer& tokenizer, const BertConfig& config, const std::string& tokenizer_where,
                          const std::string& config_where);

// The train.objective a model directory (or checkpoint) was written by: modtrain.json's
// "objective", classify when absent (older directories) or unreadable.
Objective model_dir_objective(const std::string& dir);

struct LoadedModel {
  ModelMeta meta;
  std::shared_ptr<const Tokenizer> tokenizer;
  std::shared_ptr<ClassifierImpl> model;    // classify
  std::shared_ptr<MaskedLMImpl> mlm_model;  // train.objective mlm (allow_mlm only)
  torch::Device device = torch::kCPU;       // where its parameters are
};
// Reads and checks a model directory (metadata, tokenizer, every tensor). A masked-language model
// is an error naming the fix (fine-tune it first) unless `allow_mlm` (export). The model is for
// inference: in eval mode, its Q, K and V weights fused (fuse_qkv_for_inference); do not train it.
LoadedModel load_model_dir(const std::string& dir, const torch::Device& device, bool allow_mlm = false);

}  // namespace modtrain
