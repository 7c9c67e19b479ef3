// Raw shards: JSONL label forms, CSV/TSV, every bad-record class with its reason, UTF-8 repair.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "modtrain/core/error.h"
#include "modtrain/data/raw_reader.h"
#include "test_util.h"

using namespace modtrain;
using Catch::Matchers::Contains;

namespace {
LabelSpec spec(Problem problem = Problem::kMultiLabel) {
  LabelSpec s;
  s.names = {"hate", "spam", "threat"};
  s.problem = problem;
  return s;
}

struct Decoded {
  bool ok;
  RawRecord record;
  std::string reason;
  uint64_t line;
};

std::vector<Decoded> read_all(const std::string& path, LabelSpec s = spec()) {
  RawShardReader reader(path, s);
  std::vector<Decoded> out;
  RawUnit unit;
  while (reader.next(unit)) {
    if (unit.blank) continue;
    Decoded d;
    d.line = unit.line;
    d.ok = reader.decode(unit, d.record, d.reason);
    out.push_back(d);
  }
  return out;
}
}  // namespace

TEST_CASE("JSONL: list and object label forms", "[data][raw]") {
  test::TempDir dir;
  auto path = dir.write("a.jsonl",
                        "{\"id\": \"t1\", \"text\": \"hi\", \"labels\": [\"hate\", \"threat\"]}\n"
                        "{\"text\": \"x\", \"labels\": {\"hate\": 1, \"spam\": null, \"threat\": -1}}\n"
                        "\n"
                        "{\"id\": 7, \"text\": \"y\", \"labels\": {\"spam\": true, \"hate\": 0.0}}\n"
                        "{\"text\": \"z\", \"labels\": []}\r\n");
  auto rows = read_all(path);
  REQUIRE(rows.size() == 4);
  for (const auto& r : rows) CHECK(r.ok);
  CHECK(rows[0].record.id == "t1");
  CHECK(rows[0].record.labels == std::vector<uint8_t>{1, 0, 1});
  CHECK(rows[1].record.labels == std::vector<uint8_t>{1, kLabelUnannotated, kLabelUnannotated});
  CHECK(rows[1].record.id == path + ":2");
  CHECK(rows[2].line == 4);
  CHECK(rows[2].record.id == "7");
  CHECK(rows[2].record.labels == std::vector<uint8_t>{0, 1, kLabelUnannotated});  // unnamed: not annotated
  CHECK(rows[3].record.labels == std::vector<uint8_t>{0, 0, 0});
}

TEST_CASE("JSONL: every bad-record class has a reason", "[data][raw]") {
  test::TempDir dir;
  auto path = dir.write("bad.jsonl",
                        "{not json}\n"
                        "[1, 2]\n"
                        "{\"labels\": []}\n"
                        "{\"text\": 5, \"labels\": []}\n"
                        "{\"text\": \"   \", \"labels\": []}\n"
                        "{\"text\": \"a\", \"labels\": [\"hat\"]}\n"
                        "{\"text\": \"a\", \"labels\": {\"hate\": 2}}\n"
                        "{\"text\": \"a\", \"labels\": {\"hate\": \"yes\"}}\n"
                        "{\"text\": \"a\"}\n"
                        "{\"text\": \"a\", \"labels\": \"hate\"}\n"
                        "{\"text\": \"a\", \"labels\": [1]}\n"
                        "{\"text\": \"a\", \"id\": [1], \"labels\": []}\n"
                        "{\"text\": \"a\", \"labels\": [], \"ignored\": 1e400}\n"
                        "{\"text\": \"a\", \"labels\": {\"hate\": -1e999}}\n");
  auto rows = read_all(path);
  REQUIRE(rows.size() == 14);
  for (const auto& r : rows) CHECK_FALSE(r.ok);
  CHECK_THAT(rows[0].reason, Contains("invalid JSON"));
  CHECK_THAT(rows[1].reason, Contains("expected a JSON object"));
  CHECK(rows[2].reason == "missing \"text\"");
  CHECK(rows[3].reason == "\"text\" must be a string");
  CHECK(rows[4].reason == "empty text");
  CHECK(rows[5].reason == "unknown label 'hat' (data.labels: hate, spam, threat)");
  CHECK(rows[6].reason == "label 'hate' has value 2; use 1, 0, or null/-1 for not annotated");
  CHECK_THAT(rows[7].reason, Contains("label 'hate' has value \"yes\""));
  CHECK_THAT(rows[8].reason, Contains("missing \"labels\""));
  CHECK_THAT(rows[9].reason, Contains("\"labels\" must be a list"));
  CHECK_THAT(rows[10].reason, Contains("must be label names"));
  CHECK_THAT(rows[11].reason, Contains("\"id\" must be"));
  // a number that overflows, even in a key that is ignored: one rejected record, not an abort
  CHECK_THAT(rows[12].reason, Contains("invalid JSON: number overflow parsing '1e400' (does not fit a double)"));
  CHECK_THAT(rows[13].reason, Contains("number overflow parsing '-1e999'"));
}

