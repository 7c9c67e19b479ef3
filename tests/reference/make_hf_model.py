#!/usr/bin/python3
"""Writes a small Hugging Face model directory of one family, as `save_pretrained` lays it out,
with random weights and a real tokenizer from tests/data/tokenizer: what the import tests and the
nightly fine-tune, since no pretrained weights can be downloaded here.

  roberta   RobertaForMaskedLM weights ("roberta." names, lm_head.*), twitter-roberta's slow
            tokenizer files only (vocab.json + merges.txt, byte-level BPE)
  xlmr      XLMRobertaForMaskedLM weights, tokenizer.json + sentencepiece.bpe.model (Unigram)
  twhin     BertForMaskedLM weights with position_embedding_type relative_key (TwHIN-BERT:
            "bert." names, a distance embedding per layer, cls.predictions.*), the XLM-R
            tokenizer (tokenizer.json only)
  bert      BertForMaskedLM, absolute positions, the same Unigram tokenizer

With --labels a,b,c the checkpoint is a ...ForSequenceClassification with that id2label (its
head is then loaded by model.init_from when the labels match).

Usage: make_hf_model.py FAMILY TOKENIZER_DATA_DIR OUT_DIR [--labels a,b] [--hidden 32] [--layers 2]
       [--heads 2] [--intermediate 64] [--max-len 64] [--seed 1] [--std 0.2]
"""
import argparse
import json
import os
import shutil
import struct

import numpy as np


def write_safetensors(path, tensors):
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype=np.float32)
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        blobs.append(a.tobytes())
        offset += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("family", choices=["roberta", "xlmr", "twhin", "bert"])
    ap.add_argument("tokenizer_data")
    ap.add_argument("out")
    ap.add_argument("--labels", default="")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=64)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--std", type=float, default=0.2)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)

    bpe = a.family == "roberta"
    tok_dir = os.path.join(a.tokenizer_data, "bpe" if bpe else "unigram")
    spec = json.load(open(os.path.join(tok_dir, "tokenizer.json")))
    vocab = len(spec["model"]["vocab"])
    for t in spec["added_tokens"]:
        vocab = max(vocab, t["id"] + 1)
    pad = next(t["id"] for t in spec["added_tokens"] if t["content"] == "<pad>")
    if bpe:
        files = ["vocab.json", "merges.txt"]
    elif a.family == "xlmr":
        files = ["tokenizer.json", "sentencepiece.bpe.model"]
    else:
        files = ["tokenizer.json"]
    for f in files:
        shutil.copy(os.path.join(tok_dir, f), os.path.join(a.out, f))

    roberta = a.family in ("roberta", "xlmr")
    model_type = {"roberta": "roberta", "xlmr": "xlm-roberta"}.get(a.family, "bert")
    positions = "relative_key" if a.family == "twhin" else "absolute"
    max_positions = a.max_len + (pad + 1 if roberta else 0)
    H, I, d = a.hidden, a.intermediate, a.hidden // a.heads
    labels = [x for x in a.labels.split(",") if x]
    p = "roberta." if roberta else "bert."
    W = {}

    def normal(*shape):
        return rng.normal(0.0, a.std, shape).astype(np.float32)

    def norm(name):
        W[name + ".weight"] = (1.0 + rng.normal(0.0, 0.1, H)).astype(np.float32)
        W[name + ".bias"] = normal(H)

    def linear(name, n_in, n_out):
        W[name + ".weight"] = normal(n_out, n_in)
        W[name + ".bias"] = normal(n_out)

    W[p + "embeddings.word_embeddings.weight"] = normal(vocab, H)
    W[p + "embeddings.position_embeddings.weight"] = normal(max_positions, H)
    W[p + "embeddings.token_type_embeddings.weight"] = normal(1 if roberta else 2, H)
    norm(p + "embeddings.LayerNorm")
    for l in range(a.layers):
        q = "%sencoder.layer.%d." % (p, l)
        for m in ("query", "key", "value"):
            linear(q + "attention.self." + m, H, H)
        if positions != "absolute":
            W[q + "attention.self.distance_embedding.weight"] = normal(2 * max_positions - 1, d)
        linear(q + "attention.output.dense", H, H)
        norm(q + "attention.output.LayerNorm")
        linear(q + "intermediate.dense", H, I)
        linear(q + "output.dense", I, H)
        norm(q + "output.LayerNorm")
    if labels:
        if roberta:
            linear("classifier.dense", H, H)
            linear("classifier.out_proj", H, len(labels))
        else:
            linear(p + "pooler.dense", H, H)
            linear("classifier", H, len(labels))
    elif roberta:  # the masked-LM head: not used by a classifier, ignored by the import
        linear("lm_head.dense", H, H)
        norm("lm_head.layer_norm")
        W["lm_head.decoder.weight"] = W[p + "embeddings.word_embeddings.weight"]
        W["lm_head.bias"] = normal(vocab)
    else:
        linear(p + "pooler.dense", H, H)
        linear("cls.predictions.transform.dense", H, H)
        norm("cls.predictions.transform.LayerNorm")
        W["cls.predictions.bias"] = normal(vocab)
    write_safetensors(os.path.join(a.out, "model.safetensors"), W)

    family = {"roberta": "Roberta", "xlmr": "XLMRoberta"}.get(a.family, "Bert")
    config = {
        "architectures": [family + ("ForSequenceClassification" if labels else "ForMaskedLM")],
        "model_type": model_type,
        "vocab_size": vocab,
        "hidden_size": H,
        "num_hidden_layers": a.layers,
        "num_attention_heads": a.heads,
        "intermediate_size": I,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": max_positions,
        "type_vocab_size": 1 if roberta else 2,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-05 if roberta else 1e-12,
        # TwHIN-BERT's config.json says 0 although its XLM-R tokenizer pads with 1 (BERT only uses it
        # for the embedding row without gradient); the import must take the tokenizer's.
        "pad_token_id": 0 if a.family == "twhin" else pad,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "position_embedding_type": positions,
    }
    if labels:
        config["id2label"] = {str(i): x for i, x in enumerate(labels)}
        config["label2id"] = {x: i for i, x in enumerate(labels)}
    json.dump(config, open(os.path.join(a.out, "config.json"), "w"), indent=2)
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
                "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}
    cls = "RobertaTokenizer" if bpe else "XLMRobertaTokenizer"
    json.dump(dict(specials, tokenizer_class=cls, model_max_length=a.max_len),
              open(os.path.join(a.out, "tokenizer_config.json"), "w"), indent=2)
    json.dump(specials, open(os.path.join(a.out, "special_tokens_map.json"), "w"), indent=2)


if __name__ == "__main__":
    main()
