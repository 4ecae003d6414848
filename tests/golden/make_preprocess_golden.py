"""Makes tests/golden/preprocess.jsonl, torchvision's preprocessing of four sample images, for
tests/test_image.c:

    /usr/bin/python3 tests/golden/make_preprocess_golden.py [SHARED_DIR]

Each line: the file, the float64 sum of the 3x224x224 tensor, and 97 sampled [index, value] pairs
(index into the flattened CHW tensor, value as float32 printed exactly). The recipe is tvref.PRE:
Resize(256) with PIL's bilinear filter, CenterCrop(224), ToTensor, ImageNet Normalize.
"""
import json, os, sys

shared = sys.argv[1] if len(sys.argv) > 1 else "../shared"
sys.path.insert(0, os.path.join(shared, "reference"))
from PIL import Image
import tvref

IMAGES = ["n01440764_tench.JPEG", "n03908714_pencil_sharpener.JPEG", "n01530575_brambling.JPEG",
          "n01820546_lorikeet.JPEG"]
out_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "preprocess.jsonl")
with open(out_path, "w") as out:
    for f in IMAGES:
        img = Image.open(os.path.join(shared, "data", "imagenet-sample", "images", f)).convert("RGB")
        x = tvref.PRE(img).flatten()
        idx = list(range(0, x.numel(), 1553))
        out.write(json.dumps({"file": f, "size": list(img.size), "sum": float(x.double().sum()),
                              "samples": [[i, float("%.9g" % float(x[i]))] for i in idx]}) + "\n")
print("wrote", out_path)
