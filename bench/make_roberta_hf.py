"""bench/make_roberta_hf.py: writes a RoBERTa-base-shaped Hugging Face RobertaForSequenceClassification folder
with seeded random weights, so that the engine (build/convert) and ONNX Runtime (tests/golden/robertaref.py
--onnx) can be timed on the same weights (bench/roberta.sh).

  /usr/bin/python3 bench/make_roberta_hf.py OUT_DIR

Shape: roberta-base's config: 12 layers, hidden 768, 12 heads, intermediate 3072, vocab 50265,
max_position_embeddings 514 with pad_token_id 1 (512 tokens), one token type, layer_norm_eps 1e-5, 2 labels.
Weights and biases are normal with std 0.02 (as transformers initialises RoBERTa; biases are drawn too so
a parity check exercises them), LayerNorm weight 1 and bias 0. No tokenizer files: the benchmark feeds token
ids. The folder holds about 500 MB of weights: write it under build/, never commit it.
"""
import json, os, sys

import torch

from make_minilm_hf import Seeded, save_safetensors   # bench/'s one seeded encoder and F32 writer

LAYERS, HIDDEN, HEADS, INTERMEDIATE = 12, 768, 12, 3072
VOCAB, POSITIONS, PAD, LABELS = 50265, 514, 1, 2
STD, SEED = 0.02, 4321


def state_dict():
    s = Seeded(SEED, STD, HIDDEN)
    s.encoder("roberta.", LAYERS, INTERMEDIATE, VOCAB, POSITIONS, 1)
    s.linear("classifier.dense", HIDDEN, HIDDEN)
    s.linear("classifier.out_proj", LABELS, HIDDEN)
    return s.sd


def config():
    return {
        "architectures": ["RobertaForSequenceClassification"],
        "model_type": "roberta",
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "intermediate_size": INTERMEDIATE,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": POSITIONS,
        "type_vocab_size": 1,
        "initializer_range": STD,
        "layer_norm_eps": 1e-5,
        "pad_token_id": PAD,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "position_embedding_type": "absolute",
        "classifier_dropout": None,
        "torch_dtype": "float32",
        "id2label": {str(i): f"LABEL_{i}" for i in range(LABELS)},
        "label2id": {f"LABEL_{i}": i for i in range(LABELS)},
        "_name_or_path": "roberta-base-random",
    }


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config(), f, indent=1)
    save_safetensors(state_dict(), os.path.join(out, "model.safetensors"))
    print("wrote", out)


if __name__ == "__main__":
    main()
