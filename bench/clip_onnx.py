"""Exports a CLIPModel folder's vision tower (pixels -> image features) to ONNX,
with the forward pass of tests/golden/make_vit_clip.py (written from
transformers' modeling_clip.py), for bench/clip.sh's ONNX Runtime peer.

    /usr/bin/python3 bench/clip_onnx.py CLIP_DIR OUT.onnx

Input "pixels" float32 [batch, 3, S, S] (as bench/ort_image_bench.mjs feeds it),
output "image_embeds" [batch, projection_dim]. Opset 14, dynamic batch.
"""
import json, os, sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden"))
import make_vit_clip as ref  # noqa: E402
sys.path.insert(0, os.path.join(os.environ.get("ENGINE_SHARED", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")), "reference"))
import hfref  # noqa: E402


class Vision(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.cfg = json.load(open(os.path.join(d, "config.json")))
        self.names = []
        for i, (k, v) in enumerate(hfref.load_safetensors(os.path.join(d, "model.safetensors")).items()):
            if k.startswith(("vision_model.", "visual_projection")):
                self.register_buffer(f"t{i}", v.float().contiguous())
                self.names.append((k, f"t{i}"))

    def forward(self, pixels):
        return ref.clip_image({k: getattr(self, b) for k, b in self.names}, self.cfg, pixels)


if __name__ == "__main__":
    d, out = sys.argv[1:3]
    m = Vision(d).eval()
    S = m.cfg["vision_config"]["image_size"]
    torch.onnx.export(m, (torch.zeros(2, 3, S, S),), out, input_names=["pixels"],
                      output_names=["image_embeds"],
                      dynamic_axes={"pixels": {0: "batch"}, "image_embeds": {0: "batch"}},
                      opset_version=14)
    print("wrote", out)
