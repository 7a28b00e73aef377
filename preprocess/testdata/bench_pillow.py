#!/usr/bin/python3
"""Time Pillow 9.4 + numpy doing what ImagePipeline.Tensor does, on the files the Go
benchmarks read (see preprocess/bench_test.go and BENCHMARKS.md).

    /usr/bin/python3 preprocess/testdata/bench_pillow.py DIR [SECONDS [REPEATS]]

Writes DIR/bench_512.jpg (512x512, quality 90, 4:2:0), DIR/bench_1024.png
(1024x1024 RGB) and DIR/bench_gen1024.png (1024x1024 RGB, a detailed picture like a
generated image: random colours interpolated, plus noise) if they are missing, then times, single-threaded, for each file:
Image.open(BytesIO(bytes)) + convert("RGB") + resize(shortest edge 224, BICUBIC,
reducing_gap=None) + center crop 224 + rescale/normalise with numpy (float32, CHW),
as transformers 4.27's CLIPImageProcessor computes it. Each measurement runs for SECONDS
(default 3) and is repeated REPEATS times (default 1); it prints wall-clock images/s and
process CPU time per image (time.process_time, what the Go benchmarks report as
cpu-ms/op), the best of the repeats.
Benchmark only; not used by the tests.
"""

import io
import os
import sys
import time

import numpy as np
from PIL import Image

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def photo(w, h):
    """The picture of benchPhoto in bench_test.go (smooth + a patch of noise)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    fx, fy = x / w, y / h
    r = 128 + 100 * np.sin(6 * fx + 2 * fy)
    g = 128 + 90 * np.cos(4 * fy - 3 * fx * fy)
    b = 128 + 80 * np.sin(9 * fx * fy + 1)
    img = np.stack([r, g, b], axis=-1).astype(np.uint8)
    rng = np.random.default_rng(12345)
    y0, y1, x0, x1 = h // 3 + 1, h // 2, w // 3 + 1, w // 2
    img[y0:y1, x0:x1] = rng.integers(0, 256, (y1 - y0, x1 - x0, 3), dtype=np.uint8)
    return img


def generated(w, h):
    """The kind of picture of benchGenerated in bench_test.go: a 48x48 grid of random
    colours interpolated bilinearly, plus Gaussian noise of standard deviation 2 (about
    1.6 MB as PNG, nearly every row filtered with Paeth, as for photographs)."""
    g = 48
    rng = np.random.default_rng(2024)
    grid = rng.uniform(0, 255, (g + 1, g + 1, 3))
    ty, tx = np.arange(h) * g / h, np.arange(w) * g / w
    y0, x0 = ty.astype(int), tx.astype(int)
    fy, fx = (ty - y0)[:, None, None], (tx - x0)[None, :, None]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    img = top * (1 - fy) + bottom * fy + rng.normal(0, 2, (h, w, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def tensor(data, size=224, crop=224):
    im = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    nl = int(size * long / short)
    rw, rh = (size, nl) if w <= h else (nl, size)
    arr = np.asarray(im.resize((rw, rh), resample=Image.BICUBIC, reducing_gap=None))
    top, left = (rh - crop) // 2, (rw - crop) // 2
    arr = arr[top:top + crop, left:left + crop]
    x = (arr * (1 / 255)).astype(np.float32)
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    os.makedirs(d, exist_ok=True)
    files = {"bench_512.jpg": (512, "JPEG", dict(quality=90, subsampling=2), photo),
             "bench_1024.png": (1024, "PNG", {}, photo),
             "bench_gen1024.png": (1024, "PNG", {}, generated)}
    for name, (n, fmt, kw, picture) in files.items():
        p = os.path.join(d, name)
        if not os.path.exists(p):
            Image.fromarray(picture(n, n)).save(p, fmt, **kw)
    import PIL
    print(f"Pillow {PIL.__version__}, numpy {np.__version__}, one thread")
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    for name in files:
        with open(os.path.join(d, name), "rb") as f:
            data = f.read()
        assert tensor(data).shape == (3, 224, 224)
        best_wall, best_cpu = 0.0, float("inf")
        for _ in range(reps):
            n, t0, c0 = 0, time.perf_counter(), time.process_time()
            while time.perf_counter() - t0 < secs:
                tensor(data)
                n += 1
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            best_wall, best_cpu = max(best_wall, n / wall), min(best_cpu, cpu / n)
        print(f"{name}: {len(data)} bytes, {best_wall:.1f} images/s wall, "
              f"{best_cpu * 1e3:.2f} cpu-ms/image = {1 / best_cpu:.1f} images/cpu-s")

if __name__ == "__main__":
    main()
