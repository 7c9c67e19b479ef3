// Reference ids from Hugging Face's `tokenizers` for any tokenizer.json (with its post-processor's
// special tokens), for the golden files of the BPE and Unigram parity tests. Not needed by CI.
//   node reference_json.js TOKENIZER_JSON [--max-len N] < cases.jsonl > golden.jsonl
// Each input line is a JSON string; each output line the JSON array of its ids.
const fs = require("fs");
const { Tokenizer } = require("tokenizers");

const args = process.argv.slice(2);
const maxLenArg = args.indexOf("--max-len");
const tokenizer = Tokenizer.fromFile(args[0]);
if (maxLenArg >= 0) tokenizer.setTruncation(parseInt(args[maxLenArg + 1], 10));

(async () => {
  const lines = fs.readFileSync(0, "utf8").split("\n");
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  const out = [];
  for (const line of lines) out.push(JSON.stringify(Array.from((await tokenizer.encode(JSON.parse(line))).getIds())));
  process.stdout.write(out.join("\n") + (out.length ? "\n" : ""));
})();
