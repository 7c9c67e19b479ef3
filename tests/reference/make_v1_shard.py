#!/usr/bin/env python3
"""Writes tests/data/shards/v1-hate-spam.bin: a prepared shard in format version 1 (before soft
labels, subgroups and slices), laid out from docs/data-format.md by this script and not by modtrain,
so that the test proves modtrain still reads shards an older modtrain wrote.

Three records (token ids, labels hate/spam with 0, 1 and 255 = not annotated, source lines):
  [2, 5, 3]     [1, 0]    line 1
  [2, 6, 7, 3]  [0, 255]  line 2
  [2, 3]        [1, 1]    line 4
vocab fingerprint 0x0123456789abcdef, labels fingerprint FNV-1a of "multi_label:hate\\x1fspam",
max_len 8, 2-byte tokens.
"""
import os
import struct

M = (1 << 64) - 1


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & M
    return h


def checksum(body: bytes) -> int:
    h = 0x9E3779B97F4A7C15 ^ len(body)
    assert len(body) % 8 == 0
    for i in range(0, len(body), 8):
        (w,) = struct.unpack_from("<Q", body, i)
        h ^= (w * 0xC2B2AE3D27D4EB4F) & M
        h = ((((h << 31) | (h >> 33)) & M) * 0x9E3779B97F4A7C15) & M
    return h ^ (h >> 29)


def pad8(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 8)


records = [([2, 5, 3], [1, 0], 1), ([2, 6, 7, 3], [0, 255], 2), ([2, 3], [1, 1], 4)]
offsets, tokens = [0], []
for ids, _, _ in records:
    tokens += ids
    offsets.append(len(tokens))
body = struct.pack(f"<{len(offsets)}Q", *offsets)
body += struct.pack(f"<{len(records)}Q", *[r[2] for r in records])
body += pad8(struct.pack(f"<{len(tokens)}H", *tokens))
body += pad8(bytes(v for r in records for v in r[1]))
header = b"MTSHARD\0" + struct.pack(
    "<IIQQIIQQQ", 1, 2, len(records), len(tokens), 2, 8, 0x0123456789ABCDEF,
    fnv1a64(b"multi_label:hate\x1fspam"), checksum(body))
assert len(header) == 64
out = os.path.join(os.path.dirname(__file__), "..", "data", "shards", "v1-hate-spam.bin")
with open(out, "wb") as f:
    f.write(header + body)
print(out, len(header + body), "bytes")
