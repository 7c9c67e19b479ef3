// Trains a byte-level BPE with Hugging Face's `tokenizers` (npm tokenizers@0.23.2, default
// trainer) for make_bpe.py. Not needed by CI: its output, cut to a small vocabulary, is committed.
//   node train_bpe.js CORPUS.txt trained.json
const { Tokenizer } = require("tokenizers");
const spec = {
  version: "1.0", truncation: null, padding: null, added_tokens: [], normalizer: null,
  pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
  post_processor: null, decoder: null,
  model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
           fuse_unk: false, byte_fallback: false, vocab: {}, merges: [] },
};
const tokenizer = Tokenizer.fromString(JSON.stringify(spec));
tokenizer.train([process.argv[2]]);
tokenizer.save(process.argv[3], true);
