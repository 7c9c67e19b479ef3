#!/usr/bin/python3
"""The serving peer of scripts/bench_serve.sh: the same model in PyTorch eager behind FastAPI +
uvicorn (Debian's python3-fastapi, python3-uvicorn, python3-torch), with the same route and JSON as
`modtrain serve`'s POST /v1/moderate. It defines its own BERT (the Hugging Face layout: word +
position + type embeddings, post-LayerNorm layers, GELU, tanh pooler, linear classifier), loads the
model directory's model.safetensors itself (no safetensors package in Debian 12: the format is an
8-byte header length, a JSON header and raw little-endian tensors), and tokenizes as the model
directory says: lower-casing, the tweet normalisation (URLs -> "http", @mentions -> "@user",
character references, whitespace) and WordPiece over vocab.txt. Each request's posts are one padded
batch (a request of one post: a batch of one); scores are sigmoid(logit / T) with the model's
temperatures, flagged at its thresholds. `--check FILE` prints its scores for FILE's posts (JSONL)
instead of serving, to compare with `modtrain predict`.
`--time FILE` prints the per-post cost of scoring alone and of the forward pass alone, batch 1, no HTTP.
`--onednn` converts the model with torch.utils.mkldnn.to_mkldnn (PyTorch's CPU inference path for
nn.Linear through oneDNN, as modtrain's inference uses oneDNN's GEMM).
Usage: serve_fastapi.py --model DIR [--port P] [--threads T] [--onednn] [--check POSTS.jsonl | --time POSTS.jsonl]
"""
import argparse
import html
import json
import math
import os
import re
import struct
import sys
import unicodedata


def load_safetensors(path, torch):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    body = memoryview(data)[8 + n:]
    types = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(body[begin:end]), dtype=types[info["dtype"]]) if end > begin else torch.empty(0)
        out[name] = t.reshape(info["shape"]).float()
    return out


class WordPiece:
    """BERT's basic tokenizer (lower-case, accents stripped, punctuation split) and greedy
    longest-match WordPiece, with the tweet normalisation in front when the model was trained with it."""

    def __init__(self, vocab_path, lowercase, tweets, max_len):
        self.vocab = {}
        with open(vocab_path, encoding="utf-8") as f:
            for i, line in enumerate(f):
                self.vocab[line.rstrip("\n")] = i
        self.lowercase, self.tweets, self.max_len = lowercase, tweets, max_len
        self.unk, self.cls, self.sep = self.vocab["[UNK]"], self.vocab["[CLS]"], self.vocab["[SEP]"]

    @staticmethod
    def normalize_tweet(text):
        text = html.unescape(text)
        text = re.sub(r"https?://\S+|www\.\S+", "http", text)
        text = re.sub(r"@\w+", "@user", text)
        return " ".join(text.split())

    def words(self, text):
        if self.lowercase:
            text = unicodedata.normalize("NFD", text.lower())
            text = "".join(c for c in text if unicodedata.category(c) != "Mn")
        out, word = [], ""
        for c in text:
            cat = unicodedata.category(c)
            if c.isspace():
                if word:
                    out.append(word)
                word = ""
            elif cat.startswith("P") or (33 <= ord(c) <= 47) or (58 <= ord(c) <= 64) or (91 <= ord(c) <= 96) or (
                    123 <= ord(c) <= 126):
                if word:
                    out.append(word)
                out.append(c)
                word = ""
            else:
                word += c
        if word:
            out.append(word)
        return out

    def encode(self, text):
        if self.tweets:
            text = self.normalize_tweet(text)
        ids = [self.cls]
        for w in self.words(text):
            start, pieces = 0, []
            while start < len(w):
                end, piece = len(w), None
                while end > start:
                    sub = ("##" if start else "") + w[start:end]
                    if sub in self.vocab:
                        piece = self.vocab[sub]
                        break
                    end -= 1
                if piece is None:
                    pieces = [self.unk]
                    break
                pieces.append(piece)
                start = end
            ids.extend(pieces)
            if len(ids) >= self.max_len - 1:
                break
        return ids[:self.max_len - 1] + [self.sep]


