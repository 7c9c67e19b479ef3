// Training-step benchmark: time split forward / backward / optimiser (data is measured by
// bench_data), samples/s and tokens/s, for the tiny and the BERT-base-sized model; on CUDA also
// model FLOPs utilisation (MFU = 3 x forward matmul FLOPs per step / step time / peak).
// The optimiser is modtrain's (flat buffers, one fused pass; on CUDA LibTorch's fused AdamW
// kernel where >= 2.1, with clipping at 1.0) or, with --optimizer per_tensor, LibTorch's
// torch::optim::AdamW + clip_grad_norm_ (what modtrain used before).
// --lengths skewed gives the records post-like lengths (log-normal, median T/5, clipped to
// [2, T]; fixed seed) instead of all T; --unpad 1 runs the padding-free path (model.unpad; on CUDA
// in bf16 the variable-length flash attention). tokens/s counts real tokens only; MFU counts the
// padded batch's FLOPs (the work a padded step would do), so unpadded MFU can exceed padded.
// --objective mlm trains BertForMaskedLM instead (15% of the real tokens chosen, fixed seed): the
// head and the tied vocabulary projection run on the chosen tokens only, as the trainer will;
// mlm_all runs them on every token and takes the loss at the chosen ones (what a
// straightforward port of transformers' BertForMaskedLM does): the gather's saving.
// Usage: modtrain_bench_train [--preset tiny|base] [--batch B] [--seq T] [--steps N]
//        [--device cpu|cuda] [--precision fp32|bf16] [--peak-tflops P] [--threads N]
//        [--optimizer flat|per_tensor] [--lengths full|skewed] [--unpad 0|1]
//        [--objective classify|mlm|mlm_all] [--out FILE]
#include <torch/torch.h>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

#include "bench_common.h"
#include "modtrain/dist/device.h"
#include "modtrain/model/bert.h"
#include "modtrain/model/model.h"
#include "modtrain/train/loss.h"
#include "modtrain/train/optimizer.h"
#include "modtrain/train/precision.h"

using namespace modtrain;

