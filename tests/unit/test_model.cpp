// The BERT classifier: Hugging Face parameter names and shapes, initialisation, padding that
// must not change the [CLS] output, the attention path against a direct computation (and the
// fused SDPA path against the plain one where LibTorch >= 2.0), safetensors round trip.
#include "catch_torch.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "modtrain/core/build_info.h"
#include "modtrain/core/error.h"
#include "modtrain/io/safetensors.h"
#include "modtrain/model/bert.h"
#include "modtrain/model/packed_gemm.h"
#include "modtrain/model/varlen_attention.h"
#include "modtrain/modelio/model_dir.h"
#include "test_util.h"

using namespace modtrain;

namespace {
BertConfig small() {
  BertConfig c;
  c.vocab_size = 50;
  c.hidden = 32;
  c.layers = 2;
  c.heads = 4;
  c.intermediate = 64;
  c.max_positions = 40;
  c.num_labels = 3;
  c.hidden_dropout = c.attention_dropout = 0.0;
  return c;
}

// Gives `to` the parameters of `from` (the same architecture), so that two paths compare on one model.
void copy_parameters(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard g;
  auto a = from.parameters(), b = to.parameters();
  for (size_t i = 0; i < a.size(); ++i) b[i].copy_(a[i]);
}
}  // namespace

TEST_CASE("parameter names and shapes are Hugging Face's BertForSequenceClassification", "[model]") {
  BertForClassification m(small());
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& p : m->named_parameters()) shapes[p.key()] = p.value().sizes().vec();
  CHECK(shapes.at("bert.embeddings.word_embeddings.weight") == std::vector<int64_t>{50, 32});
  CHECK(shapes.at("bert.embeddings.position_embeddings.weight") == std::vector<int64_t>{40, 32});
  CHECK(shapes.at("bert.embeddings.token_type_embeddings.weight") == std::vector<int64_t>{2, 32});
  CHECK(shapes.at("bert.embeddings.LayerNorm.weight") == std::vector<int64_t>{32});
  for (int l = 0; l < 2; ++l) {
    std::string p = "bert.encoder.layer." + std::to_string(l) + ".";
    for (const char* n :
         {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"})
      CHECK(shapes.at(p + n + ".weight") == std::vector<int64_t>{32, 32});
    CHECK(shapes.count(p + "attention.output.LayerNorm.bias"));
    CHECK(shapes.at(p + "intermediate.dense.weight") == std::vector<int64_t>{64, 32});
    CHECK(shapes.at(p + "output.dense.weight") == std::vector<int64_t>{32, 64});
    CHECK(shapes.count(p + "output.LayerNorm.weight"));
  }
  CHECK(shapes.at("bert.pooler.dense.weight") == std::vector<int64_t>{32, 32});
  CHECK(shapes.at("classifier.weight") == std::vector<int64_t>{3, 32});
  CHECK(shapes.at("classifier.bias") == std::vector<int64_t>{3});
  CHECK(shapes.size() == 5 + 2 * 16 + 2 + 2);
}

TEST_CASE("initialisation as Hugging Face: N(0, 0.02), zero biases, unit LayerNorm, zero padding row", "[model]") {
  torch::manual_seed(0);
  BertConfig c = small();
  c.vocab_size = 2000;
  c.hidden = 64;
  BertForClassification m(c);
  torch::Tensor w = m->bert->embeddings->word_embeddings->weight;
  CHECK(w[0].abs().sum().item<float>() == 0.0f);  // [PAD] row
  CHECK(w.slice(0, 1).std().item<double>() == Approx(0.02).epsilon(0.03));
  CHECK(w.slice(0, 1).mean().item<double>() == Approx(0.0).margin(1e-3));
  CHECK(m->classifier->bias.abs().sum().item<float>() == 0.0f);
  CHECK(m->bert->embeddings->LayerNorm->weight.eq(1).all().item<bool>());
}

TEST_CASE("padding does not change the [CLS] output or the logits", "[model]") {
  torch::manual_seed(1);
  BertForClassification m(small());
  m->eval();
  torch::Tensor ids = torch::tensor({{2, 7, 9, 11, 3}}, torch::kInt64);
  torch::Tensor mask = torch::ones({1, 5}, torch::kInt64);
  torch::Tensor padded = torch::cat({ids, torch::zeros({1, 11}, torch::kInt64)}, 1);
  torch::Tensor padded_mask = torch::cat({mask, torch::zeros({1, 11}, torch::kInt64)}, 1);
  torch::NoGradGuard no_grad;
  torch::Tensor a = m->forward(ids, mask), b = m->forward(padded, padded_mask);
  CHECK(a.sizes() == torch::IntArrayRef{1, 3});
  CHECK(torch::allclose(a, b, 1e-5, 1e-6));
  // and in a batch with a longer neighbour
  torch::Tensor batch = torch::cat({padded, torch::randint(5, 50, {1, 16}, torch::kInt64)}, 0);
  torch::Tensor batch_mask = torch::cat({padded_mask, torch::ones({1, 16}, torch::kInt64)}, 0);
  CHECK(torch::allclose(m->forward(batch, batch_mask)[0], a[0], 1e-5, 1e-6));
}

TEST_CASE("self-attention equals a direct computation of softmax(QK^T/sqrt(d) + mask) V", "[model]") {
  torch::manual_seed(2);
  BertConfig c = small();
  c.use_sdpa = false;
  BertSelfAttention att(c);
  att->eval();
  torch::Tensor x = torch::randn({2, 6, 32});
  torch::Tensor keep = torch::tensor({{1, 1, 1, 1, 1, 1}, {1, 1, 1, 0, 0, 0}}, torch::kFloat32);
  torch::Tensor mask = ((1 - keep) * -1e30).view({2, 1, 1, 6});
  torch::NoGradGuard no_grad;
  torch::Tensor out = att->forward(x, mask);
  // reference, one head at a time, in float64
  torch::Tensor q = att->query(x).to(torch::kFloat64), k = att->key(x).to(torch::kFloat64),
                v = att->value(x).to(torch::kFloat64);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < 4; ++h) {
      auto cols = torch::indexing::Slice(h * 8, (h + 1) * 8);
      torch::Tensor qh = q[b].index({torch::indexing::Slice(), cols}),
                    kh = k[b].index({torch::indexing::Slice(), cols});
      torch::Tensor vh = v[b].index({torch::indexing::Slice(), cols});
      torch::Tensor s = qh.matmul(kh.t()) / std::sqrt(8.0) + mask[b][0][0].to(torch::kFloat64);
      torch::Tensor ref = torch::softmax(s, -1).matmul(vh);
      CHECK(torch::allclose(out[b].index({torch::indexing::Slice(), cols}).to(torch::kFloat64), ref, 1e-5, 1e-6));
    }
}

