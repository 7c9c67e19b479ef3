// Prepared shards and `data prepare`: round trip, every bad-record class under both policies with
// exact accounting, truncation and UTF-8 repair counts, and clear errors for corrupted,
// truncated or mismatched shards.
#include <catch2/catch.hpp>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "modtrain/core/error.h"
#include "modtrain/data/dataset.h"
#include "modtrain/data/prepare.h"
#include "modtrain/data/raw_reader.h"
#include "modtrain/data/shard.h"
#include "modtrain/data/tweet_normalizer.h"
#include "modtrain/data/wordpiece.h"
#include "modtrain/io/files.h"
#include "test_util.h"

using namespace modtrain;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {
const std::string kVocab = MODTRAIN_TEST_DATA "/tokenizer/vocab-uncased.txt";

Config small_config(const test::TempDir& dir) {
  Config c;
  c.data.labels = {"hate", "spam", "threat"};
  c.data.train = {(dir.path / "raw/train-*.jsonl").string()};
  c.data.valid = {(dir.path / "raw/valid-*.csv").string()};
  c.data.max_len = 16;
  c.data.prepared_dir = (dir.path / "prep").string();
  c.tokenizer.vocab = kVocab;
  return c;
}

std::string good_lines(int n, int offset = 0) {
  std::string s;
  for (int i = 0; i < n; ++i)
    s += "{\"id\": \"r" + std::to_string(i + offset) + "\", \"text\": \"hello world number " +
         std::to_string(i + offset) +
         " @someone http://x.co\", \"labels\": " + (i % 3 == 0 ? "[\"hate\"]" : "{\"spam\": 1, \"threat\": null}") +
         "}\n";
  return s;
}

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::string s = io::read_file(path);
  return {s.begin(), s.end()};
}
void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}
}  // namespace

TEST_CASE("prepare round trip: records read back equal what was written", "[data][prepare]") {
  test::TempDir dir;
  dir.write("raw/train-0.jsonl", good_lines(50));
  dir.write("raw/train-1.jsonl", good_lines(7, 50));
  dir.write("raw/valid-0.csv", "id,text,hate,spam,threat\nv1,\"spam, spam\",0,1,\nv2,the hate,1,0,0\n");
  Config c = small_config(dir);
  PrepareReport report = prepare_data(c, {2, false});
  CHECK(report.manifest.splits.at("train").records() == 57);
  CHECK(report.manifest.splits.at("valid").records() == 2);
  CHECK_THAT(report.summary(), Contains("train: 57 input records = 57 kept + 0 rejected"));

  PreparedDataset train = PreparedDataset::open(c.data.prepared_dir, "train", DataExpectations::from_config(c));
  REQUIRE(train.size() == 57);
  CHECK(train.num_shards() == 2);
  auto vocab = std::make_shared<Vocab>(Vocab::load(kVocab));
  WordPieceTokenizer tokenizer(vocab);
  std::vector<int32_t> expected;
  for (uint64_t i = 0; i < 57; ++i) {
    auto ref = train.locate(i);
    const PreparedShard& shard = train.shard(ref.shard);
    std::string text = "hello world number " + std::to_string(i) + " @someone http://x.co";
    tokenizer.encode(normalize_tweet(text), expected, 16);
    CHECK(shard.ids(ref.record) == expected);
    CHECK(shard.source_line(ref.record) == (i < 50 ? i + 1 : i - 50 + 1));
    std::vector<uint8_t> labels(shard.labels(ref.record), shard.labels(ref.record) + 3);
    if (i % 3 == 0 && i < 50) CHECK(labels == std::vector<uint8_t>{1, 0, 0});
  }
  auto valid = PreparedDataset::open(c.data.prepared_dir, "valid", DataExpectations::from_config(c));
  std::vector<uint8_t> v0(valid.shard(0).labels(0), valid.shard(0).labels(0) + 3);
  CHECK(v0 == std::vector<uint8_t>{0, 1, kLabelUnannotated});
  auto manifest = nlohmann::json::parse(io::read_file(c.data.prepared_dir + "/manifest.json"));
  CHECK(manifest["vocab"]["sha256"] == io::sha256_file(kVocab));
  CHECK(manifest["splits"]["train"]["shards"][1]["records"] == 7);
  CHECK(manifest["splits"]["train"]["shards"][0]["source_bytes"] == fs::file_size(dir.path / "raw/train-0.jsonl"));
}

