// Reference ids from Hugging Face's `tokenizers` (the Rust library behind BertTokenizerFast),
// for the golden files of the WordPiece parity tests. Not needed by CI: the outputs are committed.
//   npm install tokenizers@0.23.2   (in any folder on NODE_PATH)
//   node reference.js VOCAB [--cased] [--max-len N] [--jsonl] < lines.txt > ids.jsonl
// One JSON array of ids per input line, [CLS] ... [SEP], as BertWordPieceTokenizer gives them.
// With --jsonl each input line is a JSON string (so that texts may hold newlines).
const fs = require("fs");
const { Tokenizer } = require("tokenizers");

const args = process.argv.slice(2);
const vocabPath = args[0];
const cased = args.includes("--cased");
const maxLenArg = args.indexOf("--max-len");
const jsonl = args.includes("--jsonl");
const maxLen = maxLenArg >= 0 ? parseInt(args[maxLenArg + 1], 10) : null;

const vocab = {};
fs.readFileSync(vocabPath, "utf8").split("\n").forEach((tok, i) => {
  if (tok.length > 0 || i === 0) vocab[tok.replace(/\r$/, "")] = i;
});
const specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
const spec = {
  version: "1.0",
  truncation: maxLen ? { direction: "Right", max_length: maxLen, strategy: "LongestFirst", stride: 0 } : null,
  padding: null,
  added_tokens: specials.map((t) => ({ id: vocab[t], content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
  normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: !cased },
  pre_tokenizer: { type: "BertPreTokenizer" },
  post_processor: {
    type: "TemplateProcessing",
    single: [{ SpecialToken: { id: "[CLS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "[SEP]", type_id: 0 } }],
    pair: [{ SpecialToken: { id: "[CLS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "[SEP]", type_id: 0 } },
           { Sequence: { id: "B", type_id: 1 } }, { SpecialToken: { id: "[SEP]", type_id: 1 } }],
    special_tokens: {
      "[CLS]": { id: "[CLS]", ids: [vocab["[CLS]"]], tokens: ["[CLS]"] },
      "[SEP]": { id: "[SEP]", ids: [vocab["[SEP]"]], tokens: ["[SEP]"] },
    },
  },
  decoder: { type: "WordPiece", prefix: "##", cleanup: true },
  model: { type: "WordPiece", unk_token: "[UNK]", continuing_subword_prefix: "##", max_input_chars_per_word: 100, vocab },
};

(async () => {
  const tokenizer = Tokenizer.fromString(JSON.stringify(spec));
  const input = fs.readFileSync(0, "utf8");
  const lines = input.split("\n");
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  const out = [];
  for (const line of lines) {
    const enc = await tokenizer.encode(jsonl ? JSON.parse(line) : line);
    out.push(JSON.stringify(Array.from(enc.getIds())));
  }
  process.stdout.write(out.join("\n") + (out.length ? "\n" : ""));
})();
