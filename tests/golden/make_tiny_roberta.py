"""Makes the RoBERTa-family folders of tests/golden/tiny/: small Hugging Face model folders (config.json and
model.safetensors or pytorch_model.bin, sentence-transformers modules where named) with seeded random
weights, and their reference outputs from tests/golden/robertaref.py (PyTorch, transformers' semantics).

    /usr/bin/python3 tests/golden/make_tiny_roberta.py

Needs Debian's python3-torch (../shared/reference/setup-peers.sh installs it) and ../shared/reference/hfref.py.
The weights are this project's own random numbers. The folders carry no tokenizer files: the engine runs
these models from token ids. Every folder gets expected.jsonl, one {"ids": [...], "logits"|"embedding": [...]}
per line, for id sequences of awkward lengths up to the longest the model takes, max_position_embeddings -
pad_token_id - 1 (positions start at pad_token_id + 1), computed as one padded batch (padding with
pad_token_id under attention mask 0, as a pipeline pads), so the padded rows' positions follow transformers too.
"""
import json, os

import torch

import make_tiny_models as tiny  # the BERT folders' generator: random tensors and the safetensors writer
import robertaref

OUT = tiny.OUT


def roberta_state(g, cfg, prefix, head, pooler):
    H, F, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    e = prefix + "embeddings."
    sd = {e + "word_embeddings.weight": tiny.rand(g, V, H, std=0.5),
          e + "position_embeddings.weight": tiny.rand(g, cfg["max_position_embeddings"], H, std=0.5),
          e + "token_type_embeddings.weight": tiny.rand(g, cfg["type_vocab_size"], H, std=0.5),
          e + "position_ids": torch.arange(cfg["max_position_embeddings"])[None]}
    sd.update(tiny.ln(g, e + "LayerNorm", H))
    for i in range(cfg["num_hidden_layers"]):
        L = f"{prefix}encoder.layer.{i}."
        for name in ("query", "key", "value"):
            sd.update(tiny.lin(g, L + "attention.self." + name, H, H))
        sd.update(tiny.lin(g, L + "attention.output.dense", H, H))
        sd.update(tiny.ln(g, L + "attention.output.LayerNorm", H))
        sd.update(tiny.lin(g, L + "intermediate.dense", H, F))
        sd.update(tiny.lin(g, L + "output.dense", F, H))
        sd.update(tiny.ln(g, L + "output.LayerNorm", H))
    if pooler:   # RobertaModel's pooler: in the checkpoint, used by nothing the engine computes
        sd.update(tiny.lin(g, prefix + "pooler.dense", H, H))
    if head:
        sd.update(tiny.lin(g, "classifier.dense", H, H))
        sd.update(tiny.lin(g, "classifier.out_proj", H, len(cfg["id2label"])))
    return sd


def write_folder(name, cfg, sd, fmt, extra_files):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=1)
    if fmt == "bin":
        torch.save(sd, os.path.join(d, "pytorch_model.bin"))
    else:
        tiny.save_safetensors(sd, os.path.join(d, "model.safetensors"), fmt)
    for rel, content in extra_files.items():
        os.makedirs(os.path.dirname(os.path.join(d, rel)) or d, exist_ok=True)
        json.dump(content, open(os.path.join(d, rel), "w"))
    return d


def id_sequences(g, cfg, bos, eos):
    """[bos] body [eos] of lengths 1 .. the longest the model takes; no id is the padding id."""
    pad, V = cfg["pad_token_id"], cfg["vocab_size"]
    longest = cfg["max_position_embeddings"] - pad - 1
    seqs = []
    for n in sorted({n for n in (1, 2, 3, 7, 16, 17, longest - 1, longest) if n <= longest}):
        body = [t if t != pad else pad + 1 for t in torch.randint(4, V, (max(n - 2, 0),), generator=g).tolist()]
        seqs.append(([bos] + body + [eos])[:n] if n >= 2 else [bos])
    return seqs


def st_modules(pooling, normalize, dim):
    mods = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        mods.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    return {"modules.json": mods,
            "1_Pooling/config.json": {"word_embedding_dimension": dim, "pooling_mode_cls_token": pooling == "cls",
                                      "pooling_mode_mean_tokens": pooling == "mean"}}