TEST_CASE("bad records: fail stops at file:line, skip accounts for every line", "[data][prepare]") {
  test::TempDir dir;
  std::string bad = good_lines(3) +
                    "{broken\n"                                        // line 4: invalid JSON
                    "{\"labels\": []}\n"                               // 5: missing text
                    "{\"text\": \"  \", \"labels\": []}\n"             // 6: empty text
                    "{\"text\": \"a\", \"labels\": [\"nope\"]}\n"      // 7: unknown label
                    "{\"text\": \"a\", \"labels\": {\"hate\": 3}}\n"   // 8: wrong value
                    "\n"                                               // 9: blank (not a record)
                    "{\"text\": \"bad \xff utf8\", \"labels\": []}\n"  // 10: repaired, kept
                    + "{\"text\": \"" + std::string(200, 'a') +
                    " b c d e f g h i j k l m n o p q\", \"labels\": []}\n";  // 11: truncated
  dir.write("raw/train-0.jsonl", bad);
  dir.write("raw/valid-0.csv", "text,hate,spam,threat\nok,0,0,0\n");
  Config c = small_config(dir);
  c.data.on_bad_record = BadRecordPolicy::kFail;
  try {
    prepare_data(c, {1, false});
    FAIL("prepare should have stopped");
  } catch (const UserError& e) {
    CHECK_THAT(e.what(), Contains("train-0.jsonl:4: invalid JSON") && Contains("data.on_bad_record=skip"));
  }
  CHECK_FALSE(fs::exists(c.data.prepared_dir + "/manifest.json"));  // no half-prepared data looks valid

  c.data.on_bad_record = BadRecordPolicy::kSkip;
  PrepareReport report = prepare_data(c, {2, false});
  const ShardEntry& e = report.manifest.splits.at("train").shards[0];
  CHECK(e.input_records == 10);
  CHECK(e.records == 5);
  CHECK(e.rejected == 5);
  CHECK(e.records + e.rejected == e.input_records);
  CHECK(e.blank == 1);
  CHECK(e.utf8_repaired == 1);
  CHECK(e.truncated == 1);
  std::ifstream rejected(c.data.prepared_dir + "/rejected.jsonl");
  std::vector<nlohmann::json> rows;
  std::string line;
  while (std::getline(rejected, line)) rows.push_back(nlohmann::json::parse(line));
  REQUIRE(rows.size() == 5);
  CHECK(rows[0]["line"] == 4);
  CHECK(rows[0]["record"] == "{broken");
  CHECK(rows[1]["reason"] == "missing \"text\"");
  CHECK(rows[2]["reason"] == "empty text");
  CHECK_THAT(rows[3]["reason"].get<std::string>(), Contains("unknown label 'nope'"));
  CHECK_THAT(rows[4]["reason"].get<std::string>(), Contains("has value 3"));
  CHECK_THAT(report.summary(), Contains("train: 10 input records = 5 kept + 5 rejected") &&
                                   Contains("1 blank lines skipped") && Contains("1 truncated") &&
                                   Contains("1 with invalid UTF-8 repaired"));
}