def build(model_dir, threads, onednn=False):
    import torch
    import torch.nn as nn
    torch.set_num_threads(threads)
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    meta = json.load(open(os.path.join(model_dir, "modtrain.json")))
    H, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg.get("layer_norm_eps", 1e-12)

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k, self.v, self.o = (nn.Linear(H, H) for _ in range(4))
            self.ln1 = nn.LayerNorm(H, eps=eps)
            self.up, self.down = nn.Linear(H, cfg["intermediate_size"]), nn.Linear(cfg["intermediate_size"], H)
            self.ln2 = nn.LayerNorm(H, eps=eps)

        def forward(self, x, bias):
            B, S, _ = x.shape
            split = lambda t: t.view(B, S, heads, H // heads).transpose(1, 2)
            a = torch.softmax(split(self.q(x)) @ split(self.k(x)).transpose(-1, -2) / math.sqrt(H // heads) + bias, -1)
            x = self.ln1(x + self.o((a @ split(self.v(x))).transpose(1, 2).reshape(B, S, H)))
            return self.ln2(x + self.down(nn.functional.gelu(self.up(x))))

    class Bert(nn.Module):
        def __init__(self):
            super().__init__()
            self.word = nn.Embedding(cfg["vocab_size"], H)
            self.pos = nn.Embedding(cfg["max_position_embeddings"], H)
            self.typ = nn.Embedding(cfg.get("type_vocab_size", 2), H)
            self.ln = nn.LayerNorm(H, eps=eps)
            self.layers = nn.ModuleList(Layer() for _ in range(cfg["num_hidden_layers"]))
            self.pool = nn.Linear(H, H)
            self.cls = nn.Linear(H, len(meta["labels"]))

        def forward(self, ids, mask):
            S = ids.shape[1]
            x = self.ln(self.word(ids) + self.pos.weight[:S] + self.typ.weight[0])
            bias = (1.0 - mask[:, None, None, :].float()) * -1e9
            for layer in self.layers:
                x = layer(x, bias)
            return self.cls(torch.tanh(self.pool(x[:, 0])))

    model = Bert().eval()
    w = load_safetensors(os.path.join(model_dir, "model.safetensors"), torch)
    names = {"word.weight": "bert.embeddings.word_embeddings.weight", "pos.weight": "bert.embeddings.position_embeddings.weight",
             "typ.weight": "bert.embeddings.token_type_embeddings.weight", "ln.weight": "bert.embeddings.LayerNorm.weight",
             "ln.bias": "bert.embeddings.LayerNorm.bias", "pool.weight": "bert.pooler.dense.weight",
             "pool.bias": "bert.pooler.dense.bias", "cls.weight": "classifier.weight", "cls.bias": "classifier.bias"}
    parts = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "o": "attention.output.dense", "ln1": "attention.output.LayerNorm", "up": "intermediate.dense",
             "down": "output.dense", "ln2": "output.LayerNorm"}
    for i in range(cfg["num_hidden_layers"]):
        for short, long in parts.items():
            for p in ("weight", "bias"):
                names[f"layers.{i}.{short}.{p}"] = f"bert.encoder.layer.{i}.{long}.{p}"
    state = {mine: w[theirs] for mine, theirs in names.items()}
    model.load_state_dict(state, strict=True)
    if onednn:  # PyTorch's own CPU inference conversion: nn.Linear -> MkldnnLinear (oneDNN's GEMM)
        import torch.utils.mkldnn
        model = torch.utils.mkldnn.to_mkldnn(model)
    vocab = os.path.join(model_dir, "vocab.txt")
    tok = WordPiece(vocab, meta.get("lowercase", True), meta.get("normalize_tweets", True), meta.get("max_len", 128))
    temps = meta.get("temperatures") or [1.0] * len(meta["labels"])
    return torch, model, tok, meta, torch.tensor(temps)


def scorer(torch, model, tok, meta, temps):
    labels, thresholds = meta["labels"], meta["thresholds"]

    def score(texts):
        enc = [tok.encode(t) for t in texts]
        S = max(len(e) for e in enc)
        ids = torch.zeros(len(enc), S, dtype=torch.long)
        mask = torch.zeros(len(enc), S, dtype=torch.long)
        for i, e in enumerate(enc):
            ids[i, :len(e)] = torch.tensor(e)
            mask[i, :len(e)] = 1
        with torch.inference_mode():
            p = torch.sigmoid(model(ids, mask) / temps).tolist()
        return [{"scores": dict(zip(labels, row)), "flagged": [l for l, s, t in zip(labels, row, thresholds) if s >= t]}
                for row in p]

    return score


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--port", type=int, default=8081)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--onednn", action="store_true", help="torch.utils.mkldnn.to_mkldnn(model): the linear layers in oneDNN")
    ap.add_argument("--check")
    ap.add_argument("--time", help="POSTS.jsonl: print the per-post cost of score() and of the forward pass alone "
                                   "at batch 1, no HTTP (JSON), instead of serving")
    a = ap.parse_args()
    torch, model, tok, meta, temps = build(a.model, a.threads, a.onednn)
    score = scorer(torch, model, tok, meta, temps)
    if a.check:
        for line in open(a.check):
            post = json.loads(line)
            print(json.dumps({"id": post.get("id"), **score([post["text"]])[0]}))
        return
    if a.time:
        import time
        texts = [json.loads(line)["text"] for line in open(a.time)]
        for t in texts[:50]:
            score([t])
        start = time.perf_counter()
        for t in texts:
            score([t])
        scored = (time.perf_counter() - start) / len(texts)
        encoded = [tok.encode(t) for t in texts]
        with torch.inference_mode():
            start = time.perf_counter()
            for e in encoded:
                ids = torch.tensor([e])
                model(ids, torch.ones_like(ids))
            forward = (time.perf_counter() - start) / len(texts)
        print(json.dumps({"posts": len(texts), "score_ms_per_post": scored * 1e3, "forward_ms_per_post": forward * 1e3}))
        return
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/v1/moderate")
    def moderate(body: dict):  # a plain def: FastAPI runs it on its thread pool; torch releases the GIL
        posts = body["posts"]
        results = score([p["text"] for p in posts])
        return {"labels": meta["labels"],
                "results": [{"id": p.get("id"), **r} for p, r in zip(posts, results)]}

    @app.get("/health")
    def health():
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=a.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
