#!/usr/bin/python3
"""An independent reference for exported models: BERT for sequence classification in float64
NumPy, written from the Hugging Face BertForSequenceClassification definition (post-LayerNorm
encoder, exact-erf GELU, tanh pooler on [CLS], linear classifier), reading only what `modtrain
export` writes: config.json and model.safetensors (parsed here by hand: 8-byte little-endian
header length, JSON header, raw little-endian tensors). Also the RoBERTa family as
RobertaForSequenceClassification defines it (model_type roberta / xlm-roberta: "roberta." names,
positions from padding_idx + 1, one token type, no pooler, the head dense -> tanh -> out_proj on
<s>), and position_embedding_type relative_key / relative_key_query (a distance embedding per
attention layer added to the scores, no absolute positions), as transformers' BertSelfAttention.

Usage: bert_numpy.py EXPORT_DIR IDS_JSONL [--mlm] > LOGITS_JSONL
IDS_JSONL: one JSON array of token ids per line ([CLS] ... [SEP], as `modtrain tokenize` prints).
Output: one JSON array of logits per line, in config.json's id2label order; with --mlm the masked-LM
head's logits at every position ([T][V] per line, BertForMaskedLM / RobertaForMaskedLM names).
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


def encode(ids, W, cfg):
    H, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    d = H // heads
    T = len(ids)
    roberta = cfg.get("model_type", "bert") in ("roberta", "xlm-roberta")
    relative = cfg.get("position_embedding_type", "absolute")
    p = "roberta." if roberta else "bert."
    first = cfg["pad_token_id"] + 1 if roberta else 0  # RoBERTa's positions start after padding_idx
    x = W[p + "embeddings.word_embeddings.weight"][ids] + W[p + "embeddings.token_type_embeddings.weight"][0]
    if relative == "absolute":
        x = x + W[p + "embeddings.position_embeddings.weight"][first:first + T]
    x = layer_norm(x, W[p + "embeddings.LayerNorm.weight"], W[p + "embeddings.LayerNorm.bias"], eps)
    lin = lambda v, name: v @ W[name + ".weight"].T + W[name + ".bias"]
    distance = np.arange(T)[:, None] - np.arange(T)[None, :]
    for l in range(cfg["num_hidden_layers"]):
        q = "%sencoder.layer.%d." % (p, l)
        Q = lin(x, q + "attention.self.query").reshape(T, heads, d).transpose(1, 0, 2)
        K = lin(x, q + "attention.self.key").reshape(T, heads, d).transpose(1, 0, 2)
        V = lin(x, q + "attention.self.value").reshape(T, heads, d).transpose(1, 0, 2)
        s = Q @ K.transpose(0, 2, 1)
        if relative in ("relative_key", "relative_key_query"):
            E = W[q + "attention.self.distance_embedding.weight"][distance + cfg["max_position_embeddings"] - 1]  # [T, T, d]
            s = s + np.einsum("hld,lrd->hlr", Q, E)
            if relative == "relative_key_query":
                s = s + np.einsum("hrd,lrd->hlr", K, E)
        s = s / math.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        a = (s / s.sum(-1, keepdims=True)) @ V
        a = a.transpose(1, 0, 2).reshape(T, H)
        x = layer_norm(lin(a, q + "attention.output.dense") + x, W[q + "attention.output.LayerNorm.weight"],
                       W[q + "attention.output.LayerNorm.bias"], eps)
        h = gelu(lin(x, q + "intermediate.dense"))
        x = layer_norm(lin(h, q + "output.dense") + x, W[q + "output.LayerNorm.weight"], W[q + "output.LayerNorm.bias"], eps)
    return x


def classify(ids, W, cfg):
    x = encode(ids, W, cfg)
    lin = lambda v, name: v @ W[name + ".weight"].T + W[name + ".bias"]
    if cfg.get("model_type", "bert") in ("roberta", "xlm-roberta"):
        return lin(np.tanh(lin(x[0], "classifier.dense")), "classifier.out_proj")
    pooled = np.tanh(lin(x[0], "bert.pooler.dense"))
    return lin(pooled, "classifier")


def masked_lm(ids, W, cfg):
    """BertForMaskedLM / RobertaForMaskedLM logits [T, V]: transform dense -> GELU -> LayerNorm ->
    decoder (its own weight when stored, else the word embedding it is tied to) + bias."""
    x = encode(ids, W, cfg)
    roberta = cfg.get("model_type", "bert") in ("roberta", "xlm-roberta")
    lin = lambda v, name: v @ W[name + ".weight"].T + W[name + ".bias"]
    if roberta:
        h, norm, head = lin(x, "lm_head.dense"), "lm_head.layer_norm", "lm_head"
    else:
        h, norm, head = lin(x, "cls.predictions.transform.dense"), "cls.predictions.transform.LayerNorm", "cls.predictions"
    h = layer_norm(gelu(h), W[norm + ".weight"], W[norm + ".bias"], cfg["layer_norm_eps"])
    decoder = W.get(head + ".decoder.weight", W[("roberta." if roberta else "bert.") + "embeddings.word_embeddings.weight"])
    bias = W[head + ".bias"] if head + ".bias" in W else W[head + ".decoder.bias"]
    return h @ decoder.T + bias


def main():
    mlm = "--mlm" in sys.argv
    export_dir, ids_path = [a for a in sys.argv[1:] if a != "--mlm"]
    cfg = json.load(open(export_dir + "/config.json"))
    assert cfg["hidden_act"] == "gelu"
    assert cfg.get("position_embedding_type", "absolute") in ("absolute", "relative_key", "relative_key_query")
    W = load_safetensors(export_dir + "/model.safetensors")
    for line in open(ids_path):
        if line.strip():
            print(json.dumps((masked_lm if mlm else classify)(json.loads(line), W, cfg).tolist()))


if __name__ == "__main__":
    main()