TEST_CASE("multi_class needs exactly one label", "[data][raw]") {
  test::TempDir dir;
  auto path = dir.write("mc.jsonl",
                        "{\"text\": \"a\", \"labels\": [\"spam\"]}\n"
                        "{\"text\": \"a\", \"labels\": [\"spam\", \"hate\"]}\n"
                        "{\"text\": \"a\", \"labels\": []}\n");
  auto rows = read_all(path, spec(Problem::kMultiClass));
  CHECK(rows[0].ok);
  CHECK(rows[1].reason == "multi_class record has 2 labels; exactly one is required");
  CHECK(rows[2].reason == "multi_class record has 0 labels; exactly one is required");
}

TEST_CASE("invalid UTF-8 is repaired and counted", "[data][raw]") {
  test::TempDir dir;
  auto path = dir.write("u.jsonl", "{\"text\": \"bad \xff\xfe bytes \xc3\", \"labels\": []}\n");
  auto rows = read_all(path);
  REQUIRE(rows[0].ok);
  CHECK(rows[0].record.utf8_repairs == 3);
  CHECK(rows[0].record.text == "bad \xEF\xBF\xBD\xEF\xBF\xBD bytes \xEF\xBF\xBD");
}

TEST_CASE("CSV and TSV with headers, quotes, empty cells", "[data][raw]") {
  test::TempDir dir;
  auto csv = dir.write("a.csv",
                       "id,text,hate,spam,extra\n"
                       "1,\"hello, world\",1,0,x\n"
                       "2,\"multi\nline \"\"quoted\"\"\",,1,y\n"
                       "3,short,0\n"
                       "4,text,maybe,0,z\n");
  auto rows = read_all(csv);
  REQUIRE(rows.size() == 4);
  CHECK(rows[0].ok);
  CHECK(rows[0].record.text == "hello, world");
  CHECK(rows[0].record.labels == std::vector<uint8_t>{1, 0, kLabelUnannotated});  // no threat column
  CHECK(rows[1].ok);
  CHECK(rows[1].line == 3);
  CHECK(rows[1].record.text == "multi\nline \"quoted\"");
  CHECK(rows[1].record.labels == std::vector<uint8_t>{kLabelUnannotated, 1, kLabelUnannotated});
  CHECK_FALSE(rows[2].ok);
  CHECK_THAT(rows[2].reason, Contains("expected 5 columns"));
  CHECK(rows[2].line == 5);
  CHECK(rows[3].reason == "label 'hate' has value 'maybe'; use 1, 0, or empty for not annotated");
  RawShardReader reader(csv, spec());
  REQUIRE(reader.warnings().size() == 1);
  CHECK_THAT(reader.warnings()[0], Contains("no column for label(s) threat"));

  auto tsv = dir.write("b.tsv", "text\thate\tspam\tthreat\nsome text\t0\t1\t0\n");
  auto trows = read_all(tsv);
  REQUIRE(trows.size() == 1);
  CHECK(trows[0].record.labels == std::vector<uint8_t>{0, 1, 0});
  CHECK_THROWS_WITH(RawShardReader(dir.write("c.csv", "id,body\n1,x\n"), spec()), Contains("no `text` column"));
  CHECK_THROWS_WITH(RawShardReader(dir.write("d.xml", "x"), spec()), Contains("unknown data format"));
}

TEST_CASE("globs expand sorted, a pattern with no match is an error", "[data][raw]") {
  test::TempDir dir;
  dir.write("train-2.jsonl", "");
  dir.write("train-1.jsonl", "");
  auto files = expand_globs({(dir.path / "train-*.jsonl").string()}, "data.train");
  REQUIRE(files.size() == 2);
  CHECK_THAT(files[0], Contains("train-1.jsonl"));
  CHECK_THROWS_WITH(expand_globs({(dir.path / "valid-*.jsonl").string()}, "data.valid"),
                    Contains("data.valid: '") && Contains("matches no file"));
}

TEST_CASE("plain .txt: one unlabelled post per line, only where no labels are required", "[data][raw][mlm]") {
  test::TempDir dir;
  const std::string path = dir.write("posts.txt", "first post\r\n\nsecond \xff post\n   \nthird\n");
  const auto records = read_all(path, LabelSpec{});
  REQUIRE(records.size() == 3);
  CHECK(records[0].record.text == "first post");
  CHECK(records[0].record.id == path + ":1");
  CHECK(records[1].line == 3);
  CHECK(records[1].record.utf8_repairs == 1);
  CHECK(records[2].record.text == "third");
  CHECK(records[2].record.labels.empty());
  CHECK_THROWS_WITH(RawShardReader(path, spec()), Contains("posts.txt: a .txt file is unlabelled text") &&
                                                      Contains("train.objective: mlm and data.labels: []"));
  RawShardReader unlabelled(path, spec(), /*labels_required=*/false);  // labels listed, none required: not annotated
  RawUnit unit;
  RawRecord record;
  std::string reason;
  REQUIRE(unlabelled.next(unit));
  REQUIRE(unlabelled.decode(unit, record, reason));
  CHECK(record.labels == std::vector<uint8_t>(3, kLabelUnannotated));
}