TEST_CASE("fused SDPA attention equals the plain path", "[model][sdpa]") {
  if (!sdpa_available()) {
    WARN("LibTorch " << TORCH_VERSION
                     << " has no scaled_dot_product_attention; the plain path is used (checked on the GPU machine)");
    return;
  }
  torch::manual_seed(3);
  BertConfig fused = small(), plain = small();
  plain.use_sdpa = false;
  BertForClassification a(fused), b(plain);
  copy_parameters(*a, *b);
  a->eval();
  b->eval();
  torch::Tensor ids = torch::randint(5, 50, {3, 12}, torch::kInt64);
  torch::Tensor mask = torch::ones({3, 12}, torch::kInt64);
  mask.index_put_({1, torch::indexing::Slice(7)}, 0);
  torch::NoGradGuard g;
  CHECK(torch::allclose(a->forward(ids, mask), b->forward(ids, mask), 1e-4, 1e-5));
}

TEST_CASE("model weights round-trip through safetensors with HF names", "[model][safetensors]") {
  test::TempDir dir;
  torch::manual_seed(4);
  BertForClassification a(small());
  std::vector<torch::Tensor> keep;
  io::write_safetensors(dir.file("m.safetensors"), state_tensors(*a, keep));
  io::SafetensorsFile file(dir.file("m.safetensors"));
  CHECK(file.view().metadata().at("format") == "pt");
  CHECK(file.view().find("bert.encoder.layer.1.attention.self.query.weight") != nullptr);
  torch::manual_seed(5);
  BertForClassification b(small());
  load_state(*b, file.view(), "m.safetensors");
  auto pa = a->named_parameters(), pb = b->named_parameters();
  for (const auto& p : pa) CHECK(torch::equal(p.value(), pb[p.key()]));
  BertConfig bigger = small();
  bigger.num_labels = 4;
  BertForClassification c(bigger);
  CHECK_THROWS_WITH(load_state(*c, file.view(), "m.safetensors"),
                    Catch::Matchers::Contains("tensor 'classifier.weight' has shape [3x32], the model needs [4x32]"));
}

