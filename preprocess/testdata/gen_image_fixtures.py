#!/usr/bin/python3
"""Generate the image parity fixtures for package preprocess.

Run with Debian's Python and Pillow 9.4 (python3-pil, python3-numpy), from the repo root:

    /usr/bin/python3 preprocess/testdata/gen_image_fixtures.py

For every case it writes a source image into testdata/images/src/ (unless the source is
the formula image, which the Go test regenerates) and records in
testdata/images/manifest.json what Pillow 9.4 + transformers 4.27's CLIPImageProcessor
produce from it:

  - rgb_sha256: sha256 of np.asarray(Image.open(src).convert("RGB")) (DecodeRGB parity)
  - want:       the uint8 crop (before rescale), stored as an RGB PNG in want/
  - resized:    the (width, height) Pillow resized to

plus testdata/images/normalize.json (the float32 bits of rescale+normalize for every
uint8 value per channel, computed the numpy way) and one full float32 tensor
(tensor_<case>.f32.gz) for an end-to-end check.

CLIPImageProcessor (transformers 4.27.x) is reimplemented here step by step (transformers
is not installed); the steps and their sources:

  convert_to_rgb            image.convert("RGB")
  to_numpy_array            np.array(image)                                  (H, W, 3) uint8
  resize                    get_resize_output_image_size(default_to_square=False):
                            short, long = (w, h) if w <= h else (h, w)
                            new_long = int(size * long / short)
                            then to_pil_image (uint8: no rescale) and
                            PIL.Image.resize((w, h), resample=BICUBIC, reducing_gap=None)
  center_crop               top = (h - ch) // 2, left = (w - cw) // 2, zero padding when
                            the image is smaller (see center_crop below)
  rescale                   (image * (1/255)).astype(np.float32)   (numpy computes float64)
  normalize                 (image - np.array(mean, float32)) / np.array(std, float32)
  to_channel_dimension      transpose to (3, H, W)

One deliberate divergence: transformers 4.27 infers the channel axis from the array shape
and takes an (H, W, 3) image whose height is 1 or 3 for channels-first, which scrambles
such images; this script (and the Go code) use the intended (H, W, 3) semantics for them.
"""

import gzip
import hashlib
import io
import json
import os
import struct
import sys
import zlib

import numpy as np
import PIL
from PIL import Image, ImageFile

ImageFile.MAXBLOCK = 1 << 24  # progressive JPEG of noisy content needs a big buffer

assert PIL.__version__.startswith("9.4"), PIL.__version__

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "images")
SRC = os.path.join(OUT, "src")
WANT = os.path.join(OUT, "want")

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


# ---------------------------------------------------------------- transformers 4.27 steps

def resize_output_size(h, w, size):
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    return (new_long, new_short) if w <= h else (new_short, new_long)  # (height, width)


def center_crop(arr, ch, cw):
    """transformers.image_transforms.center_crop on an (H, W, C) array."""
    oh, ow = arr.shape[:2]
    top = (oh - ch) // 2
    bottom = top + ch
    left = (ow - cw) // 2
    right = left + cw
    if top >= 0 and bottom <= oh and left >= 0 and right <= ow:
        return arr[top:bottom, left:right]
    nh, nw = max(ch, oh), max(cw, ow)
    new = np.zeros((nh, nw) + arr.shape[2:], dtype=arr.dtype)
    top_pad = (nh - oh) // 2
    left_pad = (nw - ow) // 2
    new[top_pad:top_pad + oh, left_pad:left_pad + ow] = arr
    top += top_pad
    bottom += top_pad
    left += left_pad
    right += left_pad
    return new[max(0, top):min(nh, bottom), max(0, left):min(nw, right)]