TEST_CASE("records longer than max_record_bytes are bad records, read past without being kept", "[data][raw]") {
  test::TempDir dir;
  const std::string big(5000, 'x');
  const std::string jsonl =
      dir.write("long.jsonl", "{\"text\": \"a\", \"labels\": []}\n{\"text\": \"" + big +
                                  "\", \"labels\": []}\n{\"text\": \"b\", \"labels\": [\"spam\"]}\n" +
                                  big);  // and a last line without '\n'
  const std::string csv = dir.write("long.csv", "text,spam\nshort,1\n\"" + big + "\nstill the \"\"same\"\" cell\n" +
                                                    big + "\",0\n\"multi\nline\",1\n");
  size_t compared = 0;
  for (const std::string& path : {jsonl, csv}) {
    RawShardReader reader(path, spec(), true, /*max_record_bytes=*/1024);
    std::vector<Decoded> rows;
    RawUnit unit;
    uint64_t kept_bytes = 0;
    while (reader.next(unit)) {
      Decoded d{false, {}, "", unit.line};
      kept_bytes = std::max<uint64_t>(kept_bytes, unit.source.size());
      d.ok = reader.decode(unit, d.record, d.reason);
      rows.push_back(d);
    }
    CHECK(kept_bytes <= 1024);  // the long records were not held whole
    if (path == jsonl) {
      REQUIRE(rows.size() == 4);
      CHECK((rows[0].ok && !rows[1].ok && rows[2].ok && !rows[3].ok));
      CHECK(rows[2].record.text == "b");  // the record after a long one is read whole
      CHECK(rows[2].line == 3);
      CHECK_THAT(rows[1].reason, Contains("a record of 5026 bytes, longer than data.max_record_bytes (1024)"));
      CHECK_THAT(rows[3].reason, Contains("a record of 5000 bytes"));
    } else {
      REQUIRE(rows.size() == 3);  // short, the long quoted cell over three lines, multi-line
      CHECK((rows[0].ok && !rows[1].ok && rows[2].ok));
      CHECK(rows[1].line == 3);
      CHECK_THAT(rows[1].reason, Contains("longer than data.max_record_bytes (1024)"));
      CHECK(rows[2].record.text == "multi\nline");
      CHECK(rows[2].line == 6);
    }
    compared += rows.size();
  }
  CHECK(compared == 7);
}

TEST_CASE("soft labels keep their side of eval.positive_at, and cells are decimal numbers only", "[data][raw]") {
  // Stored as k/240: 0.499 rounds to 120/240 = 0.5, which the metrics would count as positive.
  size_t compared = 0;
  for (double positive_at : {0.5, 0.3, 0.7, 1.0}) {
    for (double v = 0.0; v <= 1.0; v += 0.0001) {
      for (double x : {v, positive_at - 1e-9, positive_at, std::nextafter(positive_at, 0.0)}) {
        if (x < 0 || x > 1) continue;
        uint8_t b = 0;
        REQUIRE(encode_fraction(x, b, positive_at));
        const float stored = static_cast<float>(b) / 240.0f;  // as ShardReader::label_value
        CHECK((static_cast<double>(stored) >= positive_at) == (x >= positive_at));
        CHECK(std::abs(static_cast<double>(stored) - x) <= 1.0 / 240 + 1e-6);
        ++compared;
      }
    }
  }
  CHECK(compared > 160000);
  uint8_t b = 0;
  REQUIRE(encode_fraction(0.499, b, 0.5));
  CHECK(b == 119);
  REQUIRE(encode_fraction(0.5, b, 0.5));
  CHECK(b == 120);

  test::TempDir dir;
  LabelSpec s = spec();
  s.soft = true;
  const std::string csv = dir.write("soft.csv", "text,hate\na,0x1\nb,inf\nc, 1\nd,0.499\ne,1e-1\n");
  auto rows = read_all(csv, s);
  REQUIRE(rows.size() == 5);
  CHECK((!rows[0].ok && !rows[1].ok && rows[2].ok && rows[3].ok && rows[4].ok));  // " 1": cells are trimmed
  CHECK(rows[2].record.labels[0] == 240);
  CHECK_THAT(rows[0].reason, Contains("label 'hate' has value '0x1'"));
  CHECK(rows[3].record.labels[0] == 119);
  CHECK(rows[4].record.labels[0] == 24);
}
