"""Makes tests/golden/tiny/{vit-cls,vit-pool,clip}: small Hugging Face ViT and CLIP
folders (config.json, model.safetensors, preprocessor_config.json) with seeded
random weights, and their reference outputs, and (with --bench DIR) the
ViT-B/32-shaped CLIP of bench/clip.sh.

    /usr/bin/python3 tests/golden/make_vit_clip.py [ENGINE_SHARED]
    /usr/bin/python3 tests/golden/make_vit_clip.py --bench OUT_DIR

The forward passes are written from transformers' modeling_vit.py
(ViTEmbeddings, ViTLayer: layernorm_before / attention / layernorm_after / MLP,
ViTModel's final layernorm and pooler, ViTForImageClassification's classifier
on token 0) and modeling_clip.py (CLIPVisionEmbeddings, pre_layrnorm,
CLIPEncoderLayer, post_layernorm on token 0, visual_projection; the text
tower's causal mask, final_layer_norm, pooling at the end-of-text token:
argmax of the ids when eos_token_id == 2, else the first position of
eos_token_id; text_projection; logit_scale.exp() x cosine). The preprocessing
is that of ViTImageProcessor / CLIPImageProcessor on Pillow: PIL resize with
the config's resample (reducing_gap None), CLIP's shortest-edge size and
centre crop at floor((size - crop) / 2), rescale in float64 then float32,
normalize in float32. Needs Debian's python3-torch and python3-pil.

Each tiny folder gets expected.json (image names, outputs) and pixels.f32 (the
preprocessed images, float32 [n][3][S][S]) for tests/test_vit.c.
"""
import json, math, os, struct, sys

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "tiny")
IMAGES = ["n01440764_tench.JPEG", "n01820546_lorikeet.JPEG", "n03240683_drilling_platform.JPEG",
          "n12768682_buckeye.JPEG"]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def rand(g, *shape, std=0.2):
    return torch.randn(*shape, generator=g) * std


def save_safetensors(sd, path):
    header, blobs, off = {}, [], 0
    for k, v in sd.items():
        raw = v.float().contiguous().numpy().tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


# ---- preprocessing (transformers' image_transforms on Pillow) -----------------

def preprocess(path, pp):
    im = Image.open(path).convert("RGB")
    size, resample = pp["size"], pp.get("resample", 2)
    if "shortest_edge" in size:
        w, h = im.size
        s = size["shortest_edge"]
        short, long = (w, h) if w <= h else (h, w)
        nl = int(s * long / short)
        nw, nh = (s, nl) if w <= h else (nl, s)
    else:
        nw, nh = size["width"], size["height"]
    a = np.array(im.resize((nw, nh), resample=resample, reducing_gap=None))
    if pp.get("do_center_crop"):
        ch, cw = pp["crop_size"]["height"], pp["crop_size"]["width"]
        top, left = (a.shape[0] - ch) // 2, (a.shape[1] - cw) // 2
        a = a[top:top + ch, left:left + cw]
    a = (a.astype(np.float64) * pp.get("rescale_factor", 1 / 255)).astype(np.float32)
    mean = np.array(pp["image_mean"], dtype=np.float32)
    std = np.array(pp["image_std"], dtype=np.float32)
    a = (a - mean) / std
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


# ---- forward passes --------------------------------------------------------

def ln(x, sd, p, eps):
    w = sd[p + ".weight"]   # its width as a constant, so the ONNX export (bench/clip_onnx.py) traces
    return torch.nn.functional.layer_norm(x, (int(w.shape[0]),), w, sd[p + ".bias"], eps)


def lin(x, sd, p):
    return torch.nn.functional.linear(x, sd[p + ".weight"], sd.get(p + ".bias"))