def clip_crop(path_or_bytes, shortest_edge=224, crop=224):
    im = Image.open(path_or_bytes)
    im = im.convert("RGB")
    arr = np.array(im)
    h, w = arr.shape[:2]
    rh, rw = resize_output_size(h, w, shortest_edge)
    pil = Image.fromarray(arr)
    res = np.array(pil.resize((rw, rh), resample=Image.BICUBIC, reducing_gap=None))
    out = center_crop(res, crop, crop)
    return out, (rw, rh)


def normalize(crop, mean=CLIP_MEAN, std=CLIP_STD):
    x = (crop * (1 / 255)).astype(np.float32)
    x = (x - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)
    return x.transpose(2, 0, 1)


# ---------------------------------------------------------------- raw PNG writer

def png_chunk(t, data):
    c = struct.pack(">I", len(data)) + t + data
    return c + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)


def pack_rows(samples, depth):
    """samples: (H, W*C) integer array -> list of packed row bytes."""
    rows = []
    for r in samples:
        if depth == 16:
            rows.append(r.astype(">u2").tobytes())
        elif depth == 8:
            rows.append(r.astype(np.uint8).tobytes())
        else:
            per = 8 // depth
            n = len(r)
            padded = np.zeros(((n + per - 1) // per) * per, dtype=np.uint8)
            padded[:n] = r
            padded = padded.reshape(-1, per)
            b = np.zeros(len(padded), dtype=np.uint8)
            for i in range(per):
                b |= (padded[:, i] << (8 - depth * (i + 1))).astype(np.uint8)
            rows.append(b.tobytes())
    return rows


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(path, pix, ctype, depth, palette=None, trns=None, interlace=False, drop_iend=False):
    """pix: (H, W, C) integer samples (C = 1, 2, 3 or 4 as the colour type needs)."""
    h, w = pix.shape[:2]
    c = pix.shape[2]
    raw = b""
    if not interlace:
        for row in pack_rows(pix.reshape(h, w * c), depth):
            raw += b"\x00" + row
    else:
        for x0, y0, dx, dy in ADAM7:
            sub = pix[y0::dy, x0::dx]
            if sub.size == 0:
                continue
            sh, sw = sub.shape[:2]
            for row in pack_rows(sub.reshape(sh, sw * c), depth):
                raw += b"\x00" + row
    out = b"\x89PNG\r\n\x1a\n"
    out += png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0))
    if palette is not None:
        out += png_chunk(b"PLTE", bytes(np.asarray(palette, dtype=np.uint8).reshape(-1)))
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    out += png_chunk(b"IDAT", zlib.compress(raw, 9))
    if not drop_iend:
        out += png_chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(out)


# ---------------------------------------------------------------- test content

