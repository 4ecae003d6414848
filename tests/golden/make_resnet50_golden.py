"""Makes tests/golden/resnet50-seed0.logits.jsonl, the ResNet-50 reference for tests/test_cnn.c.

    /usr/bin/python3 tests/golden/make_resnet50_golden.py [SHARED_DIR] [PTH_OUT]

SHARED_DIR defaults to ../shared; PTH_OUT (default /tmp/resnet50-seed0.pth) receives the checkpoint,
a seeded random ResNet-50 made by SHARED_DIR/reference/tvref.py (seed 0). The checkpoint is about
100 MB and is not committed: the C test converts it when ENGINE_RESNET50 names it and skips otherwise.
The logits come from torchvision with PIL preprocessing (tvref.PRE), for three sample images: two
colour photographs of different aspect ratios and the one grayscale JPEG.
"""
import json, os, subprocess, sys

shared = sys.argv[1] if len(sys.argv) > 1 else "../shared"
pth = sys.argv[2] if len(sys.argv) > 2 else "/tmp/resnet50-seed0.pth"
sys.path.insert(0, os.path.join(shared, "reference"))
import torch
from PIL import Image
import tvref

IMAGES = ["n01440764_tench.JPEG", "n03908714_pencil_sharpener.JPEG", "n01530575_brambling.JPEG"]

if not os.path.exists(pth):
    subprocess.check_call([sys.executable, os.path.join(shared, "reference", "tvref.py"),
                           "make-resnet", "resnet50", pth, "0"])
m = tvref.model("resnet50", pth)
out_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "resnet50-seed0.logits.jsonl")
with open(out_path, "w") as out, torch.inference_mode():
    for f in IMAGES:
        img = Image.open(os.path.join(shared, "data", "imagenet-sample", "images", f)).convert("RGB")
        logits = m(tvref.PRE(img)[None])[0].tolist()
        out.write(json.dumps({"file": f, "logits": [float("%.7g" % v) for v in logits]}) + "\n")
print("wrote", out_path)
