#!/usr/bin/env python3
"""make_hf_transformers_golden.py: golden outputs from the real Hugging Face
`transformers` package (not ../shared/reference/hfref.py), for checking the
engine, CPU or CUDA, end to end: tokenizer plus model.

For each configuration below it builds a small randomly initialised
BertForSequenceClassification / DistilBertForSequenceClassification (seeded),
saves it with save_pretrained (safetensors) beside a WordPiece vocabulary made
from the texts, tokenizes hard texts with transformers' BertTokenizer (accents,
CJK, punctuation, unknown words, a text longer than the position limit) and
writes, per model, tests/golden/hf/<name>/ with the HF folder and
expected.jsonl: one {"text", "ids", "logits"} object a line, fp32 on the CPU.

Run from the repository root on a machine with torch and transformers:
    python3 tests/golden/make_hf_transformers_golden.py
"""
import json
import os

import torch
import transformers

OUT = "tests/golden/hf"
TEXTS = [
    "a charming and often affecting journey .",
    "Unflinchingly BLEAK and desperate!",
    "Café crème, naïve résumé — déjà vu?",
    "東京で映画を見た。 It was 很好.",
    "don't won't can't shouldn't've",
    "xylophonic zqxv unknownword",
    "",
    " ".join(["long"] * 200),  # past the 64-position limit: truncated
]
CONFIGS = {
    "bert-gelu-3labels": (transformers.BertConfig, transformers.BertForSequenceClassification,
                          dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
                               intermediate_size=80, hidden_act="gelu", num_labels=3)),
    "distilbert-2labels": (transformers.DistilBertConfig,
                           transformers.DistilBertForSequenceClassification,
                           dict(dim=32, n_layers=2, n_heads=4, hidden_dim=64, num_labels=2)),
}


def make_vocab(path):
    """[PAD] [UNK] [CLS] [SEP] [MASK], then the basic-tokenized words of the
    texts and their '##' suffix pieces, so WordPiece has real work to do."""
    basic = transformers.models.bert.tokenization_bert.BasicTokenizer(do_lower_case=True)
    words = sorted({w for t in TEXTS for w in basic.tokenize(t)})
    pieces = sorted({"##" + w[i:] for w in words for i in range(1, len(w)) if len(w) > 3})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words[::2] + pieces[::3]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    return len(vocab)


def main():
    torch.manual_seed(0)
    for name, (config_cls, model_cls, kw) in CONFIGS.items():
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        n_vocab = make_vocab(os.path.join(d, "vocab.txt"))
        tok = transformers.BertTokenizer(os.path.join(d, "vocab.txt"), do_lower_case=True)
        tok.save_pretrained(d)
        cfg = config_cls(vocab_size=n_vocab, max_position_embeddings=64, **kw)
        model = model_cls(cfg).eval()
        model.save_pretrained(d, safe_serialization=True)
        with open(os.path.join(d, "expected.jsonl"), "w") as f, torch.no_grad():
            for text in TEXTS:
                enc = tok(text, truncation=True, max_length=64, return_tensors="pt")
                logits = model(input_ids=enc["input_ids"]).logits[0]
                f.write(json.dumps({"text": text, "ids": enc["input_ids"][0].tolist(),
                                    "logits": logits.tolist()}, ensure_ascii=False) + "\n")
        print(f"{d}: {len(TEXTS)} texts, transformers {transformers.__version__}")


if __name__ == "__main__":
    main()
