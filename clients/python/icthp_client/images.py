"""Turning what training loops hold (paths, bytes, PIL images, numpy arrays,
torch tensors) into what the server takes: encoded file bytes, or raw packed
uint8 RGB pixels (HWC, row-major), which need no encoding at either end.

Only the standard library is needed; numpy, PIL and torch objects are
recognised by duck typing, so none of them is imported unless the caller
already did.
"""

import os
import struct
import sys
import zlib

__all__ = ["Raw", "Encoded", "to_images", "encode_png", "InputError"]


class InputError(ValueError):
    """An input the client cannot turn into an image."""


class Raw:
    """Packed uint8 RGB pixels, height × width × 3."""

    __slots__ = ("height", "width", "data")

    def __init__(self, height, width, data):
        if len(data) != height * width * 3:
            raise InputError("raw image %dx%d needs %d bytes, got %d" % (height, width, height * width * 3, len(data)))
        self.height, self.width, self.data = height, width, data

    @property
    def shape(self):
        return (self.height, self.width, 3)


class Encoded:
    """An image file's bytes (PNG, JPEG, WebP), decoded by the server."""

    __slots__ = ("data",)

    def __init__(self, data):
        self.data = bytes(data)


def _module_of(x):
    return type(x).__module__.split(".")[0]


def _is_torch(x):
    return _module_of(x) == "torch" and hasattr(x, "detach")


def _is_numpy(x):
    return _module_of(x) == "numpy" and hasattr(x, "dtype") and hasattr(x, "shape")


def _is_pil(x):
    return hasattr(x, "convert") and hasattr(x, "tobytes") and hasattr(x, "size") and _module_of(x) == "PIL"


def to_images(images):
    """Returns a list of Raw and Encoded for images: one image, a list of
    them, or a batch array/tensor (B×H×W×C or B×C×H×W)."""
    if isinstance(images, (str, bytes, bytearray, memoryview, os.PathLike, Raw, Encoded)) or _is_pil(images):
        return [_one(images, 0)]
    if _is_numpy(images) or _is_torch(images):
        nd = len(images.shape)
        if nd == 4 and _is_torch(images):
            images = images.detach().cpu()  # one device copy for the batch, not one per image
        if nd == 4:
            return [_one(images[i], i) for i in range(images.shape[0])]
        if nd in (2, 3):
            return [_one(images, 0)]
        raise InputError("an array of shape %s: want H×W×C, C×H×W, or a batch of them" % (tuple(images.shape),))
    try:
        seq = list(images)
    except TypeError:
        raise InputError("cannot use a %s as images" % type(images).__name__) from None
    return [_one(x, i) for i, x in enumerate(seq)]


def _one(x, i):
    try:
        if isinstance(x, (Raw, Encoded)):
            return x
        if isinstance(x, (bytes, bytearray, memoryview)):
            return Encoded(x)
        if isinstance(x, (str, os.PathLike)):
            with open(x, "rb") as f:
                return Encoded(f.read())
        if _is_pil(x):
            img = x if x.mode == "RGB" else x.convert("RGB")
            w, h = img.size
            return Raw(h, w, img.tobytes())
        if _is_torch(x):
            return _from_torch(x)
        if _is_numpy(x):
            return _from_numpy(x)
    except InputError as e:
        raise InputError("image %d: %s" % (i, e)) from None
    except OSError as e:
        raise InputError("image %d: %s" % (i, e)) from e
    raise InputError("image %d: cannot use a %s (want a path, bytes, a PIL image, a numpy array or a torch tensor)" % (i, type(x).__name__))


def _layout(shape):
    """'hwc' or 'chw' for a 3-d shape; channels are 1, 3 or 4."""
    if shape[-1] in (1, 3, 4):
        return "hwc"
    if shape[0] in (1, 3, 4):
        return "chw"
    raise InputError("shape %s has no channel axis of 1, 3 or 4 first or last" % (tuple(shape),))


def _from_numpy(a):
    import numpy as np  # the caller has numpy: a is one of its arrays

    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise InputError("array of shape %s: want H×W×C or C×H×W" % (a.shape,))
    if a.dtype != np.uint8:
        if a.dtype.kind != "f":
            raise InputError("dtype %s: want uint8, or floats in [0, 1]" % a.dtype)
        # As ddpo-pytorch and TRL do: round half to even, clamp.
        a = np.clip(np.round(a.astype(np.float32) * 255), 0, 255).astype(np.uint8)
    if _layout(a.shape) == "chw":
        a = a.transpose(1, 2, 0)
    c = a.shape[2]
    if c == 1:
        a = np.repeat(a, 3, axis=2)
    elif c == 4:
        a = a[:, :, :3]  # convert("RGB") drops alpha; it does not composite
    return Raw(a.shape[0], a.shape[1], np.ascontiguousarray(a).tobytes())


def _from_torch(t):
    import torch  # the caller has torch: t is one of its tensors

    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if t.dim() == 2:
        t = t.unsqueeze(-1)
    if t.dim() != 3:
        raise InputError("tensor of shape %s: want C×H×W or H×W×C" % (tuple(t.shape),))
    if t.dtype != torch.uint8:
        if not t.is_floating_point():
            raise InputError("dtype %s: want uint8, or floats in [0, 1]" % t.dtype)
        t = (t.float() * 255).round().clamp(0, 255).to(torch.uint8)
    if _layout(tuple(t.shape)) == "chw":
        t = t.permute(1, 2, 0)
    c = t.shape[2]
    if c == 1:
        t = t.expand(-1, -1, 3)
    elif c == 4:
        t = t[:, :, :3]
    t = t.contiguous()
    try:
        data = t.numpy().tobytes()
    except (RuntimeError, ImportError):  # torch built without numpy
        data = bytes(t.reshape(-1).tolist())
    return Raw(t.shape[0], t.shape[1], data)


def encode_png(raw, level=6):
    """A lossless PNG of raw pixels with the standard library only (filter
    0 on every row), for servers or paths that want encoded files."""
    row = raw.width * 3
    data = raw.data if isinstance(raw.data, bytes) else bytes(raw.data)
    buf = bytearray()
    for y in range(raw.height):
        buf.append(0)
        buf += data[y * row:(y + 1) * row]

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", raw.width, raw.height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(buf), level)) + chunk(b"IEND", b"")


if sys.version_info < (3, 8):  # pragma: no cover
    raise ImportError("icthp_client needs Python 3.8 or later")
