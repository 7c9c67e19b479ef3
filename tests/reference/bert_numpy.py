#!/usr/bin/python3
"""An independent reference for exported models: BERT for sequence classification in float64
NumPy, written from the Hugging Face BertForSequenceClassification definition (post-LayerNorm
encoder, exact-erf GELU, tanh pooler on [CLS], linear classifier), reading only what `modtrain
export` writes: config.json and model.safetensors (parsed here by hand: 8-byte little-endian
header length, JSON header, raw little-endian tensors).

Usage: bert_numpy.py EXPORT_DIR IDS_JSONL > LOGITS_JSONL
IDS_JSONL: one JSON array of token ids per line ([CLS] ... [SEP], as `modtrain tokenize` prints).
Output: one JSON array of logits per line, in config.json's id2label order.
"""
import json
import math
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64}


def load_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    base = 8 + n
    tensors = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        begin, end = spec["data_offsets"]
        a = np.frombuffer(blob[base + begin:base + end], dtype=DTYPES[spec["dtype"]]).reshape(spec["shape"])
        tensors[name] = a.astype(np.float64)
    return tensors


_erf = np.vectorize(math.erf)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def classify(ids, W, cfg):
    H, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    d = H // heads
    T = len(ids)
    p = "bert."
    x = W[p + "embeddings.word_embeddings.weight"][ids] + W[p + "embeddings.position_embeddings.weight"][:T] + \
        W[p + "embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, W[p + "embeddings.LayerNorm.weight"], W[p + "embeddings.LayerNorm.bias"], eps)
    lin = lambda v, name: v @ W[name + ".weight"].T + W[name + ".bias"]
    for l in range(cfg["num_hidden_layers"]):
        q = "%sencoder.layer.%d." % (p, l)
        Q = lin(x, q + "attention.self.query").reshape(T, heads, d).transpose(1, 0, 2)
        K = lin(x, q + "attention.self.key").reshape(T, heads, d).transpose(1, 0, 2)
        V = lin(x, q + "attention.self.value").reshape(T, heads, d).transpose(1, 0, 2)
        s = Q @ K.transpose(0, 2, 1) / math.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        a = (s / s.sum(-1, keepdims=True)) @ V
        a = a.transpose(1, 0, 2).reshape(T, H)
        x = layer_norm(lin(a, q + "attention.output.dense") + x, W[q + "attention.output.LayerNorm.weight"],
                       W[q + "attention.output.LayerNorm.bias"], eps)
        h = gelu(lin(x, q + "intermediate.dense"))
        x = layer_norm(lin(h, q + "output.dense") + x, W[q + "output.LayerNorm.weight"], W[q + "output.LayerNorm.bias"], eps)
    pooled = np.tanh(lin(x[0], p + "pooler.dense"))
    return lin(pooled, "classifier")


def main():
    export_dir, ids_path = sys.argv[1], sys.argv[2]
    cfg = json.load(open(export_dir + "/config.json"))
    assert cfg["hidden_act"] == "gelu" and cfg.get("position_embedding_type", "absolute") == "absolute"
    W = load_safetensors(export_dir + "/model.safetensors")
    for line in open(ids_path):
        if line.strip():
            print(json.dumps(classify(json.loads(line), W, cfg).tolist()))


if __name__ == "__main__":
    main()
