#include "modtrain/data/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "hf_tokenizer_json.h"
#include "modtrain/core/error.h"
#include "modtrain/data/bpe.h"
#include "modtrain/data/unigram.h"
#include "modtrain/data/wordpiece.h"
#include "modtrain/io/files.h"

namespace modtrain {

namespace fs = std::filesystem;

namespace {
std::unique_ptr<Tokenizer> from_tokenizer_json(const std::string& path) {
  const nlohmann::json j = hf::parse_file(path, "tokenizer.json");
  // A field of an unexpected type anywhere in the loaders (a list where an object belongs, a string
  // for a number) is a user error naming the file, not a raw type_error with exit code 1.
  try {
    const nlohmann::json model = j.value("model", nlohmann::json());
    const std::string type = model.is_object() ? model.value("type", std::string("none")) : std::string("none");
    if (type == "WordPiece") return std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_tokenizer_json(path));
    if (type == "BPE") return std::make_unique<ByteLevelBpeTokenizer>(ByteLevelBpeTokenizer::from_tokenizer_json(path));
    if (type == "Unigram") return std::make_unique<UnigramTokenizer>(UnigramTokenizer::from_tokenizer_json(path));
    throw UserError(path + ": model.type " + type +
                    " is not a tokenizer modtrain has (WordPiece for BERT, BPE for RoBERTa, Unigram for XLM-R)");
  } catch (const nlohmann::json::exception& e) {
    const std::string what = e.what();
    throw UserError(path + ": a field has an unexpected type (" + what.substr(what.find(']') + 2) +
                    "); is this a Hugging Face tokenizer.json?");
  }
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

TokenizerFiles find_tokenizer_files(const std::string& path) {
  std::error_code ec;
  TokenizerFiles f;
  auto add = [&](std::vector<TokenizerFiles::File>& to, const char* name, const fs::path& p) {
    to.emplace_back(name, p.string());
  };
  if (fs::is_directory(path, ec)) {
    const fs::path d(path);
    auto has = [&](const char* name) { return fs::exists(d / name, ec); };
    if (has("tokenizer.json")) {
      add(f.defining, "tokenizer.json", d / "tokenizer.json");
      if (has("vocab.json") && has("merges.txt")) {
        add(f.companions, "vocab.json", d / "vocab.json");
        add(f.companions, "merges.txt", d / "merges.txt");
      }
      for (const char* name : {"sentencepiece.bpe.model", "vocab.txt"})
        if (has(name)) add(f.companions, name, d / name);
    } else if (has("vocab.json") && has("merges.txt")) {
      add(f.defining, "vocab.json", d / "vocab.json");
      add(f.defining, "merges.txt", d / "merges.txt");
    } else if (has("sentencepiece.bpe.model")) {
      add(f.defining, "sentencepiece.bpe.model", d / "sentencepiece.bpe.model");
    } else if (has("vocab.txt")) {
      add(f.defining, "vocab.txt", d / "vocab.txt");
    } else {
      throw UserError("no tokenizer in " + path +
                      ": expected tokenizer.json, vocab.json + merges.txt, sentencepiece.bpe.model or vocab.txt");
    }
    return f;
  }
  if (!fs::exists(path, ec))
    throw UserError(path +
                    " not found: a tokenizer is a model directory or a tokenizer.json, vocab.json (with "
                    "merges.txt beside it), sentencepiece.bpe.model or vocab.txt file");
  const std::string name = fs::path(path).filename().string();
  auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (name == "vocab.json") {
    const fs::path merges = fs::path(path).parent_path() / "merges.txt";
    if (!fs::exists(merges, ec))
      throw UserError(path + ": a byte-level BPE vocab.json needs its merges.txt beside it; " + merges.string() +
                      " is missing");
    add(f.defining, "vocab.json", path);
    add(f.defining, "merges.txt", merges);
  } else if (ends_with(".json")) {
    add(f.defining, "tokenizer.json", path);
  } else if (ends_with(".model")) {
    add(f.defining, "sentencepiece.bpe.model", path);
  } else {
    add(f.defining, "vocab.txt", path);
  }
  return f;
}

std::string TokenizerFiles::fingerprint() const {
  if (defining.size() == 1) return io::sha256_file(defining.front().second);
  std::string lines;
  for (const auto& [name, path] : defining) lines += name + " " + io::sha256_file(path) + "\n";
  return io::sha256_bytes(lines);
}

void copy_tokenizer_files(const TokenizerFiles& files, const std::string& dir) {
  // Read first: the source may be `dir` itself. Then no file of another tokenizer stays behind
  // (a tokenizer.json left from an earlier save would be read before a new vocab.txt).
  std::vector<std::pair<std::string, std::string>> contents;
  for (const auto* list : {&files.defining, &files.companions})
    for (const auto& [name, path] : *list) contents.emplace_back(name, io::read_file(path));
  for (const char* name : {"tokenizer.json", "vocab.json", "merges.txt", "sentencepiece.bpe.model", "vocab.txt"}) {
    const bool kept = std::any_of(contents.begin(), contents.end(), [&](const auto& c) { return c.first == name; });
    std::error_code ec;
    if (!kept) fs::remove(fs::path(dir) / name, ec);
  }
  for (const auto& [name, bytes] : contents) io::write_file_atomic((fs::path(dir) / name).string(), bytes);
}

std::vector<std::pair<std::string, int32_t>> hf_special_tokens(const SpecialIds& ids, bool bos_eos) {
  std::vector<std::pair<std::string, int32_t>> out;
  if (bos_eos) out = {{"bos_token", ids.cls}, {"eos_token", ids.sep}};
  for (auto [role, id] :
       {std::pair{"unk_token", ids.unk}, std::pair{"sep_token", ids.sep}, std::pair{"pad_token", ids.pad},
        std::pair{"cls_token", ids.cls}, std::pair{"mask_token", ids.mask}})
    out.emplace_back(role, id);
  return out;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path, bool lowercase) {
  const TokenizerFiles files = find_tokenizer_files(path);
  const auto& [name, file] = files.defining.front();
  if (name == "tokenizer.json") return from_tokenizer_json(file);
  if (name == "vocab.json")
    return std::make_unique<ByteLevelBpeTokenizer>(ByteLevelBpeTokenizer::from_files(file, files.defining[1].second));
  if (name == "sentencepiece.bpe.model")
    return std::make_unique<UnigramTokenizer>(UnigramTokenizer::from_sentencepiece_model(file));
  return from_vocab_txt(file, lowercase);
}

std::unique_ptr<Tokenizer> load_tokenizer(const TokenizerConfig& config) {
  std::error_code ec;
  if (!fs::exists(config.vocab, ec))
    throw UserError("tokenizer.vocab: " + config.vocab +
                    " not found (a model directory or tokenizer file; train a WordPiece vocab.txt with `modtrain "
                    "tokenizer train`)");
  std::unique_ptr<Tokenizer> t = load_tokenizer(config.vocab, config.lowercase);
  if (config.type != TokenizerType::kAuto && t->type() != to_string(config.type))
    throw UserError("tokenizer.vocab: " + config.vocab + " holds a " + t->type() + " tokenizer, tokenizer.type says " +
                    to_string(config.type) + "; set tokenizer.type: " + t->type() + " (or auto)");
  if (const auto* wp = dynamic_cast<const WordPieceTokenizer*>(t.get());
      wp && wp->options().lowercase != config.lowercase)
    throw UserError("tokenizer.lowercase is " + std::string(config.lowercase ? "true" : "false") + " but " +
                    config.vocab + " is " + (wp->options().lowercase ? "an uncased" : "a cased") +
                    " WordPiece tokenizer (its tokenizer.json normalizer or tokenizer_config.json do_lower_case says "
                    "so); set tokenizer.lowercase: " +
                    (wp->options().lowercase ? "true" : "false"));
  if (t->special_ids().pad < 0)
    throw UserError("tokenizer.vocab: " + config.vocab +
                    " has no padding token (<pad> or [PAD] among its special tokens); batches need one");
  return t;
}

}  // namespace modtrain
