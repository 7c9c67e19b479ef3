// The sanitizers' short form, for CI (the full form: scripts/sanitize.sh): the code that reads untrusted bytes, built
// with AddressSanitizer and UndefinedBehaviorSanitizer, fed hostile and mutated inputs. Every tokenizer family over
// random text (invalid UTF-8, long words, special-token fragments, controls, combining marks), the raw-record reader
// over hostile JSONL/CSV/TSV lines, the safetensors parser over mutated files, the tokenizer.json loaders over mutated
// documents, and the config loader over hostile YAML. Any sanitizer report aborts the process (a failed ctest); a parse
// error must be a modtrain UserError, never another exception. Deterministic (fixed seeds). The full form (the whole
// product instrumented; unit tests and the hostile CLI suite under it) is scripts/sanitize.sh, run by the nightly.
// Usage: modtrain_sanitize_short TEST_DATA_DIR
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "modtrain/config/loader.h"
#include "modtrain/core/error.h"
#include "modtrain/data/raw_reader.h"
#include "modtrain/data/sampler.h"
#include "modtrain/data/tokenizer.h"
#include "modtrain/io/files.h"
#include "modtrain/io/safetensors.h"

using namespace modtrain;
namespace fs = std::filesystem;

namespace {
size_t failures = 0;

// Runs f; a UserError (or ConfigError) is an accepted answer to hostile input, anything else is not.
bool survives(const std::string& what, const std::function<void()>& f) {
  try {
    f();
    return true;
  } catch (const UserError&) {
    return false;
  } catch (const std::exception& e) {
    if (++failures <= 10) std::fprintf(stderr, "FAIL: %s: not a UserError: %s\n", what.c_str(), e.what());
    return false;
  }
}

std::string hostile_text(SplitMix64& rng) {
  static const std::vector<std::string> pieces = {"hello",
                                                  " ",
                                                  "  ",
                                                  "\t",
                                                  "\n",
                                                  "[CLS]",
                                                  "[SEP",
                                                  "[MASK]",
                                                  "<s>",
                                                  "</s",
                                                  "<mask>",
                                                  "<unk>",
                                                  "##",
                                                  "'s",
                                                  "'ll",
                                                  "\xE2\x80\x8B",  // zero-width space
                                                  "\x07",
                                                  "\x00",
                                                  "\x7F",
                                                  "\xCC\x81",          // a combining acute accent alone
                                                  "\xEF\xBF\xBD",      // U+FFFD
                                                  "\xF0\x9F\x98\x82",  // an emoji
                                                  "\xE6\x97\xA5\xE6\x9C\xAC",
                                                  "\xD9\xA3",
                                                  "\xC3",
                                                  "\xE2\x82",
                                                  "\xF0\x9F\x98",
                                                  "\xFF",
                                                  "\xC0\xAF",
                                                  "@user",
                                                  "http://t.co/x",
                                                  "&amp;",
                                                  "&#x1F602;",
                                                  "!!!",
                                                  "123456789"};
  std::string out;
  const size_t n = rng.below(40);
  for (size_t i = 0; i < n; ++i) {
    if (rng.below(50) == 0) out += std::string(1000 + rng.below(20000), static_cast<char>('a' + rng.below(26)));
    else if (rng.below(4) == 0) out += static_cast<char>(rng.below(256));
    else out += pieces[rng.below(pieces.size())];
  }
  return out;
}

size_t run_tokenizers(const std::string& data) {
  size_t encodes = 0;
  const std::vector<std::string> files = {
      data + "/tokenizer/wordpiece/tokenizer.json", data + "/tokenizer/vocab-uncased.txt",
      data + "/tokenizer/vocab-cased.txt",          data + "/tokenizer/bpe/tokenizer.json",
      data + "/tokenizer/unigram/tokenizer.json",   data + "/tokenizer/unigram/sentencepiece.bpe.model"};
  for (const auto& file : files) {
    std::unique_ptr<Tokenizer> t =
        load_tokenizer(file, file.find("cased.txt") == std::string::npos || file.find("uncased") != std::string::npos);
    SplitMix64 rng(42);
    std::vector<int32_t> ids;
    for (int i = 0; i < 1500; ++i) {
      const std::string text = hostile_text(rng);
      for (size_t max_len : {size_t{0}, size_t{2}, size_t{9}}) {
        t->encode(text, ids, max_len);
        ++encodes;
        for (int32_t id : ids)
          if (id < 0 || static_cast<size_t>(id) >= t->vocab_size()) {
            if (++failures <= 10) std::fprintf(stderr, "FAIL: %s: id %d outside the vocabulary\n", file.c_str(), id);
            break;
          }
        if (max_len > 0 && ids.size() > max_len && ++failures <= 10)
          std::fprintf(stderr, "FAIL: %s: %zu ids for max_len %zu\n", file.c_str(), ids.size(), max_len);
      }
    }
  }
  return encodes;
}

size_t run_raw_reader(const fs::path& dir) {
  const std::vector<std::string> jsonl = {
      "{\"text\": \"a\", \"labels\": [\"hate\"]}",
      "{\"text\": \"a\", \"labels\": [\"hate\"], \"labels\": []}",
      "{\"text\": 1e400, \"labels\": []}",
      std::string(3000, '[') + std::string(3000, ']'),
      "{\"text\": \"\\ud800\", \"labels\": {\"hate\": 0.4999}}",
      "{\"text\": \"x\", \"labels\": {\"hate\": -1e-320}}",
      "{\"text\": \"x\", \"labels\": {\"hate\": 18446744073709551616}}",
      "{\"text\"",
      "\xEF\xBB\xBF{}",
      "{\"text\": \"" + std::string(5000, 'y') + "\", \"labels\": []}",
      std::string("{\"text\": \"a\0b\"}", 14),
      "{\"text\": \"ok\", \"labels\": [\"nope\", \"hate\", \"hate\"], \"id\": 9223372036854775808}"};
  const std::vector<std::string> csv = {"text,hate,spam",
                                        "\"a\",1,0",
                                        "\"unterminated,1,0",
                                        "b,0x1,inf",
                                        "c,1e-400,nan",
                                        "\"" + std::string(3000, 'q') + "\n\"\"x\"\"\",1,0",
                                        "d,,",
                                        "e,1,0,extra,cells",
                                        ""};
  std::string jsonl_text, csv_text;
  for (const auto& l : jsonl) jsonl_text += l + "\n";
  for (const auto& l : csv) csv_text += l + "\n";
  const std::string jsonl_path = (dir / "hostile.jsonl").string(), csv_path = (dir / "hostile.csv").string();
  std::ofstream(jsonl_path, std::ios::binary) << jsonl_text;
  std::ofstream(csv_path, std::ios::binary) << csv_text;
  size_t records = 0;
  for (bool soft : {false, true}) {
    for (const auto& path : {jsonl_path, csv_path}) {
      LabelSpec spec;
      spec.names = {"hate", "spam"};
      spec.soft = soft;
      survives(path, [&] {
        RawShardReader reader(path, spec, true, /*max_record_bytes=*/1024);
        RawUnit unit;
        RawRecord record;
        std::string reason;
        while (reader.next(unit)) {
          (void)reader.decode(unit, record, reason);
          ++records;
        }
      });
    }
  }
  return records;
}

size_t run_safetensors(const fs::path& dir) {
  std::vector<float> a(6, 1.5f), b(4, -2.0f);
  const std::string path = (dir / "valid.safetensors").string();
  io::write_safetensors(path, {{"a", "F32", {2, 3}, a.data(), 24}, {"b", "F32", {4}, b.data(), 16}}, {});
  const std::string good = io::read_file(path);
  SplitMix64 rng(7);
  size_t mutations = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string bytes = good;
    const size_t edits = 1 + rng.below(4);
    for (size_t e = 0; e < edits; ++e) {
      const size_t at = rng.below(bytes.size());
      switch (rng.below(3)) {
        case 0: bytes[at] = static_cast<char>(rng.below(256)); break;
        case 1: bytes.erase(at, 1 + rng.below(8)); break;
        default: bytes.insert(at, 1, "{}[]\",:0123456789e-"[rng.below(19)]);
      }
    }
    if (rng.below(10) == 0) bytes.resize(rng.below(bytes.size()));
    survives("safetensors mutation", [&] {
      io::SafetensorsView view(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mutated.safetensors");
      for (const auto& [name, t] : view.tensors()) (void)t.bytes;
    });
    ++mutations;
  }
  return mutations;
}

// Replaces a random value of the document by a hostile one (another type, a huge number, a deep list).
void mutate(nlohmann::json& j, SplitMix64& rng) {
  nlohmann::json* at = &j;
  for (int depth = 0; depth < 6; ++depth) {
    if (at->is_object() && !at->empty()) {
      auto it = at->begin();
      std::advance(it, static_cast<long>(rng.below(at->size())));
      at = &it.value();
    } else if (at->is_array() && !at->empty()) {
      at = &(*at)[rng.below(at->size())];
    } else {
      break;
    }
    if (rng.below(3) == 0) break;
  }
  const nlohmann::json replacements[] = {nullptr,
                                         -1,
                                         4294967297LL,
                                         1e308,
                                         "x",
                                         nlohmann::json::array(),
                                         nlohmann::json::object(),
                                         true,
                                         nlohmann::json::array({1, 2, 3}),
                                         ""};
  *at = replacements[rng.below(10)];
}

size_t run_tokenizer_json(const std::string& data, const fs::path& dir) {
  size_t loads = 0;
  for (const char* family : {"wordpiece", "bpe", "unigram"}) {
    const nlohmann::json good = nlohmann::json::parse(io::read_file(data + "/tokenizer/" + family + "/tokenizer.json"));
    SplitMix64 rng(11);
    const std::string path = (dir / "tokenizer.json").string();
    for (int i = 0; i < 150; ++i) {
      nlohmann::json j = good;
      for (size_t m = 0; m < 1 + rng.below(3); ++m) mutate(j, rng);
      std::ofstream(path, std::ios::binary | std::ios::trunc) << j.dump();
      survives(std::string(family) + " tokenizer.json mutation", [&] {
        std::unique_ptr<Tokenizer> t = load_tokenizer(path);
        std::vector<int32_t> ids;
        t->encode("hello [MASK] <mask> world", ids);
      });
      ++loads;
    }
  }
  return loads;
}

size_t run_config() {
  const std::vector<std::string> yamls = {"train:\n  lr: 1e400\n",
                                          "train:\n  max_steps: 99999999999999999999999\n",
                                          "a: &a [*a]\n",
                                          "data:\n  labels: [" + std::string(2000, '[') + "\n",
                                          "train: {lr: .inf}\n",
                                          "train:\n  lr: !!binary aGk=\n",
                                          "\xFF\xFE: 1\n",
                                          "data:\n  max_record_bytes: -1\n",
                                          "eval:\n  thresholds: {default: fixed:0, x: y: z}\n",
                                          "---\n---\n",
                                          "train:\n  micro_batch: 0x10\n",
                                          std::string(100000, ' ') + "x: 1\n"};
  size_t loaded = 0;
  for (const auto& y : yamls) {
    survives("config", [&] { load_config_text(y, "hostile.yaml"); });
    ++loaded;
  }
  return loaded;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s TEST_DATA_DIR\n", argv[0]);
    return 2;
  }
  const std::string data = argv[1];
  std::string pattern = (fs::temp_directory_path() / "modtrain-sanitize-XXXXXX").string();
  const fs::path dir = mkdtemp(pattern.data());
  const size_t encodes = run_tokenizers(data), records = run_raw_reader(dir), mutations = run_safetensors(dir),
               loads = run_tokenizer_json(data, dir), configs = run_config();
  fs::remove_all(dir);
  std::printf(
      "sanitize short: %zu encodes, %zu raw records, %zu safetensors mutations, %zu tokenizer.json "
      "mutations, %zu configs; %zu failures\n",
      encodes, records, mutations, loads, configs, failures);
  // A check that compared nothing must fail: every part ran on what it was given.
  const bool complete = encodes == 6 * 1500 * 3 && records >= 30 && mutations == 3000 && loads == 450 && configs == 12;
  if (failures == 0 && complete) std::printf("sanitize short ok\n");
  return failures == 0 && complete ? 0 : 1;
}
