#!/usr/bin/python3
"""make_pil_golden.py: small images whose decoding Pillow (and so torchvision)
does its own way, and the RGB pixels Pillow gives them, for test_image.c.

    /usr/bin/python3 tests/golden/make_pil_golden.py   (Debian's python3-pil)

Writes tests/golden/pil/*.png|*.jpg and tests/golden/pil/expected.jsonl, one
line per image: {"file": name, "w": .., "h": .., "rgb": hex of
Image.open(file).convert("RGB").tobytes()}. The cases:
  - palette PNG with a tRNS chunk (PIL keeps the palette colours, drops alpha);
  - 16-bit grey PNG (PIL opens it as "I;16" and clips to 255 on conversion);
  - CMYK JPEG without Adobe's APP14 marker (PIL inverts every CMYK JPEG) and
    with it;
  - grey + alpha and RGB with tRNS PNGs (alpha dropped).
Sizes are odd, so no decoder can lean on multiples of 8 or 16."""
import io
import json
import os
import struct
import zlib

from PIL import Image

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pil")
os.makedirs(here, exist_ok=True)
W, H = 13, 7


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(color_type, depth, rows, extra=b""):
    """A PNG from raw rows (filter byte 0 added), written by hand so every
    layout is exactly the one named (encoders pick their own)."""
    ihdr = struct.pack(">IIBBBBB", W, H, depth, color_type, 0, 0, 0)
    raw = b"".join(b"\0" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def strip_app14(jpeg):
    """The same JPEG without its APP14 (Adobe) segment."""
    out, i = bytearray(jpeg[:2]), 2
    while i < len(jpeg):
        marker, size = jpeg[i:i + 2], struct.unpack(">H", jpeg[i + 2:i + 4])[0]
        if marker == b"\xff\xda":   # start of scan: the rest is entropy-coded data
            out += jpeg[i:]
            break
        if marker != b"\xff\xee":
            out += jpeg[i:i + 2 + size]
        i += 2 + size
    assert b"\xff\xee" not in bytes(out[:out.find(b"\xff\xda")]), "APP14 still there"
    return bytes(out)


files = {}
# Palette, 16 entries, 4 of them partly or fully transparent.
pal = bytes(v for i in range(16) for v in ((i * 37) % 256, (i * 91 + 7) % 256, (255 - i * 13) % 256))
rows = [bytes((x + 3 * y) % 16 for x in range(W)) for y in range(H)]
files["palette_trns.png"] = png(3, 8, rows, chunk(b"PLTE", pal) + chunk(b"tRNS", bytes([0, 64, 128, 200])))
# 16-bit grey: some high bytes zero (the low byte shows), most not (clipped).
rows = [b"".join(struct.pack(">H", (0 if (x + y) % 3 == 0 else (x * 977 + y * 131) % 256 << 8) |
                             ((x * 29 + y * 53) % 256)) for x in range(W)) for y in range(H)]
files["gray16.png"] = png(0, 16, rows)
# Grey + alpha, 8-bit.
rows = [bytes(v for x in range(W) for v in ((x * 19 + y * 7) % 256, (x * 40) % 256)) for y in range(H)]
files["gray_alpha.png"] = png(4, 8, rows)
# RGB with a tRNS colour.
rows = [bytes(v for x in range(W) for v in ((x * 20) % 256, (y * 35) % 256, ((x + y) * 11) % 256))
        for y in range(H)]
files["rgb_trns.png"] = png(2, 8, rows, chunk(b"tRNS", struct.pack(">HHH", 20, 35, 22)))
# CMYK JPEGs: Pillow writes Adobe's marker; the second copy has it removed.
cmyk = Image.frombytes("CMYK", (W, H), bytes((i * 37 + (i // 4) * 11) % 256 for i in range(W * H * 4)))
buf = io.BytesIO()
cmyk.save(buf, "JPEG", quality=95)
files["cmyk_adobe.jpg"] = buf.getvalue()
files["cmyk_no_adobe.jpg"] = strip_app14(buf.getvalue())

with open(os.path.join(here, "expected.jsonl"), "w") as out:
    for name, data in sorted(files.items()):
        with open(os.path.join(here, name), "wb") as f:
            f.write(data)
        img = Image.open(io.BytesIO(data))
        rgb = img.convert("RGB")
        assert rgb.size == (W, H)
        out.write(json.dumps({"file": name, "mode": img.mode, "w": W, "h": H,
                              "rgb": rgb.tobytes().hex()}) + "\n")
print("wrote", len(files), "images and expected.jsonl to", here)