namespace {
// A right-padded batch of the given lengths at width `width` (ids from 5 upward, [CLS] = 2 first).
std::pair<torch::Tensor, torch::Tensor> padded_batch(const std::vector<int64_t>& lengths, int64_t width,
                                                     int64_t vocab) {
  const int64_t b = static_cast<int64_t>(lengths.size());
  torch::Tensor ids = torch::zeros({b, width}, torch::kInt64), mask = torch::zeros({b, width}, torch::kInt64);
  for (int64_t i = 0; i < b; ++i) {
    const int64_t n = lengths[static_cast<size_t>(i)];
    ids[i].narrow(0, 0, n).copy_(torch::randint(5, vocab, {n}, torch::kInt64));
    ids[i][0] = 2;
    mask[i].narrow(0, 0, n).fill_(1);
  }
  return {ids, mask};
}
}  // namespace

TEST_CASE("unpad_batch: the real tokens, their positions and attention rows", "[model][unpad]") {
  auto [ids, mask] = padded_batch({3, 1, 5}, 8, 50);
  UnpaddedBatch u = unpad_batch(ids, mask);
  CHECK(u.batch == 3);
  CHECK(u.tokens == 9);
  CHECK(u.max_len == 5);
  CHECK(u.positions.equal(torch::tensor({0, 1, 2, 0, 0, 1, 2, 3, 4}, torch::kInt64)));
  CHECK(u.indices.equal(torch::tensor({0, 1, 2, 5, 10, 11, 12, 13, 14}, torch::kInt64)));
  CHECK(u.first.equal(torch::tensor({0, 3, 4}, torch::kInt64)));
  CHECK(u.cu_seqlens.equal(torch::tensor({0, 3, 4, 9}, torch::kInt32)));
  CHECK(u.ids.equal(ids.reshape({-1}).masked_select(mask.reshape({-1}).to(torch::kBool))));
  CHECK(u.mask.sizes() == std::vector<int64_t>{3, 1, 1, 5});
  CHECK(u.mask[1][0][0][0].item<float>() == 0.0f);
  CHECK(u.mask[1][0][0][1].item<float>() == std::numeric_limits<float>::lowest());
  torch::Tensor holes = mask.clone();
  holes[0][1] = 0;  // not right-padded
  CHECK_THROWS_AS(unpad_batch(ids, holes), InternalError);
}

TEST_CASE("unpadded logits and gradients equal the padded path (fp32, 1e-5)", "[model][unpad]") {
  torch::manual_seed(11);
  BertConfig c = small();
  BertForClassification padded(c), unpadded(c);
  copy_parameters(*padded, *unpadded);
  const std::vector<std::vector<int64_t>> mixes = {
      {1, 40, 7, 13, 2, 40, 33}, {40}, {1}, {5, 5, 5, 5}, {39, 1, 40, 20, 3, 11, 8, 27, 16, 1}};
  for (const auto& lengths : mixes) {
    const int64_t width = (*std::max_element(lengths.begin(), lengths.end()) + 7) / 8 * 8;  // the loader's rounding
    auto [ids, mask] = padded_batch(lengths, std::min<int64_t>(width, 40), c.vocab_size);
    padded->zero_grad();
    unpadded->zero_grad();
    torch::Tensor lp = padded->forward(ids, mask);
    torch::Tensor lu = unpadded->logits(ids, mask, /*unpad=*/true, torch::kCPU);
    INFO("lengths " << lengths.size() << " records, first " << lengths[0]);
    REQUIRE(lu.sizes() == lp.sizes());
    CHECK(torch::allclose(lu, lp, 1e-5, 1e-5));
    torch::Tensor target = torch::rand_like(lp);
    (lp * target).sum().backward();
    (lu * target).sum().backward();
    auto gp = padded->named_parameters(), gu = unpadded->named_parameters();
    for (const auto& p : gp) {
      const torch::Tensor& a = p.value().grad();
      const torch::Tensor& b = gu[p.key()].grad();
      INFO(p.key());
      REQUIRE(a.defined() == b.defined());
      if (a.defined()) CHECK(torch::allclose(b, a, 1e-5, 1e-5));
    }
  }
}