ACT = {"gelu": torch.nn.functional.gelu, "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x)}


def attention(x, sd, q, k, v, o, heads, mask=None):
    B, S, H = x.shape
    d = H // heads
    split = lambda t: t.view(B, S, heads, d).transpose(1, 2)
    Q, K, V = split(lin(x, sd, q)), split(lin(x, sd, k)), split(lin(x, sd, v))
    s = (Q * d ** -0.5) @ K.transpose(-1, -2)
    if mask is not None:
        s = s + mask
    a = torch.softmax(s, dim=-1) @ V
    return lin(a.transpose(1, 2).reshape(B, S, H), sd, o)


def vit(sd, cfg, px, p):
    """ViTModel: (last_hidden_state, pooler_output or None)."""
    H = cfg["hidden_size"]
    x = torch.nn.functional.conv2d(px, sd[p + "embeddings.patch_embeddings.projection.weight"],
                                   sd[p + "embeddings.patch_embeddings.projection.bias"],
                                   stride=cfg["patch_size"]).flatten(2).transpose(1, 2)
    x = torch.cat([sd[p + "embeddings.cls_token"].expand(x.shape[0], 1, H), x], 1)
    x = x + sd[p + "embeddings.position_embeddings"]
    eps, act = cfg["layer_norm_eps"], ACT[cfg["hidden_act"]]
    for i in range(cfg["num_hidden_layers"]):
        L = f"{p}encoder.layer.{i}."
        A = L + "attention."
        x = x + attention(ln(x, sd, L + "layernorm_before", eps), sd, A + "attention.query",
                          A + "attention.key", A + "attention.value", A + "output.dense",
                          cfg["num_attention_heads"])
        x = x + lin(act(lin(ln(x, sd, L + "layernorm_after", eps), sd, L + "intermediate.dense")),
                    sd, L + "output.dense")
    x = ln(x, sd, p + "layernorm", eps)
    pooled = torch.tanh(lin(x[:, 0], sd, p + "pooler.dense")) if p + "pooler.dense.weight" in sd \
        else None
    return x, pooled


def clip_encoder(x, sd, p, c, mask=None):
    act, eps = ACT[c["hidden_act"]], c["layer_norm_eps"]
    for i in range(c["num_hidden_layers"]):
        L = f"{p}encoder.layers.{i}."
        a = L + "self_attn."
        x = x + attention(ln(x, sd, L + "layer_norm1", eps), sd, a + "q_proj", a + "k_proj",
                          a + "v_proj", a + "out_proj", c["num_attention_heads"], mask)
        x = x + lin(act(lin(ln(x, sd, L + "layer_norm2", eps), sd, L + "mlp.fc1")), sd, L + "mlp.fc2")
    return x


def clip_image(sd, cfg, px):
    c, p = cfg["vision_config"], "vision_model."
    x = torch.nn.functional.conv2d(px, sd[p + "embeddings.patch_embedding.weight"],
                                   stride=c["patch_size"]).flatten(2).transpose(1, 2)
    x = torch.cat([sd[p + "embeddings.class_embedding"].expand(x.shape[0], 1, -1), x], 1)
    x = x + sd[p + "embeddings.position_embedding.weight"][: x.shape[1]]
    x = ln(x, sd, p + "pre_layrnorm", c["layer_norm_eps"])
    x = clip_encoder(x, sd, p, c)
    pooled = ln(x[:, 0], sd, p + "post_layernorm", c["layer_norm_eps"])
    return lin(pooled, sd, "visual_projection")


def clip_text(sd, cfg, ids):
    c, p = cfg["text_config"], "text_model."
    ids = torch.tensor(ids)[None]
    S = ids.shape[1]
    x = sd[p + "embeddings.token_embedding.weight"][ids] + \
        sd[p + "embeddings.position_embedding.weight"][:S]
    mask = torch.full((S, S), torch.finfo(torch.float32).min).triu(1)
    x = clip_encoder(x, sd, p, c, mask)
    x = ln(x, sd, p + "final_layer_norm", c["layer_norm_eps"])
    eos = c["eos_token_id"]
    pos = ids.to(torch.int).argmax(-1) if eos == 2 else (ids.to(torch.int) == eos).int().argmax(-1)
    return lin(x[0, pos], sd, "text_projection")[0]


# ---- seeded models --------------------------------------------------------

def ln_sd(g, p, n):
    return {p + ".weight": 1.0 + rand(g, n, std=0.1), p + ".bias": rand(g, n, std=0.1)}


def lin_sd(g, p, n_in, n_out, bias=True, std=None):
    std = std if std is not None else n_in ** -0.5
    d = {p + ".weight": rand(g, n_out, n_in, std=std)}
    if bias:
        d[p + ".bias"] = rand(g, n_out, std=0.05)
    return d


def vit_state(g, cfg, p, head, pooler):
    H, F, P = cfg["hidden_size"], cfg["intermediate_size"], cfg["patch_size"]
    n = (cfg["image_size"] // P) ** 2
    sd = {p + "embeddings.cls_token": rand(g, 1, 1, H, std=0.5),
          p + "embeddings.position_embeddings": rand(g, 1, n + 1, H, std=0.5),
          p + "embeddings.patch_embeddings.projection.weight": rand(g, H, 3, P, P, std=(3 * P * P) ** -0.5),
          p + "embeddings.patch_embeddings.projection.bias": rand(g, H, std=0.05)}
    for i in range(cfg["num_hidden_layers"]):
        L = f"{p}encoder.layer.{i}."
        for name in ("query", "key", "value"):
            sd.update(lin_sd(g, L + "attention.attention." + name, H, H))
        sd.update(lin_sd(g, L + "attention.output.dense", H, H))
        sd.update(lin_sd(g, L + "intermediate.dense", H, F))
        sd.update(lin_sd(g, L + "output.dense", F, H))
        sd.update(ln_sd(g, L + "layernorm_before", H))
        sd.update(ln_sd(g, L + "layernorm_after", H))
    sd.update(ln_sd(g, p + "layernorm", H))
    if pooler:
        sd.update(lin_sd(g, p + "pooler.dense", H, H))
    if head:
        sd.update(lin_sd(g, "classifier", H, len(cfg["id2label"])))
    return sd


def clip_tower_state(g, p, c):
    H, F = c["hidden_size"], c["intermediate_size"]
    sd = {}
    for i in range(c["num_hidden_layers"]):
        L = f"{p}encoder.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            sd.update(lin_sd(g, L + "self_attn." + name, H, H))
        sd.update(lin_sd(g, L + "mlp.fc1", H, F))
        sd.update(lin_sd(g, L + "mlp.fc2", F, H))
        sd.update(ln_sd(g, L + "layer_norm1", H))
        sd.update(ln_sd(g, L + "layer_norm2", H))
    return sd


def clip_state(g, cfg):
    v, t, D = cfg["vision_config"], cfg["text_config"], cfg["projection_dim"]
    P, Hv, Ht = v["patch_size"], v["hidden_size"], t["hidden_size"]
    n = (v["image_size"] // P) ** 2
    sd = {"vision_model.embeddings.class_embedding": rand(g, Hv, std=0.5),
          "vision_model.embeddings.patch_embedding.weight": rand(g, Hv, 3, P, P, std=(3 * P * P) ** -0.5),
          "vision_model.embeddings.position_embedding.weight": rand(g, n + 1, Hv, std=0.5),
          "text_model.embeddings.token_embedding.weight": rand(g, t["vocab_size"], Ht, std=0.5),
          "text_model.embeddings.position_embedding.weight": rand(g, t["max_position_embeddings"], Ht,
                                                                   std=0.5),
          "logit_scale": torch.tensor(cfg["logit_scale_init_value"])}
    sd.update(ln_sd(g, "vision_model.pre_layrnorm", Hv))
    sd.update(clip_tower_state(g, "vision_model.", v))
    sd.update(ln_sd(g, "vision_model.post_layernorm", Hv))
    sd.update(clip_tower_state(g, "text_model.", t))
    sd.update(ln_sd(g, "text_model.final_layer_norm", Ht))
    sd.update(lin_sd(g, "visual_projection", Hv, D, bias=False))
    sd.update(lin_sd(g, "text_projection", Ht, D, bias=False))
    return sd


def clip_config(vision, text, D):
    v = dict(hidden_act="quick_gelu", layer_norm_eps=1e-5, num_channels=3, **vision)
    t = dict(hidden_act="quick_gelu", layer_norm_eps=1e-5, bos_token_id=text["vocab_size"] - 2,
             eos_token_id=text["vocab_size"] - 1, pad_token_id=1, **text)
    return {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": D,
            "logit_scale_init_value": 2.6592, "text_config": t, "vision_config": v}


def clip_preprocessor(size):
    return {"image_processor_type": "CLIPImageProcessor", "do_resize": True,
            "size": {"shortest_edge": size}, "resample": 3, "do_center_crop": True,
            "crop_size": {"height": size, "width": size}, "do_rescale": True,
            "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": CLIP_MEAN,
            "image_std": CLIP_STD, "do_convert_rgb": True}


def write(d, cfg, sd, pp):
    os.makedirs(d, exist_ok=True)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=1)
    json.dump(pp, open(os.path.join(d, "preprocessor_config.json"), "w"), indent=1)
    save_safetensors(sd, os.path.join(d, "model.safetensors"))


def tiny(shared):
    imgs = [os.path.join(shared, "data", "imagenet-sample", "images", f) for f in IMAGES]
    out = lambda t: [round(float(x), 7) for x in t]

    # ViTForImageClassification: bilinear to a fixed 48x48, mean/std 0.5.
    g = torch.Generator().manual_seed(17)
    cfg = {"architectures": ["ViTForImageClassification"], "model_type": "vit", "hidden_size": 32,
           "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
           "hidden_act": "gelu", "layer_norm_eps": 1e-12, "image_size": 48, "patch_size": 16,
           "num_channels": 3, "qkv_bias": True,
           "id2label": {str(i): n for i, n in enumerate(["tench", "lorikeet", "rig", "buckeye", "other"])},
           "label2id": {}}
    pp = {"image_processor_type": "ViTImageProcessor", "do_resize": True,
          "size": {"height": 48, "width": 48}, "resample": 2, "do_rescale": True,
          "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    sd = vit_state(g, cfg, "vit.", head=True, pooler=False)
    d = os.path.join(OUT, "vit-cls")
    write(d, cfg, sd, pp)
    px = torch.stack([preprocess(p, pp) for p in imgs])
    h, _ = vit(sd, cfg, px, "vit.")
    logits = lin(h[:, 0], sd, "classifier")
    px.numpy().tofile(os.path.join(d, "pixels.f32"))
    json.dump({"images": IMAGES, "logits": [out(r) for r in logits]},
              open(os.path.join(d, "expected.json"), "w"))

    # ViTModel with its pooler: bicubic to 40x40, patch 8, ImageNet mean/std.
    g = torch.Generator().manual_seed(18)
    cfg = {"architectures": ["ViTModel"], "model_type": "vit", "hidden_size": 24,
           "num_hidden_layers": 2, "num_attention_heads": 3, "intermediate_size": 40,
           "hidden_act": "gelu", "layer_norm_eps": 1e-12, "image_size": 40, "patch_size": 8,
           "num_channels": 3, "qkv_bias": True}
    pp = dict(pp, size={"height": 40, "width": 40}, resample=3,
              image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    sd = vit_state(g, cfg, "", head=False, pooler=True)
    d = os.path.join(OUT, "vit-pool")
    write(d, cfg, sd, pp)
    px = torch.stack([preprocess(p, pp) for p in imgs])
    _, pooled = vit(sd, cfg, px, "")
    px.numpy().tofile(os.path.join(d, "pixels.f32"))
    json.dump({"images": IMAGES, "embeddings": [out(r) for r in pooled]},
              open(os.path.join(d, "expected.json"), "w"))

    # CLIPModel: shortest side 32 bicubic, centre crop 32.
    g = torch.Generator().manual_seed(19)
    cfg = clip_config(dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, image_size=32, patch_size=8),
                      dict(vocab_size=64, hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=48, max_position_embeddings=16), 16)
    sd = clip_state(g, cfg)
    d = os.path.join(OUT, "clip")
    write(d, cfg, sd, clip_preprocessor(32))
    px = torch.stack([preprocess(p, clip_preprocessor(32)) for p in imgs])
    img = clip_image(sd, cfg, px)
    bos, eos = 62, 63
    ids = [[bos, eos], [bos, 5, 9, eos], [bos, 17, 3, 40, 41, 8, eos],
           [bos, 7, eos, eos, eos, eos],   # padded with the end-of-text id, as HF pads
           [bos] + list(range(20, 34)) + [eos]]   # the full 16 positions
    txt = torch.stack([clip_text(sd, cfg, s) for s in ids])
    nrm = lambda t: t / t.norm(dim=-1, keepdim=True)
    logits = sd["logit_scale"].exp() * nrm(img) @ nrm(txt).T
    px.numpy().tofile(os.path.join(d, "pixels.f32"))
    json.dump({"images": IMAGES, "image_embeds": [out(r) for r in img], "text_ids": ids,
               "text_embeds": [out(r) for r in txt], "logits_per_image": [out(r) for r in logits]},
              open(os.path.join(d, "expected.json"), "w"))


def bench(d):
    """ViT-B/32-shaped CLIP: vision 12 x 768, patch 32, 224 px; text 12 x 512, 77 tokens."""
    g = torch.Generator().manual_seed(32)
    cfg = clip_config(dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                           intermediate_size=3072, image_size=224, patch_size=32),
                      dict(vocab_size=49408, hidden_size=512, num_hidden_layers=12,
                           num_attention_heads=8, intermediate_size=2048,
                           max_position_embeddings=77), 512)
    write(d, cfg, clip_state(g, cfg), clip_preprocessor(224))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--bench":
        bench(sys.argv[2])
    else:
        tiny(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "shared"))
