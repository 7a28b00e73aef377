#!/usr/bin/python3
"""Fixtures for preprocess/torchvision.go: ImageReward's image preprocessing.

Run with Debian's Python, Pillow 9.4 and torchvision 0.14 (python3-pil,
python3-torchvision), from the repository root:

    /usr/bin/python3 preprocess/testdata/torchvision/gen_fixtures.py

It writes a few extra source images into testdata/torchvision/src/ (modes the
CLIP fixtures do not stress: alpha gradients, gray-ramp palettes, WebP with
alpha, sizes whose crop offset is a half) and, for every source image there
and in testdata/images/src/, records in testdata/torchvision/manifest.json the
sha256 of the uint8 crop that ImageReward's transform makes, with the real
torchvision transforms:

    Resize(224, interpolation=BICUBIC), CenterCrop(224), Image.convert("RGB")

(then ToTensor and Normalize, whose float32 value for every uint8 and channel
is stored as bits in normalize.json, computed by torch). Images Pillow cannot
open or decode are left out (the CLIP fixtures cover those).
"""

import hashlib
import io
import json
import os
import struct
import sys

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image
from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

assert PIL.__version__.startswith("9.4"), PIL.__version__
assert torchvision.__version__.startswith("0.14"), torchvision.__version__

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "src")
CLIP_SRC = os.path.join(HERE, "..", "images", "src")
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def crop_transform(n):
    return Compose([Resize(n, interpolation=InterpolationMode.BICUBIC), CenterCrop(n), lambda im: im.convert("RGB")])


def rng_image(rng, w, h, channels):
    return rng.integers(0, 256, size=(h, w, channels), dtype=np.uint8)


def smooth(rng, w, h, channels):
    # noise plus gradients, so both the resampling and the alpha matter
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x + y) * 127 // max(w + h - 2, 1))], -1)
    base = np.concatenate([base] * 2, -1)[..., :channels]
    noise = rng.integers(-6, 7, size=(h, w, channels))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def write_sources():
    rng = np.random.default_rng(9)
    os.makedirs(SRC, exist_ok=True)
    made = {}

    def save(name, im, **kw):
        path = os.path.join(SRC, name)
        im.save(path, **kw)
        made[name] = True

    for w, h in [(300, 200), (227, 224), (224, 229), (100, 80), (389, 245)]:
        a = smooth(rng, w, h, 4)
        a[..., 3] = (a[..., 3].astype(int) * 7 % 256).astype(np.uint8)  # steep alpha ramps
        a[: h // 4, :, 3] = 0  # fully transparent band
        a[-h // 4:, :, 3] = 255  # opaque band
        save(f"rgba8_{w}x{h}.png", Image.fromarray(a, "RGBA"))
    la = smooth(rng, 257, 190, 2)
    save("la8_257x190.png", Image.fromarray(la, "LA"))
    save("l8_301x227.png", Image.fromarray(smooth(rng, 301, 227, 1)[..., 0], "L"))
    for w, h in [(227, 224), (224, 227), (229, 300), (100, 80), (451, 300), (225, 224)]:
        save(f"rgb8_{w}x{h}.png", Image.fromarray(smooth(rng, w, h, 3), "RGB"))
    p = Image.fromarray(smooth(rng, 310, 215, 3), "RGB").quantize(colors=200)
    save("p8_310x215.png", p)
    save("p8_310x215.gif", p)
    save("p8_310x215.bmp", p)
    one = Image.fromarray((smooth(rng, 250, 333, 1)[..., 0] > 128).astype(np.uint8) * 255, "L").convert("1")
    save("bw1_250x333.png", one)
    save("bw1_250x333.bmp", one)
    g = Image.fromarray(smooth(rng, 280, 230, 1)[..., 0], "L")
    save("gray_310x230.gif", g)  # Pillow writes an identity gray palette: opens as "L"
    save("gray_310x230.bmp", g)  # gray ramp palette: opens as "L"
    i16 = (smooth(rng, 260, 300, 1)[..., 0].astype(np.int32) * 3 - 100).clip(0, 700).astype(np.uint16)
    save("i16_260x300.png", Image.fromarray(i16, "I;16"))
    wa = smooth(rng, 330, 250, 4)
    wa[..., 3] = (wa[..., 3].astype(int) * 5 % 256).astype(np.uint8)
    save("webp_alpha_lossy_330x250.webp", Image.fromarray(wa, "RGBA"), quality=80)
    save("webp_alpha_lossless_330x250.webp", Image.fromarray(wa, "RGBA"), lossless=True)
    save("webp_rgb_lossy_330x250.webp", Image.fromarray(wa[..., :3].copy(), "RGB"), quality=80)
    return made


def main():
    write_sources()
    tf = crop_transform(224)
    cases = []
    for d, rel in [(SRC, "torchvision/src"), (CLIP_SRC, "images/src")]:
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            try:
                with open(path, "rb") as f:
                    im = Image.open(io.BytesIO(f.read()))
                    mode, size = im.mode, im.size
                    crop = tf(im)
            except Exception as e:  # undecodable, truncated, unsupported: not this file's business
                print(f"skip {rel}/{name}: {e}", file=sys.stderr)
                continue
            arr = np.asarray(crop, dtype=np.uint8)
            assert arr.shape == (224, 224, 3), arr.shape
            cases.append({"file": f"{rel}/{name}", "mode": mode, "size": list(size),
                          "crop_sha256": hashlib.sha256(arr.tobytes()).hexdigest()})
    with open(os.path.join(HERE, "manifest.json"), "w") as f:
        json.dump({"source": f"torchvision {torchvision.__version__}, Pillow {PIL.__version__}, torch {torch.__version__}",
                   "resize": 224, "crop": 224, "cases": cases}, f, indent=1)
        f.write("\n")

    # ToTensor + Normalize of every uint8 value, per channel, as float32 bits.
    v = torch.arange(256, dtype=torch.uint8).reshape(1, 256, 1).expand(3, 256, 1)
    img = Image.fromarray(v.permute(1, 2, 0).numpy().copy(), "RGB")  # 256×1 image
    t = Normalize(MEAN, STD)(ToTensor()(img))  # (3, 256, 1)
    bits = [[struct.unpack("<I", struct.pack("<f", float(t[c, i, 0])))[0] for i in range(256)] for c in range(3)]
    with open(os.path.join(HERE, "normalize.json"), "w") as f:
        json.dump({"mean": MEAN, "std": STD, "bits": bits}, f)
        f.write("\n")
    print(f"{len(cases)} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
