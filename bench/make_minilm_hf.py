"""bench/make_minilm_hf.py: writes a MiniLM-L6-shaped (or, with --shape bert-base, BERT-base-shaped) Hugging
Face BertForSequenceClassification folder with seeded random weights, so that the engine (build/convert) and
ONNX Runtime (the peers' export_onnx.py) can be timed on the same weights (bench/serve.sh, bench/int8.sh).

  /usr/bin/python3 bench/make_minilm_hf.py [--shape minilm-l6|bert-base] OUT_DIR [VOCAB_TXT]

Shape: 6 layers, hidden 384, 12 heads, intermediate 1536 (bert-base: 12 layers, hidden 768, 12 heads,
intermediate 3072), vocab 30522, 512 positions, 2 labels.
Weights and biases are normal with std 0.02 (as transformers initialises BERT; biases are drawn too so
that a parity check exercises them), LayerNorm weight 1 and bias 0. The vocabulary is copied from
VOCAB_TXT (default $ENGINE_SHARED/models/sst2-bert-mini/vocab.txt, bert-base-uncased's), so SST-2's
reference token ids are valid inputs. The folder holds weights: write it under build/, never commit it.
"""
import json, os, shutil, struct, sys
import torch

SHAPES = {"minilm-l6": (6, 384, 12, 1536), "bert-base": (12, 768, 12, 3072)}
LAYERS, HIDDEN, HEADS, INTERMEDIATE = SHAPES["minilm-l6"]
VOCAB, POSITIONS, LABELS = 30522, 512, 2
NAME = "minilm-l6"
STD, SEED = 0.02, 1234


class Seeded:
    """A state dict filled in transformers' naming from one seeded generator, in call order (so a script's
    weights stay the same as long as its calls do): normal(std) weights and biases, LayerNorms at 1 and 0."""

    def __init__(self, seed, std, hidden):
        self.g, self.std, self.hidden, self.sd = torch.Generator().manual_seed(seed), std, hidden, {}

    def normal(self, name, *shape):
        self.sd[name] = torch.randn(*shape, generator=self.g) * self.std

    def linear(self, prefix, n_out, n_in):
        self.normal(prefix + ".weight", n_out, n_in)
        self.normal(prefix + ".bias", n_out)

    def layer_norm(self, prefix):
        self.sd[prefix + ".weight"] = torch.ones(self.hidden)
        self.sd[prefix + ".bias"] = torch.zeros(self.hidden)

    def encoder(self, prefix, layers, intermediate, vocab, positions, type_vocab):
        """BERT's embeddings and post-LN layers under prefix ("bert.", "roberta.")."""
        H = self.hidden
        e = prefix + "embeddings."
        self.normal(e + "word_embeddings.weight", vocab, H)
        self.normal(e + "position_embeddings.weight", positions, H)
        self.normal(e + "token_type_embeddings.weight", type_vocab, H)
        self.layer_norm(e + "LayerNorm")
        for i in range(layers):
            L = f"{prefix}encoder.layer.{i}."
            for part in ("query", "key", "value"):
                self.linear(L + "attention.self." + part, H, H)
            self.linear(L + "attention.output.dense", H, H)
            self.layer_norm(L + "attention.output.LayerNorm")
            self.linear(L + "intermediate.dense", intermediate, H)
            self.linear(L + "output.dense", H, intermediate)
            self.layer_norm(L + "output.LayerNorm")


def state_dict():
    s = Seeded(SEED, STD, HIDDEN)
    s.encoder("bert.", LAYERS, INTERMEDIATE, VOCAB, POSITIONS, 2)
    s.linear("bert.pooler.dense", HIDDEN, HIDDEN)
    s.linear("classifier", LABELS, HIDDEN)
    return s.sd


def save_safetensors(sd, path):
    """F32 safetensors: 8-byte little-endian header length, the JSON header (padded with spaces to a
    multiple of 8 so the data stays aligned), then the raw little-endian data in header order."""
    header, blobs, off = {}, [], 0
    for name, t in sd.items():
        raw = t.float().contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def config():
    return {
        "architectures": ["BertForSequenceClassification"],
        "model_type": "bert",
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "intermediate_size": INTERMEDIATE,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": POSITIONS,
        "type_vocab_size": 2,
        "initializer_range": STD,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "classifier_dropout": None,
        "torch_dtype": "float32",
        "id2label": {str(i): f"LABEL_{i}" for i in range(LABELS)},
        "label2id": {f"LABEL_{i}": i for i in range(LABELS)},
        "_name_or_path": NAME + "-random",
    }


def main():
    global LAYERS, HIDDEN, HEADS, INTERMEDIATE, NAME
    args = sys.argv[1:]
    if len(args) >= 2 and args[0] == "--shape" and args[1] in SHAPES:
        NAME = args[1]
        LAYERS, HIDDEN, HEADS, INTERMEDIATE = SHAPES[NAME]
        args = args[2:]
    if len(args) not in (1, 2):
        sys.exit(__doc__.split("\n\n")[1])
    out = args[0]
    shared = os.environ.get("ENGINE_SHARED", "../shared")
    vocab = args[1] if len(args) == 2 else os.path.join(shared, "models/sst2-bert-mini/vocab.txt")
    with open(vocab, encoding="utf-8") as f:
        n_vocab = sum(1 for _ in f)
    if n_vocab != VOCAB:
        sys.exit(f"{vocab} has {n_vocab} tokens; the {NAME} shape needs {VOCAB}")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config(), f, indent=1)
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "model_max_length": POSITIONS, "tokenizer_class": "BertTokenizer",
                   "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]",
                   "mask_token": "[MASK]"}, f, indent=1)
    shutil.copyfile(vocab, os.path.join(out, "vocab.txt"))
    save_safetensors(state_dict(), os.path.join(out, "model.safetensors"))
    print("wrote", out)


if __name__ == "__main__":
    main()
