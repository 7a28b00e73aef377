"""Fixture generator for TestHPSv2PixelsAgainstTorch (internal/zooscorer).

Run from the repo root with a Python that has torch and torchvision
(developed with Debian's torch 1.13 / torchvision 0.14, Pillow 9.4):

    /usr/bin/python3 internal/zooscorer/testdata/hpsv2torch/gen.py

It computes HPSv2's eval transform (hpsv2/src/open_clip/transform.py,
image_transform(is_train=False)) the way its code does:

    convert("RGB") -> ToTensor -> Resize(224, BICUBIC) on the float tensor
    (antialias=True, torchvision >= 0.17's default; passed explicitly here
    since 0.14 defaults to False on tensors) -> CenterCrop(224) ->
    Normalize(OpenAI mean, std)

in float32 (what HPSv2 runs) and in float64 (the same ops on a double
tensor), checks that torchvision's Resize matches a direct
F.interpolate(mode="bicubic", antialias=True, align_corners=False) on the
size torchvision computes, and writes, per image:

  <name>.png     the input (synthetic images only; lossless, so Go decodes the
                 same bytes; the demo image is read from testdata/demo)
  <name>.bin     little-endian: the float32 output at the sampled indices,
                 then the float64 output at the same indices
and index.json   names, sizes, the sampling stride and, over the whole
                 tensor, the float64 sum and sum of squares of both outputs.

Sampled indices: i = off, off+stride, ... < 3*224*224 (off = k mod stride,
k the image's position in index.json), so every row/column phase is hit.
CI does not need Python: the outputs are committed.
"""
import json
import os
import struct

import numpy as np
import torch
import torch.nn.functional as Fnn
import torchvision
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import functional as TF

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
SIZE = 224
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
STRIDE = 37


def synthetic(w, h, seed):
    """Noise over gradients and a hard edge: ringing and overshoot get tested."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 255) // max(w - 1, 1), (y * 255) // max(h - 1, 1),
                     np.where((x // 5 + y // 7) % 2 == 0, 255, 0)], axis=-1)
    noise = rng.integers(0, 256, size=(h, w, 3))
    mask = (rng.random((h, w, 1)) < 0.5)
    return Image.fromarray(np.where(mask, noise, base).astype(np.uint8), "RGB")


def hpsv2(img, dtype):
    x = TF.to_tensor(img)  # float32, v / 255
    if dtype == torch.float64:
        x = torch.from_numpy(np.array(img)).permute(2, 0, 1).to(torch.float64) / 255
    h, w = x.shape[-2:]
    size = TF._compute_resized_output_size((h, w), [SIZE])
    r = T.Resize(SIZE, interpolation=T.InterpolationMode.BICUBIC, antialias=True)(x)
    direct = Fnn.interpolate(x[None], size=size, mode="bicubic", antialias=True, align_corners=False)[0]
    assert torch.equal(r, direct), "torchvision Resize != F.interpolate"
    c = T.CenterCrop(SIZE)(r)
    return T.Normalize(MEAN, STD)(c), list(size)


def main():
    specs = [("s37x53", 37, 53), ("s300x200", 300, 200), ("s224x224", 224, 224),
             ("s500x90", 500, 90), ("s17x17", 17, 17), ("s90x400", 90, 400)]
    entries = []
    images = [(n, synthetic(w, h, k), True) for k, (n, w, h) in enumerate(specs)]
    images.append(("sunset", Image.open(os.path.join(ROOT, "testdata/demo/sunset.png")).convert("RGB"), False))
    for k, (name, img, write_png) in enumerate(images):
        if write_png:
            img.save(os.path.join(HERE, name + ".png"))
        t32, size = hpsv2(img, torch.float32)
        t64, _ = hpsv2(img, torch.float64)
        f32, f64 = t32.flatten().numpy(), t64.flatten().numpy()
        off = k % STRIDE
        idx = np.arange(off, f32.size, STRIDE)
        with open(os.path.join(HERE, name + ".bin"), "wb") as f:
            f.write(f32[idx].astype("<f4").tobytes())
            f.write(f64[idx].astype("<f8").tobytes())
        d = f32.astype(np.float64)
        entries.append({
            "name": name, "png": (name + ".png") if write_png else "../../../../testdata/demo/sunset.png",
            "w": img.width, "h": img.height, "resized": [size[1], size[0]], "offset": off,
            "sum32": float(d.sum()), "sumsq32": float((d * d).sum()),
            "sum64": float(f64.sum()), "sumsq64": float((f64 * f64).sum()),
            "maxdiff_32_vs_64": float(np.abs(d - f64).max()),
        })
    meta = {"torch": torch.__version__, "torchvision": torchvision.__version__,
            "size": SIZE, "stride": STRIDE, "images": entries}
    with open(os.path.join(HERE, "index.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