TEST_CASE("a fused inference model: one QKV tensor, the same logits, autograd and new storage fall back",
          "[model][unpad]") {
  torch::manual_seed(12);
  BertConfig c = small();
  BertForClassification plain(c), fused(c);
  copy_parameters(*plain, *fused);
  plain->eval();
  fused->eval();
  auto fused_layers = [](torch::nn::Module& m) {
    int n = 0;
    for (const auto& sub : m.modules())
      if (auto* a = sub->as<BertSelfAttentionImpl>()) n += a->fused_qkv().first.defined() ? 1 : 0;
    return n;
  };
  REQUIRE(fuse_qkv_for_inference(*fused) == c.layers);
  // Hugging Face's names and shapes are kept: export and checkpoints see three parameters.
  std::map<std::string, std::vector<int64_t>> before, after;
  for (const auto& p : plain->named_parameters()) before[p.key()] = p.value().sizes().vec();
  for (const auto& p : fused->named_parameters()) after[p.key()] = p.value().sizes().vec();
  CHECK(after == before);
  CHECK(fused_layers(*fused) == 0);  // autograd on: the three parameters, concatenated
  int64_t compared = 0;
  {
    torch::NoGradGuard g;
    CHECK(fused_layers(*plain) == 0);
    CHECK(fused_layers(*fused) == c.layers);
    for (const auto& lengths : std::vector<std::vector<int64_t>>{{1, 40, 7, 13}, {5, 5, 5}, {1}}) {
      auto [ids, mask] = padded_batch(lengths, 40, c.vocab_size);
      const torch::Tensor want = plain->logits(ids, mask, /*unpad=*/true, torch::kCPU);
      const torch::Tensor got = fused->logits(ids, mask, /*unpad=*/true, torch::kCPU);
      REQUIRE(got.sizes() == want.sizes());
      CHECK(torch::allclose(got, want, 1e-6, 1e-6));
      CHECK(torch::allclose(fused->forward(ids, mask), want, 1e-5, 1e-5));
      compared += want.numel();
    }
    fused->to(torch::kFloat64);  // new storage per parameter: the layout is gone, the concatenation returns
    CHECK(fused_layers(*fused) == 0);
    auto [ids, mask] = padded_batch({3, 9}, 16, c.vocab_size);
    const torch::Tensor want = plain->logits(ids, mask, true, torch::kCPU).to(torch::kFloat64);
    CHECK(torch::allclose(fused->logits(ids, mask, true, torch::kCPU).to(torch::kFloat64), want, 1e-5, 1e-5));
    compared += want.numel();
  }
  CHECK(compared == (4 + 3 + 1 + 2) * c.num_labels);
}

TEST_CASE("call_op_by_name fills schema defaults, names a missing argument, and misses unknown operators",
          "[model][varlen]") {
  const torch::Tensor a = torch::arange(4, torch::kFloat32), b = torch::full({4}, 2.0f);
  auto sum = call_op_by_name("aten::add", "Tensor", {{"self", a}, {"other", b}, {"no_such_alias", 1}});
  REQUIRE(sum.has_value());
  REQUIRE(sum->size() == 1);
  CHECK((*sum)[0].toTensor().equal(a + b));  // alpha came from the schema's default (1)
  auto scaled = call_op_by_name("aten::add", "Tensor", {{"self", a}, {"other", b}, {"alpha", 3}});
  CHECK((*scaled)[0].toTensor().equal(a + 3 * b));
  CHECK_THROWS_WITH(call_op_by_name("aten::add", "Tensor", {{"self", a}}),
                    Catch::Contains("wants argument 'other'") && Catch::Contains("aten::add.Tensor("));
  CHECK_FALSE(call_op_by_name("aten::no_such_operator", "", {}).has_value());
}

