// SentencePiece Unigram (XLM-R, XLM-T, TwHIN-BERT) as Hugging Face's tokenizer.json defines it,
// id-for-id with HF `tokenizers`: added tokens first, the normalizer sequence (the Precompiled
// charsmap SentencePiece compiled from its normalization rules, applied per grapheme as HF does;
// Replace; Strip; NFKC; Lowercase), the Metaspace pre-tokenizer (spaces become U+2581, a prefix
// one, a split before each), Viterbi over the pieces' scores (unknown characters fused into one
// <unk>, as SentencePiece does), the post-processor's <s> ... </s>, truncation.
// Why not libsentencepiece (Debian's libsentencepiece-dev): it implements SentencePiece's own
// pipeline (the slow XLMRobertaTokenizer), which differs from tokenizer.json's on whitespace and
// on normalisation inside grapheme clusters (124 of the 1,872 parity cases here); transformers'
// AutoTokenizer, text-embeddings-inference and every HF tokenizers binding serve tokenizer.json,
// so a fine-tuned model must see exactly that. SentencePiece stays the reference in the tests,
// on the cases where the two agree.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "modtrain/data/tokenizer.h"

namespace modtrain {

class UnigramTokenizer final : public Tokenizer {
 public:
  // A tokenizer.json whose model is Unigram. Throws UserError naming the file and the field.
  static UnigramTokenizer from_tokenizer_json(const std::string& path);
  // XLM-R's sentencepiece.bpe.model (a SentencePiece Unigram ModelProto), converted as transformers'
  // XLMRobertaConverter does (fairseq ids: <s> <pad> </s> <unk>, pieces shifted by one, <mask> last).
  static UnigramTokenizer from_sentencepiece_model(const std::string& path);
  // The same conversion written as a tokenizer.json (what an export carries when the model
  // directory has only the SentencePiece model).
  static std::string sentencepiece_to_tokenizer_json(const std::string& path);

  bool encode(std::string_view text, std::vector<int32_t>& out, size_t max_len = 0) const override;
  size_t vocab_size() const override { return pieces_.size(); }
  const SpecialIds& special_ids() const override { return specials_; }
  std::string token(int32_t id) const override { return pieces_.at(static_cast<size_t>(id)); }
  std::string type() const override { return "unigram"; }
  bool continues_word(int32_t id) const override;
  HfTokenizerLayout hugging_face(const TokenizerFiles& files, int max_len) const override;

  std::string normalize(std::string_view text) const;  // the normalizer sequence alone (tests)

 private:
  struct Normalizer {  // one step of the normalizer sequence
    enum Kind { kPrecompiled, kReplace, kReplaceSpaceRuns, kStrip, kNfkc, kLowercase } kind;
    std::string from, to;              // kReplace: literal; kReplaceSpaceRuns: " {2,}" -> to
    bool left = false, right = false;  // kStrip
  };
  struct TrieNode {
    uint32_t first_edge = 0, edges = 0;
    int32_t id = -1;
  };
  struct TrieEdge {
    uint8_t byte;
    uint32_t child;
  };
  static UnigramTokenizer from_spec(const nlohmann::json& spec, const std::string& path);
  static nlohmann::json sentencepiece_spec(const std::string& path);
  std::string precompiled(std::string_view text) const;
  const char* charsmap_lookup(std::string_view chunk) const;  // HF's transform(): the first prefix match
  void encode_segment(std::string_view text, bool first, std::vector<int32_t>& out) const;
  void viterbi(std::string_view word, std::vector<int32_t>& out) const;

  std::vector<std::string> pieces_;
  std::vector<double> scores_;
  std::vector<TrieNode> nodes_;
  std::vector<TrieEdge> edges_;
  int32_t unk_ = -1;
  double unk_score_ = 0;
  std::vector<Normalizer> normalizers_;
  std::vector<uint32_t> charsmap_trie_;       // the Precompiled charsmap: a darts-clone double array
  std::string charsmap_strings_;              // and the NUL-separated replacements it points into
  std::string replacement_ = "\xE2\x96\x81";  // U+2581
  enum class Prepend { kAlways, kFirst, kNever } prepend_ = Prepend::kAlways;
  bool split_ = true;
  std::vector<hf::AddedToken> added_;
  std::array<bool, 256> added_first_{};  // hf::first_bytes(added_)
  hf::Template template_;
  SpecialIds specials_;
};

}  // namespace modtrain
