// Byte-level BPE (GPT-2, RoBERTa, cardiffnlp twitter-roberta), id-for-id with Hugging Face's
// `tokenizers`: added tokens matched in the raw text first (with their lstrip / rstrip), the
// ByteLevel pre-tokenizer (GPT-2's split pattern, optional prefix space, every byte mapped to its
// printable stand-in), merges applied by rank, <s> ... </s> (RobertaProcessing), truncation.
// Written here rather than taken from a library: Debian packages no BPE tokenizer for C++
// (sentencepiece's BPE is a different algorithm on different files), and this is ~300 lines.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "modtrain/data/tokenizer.h"

namespace modtrain {

struct BpeOptions {
  bool add_prefix_space = false;  // ByteLevel: a space before a segment that does not start with one
  bool ignore_merges = false;     // a pre-token found whole in the vocabulary is taken as one token
  bool add_special = true;        // <s> ... </s> around the ids (from_files; tokenizer.json: its post_processor)
};

class ByteLevelBpeTokenizer final : public Tokenizer {
 public:
  // A Hugging Face tokenizer.json whose model is BPE with the ByteLevel pre-tokenizer. Throws
  // UserError naming the file and the field that is missing or unsupported.
  static ByteLevelBpeTokenizer from_tokenizer_json(const std::string& path);
  // RoBERTa's slow-tokenizer files: vocab.json + merges.txt, specials <s> <pad> </s> <unk> <mask>.
  static ByteLevelBpeTokenizer from_files(const std::string& vocab_json, const std::string& merges_txt,
                                          BpeOptions options = {});

  bool encode(std::string_view text, std::vector<int32_t>& out, size_t max_len = 0) const override;
  size_t vocab_size() const override { return tokens_.size(); }
  const SpecialIds& special_ids() const override { return specials_; }
  std::string token(int32_t id) const override { return tokens_.at(static_cast<size_t>(id)); }
  std::string type() const override { return "bpe"; }
  bool continues_word(int32_t id) const override;
  HfTokenizerLayout hugging_face(const TokenizerFiles& files, int max_len) const override;

  // GPT-2's pre-tokenizer split of `text` (no byte mapping), for tests.
  static std::vector<std::string> split(std::string_view text);
  int32_t id_of(const std::string& token) const;  // -1 when absent

 private:
  struct Merge {
    int32_t rank, id;
  };
  void build(std::unordered_map<std::string, int32_t> vocab,
             const std::vector<std::pair<std::string, std::string>>& merges, const std::string& source);
  void encode_segment(std::string_view text, std::vector<int32_t>& out) const;
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  BpeOptions options_;
  std::vector<std::string> tokens_;               // id -> token
  std::unordered_map<std::string, int32_t> ids_;  // token -> id
  std::unordered_map<uint64_t, Merge> merges_;    // (left id << 32 | right id) -> rank, merged id
  int32_t byte_ids_[256] = {};                    // each byte's stand-in character's id
  std::vector<hf::AddedToken> added_;
  std::array<bool, 256> added_first_{};  // hf::first_bytes(added_)
  hf::Template template_;                // what the post-processor puts around the ids
  SpecialIds specials_;
};

}  // namespace modtrain