TEST_CASE("the varlen reference attention equals masked attention on the padded records", "[model][varlen]") {
  torch::manual_seed(5);
  const std::vector<int64_t> lengths = {1, 9, 4, 9, 2};
  const int64_t heads = 3, d = 8, width = 9, b = static_cast<int64_t>(lengths.size());
  torch::Tensor q = torch::randn({b, width, heads, d}), k = torch::randn_like(q), v = torch::randn_like(q);
  torch::Tensor mask = torch::zeros({b, 1, 1, width});
  std::vector<int32_t> cu = {0};
  std::vector<torch::Tensor> pq, pk, pv;
  for (int64_t i = 0; i < b; ++i) {
    const int64_t n = lengths[static_cast<size_t>(i)];
    mask[i].narrow(-1, n, width - n).fill_(-1e30);
    cu.push_back(cu.back() + static_cast<int32_t>(n));
    pq.push_back(q[i].narrow(0, 0, n));
    pk.push_back(k[i].narrow(0, 0, n));
    pv.push_back(v[i].narrow(0, 0, n));
  }
  // padded: [B, heads, T, d]
  torch::Tensor scores = torch::matmul(q.transpose(1, 2), k.transpose(1, 2).transpose(2, 3)) / std::sqrt(8.0) + mask;
  torch::Tensor padded = torch::matmul(torch::softmax(scores, -1), v.transpose(1, 2)).transpose(1, 2);
  torch::Tensor ref =
      varlen_reference_attention(torch::cat(pq), torch::cat(pk), torch::cat(pv), torch::tensor(cu, torch::kInt32));
  REQUIRE(ref.sizes() == std::vector<int64_t>{25, heads, d});
  for (int64_t i = 0, s = 0; i < b; s += lengths[static_cast<size_t>(i)], ++i)
    CHECK(torch::allclose(ref.narrow(0, s, lengths[static_cast<size_t>(i)]),
                          padded[i].narrow(0, 0, lengths[static_cast<size_t>(i)]), 1e-5, 1e-5));
}

TEST_CASE("varlen flash attention is used only where it can run: CUDA, fp16/bf16, head size, operator present",
          "[model][varlen]") {
  CHECK_FALSE(use_varlen_flash(torch::zeros({4, 2, 64})));                    // CPU fp32
  CHECK_FALSE(use_varlen_flash(torch::zeros({4, 2, 64}, torch::kBFloat16)));  // CPU bf16
#if TORCH_VERSION_MAJOR < 2
  CHECK_FALSE(varlen_flash_registered());  // LibTorch 1.13 has no such operator: the padded layout
#endif
}

TEST_CASE("RoBERTa and relative-position parameters carry transformers' names and shapes", "[model][arch]") {
  BertConfig c = small();
  c.arch = ModelArch::kRoberta;
  c.type_vocab_size = 1;
  BertForClassification roberta(c);
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& p : roberta->named_parameters()) shapes[p.key()] = p.value().sizes().vec();
  CHECK(shapes.at("roberta.embeddings.word_embeddings.weight") == std::vector<int64_t>{50, 32});
  CHECK(shapes.at("roberta.embeddings.position_embeddings.weight") == std::vector<int64_t>{40, 32});
  CHECK(shapes.at("roberta.embeddings.token_type_embeddings.weight") == std::vector<int64_t>{1, 32});
  CHECK(shapes.at("roberta.encoder.layer.1.attention.self.query.weight") == std::vector<int64_t>{32, 32});
  CHECK(shapes.at("classifier.dense.weight") == std::vector<int64_t>{32, 32});
  CHECK(shapes.at("classifier.out_proj.weight") == std::vector<int64_t>{3, 32});
  CHECK(shapes.at("classifier.out_proj.bias") == std::vector<int64_t>{3});
  for (const auto& [name, shape] : shapes) {
    INFO(name);
    CHECK(name.rfind("bert.", 0) != 0);
    CHECK(name.find("pooler") == std::string::npos);  // RobertaForSequenceClassification has no pooler
  }
  // RoBERTa's padding position row starts at zero, as nn.Embedding(padding_idx) in transformers
  CHECK(roberta->bert->embeddings->position_embeddings->weight[c.pad_token_id].abs().sum().item<float>() == 0.0f);

  BertConfig r = small();
  r.position_embedding_type = PositionEmbeddingType::kRelativeKeyQuery;
  BertForClassification relative(r);
  auto params = relative->named_parameters();
  REQUIRE(params.contains("bert.encoder.layer.0.attention.self.distance_embedding.weight"));
  CHECK(params["bert.encoder.layer.0.attention.self.distance_embedding.weight"].sizes() == std::vector<int64_t>{79, 8});
  CHECK(params.contains("bert.embeddings.position_embeddings.weight"));  // kept (and saved), not added
  CHECK(params.contains("bert.pooler.dense.weight"));
}

