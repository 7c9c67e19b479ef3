// The peer of bench_tokenizer_peer.cpp: Hugging Face tokenizers (npm tokenizers, the Rust library)
// encoding the same texts with the same tokenizer.json, one thread (RAYON_NUM_THREADS=1 for
// encodeBatch), special tokens added. Prints the same JSON line: tokens/s and the ids' checksum.
//   RAYON_NUM_THREADS=1 node hf_tokenizers.js TOKENIZER_JSON TEXTS_JSONL [ROUNDS]
const fs = require("fs");
const { Tokenizer } = require("tokenizers");

(async () => {
  const [file, textsFile, roundsArg] = process.argv.slice(2);
  const rounds = parseInt(roundsArg || "3", 10);
  const tokenizer = Tokenizer.fromFile(file);
  const texts = fs.readFileSync(textsFile, "utf8").split("\n").filter((l) => l.length).map((l) => JSON.parse(l));
  let best = Infinity, tokens = 0, checksum = 0n;
  for (let r = 0; r < rounds + 1; ++r) {  // round 0 warms up
    const t0 = process.hrtime.bigint();
    const encodings = await tokenizer.encodeBatch(texts);
    const ids = encodings.map((e) => e.getIds());
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r > 0) best = Math.min(best, s);
    tokens = 0;
    checksum = 0n;
    for (const row of ids) {
      tokens += row.length;
      for (const id of row) checksum = (checksum * 1000003n + BigInt(id)) & 0xffffffffffffffffn;
    }
  }
  console.log(JSON.stringify({ tokenizer: "hf-tokenizers", texts: texts.length, tokens, seconds: best,
                               tokens_per_s: Math.round(tokens / best), checksum: checksum.toString(16).padStart(16, "0") }));
})();
