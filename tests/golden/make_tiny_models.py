"""Makes tests/golden/tiny/: small Hugging Face model folders with seeded random
weights in the configurations the SST-2 models do not cover, and their reference
outputs from ../shared/reference/hfref.py (PyTorch, transformers' semantics).

    /usr/bin/python3 tests/golden/make_tiny_models.py [ENGINE_SHARED]

Needs Debian's python3-torch (../shared/reference/setup-peers.sh installs it).
The weights are this project's own random numbers, not third-party weights.
Every folder gets expected.jsonl: one {"ids": [...], "logits"|"embedding": [...]}
per line, for id sequences of awkward lengths (1, 2, 3, max_positions, ...).
"""
import collections, json, os, struct, sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "shared")
sys.path.insert(0, os.path.join(SHARED, "reference"))
import hfref  # noqa: E402

OUT = os.path.join(HERE, "tiny")

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [chr(c) for c in range(97, 123)] + \
        ["##" + chr(c) for c in range(97, 123)] + ["the", "movie", "good", "bad", "##ing", "##s"]


def rand(g, *shape, std=0.2):
    return torch.randn(*shape, generator=g) * std


def ln(g, prefix, n, legacy=False):
    w, b = ("gamma", "beta") if legacy else ("weight", "bias")
    return {f"{prefix}.{w}": 1.0 + rand(g, n, std=0.1), f"{prefix}.{b}": rand(g, n, std=0.1)}


def lin(g, prefix, n_in, n_out):
    return {prefix + ".weight": rand(g, n_out, n_in), prefix + ".bias": rand(g, n_out, std=0.1)}


def bert_state(g, cfg, prefix, legacy=False, head=True):
    H, F, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    p = prefix
    sd = {p + "embeddings.word_embeddings.weight": rand(g, V, H, std=0.5),
          p + "embeddings.position_embeddings.weight": rand(g, cfg["max_position_embeddings"], H, std=0.5),
          p + "embeddings.token_type_embeddings.weight": rand(g, cfg["type_vocab_size"], H, std=0.5),
          p + "embeddings.position_ids": torch.arange(cfg["max_position_embeddings"])[None]}
    sd.update(ln(g, p + "embeddings.LayerNorm", H, legacy))
    for i in range(cfg["num_hidden_layers"]):
        L = f"{p}encoder.layer.{i}."
        for name in ("query", "key", "value"):
            sd.update(lin(g, L + "attention.self." + name, H, H))
        sd.update(lin(g, L + "attention.output.dense", H, H))
        sd.update(ln(g, L + "attention.output.LayerNorm", H, legacy))
        sd.update(lin(g, L + "intermediate.dense", H, F))
        sd.update(lin(g, L + "output.dense", F, H))
        sd.update(ln(g, L + "output.LayerNorm", H, legacy))
    if head:
        sd.update(lin(g, p + "pooler.dense", H, H))
        sd.update(lin(g, "classifier", H, len(cfg["id2label"])))
    return sd


def distilbert_state(g, cfg):
    H, F, V = cfg["dim"], cfg["hidden_dim"], cfg["vocab_size"]
    sd = {"distilbert.embeddings.word_embeddings.weight": rand(g, V, H, std=0.5),
          "distilbert.embeddings.position_embeddings.weight": rand(g, cfg["max_position_embeddings"], H, std=0.5)}
    sd.update(ln(g, "distilbert.embeddings.LayerNorm", H))
    for i in range(cfg["n_layers"]):
        L = f"distilbert.transformer.layer.{i}."
        for name in ("q_lin", "k_lin", "v_lin", "out_lin"):
            sd.update(lin(g, L + "attention." + name, H, H))
        sd.update(ln(g, L + "sa_layer_norm", H))
        sd.update(lin(g, L + "ffn.lin1", H, F))
        sd.update(lin(g, L + "ffn.lin2", F, H))
        sd.update(ln(g, L + "output_layer_norm", H))
    sd.update(lin(g, "pre_classifier", H, H))
    sd.update(lin(g, "classifier", H, len(cfg["id2label"])))
    return sd


DT = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}