TEST_CASE("RoBERTa, XLM-R and relative_key(_query) logits equal an independent float64 NumPy reference",
          "[model][arch]") {
  struct Variant {
    const char* name;
    ModelArch arch;
    PositionEmbeddingType positions;
  };
  const Variant variants[] = {
      {"bert relative_key", ModelArch::kBert, PositionEmbeddingType::kRelativeKey},
      {"bert relative_key_query", ModelArch::kBert, PositionEmbeddingType::kRelativeKeyQuery},
      {"roberta", ModelArch::kRoberta, PositionEmbeddingType::kAbsolute},
      {"xlm-roberta relative_key_query", ModelArch::kXlmRoberta, PositionEmbeddingType::kRelativeKeyQuery}};
  const std::string vocab = MODTRAIN_TEST_DATA "/tokenizer/vocab-uncased.txt";
  const std::string reference = MODTRAIN_TEST_DATA "/../reference/bert_numpy.py";
  const std::vector<int64_t> lengths = {1, 37, 5, 20, 2};
  for (const Variant& v : variants) {
    INFO(v.name);
    torch::manual_seed(21);
    BertConfig c = small();
    c.vocab_size = 220;  // the test vocabulary's size
    c.arch = v.arch;
    c.position_embedding_type = v.positions;
    if (c.roberta()) c.type_vocab_size = 1;
    c.initializer_range = 0.2;  // large weights: position and head mistakes show in the logits
    BertForClassification model(c);
    model->eval();
    test::TempDir dir;
    ModelMeta meta;
    meta.bert = c;
    meta.labels = {"a", "b", "c"};
    meta.thresholds = {0.5, 0.5, 0.5};
    meta.max_len = 38;
    save_model_dir(dir.path.string(), *model, meta, vocab);
    auto [ids, mask] = padded_batch(lengths, 38, c.vocab_size);  // RoBERTa: 38 + pad id 0 + 1 <= 40 positions
    std::string lines;
    for (size_t i = 0; i < lengths.size(); ++i) {
      std::vector<int64_t> row(ids[static_cast<int64_t>(i)].data_ptr<int64_t>(),
                               ids[static_cast<int64_t>(i)].data_ptr<int64_t>() + lengths[i]);
      lines += nlohmann::json(row).dump() + "\n";
    }
    const std::string ids_file = dir.write("ids.jsonl", lines), out_file = (dir.path / "ref.jsonl").string();
    const std::string command =
        "/usr/bin/python3 " + reference + " " + dir.path.string() + " " + ids_file + " > " + out_file;
    REQUIRE(std::system(command.c_str()) == 0);
    std::ifstream in(out_file);
    torch::NoGradGuard no_grad;
    const torch::Tensor padded = model->forward(ids, mask), unpadded = model->logits(ids, mask, true, torch::kCPU);
    std::string line;
    for (int64_t i = 0; i < static_cast<int64_t>(lengths.size()); ++i) {
      REQUIRE(std::getline(in, line));
      const auto want = torch::tensor(nlohmann::json::parse(line).get<std::vector<double>>(), torch::kFloat64);
      INFO("record " << i << " of length " << lengths[static_cast<size_t>(i)]);
      CHECK((padded[i].to(torch::kFloat64) - want).abs().max().item<double>() < 1e-5);
      CHECK((unpadded[i].to(torch::kFloat64) - want).abs().max().item<double>() < 1e-5);
    }
    // The directory loads back as the same architecture.
    LoadedModel loaded = load_model_dir(dir.path.string(), torch::kCPU);
    CHECK(loaded.meta.bert.arch == c.arch);
    CHECK(loaded.meta.bert.position_embedding_type == c.position_embedding_type);
    // (not bit-equal: the loaded model's weights are frozen and its GEMMs run on their laid-out copies)
    CHECK(torch::allclose(loaded.model->logits(ids, mask, /*unpad=*/false, torch::kCPU), padded, 1e-5, 1e-6));
  }
}