def main():
    g = torch.Generator().manual_seed(20261204)
    models = []

    # roberta-base's config keys, small: pad 1 so positions start at 2, one token type.
    cfg = {"architectures": ["RobertaForSequenceClassification"], "model_type": "roberta", "vocab_size": 61,
           "hidden_size": 48, "num_hidden_layers": 2, "num_attention_heads": 3, "intermediate_size": 80,
           "hidden_act": "gelu", "max_position_embeddings": 26, "type_vocab_size": 1, "layer_norm_eps": 1e-5,
           "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "position_embedding_type": "absolute",
           "classifier_dropout": None, "id2label": {"0": "negative", "1": "neutral", "2": "positive"}}
    models.append(("roberta-cls-3labels", cfg, roberta_state(g, cfg, "roberta.", True, False), torch.float32,
                   {}, "logits", (0, 2)))

    # XLM-R as a pytorch_model.bin (torch.save's zip), gelu_new, 2 labels without id2label.
    cfg = {"architectures": ["XLMRobertaForSequenceClassification"], "model_type": "xlm-roberta",
           "vocab_size": 70, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
           "intermediate_size": 64, "hidden_act": "gelu_new", "max_position_embeddings": 22,
           "type_vocab_size": 1, "layer_norm_eps": 1e-5, "pad_token_id": 1, "bos_token_id": 0,
           "eos_token_id": 2}
    sd = roberta_state(g, cfg, "roberta.", False, False)
    sd.update(tiny.lin(g, "classifier.dense", 32, 32))
    sd.update(tiny.lin(g, "classifier.out_proj", 32, 2))
    models.append(("xlmr-cls-bin", cfg, sd, "bin", {}, "logits", (0, 2)))

    # A multilingual-e5 style embedder: XLMRobertaModel (with its pooler) + mean pooling + Normalize, F16.
    cfg = {"architectures": ["XLMRobertaModel"], "model_type": "xlm-roberta", "vocab_size": 64,
           "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 48,
           "hidden_act": "gelu", "max_position_embeddings": 20, "type_vocab_size": 1, "layer_norm_eps": 1e-5,
           "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2}
    models.append(("xlmr-st-mean-norm-f16", cfg, roberta_state(g, cfg, "", False, True), torch.float16,
                   st_modules("mean", True, 32), "mean_norm", (0, 2)))

    # CamemBERT encoder with [CLS] pooling, BF16, and an unusual pad id (3: positions start at 4).
    cfg = {"architectures": ["CamembertModel"], "model_type": "camembert", "vocab_size": 50,
           "hidden_size": 24, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 40,
           "hidden_act": "relu", "max_position_embeddings": 24, "type_vocab_size": 1, "layer_norm_eps": 1e-5,
           "pad_token_id": 3, "bos_token_id": 5, "eos_token_id": 6}
    models.append(("camembert-st-cls-bf16", cfg, roberta_state(g, cfg, "roberta.", False, True), torch.bfloat16,
                   st_modules("cls", False, 24), "cls", (5, 6)))

    # For text input: embedding tables as large as tests/golden/tokjson's RoBERTa-like byte-level BPE (1761
    # ids) and XLM-R-like Unigram (902) tokenizers, which test_roberta puts beside them; 48 tokens, so the
    # longer texts are truncated. Their own generator, so the models above keep their numbers.
    t = torch.Generator().manual_seed(20261205)
    cfg = {"architectures": ["RobertaForSequenceClassification"], "model_type": "roberta", "vocab_size": 1761,
           "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
           "hidden_act": "gelu", "max_position_embeddings": 50, "type_vocab_size": 1, "layer_norm_eps": 1e-5,
           "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "id2label": {"0": "NEG", "1": "POS"}}
    models.append(("roberta-text-f16", cfg, roberta_state(t, cfg, "roberta.", True, False), torch.float16,
                   {}, "logits", (0, 2)))
    cfg = {"architectures": ["XLMRobertaModel"], "model_type": "xlm-roberta", "vocab_size": 902,
           "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
           "hidden_act": "gelu", "max_position_embeddings": 50, "type_vocab_size": 1, "layer_norm_eps": 1e-5,
           "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2}
    models.append(("xlmr-text-st-f16", cfg, roberta_state(t, cfg, "", False, True), torch.float16,
                   st_modules("mean", True, 16), "mean_norm", (0, 2)))

    for name, cfg, sd, fmt, extra, mode, (bos, eos) in models:
        d = write_folder(name, cfg, sd, fmt, extra)
        seqs = id_sequences(g, cfg, bos, eos)
        h, logits, mean = robertaref.forward(d, seqs)
        with open(os.path.join(d, "expected.jsonl"), "w") as f:
            for r, ids in enumerate(seqs):
                if mode == "logits":
                    row = {"ids": ids, "logits": logits[r].tolist()}
                elif mode == "mean_norm":
                    row = {"ids": ids, "embedding": (mean[r] / mean[r].norm()).tolist()}
                else:
                    row = {"ids": ids, "embedding": h[r, 0].tolist()}
                f.write(json.dumps(row) + "\n")
        print("wrote", d)


if __name__ == "__main__":
    main()