TEST_CASE("a prepared dataset opens from its manifest and verifies each shard at its first use, alone",
          "[data][prepare]") {
  test::TempDir dir;
  dir.write("raw/train-0.jsonl", good_lines(20));
  dir.write("raw/train-1.jsonl", good_lines(30));
  dir.write("raw/valid-0.csv", "text,hate,spam,threat\nok,0,0,0\n");
  Config c = small_config(dir);
  prepare_data(c, {1, false});
  auto bytes = file_bytes(c.data.prepared_dir + "/train-00001.bin");
  bytes[bytes.size() / 2] ^= 0x5A;  // shard 1 corrupted after prepare
  write_bytes(c.data.prepared_dir + "/train-00001.bin", bytes);
  const PreparedDataset d = PreparedDataset::open(c.data.prepared_dir, "train", DataExpectations::from_config(c));
  REQUIRE(d.num_shards() == 2);
  CHECK(d.size() == 50);  // from the manifest, before any shard is opened
  CHECK(d.shard(0).size() == 20);
  CHECK(d.length(19) > 0);                       // records of the good shard serve
  for (int attempt = 0; attempt < 2; ++attempt)  // every use of the bad one fails the same way
    CHECK_THROWS_WITH(d.shard(1),
                      Contains("train-00001.bin: corrupted") && Contains("run `modtrain data prepare` again"));
  CHECK_THROWS_WITH(d.length(20), Contains("train-00001.bin: corrupted"));
}

TEST_CASE("the manifest records each shard's label sums and annotated counts, equal to the shard's labels",
          "[data][prepare]") {
  test::TempDir dir;
  dir.write("raw/train-0.jsonl", good_lines(20));
  dir.write("raw/train-1.jsonl", good_lines(30, 20));
  dir.write("raw/valid-0.csv", "text,hate,spam,threat\nok,0,1,0\nbad,1,0,0\n");
  Config c = small_config(dir);
  prepare_data(c, {1, false});
  int64_t compared = 0, positives = 0;
  for (const char* split : {"train", "valid"}) {
    const PreparedDataset d = PreparedDataset::open(c.data.prepared_dir, split, DataExpectations::from_config(c));
    for (size_t i = 0; i < d.num_shards(); ++i) {
      const ShardEntry& e = d.entries()[i];
      REQUIRE(e.label_sums.size() == 3);
      REQUIRE(e.label_annotated.size() == 3);
      for (size_t l = 0; l < 3; ++l) {
        uint64_t sum = 0, annotated = 0;
        for (uint64_t r = 0; r < d.shard(i).size(); ++r)
          if (const uint8_t v = d.shard(i).labels(r)[l]; v != 0xFF) sum += v, ++annotated;
        CHECK(e.label_sums[l] == sum);
        CHECK(e.label_annotated[l] == annotated);
        positives += static_cast<int64_t>(sum);
        ++compared;
      }
    }
  }
  CHECK(compared == 9);  // 3 shards x 3 labels
  CHECK(positives > 0);
}