// ---- inference GEMMs and attention through oneDNN with laid-out weights (model/packed_gemm.h) ----
// A build that found oneDNN's headers must have the route (MODTRAIN_EXPECT_DNNL, set by CMake).
TEST_CASE("oneDNN with a laid-out weight equals torch::linear at any row count, GELU and residual fused",
          "[model][onednn]") {
#if MODTRAIN_EXPECT_DNNL
  REQUIRE(packed_gemm_compiled());
#endif
  if (!packed_gemm_compiled()) return;
  torch::manual_seed(21);
  int64_t compared = 0;
  for (const auto& [out, in] : std::vector<std::pair<int64_t, int64_t>>{{48, 32}, {96, 32}, {32, 96}}) {
    const torch::Tensor w = torch::randn({out, in}), b = torch::randn({out});
    const PackedLinear plain(w.data_ptr<float>(), b.data_ptr<float>(), out, in);
    const PackedLinear gelu(w.data_ptr<float>(), b.data_ptr<float>(), out, in, PackedLinear::Epilogue::kGeluErf);
    const PackedLinear no_bias(w.data_ptr<float>(), nullptr, out, in);
    for (int64_t rows : {1, 5, 15, 16, 17, 31, 33, 129, 541}) {  // 541 = 512 + 16 + 13: three pieces
      INFO(out << " x " << in << ", " << rows << " rows");
      const torch::Tensor x = torch::randn({rows, in}), residual = torch::randn({rows, out});
      const torch::Tensor want = torch::linear(x, w, b);
      torch::Tensor y = torch::full({rows, out}, std::nanf(""));
      plain.run(x.data_ptr<float>(), rows, y.data_ptr<float>());
      CHECK(torch::allclose(y, want, 1e-5, 1e-5));
      gelu.run(x.data_ptr<float>(), rows, y.data_ptr<float>());
      CHECK(torch::allclose(y, torch::gelu(want), 1e-5, 1e-5));
      plain.run(x.data_ptr<float>(), rows, y.data_ptr<float>(), residual.data_ptr<float>());
      CHECK(torch::allclose(y, want + residual, 1e-5, 1e-5));
      no_bias.run(x.data_ptr<float>(), rows, y.data_ptr<float>());
      CHECK(torch::allclose(y, torch::linear(x, w), 1e-5, 1e-5));
      compared += 4 * want.numel();
    }
    CHECK(plain.primitives() <= 2 * 10);  // 16 row counts asked (pieces included), each kernel built once
  }
  CHECK(compared == 4 * (48 + 96 + 32) * (1 + 5 + 15 + 16 + 17 + 31 + 33 + 129 + 541));
}

TEST_CASE("linear() lays out frozen weights only, once, and never uses a stale copy", "[model][onednn]") {
  if (!packed_gemm_compiled() || !onednn_inference_gemm()) {
#if MODTRAIN_EXPECT_DNNL
    FAIL("oneDNN's headers were found but linear() has no oneDNN route (MODTRAIN_CPU_GEMM=blas?)");
#endif
    return;
  }
  torch::manual_seed(22);
  torch::NoGradGuard g;
  const torch::Tensor x = torch::randn({7, 32}), b = torch::randn({48});
  torch::Tensor w = torch::randn({48, 32});
  int64_t compared = 0;
  auto same = [&](const torch::Tensor& got, const torch::Tensor& want) {
    compared += want.numel();
    return torch::allclose(got, want, 1e-5, 1e-5);
  };
  const size_t before = packed_weights_held();
  CHECK(same(linear(x, w, b), torch::linear(x, w, b)));  // not frozen (a training weight): LibTorch's route
  CHECK(packed_weights_held() == before);
  freeze_for_inference(w, b);  // earlier tests' freed weights' copies go here
  const size_t held = packed_weights_held();
  CHECK(held <= before);
  CHECK(same(linear(x, w, b), torch::linear(x, w, b)));
  CHECK(packed_weights_held() == held + 1);
  CHECK(same(linear(x, w, b), torch::linear(x, w, b)));
  CHECK(packed_weights_held() == held + 1);  // the same weight: the same copy
  CHECK(same(linear_gelu(x, w, b), torch::gelu(torch::linear(x, w, b))));
  CHECK(packed_weights_held() == held + 2);  // a second epilogue: a second copy
  const torch::Tensor r = torch::randn({7, 48});
  CHECK(same(linear_add(x, w, b, r), torch::linear(x, w, b) + r));
  CHECK(packed_weights_held() == held + 2);
  w.mul_(-2.0);  // in place: the version counter moves, the copies are stale and dropped
  CHECK(same(linear(x, w, b), torch::linear(x, w, b)));
  CHECK(packed_weights_held() == held);
  freeze_for_inference(w, b);
  CHECK(same(linear(x, w, b), torch::linear(x, w, b)));
  b.add_(1.0);  // the bias too
  CHECK(same(linear(x, w, b), torch::linear(x, w, b)));
  CHECK(packed_weights_held() == held);
  freeze_for_inference(w, b);
  CHECK(same(linear(x, w, torch::Tensor()), torch::linear(x, w)));  // another bias than the frozen one
  CHECK(same(linear(x, w, b), torch::linear(x, w, b)));
  CHECK(packed_weights_held() == held + 1);
  w = torch::randn({48, 32});  // the frozen weight is freed: its copy goes at the next freeze
  freeze_for_inference(torch::randn({8, 32}), torch::Tensor());
  CHECK(packed_weights_held() == held);
  CHECK(same(linear(x, w, b), torch::linear(x, w, b)));
  {
    torch::AutoGradMode on(true);  // autograd on: training's route, whatever is frozen
    freeze_for_inference(w, b);
    CHECK(torch::equal(linear(x, w, b), torch::linear(x, w, b)));
    CHECK(packed_weights_held() == held);
  }
  CHECK(compared == 11 * 7 * 48);
}

