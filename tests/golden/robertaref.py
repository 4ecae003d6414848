"""Reference forward passes of RoBERTa-family encoders with Hugging Face semantics, in PyTorch.

What transformers' RobertaForSequenceClassification / RobertaModel compute (XLMRoberta* and Camembert*
are the same classes under other names), written out from modeling_roberta.py's structure, for the
engine's golden outputs and as the ONNX Runtime peer's graph (bench/roberta.sh). Not part of the engine.
It reuses ../shared/reference/hfref.py (BERT's reference) for the pieces RoBERTa shares with BERT: the
checkpoint reader, LayerNorm, Linear, the attention and the activations.

What differs from BERT:
  - position ids come from the token ids (create_position_ids_from_input_ids): padding_idx + 1 + i for
    the i-th non-padding token, padding_idx for padding tokens, padding_idx = config pad_token_id;
  - embeddings = (word + token_type[0]) + position, as RobertaEmbeddings adds them;
  - the head (RobertaClassificationHead) is out_proj(tanh(dense(h[:, 0]))) under classifier.dense and
    classifier.out_proj; RobertaModel's pooler is not used by anything here.

  /usr/bin/python3 tests/golden/robertaref.py MODEL_DIR IDS.jsonl OUT.jsonl [--embed]
      per line {"logits": [...]} or, with --embed, {"embedding": [...]} (mean over the sequence)
  /usr/bin/python3 tests/golden/robertaref.py --onnx MODEL_DIR OUT.onnx
      exports this forward to ONNX (opset 14; inputs input_ids int64 and attention_mask float32
      [batch, seq]; outputs logits when the model has a head, and last_hidden_state), as
      ../shared/reference/export_onnx.py does for BERT
ENGINE_SHARED (default ../shared from the repository root) locates hfref.py.
"""
import json, os, sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("ENGINE_SHARED", os.path.join(HERE, "..", "..", "..", "shared"))
sys.path.insert(0, os.path.join(SHARED, "reference"))
import hfref  # noqa: E402

MODEL_TYPES = ("roberta", "xlm-roberta", "camembert")


def position_ids(ids, padding_idx):
    """transformers' create_position_ids_from_input_ids (no past key values)."""
    mask = ids.ne(padding_idx).int()
    return (torch.cumsum(mask, dim=1).type_as(mask) * mask).long() + padding_idx


def roberta(sd, cfg, ids, mask):
    """Last hidden state [B, S, H] and logits [B, C] (None without a classification head)."""
    assert cfg["model_type"] in MODEL_TYPES, cfg["model_type"]
    assert cfg.get("position_embedding_type", "absolute") == "absolute", "only absolute positions"
    assert not cfg.get("is_decoder") and not cfg.get("add_cross_attention"), "only encoders"
    p = "roberta." if "roberta.embeddings.word_embeddings.weight" in sd else ""
    eps = cfg.get("layer_norm_eps", 1e-12)
    act = hfref.ACT[cfg.get("hidden_act", "gelu")]
    e = p + "embeddings."
    h = sd[e + "word_embeddings.weight"][ids] + sd[e + "token_type_embeddings.weight"][0][None, None]
    h = h + sd[e + "position_embeddings.weight"][position_ids(ids, cfg.get("pad_token_id", 1))]
    h = hfref.ln(h, sd[e + "LayerNorm.weight"], sd[e + "LayerNorm.bias"], eps)
    for i in range(cfg["num_hidden_layers"]):
        L = f"{p}encoder.layer.{i}."
        a = hfref.attention(h, mask, sd, L + "attention.self.query", L + "attention.self.key",
                            L + "attention.self.value", cfg["num_attention_heads"])
        h = hfref.ln(h + hfref.lin(a, sd, L + "attention.output.dense"),
                     sd[L + "attention.output.LayerNorm.weight"], sd[L + "attention.output.LayerNorm.bias"], eps)
        f = hfref.lin(act(hfref.lin(h, sd, L + "intermediate.dense")), sd, L + "output.dense")
        h = hfref.ln(h + f, sd[L + "output.LayerNorm.weight"], sd[L + "output.LayerNorm.bias"], eps)
    head = None
    if "classifier.out_proj.weight" in sd:
        head = hfref.lin(torch.tanh(hfref.lin(h[:, 0], sd, "classifier.dense")), sd, "classifier.out_proj")
    return h, head


def load(model_dir):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    sd = {k: v.float() for k, v in hfref.load_state(model_dir).items() if v.dtype.is_floating_point}
    return cfg, sd


def forward(model_dir, batch_ids):
    """One padded batch, as a pipeline runs it: padding with pad_token_id, attention mask 0 there.
    Returns logits (or None) and the mean of each sequence's last hidden state over its tokens."""
    cfg, sd = load(model_dir)
    pad = cfg.get("pad_token_id", 1)
    S = max(len(x) for x in batch_ids)
    ids = torch.full((len(batch_ids), S), pad, dtype=torch.long)
    mask = torch.zeros(len(batch_ids), S)
    for r, x in enumerate(batch_ids):
        ids[r, :len(x)] = torch.tensor(x)
        mask[r, :len(x)] = 1
    with torch.inference_mode():
        h, head = roberta(sd, cfg, ids, mask)
    mean = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    return h, head, mean


class Wrapped(torch.nn.Module):
    """The forward as a module for torch.onnx.export, weights as buffers."""

    def __init__(self, model_dir):
        super().__init__()
        self.cfg, sd = load(model_dir)
        self.names = []
        for i, (k, v) in enumerate(sd.items()):
            self.register_buffer(f"t{i}", v.contiguous())
            self.names.append((k, f"t{i}"))

    def forward(self, input_ids, attention_mask):
        h, head = roberta({k: getattr(self, b) for k, b in self.names}, self.cfg, input_ids, attention_mask)
        return (head, h) if head is not None else (h,)


def export_onnx(model_dir, out):
    m = Wrapped(model_dir).eval()
    ids, mask = torch.full((2, 16), 5, dtype=torch.long), torch.ones(2, 16)
    outs = ["logits", "last_hidden_state"] if "classifier.out_proj.weight" in dict(m.names) \
        else ["last_hidden_state"]
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
            "last_hidden_state": {0: "batch", 1: "seq"}, "logits": {0: "batch"}}
    torch.onnx.export(m, (ids, mask), out, input_names=["input_ids", "attention_mask"], output_names=outs,
                      dynamic_axes={k: v for k, v in axes.items() if k in outs or k.startswith(("input", "att"))},
                      opset_version=14)


def main(argv):
    if len(argv) == 3 and argv[0] == "--onnx":
        export_onnx(argv[1], argv[2])
        print("wrote", argv[2])
        return
    if len(argv) not in (3, 4) or (len(argv) == 4 and argv[3] != "--embed"):
        sys.exit(__doc__.split("\n\n")[3])
    model_dir, ids_path, out_path = argv[:3]
    rows = [json.loads(line) for line in open(ids_path)]
    with open(out_path, "w") as out:
        for i in range(0, len(rows), 64):
            _, head, mean = forward(model_dir, rows[i:i + 64])
            for r in range(len(rows[i:i + 64])):
                rec = {"embedding": mean[r].tolist()} if len(argv) == 4 else {"logits": head[r].tolist()}
                out.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