def save_safetensors(sd, path, dtype):
    header, blobs, off = {}, [], 0
    for k, v in sd.items():
        v = v.to(dtype) if v.dtype.is_floating_point else v
        raw = v.contiguous().view(torch.uint8).numpy().tobytes() if v.dtype == torch.bfloat16 \
            else v.contiguous().numpy().tobytes()
        header[k] = {"dtype": DT[v.dtype], "shape": list(v.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def write_folder(name, cfg, sd, fmt, extra_files=None):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=1)
    json.dump({"do_lower_case": True, "tokenizer_class": "BertTokenizer"},
              open(os.path.join(d, "tokenizer_config.json"), "w"))
    open(os.path.join(d, "vocab.txt"), "w").write("\n".join(VOCAB) + "\n")
    if fmt == "bin":
        torch.save(collections.OrderedDict(sd), os.path.join(d, "pytorch_model.bin"))
    else:
        save_safetensors(sd, os.path.join(d, "model.safetensors"), fmt)
    for rel, content in (extra_files or {}).items():
        os.makedirs(os.path.dirname(os.path.join(d, rel)) or d, exist_ok=True)
        json.dump(content, open(os.path.join(d, rel), "w"))
    return d


def id_sequences(g, max_pos, vocab):
    seqs = []
    for n in sorted({n for n in (1, 2, 3, 7, 16, 17, max_pos - 1, max_pos) if n <= max_pos}):
        body = torch.randint(5, vocab, (max(n - 2, 0),), generator=g).tolist()
        seqs.append(([2] + body + [3])[:n] if n >= 2 else [2])
    return seqs


def reference(d, seqs, cfg, mode):
    """hfref's forward on each sequence alone (reference semantics, no padding)."""
    rows = []
    sd = {k: v.float() for k, v in hfref.load_state(d).items()}
    fn = hfref.distilbert if cfg["model_type"] == "distilbert" else hfref.bert
    for ids in seqs:
        t = torch.tensor([ids])
        with torch.inference_mode():
            h, head = fn(sd, cfg, t, torch.ones(1, len(ids)))
        if mode == "logits":
            rows.append({"ids": ids, "logits": head[0].tolist()})
        elif mode == "mean":
            rows.append({"ids": ids, "embedding": h[0].mean(0).tolist()})
        else:  # cls pooling, L2-normalised (sentence-transformers Pooling + Normalize)
            e = h[0, 0]
            rows.append({"ids": ids, "embedding": (e / e.norm()).tolist()})
    return rows


def main():
    g = torch.Generator().manual_seed(20261124)
    V = len(VOCAB) + 3   # embedding rows beyond the vocabulary are allowed
    models = []

    cfg = {"architectures": ["BertForSequenceClassification"], "model_type": "bert", "vocab_size": V,
           "hidden_size": 48, "num_hidden_layers": 2, "num_attention_heads": 3, "intermediate_size": 80,
           "hidden_act": "gelu_new", "max_position_embeddings": 40, "type_vocab_size": 2,
           "layer_norm_eps": 1e-7, "position_embedding_type": "absolute",
           "id2label": {"0": "neg", "1": "neutral", "2": "pos"}}
    models.append(("bert-gelu-new-3labels", cfg, bert_state(g, cfg, "bert."), "F32", None, "logits"))

    cfg = {"architectures": ["BertForSequenceClassification"], "model_type": "bert", "vocab_size": V,
           "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
           "hidden_act": "gelu", "max_position_embeddings": 24, "type_vocab_size": 1,
           "layer_norm_eps": 1e-12, "id2label": {"0": "A", "1": "B"}}
    models.append(("bert-legacy-bf16", cfg, bert_state(g, cfg, "bert.", legacy=True), torch.bfloat16, None,
                   "logits"))

    cfg = {"architectures": ["DistilBertForSequenceClassification"], "model_type": "distilbert",
           "vocab_size": V, "dim": 40, "n_layers": 2, "n_heads": 5, "hidden_dim": 72, "activation": "relu",
           "max_position_embeddings": 33, "sinusoidal_pos_embds": False,
           "id2label": {"0": "NEGATIVE", "1": "POSITIVE"}}
    models.append(("distilbert-relu-bin", cfg, distilbert_state(g, cfg), "bin", None, "logits"))

    cfg = {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": V, "hidden_size": 32,
           "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 48, "hidden_act": "gelu",
           "max_position_embeddings": 20, "type_vocab_size": 2, "layer_norm_eps": 1e-12}
    st = {"modules.json": [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                           {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                           {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}],
          "1_Pooling/config.json": {"word_embedding_dimension": 32, "pooling_mode_cls_token": True,
                                    "pooling_mode_mean_tokens": False}}
    models.append(("st-encoder-cls-norm-f16", cfg, bert_state(g, cfg, "", head=False), torch.float16, st,
                   "cls_norm"))

    cfg = {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": V, "hidden_size": 24,
           "num_hidden_layers": 1, "num_attention_heads": 1, "intermediate_size": 40, "hidden_act": "relu",
           "max_position_embeddings": 12, "type_vocab_size": 2, "layer_norm_eps": 1e-5}
    models.append(("bert-encoder-mean-relu", cfg, bert_state(g, cfg, "", head=False), "F32", None, "mean"))

    for name, cfg, sd, fmt, extra, mode in models:
        if fmt == "F32":
            fmt = torch.float32
        d = write_folder(name, cfg, sd, fmt, extra)
        seqs = id_sequences(g, cfg["max_position_embeddings"], len(VOCAB))
        with open(os.path.join(d, "expected.jsonl"), "w") as f:
            for row in reference(d, seqs, cfg, mode):
                f.write(json.dumps(row) + "\n")
        print("wrote", d)


if __name__ == "__main__":
    main()