TEST_CASE("corrupted, truncated and mismatched shards are clear errors", "[data][prepare]") {
  test::TempDir dir;
  dir.write("raw/train-0.jsonl", good_lines(20));
  dir.write("raw/valid-0.csv", "text,hate,spam,threat\nok,0,0,0\n");
  Config c = small_config(dir);
  prepare_data(c, {1, false});
  const std::string shard = c.data.prepared_dir + "/train-00000.bin";
  const std::vector<uint8_t> original = file_bytes(shard);
  auto expect = DataExpectations::from_config(c);
  auto open_error = [&]() -> std::string {  // open, then use every shard (each is verified at its first use)
    try {
      const PreparedDataset d = PreparedDataset::open(c.data.prepared_dir, "train", expect);
      for (size_t i = 0; i < d.num_shards(); ++i) d.shard(i);
    } catch (const UserError& e) {
      return e.what();
    }
    return "";
  };
  CHECK(open_error().empty());

  SECTION("truncated") {
    for (size_t keep : {size_t{0}, size_t{10}, size_t{64}, original.size() / 2, original.size() - 1}) {
      write_bytes(shard, std::vector<uint8_t>(original.begin(), original.begin() + static_cast<std::ptrdiff_t>(keep)));
      CHECK_THAT(open_error(), Contains("train-00000.bin: truncated") && Contains("run `modtrain data prepare` again"));
    }
  }
  SECTION("bad magic and version") {
    auto bytes = original;
    bytes[0] = 'X';
    write_bytes(shard, bytes);
    CHECK_THAT(open_error(), Contains("not a modtrain prepared shard"));
    bytes = original;
    bytes[8] = 9;
    write_bytes(shard, bytes);
    CHECK_THAT(open_error(), Contains("shard format version 9"));
  }
  SECTION("any flipped byte after the header is caught") {
    for (size_t pos = 64; pos < original.size(); pos += 7) {
      auto bytes = original;
      bytes[pos] ^= 0x5A;
      write_bytes(shard, bytes);
      CHECK_THAT(open_error(), Contains("train-00000.bin: corrupted"));
    }
  }
  SECTION("trailing garbage") {
    auto bytes = original;
    bytes.push_back(0);
    write_bytes(shard, bytes);
    CHECK_THAT(open_error(), Contains("unexpected trailing bytes"));
  }
  SECTION("another label set, problem or vocab") {
    DataExpectations other = expect;
    other.labels = {"hate", "spam"};
    CHECK_THROWS_WITH(PreparedDataset::open(c.data.prepared_dir, "train", other),
                      Contains("prepared for labels [hate, spam, threat] but data.labels is [hate, spam]"));
    other = expect;
    other.problem = Problem::kMultiClass;
    CHECK_THROWS_WITH(PreparedDataset::open(c.data.prepared_dir, "train", other), Contains("prepared as multi_label"));
    other = expect;
    other.vocab_sha256 = io::sha256_file(MODTRAIN_TEST_DATA "/tokenizer/vocab-cased.txt");
    CHECK_THROWS_WITH(PreparedDataset::open(c.data.prepared_dir, "train", other), Contains("another tokenizer"));
    // the shard itself also refuses a schema it was not written for
    ShardSchema schema = Manifest::load(c.data.prepared_dir).schema();
    schema.labels_fingerprint ^= 1;
    CHECK_THROWS_WITH(PreparedShard(shard, schema), Contains("different label set"));
  }
  SECTION("missing manifest") {
    fs::remove(c.data.prepared_dir + "/manifest.json");
    CHECK_THAT(open_error(), Contains("manifest.json not found: prepare the data first"));
  }
}

TEST_CASE("shards use 4-byte token ids when the vocab is large", "[data][prepare]") {
  test::TempDir dir;
  ShardSchema schema;
  schema.token_bytes = 4;
  schema.num_labels = 1;
  schema.max_len = 8;
  schema.vocab_size = 100000;
  ShardWriter writer(dir.file("s.bin"), schema);
  uint8_t label = kLabelPositive;
  writer.add({2, 70000, 99999, 3}, &label, 1);
  writer.add({2, 3}, &label, 2);
  writer.finish();
  PreparedShard shard(dir.file("s.bin"), schema);
  CHECK(shard.size() == 2);
  CHECK(shard.ids(0) == std::vector<int32_t>{2, 70000, 99999, 3});
  schema.vocab_size = 80000;
  CHECK_THROWS_WITH(PreparedShard(dir.file("s.bin"), schema), Contains("token id 99999 outside the vocabulary"));
}

TEST_CASE("remove_tree removes nested directories and tolerates a missing path", "[io]") {
  std::string pattern = (fs::temp_directory_path() / "modtrain-rm-XXXXXX").string();
  std::string root = mkdtemp(pattern.data());
  fs::create_directories(root + "/a/b/c");
  std::ofstream(root + "/a/b/c/file.txt") << "x";
  std::ofstream(root + "/top.txt") << "y";
  io::remove_tree(root);
  CHECK_FALSE(fs::exists(root));
  io::remove_tree(root);  // already gone: no error
}