int main(int argc, char** argv) {
  std::string preset = "tiny", device_name = "cpu", precision_name = "fp32", out, optimizer_kind = "flat",
              lengths_kind = "full", objective = "classify";
  bool unpad = false;
  int64_t batch = 32, seq = 64, steps = 20;
  int threads = 0;
  double peak_tflops = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--preset") preset = v;
    else if (k == "--batch") batch = std::stoll(v);
    else if (k == "--seq") seq = std::stoll(v);
    else if (k == "--steps") steps = std::stoll(v);
    else if (k == "--device") device_name = v;
    else if (k == "--precision") precision_name = v;
    else if (k == "--peak-tflops") peak_tflops = std::stod(v);
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--out") out = v;
    else if (k == "--optimizer") optimizer_kind = v;
    else if (k == "--lengths") lengths_kind = v;
    else if (k == "--unpad") unpad = v == "1" || v == "true";
    else if (k == "--objective") objective = v;
  }
  if (out.empty())
    out = "bench/results/train-" + preset + "-" + device_name + (objective == "classify" ? "" : "-" + objective) +
          ".json";
  const bool mlm = objective != "classify";
  BertConfig c;
  c.vocab_size = 30522;
  c.num_labels = 7;
  if (preset == "tiny") c.hidden = 128, c.layers = 2, c.heads = 2, c.intermediate = 512;
  const bool cuda = device_name == "cuda";
  c.sparse_embedding_grad = !cuda && !mlm;  // as the trainer sets it (the MLM decoder is the embedding)
  const torch::Device device = cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  const Precision precision = precision_name == "bf16" ? Precision::kBf16 : Precision::kFp32;
  if (threads > 0) torch::set_num_threads(threads);
  int blas = set_blas_threads(0, static_cast<int>(c.hidden), torch::get_num_threads());
  torch::manual_seed(0);
  BertForClassification model(c);
  BertForMaskedLM mlm_model{nullptr};
  std::shared_ptr<torch::nn::Module> module = model.ptr();
  if (mlm) {
    mlm_model = BertForMaskedLM(c);
    module = mlm_model.ptr();
  }
  module->to(device);
  const NamedParameters named = named_parameters(*module);
  FlatOptions flat_options;
  flat_options.no_decay = no_weight_decay(*module);
  FlatParams flat(named, flat_options);
  std::unique_ptr<Optimizer> optimizer;
  std::unique_ptr<torch::optim::AdamW> per_tensor;
  if (optimizer_kind == "per_tensor")
    per_tensor = std::make_unique<torch::optim::AdamW>(module->parameters(),
                                                       torch::optim::AdamWOptions(1e-4).weight_decay(0.01));
  else optimizer = make_adamw(flat, AdamWOptions{}, nullptr);
  torch::Tensor ids = torch::randint(5, c.vocab_size, {batch, seq}, torch::kInt64).to(device);
  torch::Tensor mask_cpu = torch::ones({batch, seq}, torch::kInt64);
  if (lengths_kind == "skewed") {
    std::mt19937_64 rng(7);
    std::lognormal_distribution<double> words(std::log(seq / 5.0), 0.8);
    for (int64_t i = 0; i < batch; ++i) {
      const int64_t n = std::clamp<int64_t>(std::llround(words(rng)), 2, seq);
      mask_cpu[i].narrow(0, n, seq - n).zero_();
    }
  }
  const int64_t real_tokens = mask_cpu.sum().item<int64_t>();
  const torch::Tensor ids_cpu = ids.cpu() * mask_cpu;
  torch::Tensor mask = mask_cpu.to(device);
  ids = ids_cpu.to(device);
  torch::Tensor labels = (torch::rand({batch, c.num_labels}) < 0.1).to(torch::kFloat32).to(device);
  torch::Tensor label_mask = torch::ones({batch, c.num_labels}).to(device);
  // MLM: 15% of the real tokens chosen (fixed seed), their targets; indices into the padded
  // [B x T] layout and into the unpadded [N] one.
  torch::Tensor chosen_padded, chosen_packed, targets, all_targets;
  if (mlm) {
    std::mt19937_64 rng(11);
    std::bernoulli_distribution pick(0.15);
    std::vector<int64_t> padded_at, packed_at, target, all(static_cast<size_t>(real_tokens), -100);
    int64_t n = 0;
    for (int64_t i = 0; i < batch; ++i)
      for (int64_t k = 0; k < seq && mask_cpu[i][k].item<int64_t>(); ++k, ++n)
        if (k > 0 && pick(rng)) {
          padded_at.push_back(i * seq + k), packed_at.push_back(n);
          target.push_back(ids_cpu[i][k].item<int64_t>());
          all[static_cast<size_t>(n)] = target.back();
        }
    chosen_padded = torch::tensor(padded_at).to(device), chosen_packed = torch::tensor(packed_at).to(device);
    targets = torch::tensor(target).to(device), all_targets = torch::tensor(all).to(device);
  }
  const torch::Tensor every_token = torch::arange(real_tokens).to(device);
  auto sync = [&] {
    if (cuda) torch::cuda::synchronize();
  };
  double forward_s = 0, backward_s = 0, optimizer_s = 0;
  for (int64_t step = -3; step < steps; ++step) {  // 3 warm-up steps
    sync();
    double t0 = bench::now_seconds();
    torch::Tensor logits, loss;
    {
      AutocastScope autocast(precision, device);
      if (objective == "mlm")
        logits = unpad ? mlm_model->forward_unpadded(unpad_batch(ids_cpu, mask_cpu).to(device), chosen_packed)
                       : mlm_model->forward(ids, mask, chosen_padded);
      else if (objective == "mlm_all")  // the head on every real token, the loss at the chosen ones
        logits = mlm_model->forward_unpadded(unpad_batch(ids_cpu, mask_cpu).to(device), every_token);
      else logits = unpad ? model->logits(ids_cpu, mask_cpu, true, device) : model->forward(ids, mask);
    }
    if (objective == "mlm") loss = torch::nn::functional::cross_entropy(logits, targets);
    else if (objective == "mlm_all") loss = torch::nn::functional::cross_entropy(logits, all_targets);
    else loss = classification_loss(logits, labels, label_mask, {});
    sync();
    double t1 = bench::now_seconds();
    flat.zero_grads();
    loss.backward();
    sync();
    double t2 = bench::now_seconds();
    if (optimizer) {
      optimizer->step(1e-4, 1.0, 1.0);  // reads the gradient norm back: the step's one host sync
    } else {
      torch::nn::utils::clip_grad_norm_(module->parameters(), 1.0);
      per_tensor->step();
    }
    sync();
    double t3 = bench::now_seconds();
    if (step >= 0) forward_s += t1 - t0, backward_s += t2 - t1, optimizer_s += t3 - t2;
  }
  const double step_s = (forward_s + backward_s + optimizer_s) / static_cast<double>(steps);
  const double flops = 3.0 * bert_forward_flops(c, batch, seq);
  nlohmann::json result = {
      {"benchmark", "train_step"},
      {"machine", bench::machine()},
      {"preset", preset},
      {"device", device_name},
      {"precision", precision_name},
      {"optimizer", optimizer_kind},
      {"lengths", lengths_kind},
      {"unpad", unpad},
      {"objective", objective},
      {"mlm_chosen_tokens", mlm ? targets.numel() : 0},
      {"padding_fraction", 1.0 - static_cast<double>(real_tokens) / static_cast<double>(batch * seq)},
      {"threads", torch::get_num_threads()},
      {"blas_threads", blas},
      {"batch", batch},
      {"seq", seq},
      {"params_millions",
       [&] {
         int64_t n = 0;
         for (auto& p : module->parameters()) n += p.numel();
         return n / 1e6;
       }()},
      {"step_ms", step_s * 1e3},
      {"forward_ms", forward_s / steps * 1e3},
      {"backward_ms", backward_s / steps * 1e3},
      {"optimizer_ms", optimizer_s / steps * 1e3},
      {"samples_per_s", batch / step_s},
      {"tokens_per_s", real_tokens / step_s},
      {"model_tflops_per_s", flops / step_s / 1e12}};
  if (peak_tflops > 0) result["mfu"] = flops / step_s / (peak_tflops * 1e12);
  bench::write_result(out, result);
  std::printf(
      "%s %s %s%s%s B=%lld T=%lld: step %.1f ms (fwd %.1f, bwd %.1f, opt %.1f), %.0f samples/s, %.0f tokens/s, %.2f "
      "TFLOP/s%s\n",
      preset.c_str(), device_name.c_str(), precision_name.c_str(), mlm ? (" " + objective).c_str() : "",
      lengths_kind == "skewed" ? (unpad ? " skewed unpadded" : " skewed padded") : (unpad ? " unpadded" : ""),
      static_cast<long long>(batch), static_cast<long long>(seq), step_s * 1e3, forward_s / steps * 1e3,
      backward_s / steps * 1e3, optimizer_s / steps * 1e3, batch / step_s, real_tokens / step_s, flops / step_s / 1e12,
      peak_tflops > 0
          ? (", MFU " + std::to_string(flops / step_s / (peak_tflops * 1e12) * 100).substr(0, 5) + "%").c_str()
          : "");
  return 0;
}
