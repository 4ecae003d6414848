#!/usr/bin/env python3
"""Writes tests/golden/torch_zip_checks.txt, the reference that
tests/test_torch_zip.c checks src_load_torch_zip() against.

It loads each checkpoint with PyTorch itself (torch.load) and records, for every
tensor of the state dict in file order: its dtype, shape, the float64 sum and
sum of absolute values of its elements, and the values at a few flat
(row-major) indices. Run from the repository root:

    ENGINE_SHARED=../shared /usr/bin/python3 tests/golden/make_torch_zip_golden.py
"""
import os
import sys

import torch

FILES = [
    "models/sst2-distilbert-mini/pytorch_model.bin",
    "models/resnet18-random/resnet18.pth",
]
DTYPES = {
    torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16", torch.float64: "f64",
    torch.int64: "i64", torch.int32: "i32", torch.int8: "i8", torch.uint8: "u8", torch.bool: "bool",
}


def main():
    shared = os.environ.get("ENGINE_SHARED", "../shared")
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_zip_checks.txt")
    lines = [
        "# Reference for tests/test_torch_zip.c, made by tests/golden/make_torch_zip_golden.py",
        "# with torch %s. Per file: 'file <path under ENGINE_SHARED> <tensor count>', then one" % torch.__version__,
        "# line per tensor: name dtype shape(- for a scalar) sum sumabs index:value ...",
    ]
    for rel in FILES:
        sd = torch.load(os.path.join(shared, rel), map_location="cpu")
        for wrapper in ("state_dict", "model"):
            if wrapper in sd and not any(torch.is_tensor(v) for v in sd.values()):
                sd = sd[wrapper]
        lines.append("file %s %d" % (rel, len(sd)))
        for name, t in sd.items():
            flat = t.reshape(-1).double()
            n = flat.numel()
            idx = sorted({0, n // 2, (n * 7) // 13, n - 1}) if n else []
            shape = ",".join(str(d) for d in t.shape) or "-"
            vals = " ".join("%d:%.9g" % (i, flat[i].item()) for i in idx)
            lines.append("%s %s %s %.17g %.17g %s" % (name, DTYPES[t.dtype], shape, flat.sum().item(),
                                                      flat.abs().sum().item(), vals))
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", out, file=sys.stderr)


if __name__ == "__main__":
    main()