def formula_rgb(w, h):
    """The big deterministic image; preprocess/image_test.go (formulaRGB) computes the same."""
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    r = ((x * 3) ^ (y * 5)) & 255
    g = ((x * x + 3 * y * y) >> 7) & 255
    b = (x + 2 * y) & 255
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def smooth_rgb(w, h, seed):
    """Smooth content with a few hard edges: compresses well, still exercises the filter."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = []
    for c in range(3):
        fx, fy, ph = rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 6.28)
        v = 127.5 + 120 * np.sin(x / w * fx * 3.1416 + ph) * np.cos(y / h * fy * 3.1416)
        chans.append(v)
    img = np.stack(chans, axis=-1)
    # hard-edged rectangles and lines
    for _ in range(6):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        x1, y1 = x0 + rng.integers(1, max(2, w // 3)), y0 + rng.integers(1, max(2, h // 3))
        img[y0:y1, x0:x1] = rng.integers(0, 256, 3)
    img[:, ::max(1, w // 17)] = 0
    img[::max(1, h // 13), :] = 255
    # a fine checkerboard and a patch of 1-pixel stripes: high frequencies that compress well
    cw, chh = max(1, w // 5), max(1, h // 5)
    yy, xx = np.mgrid[0:chh, 0:cw]
    img[h // 2:h // 2 + chh, w // 3:w // 3 + cw] = (((xx // 2 + yy // 2) & 1) * 255)[..., None]
    img[h // 5:h // 5 + chh, w // 2:w // 2 + cw] = ((xx & 1) * 200 + 30)[..., None]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def noise_rgb(w, h, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ---------------------------------------------------------------- cases

cases = []


WANT_PNG_MAX = 40_000  # crops whose PNG is larger are recorded by sha256 only


def add(name, src_file, desc, shortest_edge=224, crop=224, formula=None, tensor=False):
    entry = {"name": name, "desc": desc, "src": src_file, "shortest_edge": shortest_edge, "crop": crop}
    if formula:
        w, h = formula
        buf = io.BytesIO()
        Image.fromarray(formula_rgb(w, h)).save(buf, "PNG")
        src = lambda: io.BytesIO(buf.getvalue())
        entry["formula"] = list(formula)
    else:
        path = os.path.join(SRC, src_file)
        src = lambda: path
    try:
        crop_arr, resized = clip_crop(src(), shortest_edge, crop)
    except Exception as e:  # Pillow refuses the file: the Go side must refuse it too
        entry["error"] = f"{type(e).__name__}: {e}"
        cases.append(entry)
        print(f"{name:36s} {desc}: Pillow error {entry['error']}")
        return
    entry["resized"] = list(resized)
    im = Image.open(src())
    entry["mode"] = im.mode
    rgb = np.ascontiguousarray(np.asarray(im.convert("RGB")))
    entry["size"] = [rgb.shape[1], rgb.shape[0]]
    entry["rgb_sha256"] = hashlib.sha256(rgb.tobytes()).hexdigest()
    entry["want_sha256"] = hashlib.sha256(np.ascontiguousarray(crop_arr).tobytes()).hexdigest()
    png = io.BytesIO()
    Image.fromarray(crop_arr).save(png, "PNG", optimize=True)
    if len(png.getvalue()) <= WANT_PNG_MAX or tensor:
        with open(os.path.join(WANT, name + ".png"), "wb") as f:
            f.write(png.getvalue())
        entry["want"] = name + ".png"
    if tensor:
        t = normalize(crop_arr)
        fn = "tensor_" + name + ".f32.gz"
        with gzip.open(os.path.join(OUT, fn), "wb", compresslevel=9) as f:
            f.write(np.ascontiguousarray(t, dtype="<f4").tobytes())
        entry["tensor"] = fn
    cases.append(entry)
    print(f"{name:36s} {desc} {entry['mode']} {entry['size']} -> {resized}")


def save(img, fname, fmt, **kw):
    img.save(os.path.join(SRC, fname), fmt, **kw)
    return fname


def main():
    os.makedirs(SRC, exist_ok=True)
    os.makedirs(WANT, exist_ok=True)
    for d in (SRC, WANT):
        for f in os.listdir(d):
            os.remove(os.path.join(d, f))
    for f in os.listdir(OUT):
        if f.startswith("tensor_"):
            os.remove(os.path.join(OUT, f))

    # ---- PNG, 8-bit RGB: geometry cases
    geoms = [
        (1, 1), (2, 3), (3, 2), (5, 7), (7, 5), (3, 7), (16, 16), (37, 53), (100, 3), (223, 224),
        (224, 224), (225, 224), (224, 225), (226, 227), (299, 224), (333, 517), (517, 333),
        (640, 480), (480, 640), (1000, 7), (7, 1000), (448, 448), (449, 673), (1023, 767), (1024, 1024),
        (2000, 3), (3, 2000), (250, 10000),
    ]
    for w, h in geoms:
        if w * h > 120_000:  # big: the test regenerates the pixels from the formula
            add(f"formula_{w}x{h}", None, f"formula RGB {w}x{h} (generated by the test)", formula=(w, h))
            continue
        arr = noise_rgb(w, h, w * 1000 + h) if w * h <= 4096 else smooth_rgb(w, h, w * 1000 + h)
        fn = save(Image.fromarray(arr), f"png_rgb8_{w}x{h}.png", "PNG", optimize=True)
        add(f"png_rgb8_{w}x{h}", fn, f"PNG RGB 8-bit {w}x{h}", tensor=(w, h) == (37, 53))

    # non-default pipeline options: other shortest edge, padding when smaller than the crop
    add("opt_s256_c224_333x517", None, "shortest_edge 256, crop 224", shortest_edge=256, crop=224, formula=(333, 517))
    add("opt_s200_c224_333x517", None, "shortest_edge 200 < crop 224 (zero padding, even)", shortest_edge=200, crop=224,
        formula=(333, 517))
    add("opt_s100_c120_517x333", None, "shortest_edge 100 < crop 120", shortest_edge=100, crop=120, formula=(517, 333))
    add("opt_s224_c196_37x53", "png_rgb8_37x53.png", "crop 196 < shortest_edge", shortest_edge=224, crop=196)
    add("opt_s64_c32_formula", None, "shortest_edge 64, crop 32, formula 640x480", shortest_edge=64, crop=32, formula=(640, 480))

    # big formula image (not committed; the Go test recomputes it)
    add("formula_4000x3000", None, "formula RGB 4000x3000 (generated by the test)", formula=(4000, 3000))
    add("formula_3000x4000", None, "formula RGB 3000x4000 (generated by the test)", formula=(3000, 4000))

    # ---- PNG colour types and bit depths (raw writer)
    rng = np.random.default_rng(7)
    w, h = 45, 61
    g8 = rng.integers(0, 256, (h, w, 1))
    add("png_l8", save(Image.fromarray(g8[..., 0].astype(np.uint8), "L"), "png_l8.png", "PNG"), "PNG gray 8-bit (L)")
    for depth in (1, 2, 4):
        fn = f"png_l{depth}.png"
        write_png(os.path.join(SRC, fn), rng.integers(0, 1 << depth, (h, w, 1)), 0, depth)
        add(f"png_l{depth}", fn, f"PNG gray {depth}-bit")
    g16 = rng.integers(0, 65536, (h, w, 1))
    g16[: h // 2] = rng.integers(0, 300, (h // 2, w, 1))  # values around the 255 clip
    write_png(os.path.join(SRC, "png_l16.png"), g16, 0, 16)
    add("png_l16", "png_l16.png", "PNG gray 16-bit (Pillow mode I, clipped to 255)")
    write_png(os.path.join(SRC, "png_l16_trns.png"), g16, 0, 16, trns=struct.pack(">H", int(g16[0, 0, 0])))
    add("png_l16_trns", "png_l16_trns.png", "PNG gray 16-bit with tRNS")
    write_png(os.path.join(SRC, "png_l8_trns.png"), g8, 0, 8, trns=struct.pack(">H", int(g8[0, 0, 0])))
    add("png_l8_trns", "png_l8_trns.png", "PNG gray 8-bit with tRNS")
    write_png(os.path.join(SRC, "png_l2_trns.png"), rng.integers(0, 4, (h, w, 1)), 0, 2, trns=struct.pack(">H", 1))
    add("png_l2_trns", "png_l2_trns.png", "PNG gray 2-bit with tRNS")
    rgb16 = rng.integers(0, 65536, (h, w, 3))
    write_png(os.path.join(SRC, "png_rgb16.png"), rgb16, 2, 16)
    add("png_rgb16", "png_rgb16.png", "PNG RGB 16-bit (high byte)")
    write_png(os.path.join(SRC, "png_rgb16_trns.png"), rgb16, 2, 16, trns=struct.pack(">HHH", *[int(v) for v in rgb16[0, 0]]))
    add("png_rgb16_trns", "png_rgb16_trns.png", "PNG RGB 16-bit with tRNS")
    rgb8 = rng.integers(0, 256, (h, w, 3))
    write_png(os.path.join(SRC, "png_rgb8_trns.png"), rgb8, 2, 8, trns=struct.pack(">HHH", *[int(v) for v in rgb8[0, 0]]))
    add("png_rgb8_trns", "png_rgb8_trns.png", "PNG RGB 8-bit with tRNS")
    write_png(os.path.join(SRC, "png_rgba8.png"), rng.integers(0, 256, (h, w, 4)), 6, 8)
    add("png_rgba8", "png_rgba8.png", "PNG RGBA 8-bit (alpha dropped, not composited)")
    write_png(os.path.join(SRC, "png_rgba16.png"), rng.integers(0, 65536, (h, w, 4)), 6, 16)
    add("png_rgba16", "png_rgba16.png", "PNG RGBA 16-bit")
    write_png(os.path.join(SRC, "png_la8.png"), rng.integers(0, 256, (h, w, 2)), 4, 8)
    add("png_la8", "png_la8.png", "PNG gray+alpha 8-bit")
    write_png(os.path.join(SRC, "png_la16.png"), rng.integers(0, 65536, (h, w, 2)), 4, 16)
    add("png_la16", "png_la16.png", "PNG gray+alpha 16-bit")
    for depth in (1, 2, 4, 8):
        n = 1 << depth
        pal = rng.integers(0, 256, (n, 3))
        fn = f"png_p{depth}.png"
        write_png(os.path.join(SRC, fn), rng.integers(0, n, (h, w, 1)), 3, depth, palette=pal)
        add(f"png_p{depth}", fn, f"PNG palette {depth}-bit")
    pal = rng.integers(0, 256, (256, 3))
    write_png(os.path.join(SRC, "png_p8_trns.png"), rng.integers(0, 256, (h, w, 1)), 3, 8, palette=pal,
              trns=bytes(rng.integers(0, 256, 200, dtype=np.uint8)))
    add("png_p8_trns", "png_p8_trns.png", "PNG palette 8-bit with tRNS alpha table")
    pal = rng.integers(0, 256, (20, 3))
    write_png(os.path.join(SRC, "png_p8_shortpal.png"), rng.integers(0, 20, (h, w, 1)), 3, 8, palette=pal)
    add("png_p8_shortpal", "png_p8_shortpal.png", "PNG palette 8-bit, 20-entry palette")
    write_png(os.path.join(SRC, "png_rgb8_interlaced.png"), rng.integers(0, 256, (h, w, 3)), 2, 8, interlace=True)
    add("png_rgb8_interlaced", "png_rgb8_interlaced.png", "PNG RGB 8-bit Adam7 interlaced")
    write_png(os.path.join(SRC, "png_p4_interlaced.png"), rng.integers(0, 16, (h, w, 1)), 3, 4,
              palette=rng.integers(0, 256, (16, 3)), interlace=True)
    add("png_p4_interlaced", "png_p4_interlaced.png", "PNG palette 4-bit Adam7 interlaced")
    write_png(os.path.join(SRC, "png_rgb8_noiend.png"), rng.integers(0, 256, (h, w, 3)), 2, 8, drop_iend=True)
    add("png_rgb8_noiend", "png_rgb8_noiend.png", "PNG without IEND chunk (Pillow tolerates it)")
    # Pillow-written modes
    add("png_pillow_p", save(Image.fromarray(smooth_rgb(300, 200, 3)).quantize(64), "png_pillow_p.png", "PNG"),
        "PNG palette written by Pillow (quantize)")
    add("png_pillow_1", save(Image.fromarray(noise_rgb(90, 70, 4)).convert("1"), "png_pillow_1.png", "PNG"),
        "PNG mode 1 written by Pillow")
    add("png_pillow_i16", save(Image.fromarray((g16[..., 0]).astype(np.uint16)), "png_pillow_i16.png", "PNG"),
        "PNG I;16 written by Pillow")

    # ---- JPEG
    photo = smooth_rgb(333, 517, 11)
    photo[200:240, 100:180] = noise_rgb(80, 40, 12)  # a patch of noise: sharp detail for the IDCT
    big = smooth_rgb(1280, 960, 13)
    for sub, sname in ((2, "420"), (1, "422"), (0, "444")):
        for prog in (False, True):
            kind = "prog" if prog else "base"
            fn = save(Image.fromarray(photo), f"jpeg_{kind}_{sname}.jpg", "JPEG", quality=90, subsampling=sub, progressive=prog)
            add(f"jpeg_{kind}_{sname}", fn, f"JPEG {'progressive' if prog else 'baseline'} 4:{sname[1]}:{sname[2]} 333x517")
    gray = Image.fromarray(photo).convert("L")
    add("jpeg_base_gray", save(gray, "jpeg_base_gray.jpg", "JPEG", quality=90), "JPEG baseline grayscale")
    add("jpeg_prog_gray", save(gray, "jpeg_prog_gray.jpg", "JPEG", quality=90, progressive=True), "JPEG progressive grayscale")
    cmyk = Image.fromarray(photo).convert("CMYK")
    add("jpeg_cmyk", save(cmyk, "jpeg_cmyk.jpg", "JPEG", quality=90), "JPEG CMYK (Adobe, inverted) baseline")
    add("jpeg_prog_cmyk", save(cmyk, "jpeg_prog_cmyk.jpg", "JPEG", quality=90, progressive=True), "JPEG CMYK progressive")
    # YCCK: Pillow cannot write it, so take the CMYK file and set its Adobe APP14 transform
    # flag to 2. libjpeg then reads the first three components as YCbCr and converts them
    # (YCCK -> CMYK) before Pillow's CMYK;I unpacking: a structurally real YCCK file.
    with open(os.path.join(SRC, "jpeg_cmyk.jpg"), "rb") as f:
        data = bytearray(f.read())
    i = data.index(b"\xff\xee")  # APP14: len(2) "Adobe"(5) version(2) flags0(2) flags1(2) transform(1)
    assert data[i + 4:i + 9] == b"Adobe" and data[i + 15] == 0, data[i:i + 16]
    for name, prog in (("jpeg_ycck", False), ("jpeg_prog_ycck", True)):
        if prog:
            with open(os.path.join(SRC, "jpeg_prog_cmyk.jpg"), "rb") as f:
                data = bytearray(f.read())
            i = data.index(b"\xff\xee")
        data[i + 15] = 2
        with open(os.path.join(SRC, name + ".jpg"), "wb") as f:
            f.write(data)
        add(name, name + ".jpg", f"JPEG YCCK (Adobe transform 2) {'progressive' if prog else 'baseline'}")
    # CMYK without the Adobe marker: libjpeg still sees 4 components as CMYK and Pillow
    # still unpacks them as inverted (CMYK;I) bytes.
    with open(os.path.join(SRC, "jpeg_cmyk.jpg"), "rb") as f:
        data = bytearray(f.read())
    i = data.index(b"\xff\xee")
    n = struct.unpack(">H", data[i + 2:i + 4])[0]
    with open(os.path.join(SRC, "jpeg_cmyk_noadobe.jpg"), "wb") as f:
        f.write(data[:i] + data[i + 2 + n:])
    add("jpeg_cmyk_noadobe", "jpeg_cmyk_noadobe.jpg", "JPEG CMYK without an Adobe APP14 marker")
    for w, h in ((1, 1), (17, 9), (9, 17), (224, 224), (301, 199)):
        a = noise_rgb(w, h, w + 77 * h) if w * h < 1000 else smooth_rgb(w, h, w + 77 * h)
        fn = save(Image.fromarray(a), f"jpeg_420_{w}x{h}.jpg", "JPEG", quality=85)
        add(f"jpeg_420_{w}x{h}", fn, f"JPEG 4:2:0 {w}x{h}")
    for w, h, sub in ((301, 199, 2), (17, 9, 1), (9, 17, 2)):  # odd sizes: partial MCUs, edge upsampling
        a = noise_rgb(w, h, w + 77 * h) if w * h < 1000 else smooth_rgb(w, h, w + 77 * h)
        sname = ("444", "422", "420")[sub]
        fn = save(Image.fromarray(a), f"jpeg_prog_{sname}_{w}x{h}.jpg", "JPEG", quality=85, subsampling=sub, progressive=True)
        add(f"jpeg_prog_{sname}_{w}x{h}", fn, f"JPEG progressive 4:{sname[1]}:{sname[2]} {w}x{h}")
    add("jpeg_big_420", save(Image.fromarray(big), "jpeg_big_420.jpg", "JPEG", quality=60), "JPEG 4:2:0 1280x960")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90; must NOT be applied
    add("jpeg_exif_orient6", save(Image.fromarray(photo[:200, :300]), "jpeg_exif_orient6.jpg", "JPEG", quality=85, exif=exif),
        "JPEG with EXIF orientation 6 (ignored)")
    with open(os.path.join(SRC, "jpeg_base_420.jpg"), "rb") as f:
        data = f.read()
    assert data[-2:] == b"\xff\xd9"
    with open(os.path.join(SRC, "jpeg_noeoi.jpg"), "wb") as f:
        f.write(data[:-2])
    add("jpeg_noeoi", "jpeg_noeoi.jpg", "JPEG without EOI marker (Pillow: truncated)")

    # ---- WebP
    for w, h in ((333, 517), (300, 200), (31, 17)):
        a = smooth_rgb(w, h, w * 3 + h)
        a[h // 3:h // 3 + 10, w // 4:w // 4 + 20] = noise_rgb(20, 10, 5)[: min(10, h - h // 3), : min(20, w - w // 4)]
        fn = save(Image.fromarray(a), f"webp_lossy_{w}x{h}.webp", "WEBP", quality=80)
        add(f"webp_lossy_{w}x{h}", fn, f"WebP lossy {w}x{h}")
    rgba = np.concatenate([smooth_rgb(301, 203, 21), rng.integers(0, 256, (203, 301, 1), dtype=np.uint8)], axis=-1)
    add("webp_lossy_alpha", save(Image.fromarray(rgba, "RGBA"), "webp_lossy_alpha.webp", "WEBP", quality=80),
        "WebP lossy with alpha")
    add("webp_lossless", save(Image.fromarray(noise_rgb(97, 55, 22)), "webp_lossless.webp", "WEBP", lossless=True),
        "WebP lossless RGB")
    add("webp_lossless_alpha", save(Image.fromarray(rgba[:60, :80].copy(), "RGBA"), "webp_lossless_alpha.webp", "WEBP",
                                    lossless=True, exact=True), "WebP lossless RGBA (exact)")

    # ---- GIF, BMP
    p = Image.fromarray(smooth_rgb(250, 180, 31)).quantize(100)
    add("gif_p", save(p, "gif_p.gif", "GIF"), "GIF palette")
    add("gif_p_trns", save(p, "gif_p_trns.gif", "GIF", transparency=5), "GIF palette with transparency index")
    add("gif_gray", save(Image.fromarray(noise_rgb(40, 30, 32)).convert("L"), "gif_gray.gif", "GIF"), "GIF grayscale")
    add("bmp_rgb24", save(Image.fromarray(noise_rgb(51, 37, 41)), "bmp_rgb24.bmp", "BMP"), "BMP 24-bit")
    add("bmp_p8", save(Image.fromarray(smooth_rgb(60, 40, 42)).quantize(200), "bmp_p8.bmp", "BMP"), "BMP 8-bit palette")
    add("bmp_1", save(Image.fromarray(noise_rgb(33, 20, 43)).convert("1"), "bmp_1.bmp", "BMP"), "BMP 1-bit")
    add("bmp_l", save(Image.fromarray(noise_rgb(33, 20, 44)).convert("L"), "bmp_l.bmp", "BMP"), "BMP 8-bit gray")
    add("bmp_rgba32", save(Image.fromarray(rgba[:30, :40].copy(), "RGBA"), "bmp_rgba32.bmp", "BMP"), "BMP 32-bit BGRA")

    # ---- damaged files: Pillow's verdict (error or pixels) is the reference
    def damaged(name, base, desc, fn):
        with open(os.path.join(SRC, base), "rb") as f:
            data = bytearray(f.read())
        data = fn(data)
        with open(os.path.join(SRC, name + os.path.splitext(base)[1]), "wb") as f:
            f.write(data)
        add(name, name + os.path.splitext(base)[1], desc)

    def flip_crc(chunk):
        def fn(d):
            i = d.index(chunk)
            n = struct.unpack(">I", d[i - 4:i])[0]
            d[i + 4 + n] ^= 0xFF
            return d
        return fn

    def bad_text(d):
        i = d.index(b"IDAT") - 4
        t = png_chunk(b"tEXt", b"Comment\x00hello")
        t = t[:-1] + bytes([t[-1] ^ 0xFF])
        return d[:i] + t + d[i:]

    def corrupt_scan(d):
        i = d.index(b"\xff\xda")
        j = i + (len(d) - i) // 2
        for k in range(j, j + 40, 3):
            if d[k] != 0xFF and d[k - 1] != 0xFF:
                d[k] ^= 0x5A
        return d

    damaged("png_truncated_idat", "png_rgb8_37x53.png", "PNG cut inside IDAT", lambda d: d[: len(d) // 2])
    damaged("png_bad_idat_crc", "png_rgb8_37x53.png", "PNG with a bad IDAT CRC", flip_crc(b"IDAT"))
    damaged("png_bad_text_crc", "png_rgb8_37x53.png", "PNG with a bad tEXt CRC", bad_text)
    damaged("jpeg_truncated_half", "jpeg_base_420.jpg", "JPEG baseline cut in half", lambda d: d[: len(d) // 2])
    damaged("jpeg_prog_truncated", "jpeg_prog_420.jpg", "JPEG progressive cut at 60%", lambda d: d[: len(d) * 6 // 10])
    damaged("jpeg_corrupt_scan", "jpeg_base_420.jpg", "JPEG with corrupted entropy data", corrupt_scan)
    damaged("jpeg_trailing_garbage", "jpeg_base_420.jpg", "JPEG followed by garbage", lambda d: d + b"garbage" * 10)
    damaged("webp_truncated", "webp_lossy_300x200.webp", "WebP cut in half", lambda d: d[: len(d) // 2])
    damaged("gif_truncated", "gif_p.gif", "GIF cut in half", lambda d: d[: len(d) // 2])
    damaged("png_trailing_garbage", "png_rgb8_37x53.png", "PNG followed by garbage", lambda d: d + b"garbage" * 10)

    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({"pillow": PIL.__version__, "numpy": np.__version__, "cases": cases}, f, indent=1)

    # rescale + normalize of every uint8 value, per channel, as float32 bit patterns
    vals = np.arange(256, dtype=np.uint8).reshape(1, 256, 1).repeat(3, axis=2)
    t = normalize(vals)  # (3, 1, 256)
    bits = {"mean": CLIP_MEAN, "std": CLIP_STD,
            "bits": [[int(b) for b in t[c, 0].view(np.uint32)] for c in range(3)]}
    with open(os.path.join(OUT, "normalize.json"), "w") as f:
        json.dump(bits, f)
    total = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(OUT) for fn in fns)
    print(f"{len(cases)} cases, {total / 1e6:.2f} MB in {OUT}")


if __name__ == "__main__":
    main()
