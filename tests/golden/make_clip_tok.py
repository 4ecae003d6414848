#!/usr/bin/env python3
"""tests/golden/tiny/clip-tok: tests/golden/tiny/clip (make_vit_clip.py) with
the clip-like tokenizer.json of tests/golden/tokjson (trained by the npm
tokenizers package, golden ids beside it) and a text vocabulary widened to
cover its ids: the token embedding repeats the tiny model's 64 rows, and
bos/eos are the tokenizer's <|startoftext|>/<|endoftext|>. Standard library
only (no PyTorch): the tests compare texts against their ids on this model,
so its weights need no reference of their own."""
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "tiny", "clip")
OUT = os.path.join(HERE, "tiny", "clip-tok")
TOK = os.path.join(HERE, "tokjson", "clip-like", "tokenizer.json")
EMB = "text_model.embeddings.token_embedding.weight"

tok = json.load(open(TOK))
vocab = len(tok["model"]["vocab"])
special = {t["content"]: t["id"] for t in tok["added_tokens"]}
vocab = max([vocab] + [i + 1 for i in special.values()])

raw = open(os.path.join(SRC, "model.safetensors"), "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head, data = json.loads(raw[8:8 + n]), raw[8 + n:]
rows, width = head[EMB]["shape"]
a, b = head[EMB]["data_offsets"]
row = width * 4
emb = b"".join(data[a + (i % rows) * row:a + (i % rows + 1) * row] for i in range(vocab))
out, blobs, at = {}, [], 0
for k in sorted(k for k in head if k != "__metadata__"):
    blob = emb if k == EMB else data[head[k]["data_offsets"][0]:head[k]["data_offsets"][1]]
    out[k] = dict(head[k], data_offsets=[at, at + len(blob)])
    if k == EMB:
        out[k]["shape"] = [vocab, width]
    blobs.append(blob)
    at += len(blob)
hj = json.dumps(out, separators=(",", ":")).encode()
hj += b" " * (-len(hj) % 8)

os.makedirs(OUT, exist_ok=True)
with open(os.path.join(OUT, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
cfg = json.load(open(os.path.join(SRC, "config.json")))
cfg["text_config"].update(vocab_size=vocab, bos_token_id=special["<|startoftext|>"],
                          eos_token_id=special["<|endoftext|>"])
json.dump(cfg, open(os.path.join(OUT, "config.json"), "w"), indent=1)
for name in ("preprocessor_config.json",):
    shutil.copy(os.path.join(SRC, name), OUT)
shutil.copy(TOK, OUT)
