#include "modtrain/data/tokenizer.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "hf_tokenizer_json.h"
#include "modtrain/core/error.h"
#include "modtrain/data/bpe.h"
#include "modtrain/data/unigram.h"
#include "modtrain/data/wordpiece.h"

namespace modtrain {

namespace fs = std::filesystem;

namespace {
std::unique_ptr<Tokenizer> from_tokenizer_json(const std::string& path) {
  const nlohmann::json j = hf::parse_file(path, "tokenizer.json");
  const std::string type =
      j.is_object() && j.contains("model") ? j.at("model").value("type", std::string("none")) : std::string("none");
  if (type == "WordPiece") return std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_tokenizer_json(path));
  if (type == "BPE") return std::make_unique<ByteLevelBpeTokenizer>(ByteLevelBpeTokenizer::from_tokenizer_json(path));
  if (type == "Unigram") return std::make_unique<UnigramTokenizer>(UnigramTokenizer::from_tokenizer_json(path));
  throw UserError(path + ": model.type " + type +
                  " is not a tokenizer modtrain has (WordPiece for BERT, BPE for RoBERTa, Unigram for XLM-R)");
}

std::unique_ptr<Tokenizer> from_vocab_txt(const std::string& path, bool lowercase) {
  const fs::path config = fs::path(path).parent_path() / "tokenizer_config.json";
  std::error_code ec;
  if (fs::is_regular_file(config, ec)) {
    const nlohmann::json c = hf::parse_file(config.string(), "tokenizer_config.json");
    if (c.is_object() && c.contains("do_lower_case") && c.at("do_lower_case").is_boolean())
      lowercase = c.at("do_lower_case").get<bool>();
  }
  return std::make_unique<WordPieceTokenizer>(std::make_shared<Vocab>(Vocab::load(path)),
                                              WordPieceOptions{lowercase, 100});
}
}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path, bool lowercase) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path d(path);
    auto has = [&](const char* name) { return fs::exists(d / name, ec); };
    if (has("tokenizer.json")) return from_tokenizer_json((d / "tokenizer.json").string());
    if (has("vocab.json") && has("merges.txt"))
      return std::make_unique<ByteLevelBpeTokenizer>(
          ByteLevelBpeTokenizer::from_files((d / "vocab.json").string(), (d / "merges.txt").string()));
    if (has("sentencepiece.bpe.model"))
      return std::make_unique<UnigramTokenizer>(
          UnigramTokenizer::from_sentencepiece_model((d / "sentencepiece.bpe.model").string()));
    if (has("vocab.txt")) return from_vocab_txt((d / "vocab.txt").string(), lowercase);
    throw UserError("no tokenizer in " + path +
                    ": expected tokenizer.json, vocab.json + merges.txt, sentencepiece.bpe.model or vocab.txt");
  }
  const std::string name = fs::path(path).filename().string();
  auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with(".json") && name != "vocab.json") return from_tokenizer_json(path);
  if (ends_with(".model")) return std::make_unique<UnigramTokenizer>(UnigramTokenizer::from_sentencepiece_model(path));
  if (name == "vocab.json")
    return std::make_unique<ByteLevelBpeTokenizer>(
        ByteLevelBpeTokenizer::from_files(path, (fs::path(path).parent_path() / "merges.txt").string()));
  return from_vocab_txt(path, lowercase);
}

}  // namespace modtrain