TEST_CASE("a classifier's logits through oneDNN (laid-out weights, fused attention) equal LibTorch's route",
          "[model][onednn]") {
  torch::manual_seed(23);
  BertConfig c = small();
  BertForClassification model(c);
  model->eval();
  int64_t compared = 0;
  // Not frozen (a model that trains): attention through oneDNN, no weight laid out.
  const size_t held = packed_weights_held();
  {
    auto [ids, mask] = padded_batch({5, 9}, 16, c.vocab_size);
    const torch::Tensor want = model->logits(ids, mask, true, torch::kCPU).detach();
    torch::NoGradGuard g;
    CHECK(torch::allclose(model->logits(ids, mask, true, torch::kCPU), want, 1e-5, 1e-5));
    CHECK(packed_weights_held() == held);
    compared += want.numel();
  }
  // Frozen: per layer the Q, K, V, attention output, FFN in and out; the pooler and the classifier.
  CHECK(freeze_for_inference(*model) == 6 * c.layers + 2);
  // Record counts and lengths the attention rounds (17 records -> 18, 37 tokens -> 40), one record,
  // and equal lengths (no layout copy).
  for (const auto& lengths :
       std::vector<std::vector<int64_t>>{{1, 40, 7, 13, 2, 40, 33},
                                         {13},
                                         {1},
                                         {8, 8, 8, 8},
                                         {37, 1, 35, 20, 3, 11, 8, 27, 16, 1, 5, 6, 7, 9, 10, 12, 14}}) {
    auto [ids, mask] = padded_batch(lengths, 40, c.vocab_size);
    const torch::Tensor want = model->logits(ids, mask, /*unpad=*/true, torch::kCPU);  // autograd on: LibTorch
    torch::NoGradGuard g;
    const torch::Tensor got = model->logits(ids, mask, /*unpad=*/true, torch::kCPU);
    REQUIRE(got.sizes() == want.sizes());
    INFO(lengths.size() << " records");
    CHECK(torch::allclose(got, want.detach(), 1e-5, 1e-5));
    compared += want.numel();
  }
  if (packed_gemm_compiled() && onednn_inference_gemm()) CHECK(packed_weights_held() > held);  // GPU builds: none
  CHECK(compared == (2 + 7 + 1 + 1 + 4 + 17) * c.num_labels);
}

TEST_CASE("gemm_rows: exact below 16, 111 kept row counts up to 8192, at most 1/8 over from 128", "[model][onednn]") {
  std::set<int64_t> kept;
  for (int64_t rows = 1; rows <= 8192; ++rows) {
    const int64_t r = gemm_rows(rows);
    INFO(rows << " rows -> " << r);
    REQUIRE(r >= rows);
    if (rows < 16) CHECK(r == rows);
    CHECK(r - rows < 16 * std::max<int64_t>(1, rows / 256));
    if (rows >= 128) CHECK(8 * (r - rows) <= rows);
    CHECK(gemm_rows(r) == r);  // a kept count is kept as it is
    kept.insert(r);
  }
  CHECK(kept.size() == 111);
}