TEST_CASE("a version 3 shard verifies a block of records when it is first read, not the file at open",
          "[data][prepare]") {
  test::TempDir dir;
  ShardSchema schema;
  schema.num_labels = 1;
  schema.max_len = 8;
  schema.vocab_size = 100;
  ShardWriter writer(dir.file("s.bin"), schema);
  for (uint64_t r = 0; r < 1000; ++r) {  // 4 blocks: 0-255, 256-511, 512-767, 768-999
    uint8_t label = r % 2;
    writer.add({2, static_cast<int32_t>(10 + r % 80), 3}, &label, r + 1);
  }
  writer.finish();
  {
    const PreparedShard shard(dir.file("s.bin"), schema, PreparedShard::Verify::kHeader);
    CHECK(shard.blocks_verified() == 0);
    shard.verify_block_of(300);
    shard.verify_block_of(511);
    CHECK(shard.blocks_verified() == 1);
    shard.verify_all();
    CHECK(shard.blocks_verified() == 4);
  }
  // A token of record 600 flipped: the header still opens, blocks 0, 1 and 3 still serve, block 2
  // fails at every read naming its records.
  auto bytes = file_bytes(dir.file("s.bin"));
  // Record 600's middle token: the token section follows the header, the extension, the block
  // table (4 checksums), the offsets (1001) and the source lines (1000); 3 two-byte tokens a record.
  const size_t tokens_begin = 64 + 64 + 4 * 8 + 1001 * 8 + 1000 * 8;
  const size_t pos = tokens_begin + (600 * 3 + 1) * 2;
  REQUIRE(bytes[pos] == static_cast<uint8_t>(10 + 600 % 80));
  bytes[pos] ^= 0x01;
  write_bytes(dir.file("s.bin"), bytes);
  const PreparedShard shard(dir.file("s.bin"), schema, PreparedShard::Verify::kHeader);
  shard.verify_block_of(0);
  shard.verify_block_of(300);
  shard.verify_block_of(999);
  CHECK(shard.blocks_verified() == 3);
  for (int attempt = 0; attempt < 2; ++attempt)
    CHECK_THROWS_WITH(shard.verify_block_of(600),
                      Contains("s.bin: corrupted shard (checksum mismatch in records 512-767)") &&
                          Contains("run `modtrain data prepare` again"));
  CHECK_THROWS_WITH(PreparedShard(dir.file("s.bin"), schema), Contains("checksum mismatch in records 512-767"));
  // A flipped byte of the block checksum table is caught at open.
  bytes[pos] ^= 0x01;
  bytes[64 + 64 + 8 + 3] ^= 0x10;
  write_bytes(dir.file("s.bin"), bytes);
  CHECK_THROWS_WITH(PreparedShard(dir.file("s.bin"), schema, PreparedShard::Verify::kHeader),
                    Contains("header checksum mismatch"));
}

namespace {
// Resident kB of this process's mappings of `path` (/proc/self/smaps), or -1 when it is not mapped.
long mapped_kb(const std::string& path) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  long total = -1;
  bool in = false;
  while (std::getline(smaps, line)) {
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') != std::string::npos &&
        line.find(' ') < line.size()) {
      in = line.size() >= path.size() && line.compare(line.size() - path.size(), path.size(), path) == 0;
      if (in && total < 0) total = 0;
    } else if (in && line.rfind("Rss:", 0) == 0) {
      total += std::stol(line.substr(4));
    }
  }
  return total;
}
}  // namespace

TEST_CASE("the loader's reads leave mapped only what it reads now: release_pages unmaps the touched shards",
          "[data][prepare]") {
  test::TempDir dir;
  dir.write("raw/train-0.jsonl", good_lines(3000));
  dir.write("raw/valid-0.csv", "text,hate,spam,threat\nok,0,0,0\n");
  Config c = small_config(dir);
  prepare_data(c, {1, false});
  const PreparedDataset d = PreparedDataset::open(c.data.prepared_dir, "train", DataExpectations::from_config(c));
  const std::string path = fs::canonical(c.data.prepared_dir + "/train-00000.bin").string();
  CHECK(mapped_kb(path) == -1);  // not opened before its first read
  uint64_t tokens = 0;
  for (uint64_t i = 0; i < d.size(); ++i) {
    const PreparedDataset::Ref ref = d.locate(i);
    tokens += d.record(ref).length(ref.record);
  }
  CHECK(tokens == d.tokens());
  const long before = mapped_kb(path);
  CHECK(before > 0);
  d.release_pages();
  CHECK(mapped_kb(path) == 0);  // still mapped, nothing resident in this process
  CHECK(d.length(5) > 0);       // and it reads again
  CHECK(mapped_kb(path) > 0);
}
