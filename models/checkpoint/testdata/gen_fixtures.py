#!/usr/bin/python3
"""Writes the checkpoint package's test fixtures with the real torch.save.

Run from this directory with the system Python that has Debian's torch:

    /usr/bin/python3 gen_fixtures.py

(apt-get install -y python3-torch python3-numpy). The fixtures and
expected.json are committed; CI has no Python and only reads them. Written with
torch 1.13.1 (Debian bookworm's python3-torch); torch >= 2 writes the same
('storage', torch.FloatStorage, key, location, numel) persistent ids and
_rebuild_tensor_v2 calls, plus the byteorder/.format_version records.

safetensors files are written by hand (struct + json), following the format
description, because the safetensors package is not available here.

expected.json maps each fixture to {"keys": [...], "tensors": {name: {"dtype",
"shape", "bits"}}}, where bits are the uint32 bit patterns of torch's own
conversion of the tensor to float32 (t.float()), so inf/nan/-0 survive JSON.
"""
import collections
import io
import json
import os
import pickle
import shutil
import struct
import zipfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(1234)

DTYPES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.float64: "F64", torch.int64: "I64", torch.int32: "I32",
    torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}

expected = {}


def bits(t):
    return [int(x) for x in t.detach().float().contiguous().reshape(-1).view(torch.int32).numpy().astype(np.uint32)]


def record(name, sd):
    expected[name] = {
        "keys": list(sd.keys()),
        "tensors": {k: {"dtype": DTYPES[v.dtype], "shape": list(v.shape), "bits": bits(v)} for k, v in sd.items()},
    }


def path(name):
    p = os.path.join(HERE, name)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    return p


def save(name, obj, sd=None, **kw):
    torch.save(obj, path(name), **kw)
    # Check that torch reads back what we think it wrote.
    back = torch.load(path(name))
    if sd is not None:
        record(name, sd)
        inner = back
        if isinstance(back, dict) and "state_dict" in back:
            inner = back["state_dict"]
        elif isinstance(back, dict) and "model" in back and isinstance(back["model"], dict):
            inner = back["model"]
        assert list(inner.keys()) == list(sd.keys())
        for k in sd:
            assert torch.equal(inner[k].float().nan_to_num(7), sd[k].float().nan_to_num(7)), k


def specials(dtype):
    vals = [0.0, -0.0, 1.0, -2.5, float("inf"), float("-inf"), float("nan"), 65504.0, 1e-3]
    if dtype == torch.float16:
        vals += [2.0 ** -24, -(2.0 ** -24), 3 * 2.0 ** -24, 2.0 ** -14 - 2.0 ** -24, 2.0 ** -14, 1023 * 2.0 ** -24]
    else:
        vals += [1e-40, -1e-39, 3e38, 1.17549435e-38, 9.2e-41]
    return torch.tensor(vals, dtype=torch.float32).to(dtype)


def main():
    # --- plain dtypes -------------------------------------------------------
    sd = collections.OrderedDict()
    sd["w"] = torch.randn(3, 4)
    sd["b"] = torch.randn(4)
    sd["scalar"] = torch.tensor(3.25)
    sd["empty"] = torch.zeros(0, 3)
    sd["four_d"] = torch.randn(2, 3, 4, 5)
    save("f32.pt", sd, sd)

    for dt, name in [(torch.float16, "f16.pt"), (torch.bfloat16, "bf16.pt")]:
        sd = collections.OrderedDict()
        sd["specials"] = specials(dt)
        sd["w"] = torch.randn(5, 3).to(dt)
        sd["row"] = (torch.randn(1, 7) * 1000).to(dt)
        save(name, sd, sd)

    # --- buffers: position_ids as transformers makes it (expand: stride 0) --
    sd = collections.OrderedDict()
    sd["text_model.embeddings.position_ids"] = torch.arange(77).expand((1, -1))
    sd["vision_model.embeddings.position_ids"] = torch.arange(5).expand((3, -1))  # stride (0, 1)
    sd["i32"] = torch.tensor([-(2 ** 31), 2 ** 31 - 1, 0, 7], dtype=torch.int32)
    sd["i16"] = torch.tensor([-32768, 32767, -1], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, 127, 3], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 255, 17], dtype=torch.uint8)
    sd["mask"] = torch.tensor([True, False, True])
    sd["f64"] = torch.tensor([1.0 / 3.0, 1e300, -1e-300, 2.0 ** -149, float("nan")], dtype=torch.float64)
    sd["i64_big"] = torch.tensor([2 ** 40 + 1, -(2 ** 53) - 3], dtype=torch.int64)
    save("buffers.pt", sd, sd)

    # --- views: non-contiguous, offsets into shared storages, tied weights --
    a = torch.arange(12, dtype=torch.float32).reshape(3, 4) * 0.5
    cube = torch.randn(2, 4, 6)
    tied = torch.randn(6, 2)
    h = torch.randn(4, 3).to(torch.float16)
    sd = collections.OrderedDict()
    sd["a"] = a
    sd["a_t"] = a.t()             # stride (1, 4)
    sd["row1"] = a[1]             # offset 4
    sd["col2"] = a[:, 2]          # offset 2, stride 4
    sd["cube_slice"] = cube[:, 1:3, ::2]
    sd["cube_perm"] = cube.permute(2, 0, 1)
    sd["embed.weight"] = tied
    sd["lm_head.weight"] = tied   # same tensor object: one storage
    sd["half_t"] = h.t()
    sd["tail"] = torch.randn(10)[7:]  # offset into a storage no other key uses whole
    save("views.pt", sd, sd)

    # --- an HP-head-like bare dict (keys as the HP scorer's nn.Sequential) ---
    class Head(torch.nn.Module):
        def __init__(self, d):
            super().__init__()
            self.layers = torch.nn.Sequential(
                torch.nn.Linear(d, 32), torch.nn.Dropout(0.2),
                torch.nn.Linear(32, 16), torch.nn.Dropout(0.2),
                torch.nn.Linear(16, 8), torch.nn.Dropout(0.1),
                torch.nn.Linear(8, 4), torch.nn.Linear(4, 1))

    head = dict(Head(12).state_dict())
    save("hp_head.pt", head, head)

    # --- wrappers -------------------------------------------------------------
    inner = collections.OrderedDict([("x.weight", torch.randn(2, 2)), ("x.bias", torch.randn(2))])
    save("wrapped_state_dict.pt", {"epoch": 3, "state_dict": inner, "note": "hello"}, inner)
    save("wrapped_model.pt", {"model": inner, "step": 10}, inner)

    # --- pickle protocol 4 (frames, MEMOIZE, SHORT_BINUNICODE) ----------------
    sd = collections.OrderedDict([("p4.w", torch.randn(3, 2)), ("p4.v", torch.randn(3).to(torch.bfloat16))])
    save("proto4.pt", sd, sd, pickle_protocol=4)

    # --- the same archive with DEFLATE-compressed entries ---------------------
    src = zipfile.ZipFile(path("f32.pt"))
    with zipfile.ZipFile(path("deflate.pt"), "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename.replace("f32/", "deflate/"), src.read(info.filename))
    record("deflate.pt", torch.load(path("deflate.pt")))
    assert expected["deflate.pt"] == expected["f32.pt"]

    # --- legacy (pre-1.6) format: must be rejected ----------------------------
    torch.save(collections.OrderedDict([("w", torch.ones(2))]), path("legacy.pt"), _use_new_zipfile_serialization=False)

    # --- malicious pickles in the torch zip layout ----------------------------
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch /tmp/icthp_checkpoint_pwned",))

    for name, proto in [("malicious.pt", 2), ("malicious_p4.pt", 4)]:
        buf = io.BytesIO()
        torch.save(collections.OrderedDict([("ok", torch.ones(2)), ("evil", torch.zeros(1))]), buf)
        buf.seek(0)
        good = zipfile.ZipFile(buf)
        stem = name[:-3]
        with zipfile.ZipFile(path(name), "w") as z:
            for info in good.infolist():
                data = good.read(info.filename)
                if info.filename.endswith("/data.pkl"):
                    # Keep the tensors; replace the second value with Evil().
                    obj = collections.OrderedDict([("ok", "placeholder"), ("evil", Evil())])
                    data = pickle.dumps(obj, protocol=proto)
                    assert b"system" in data
                z.writestr(stem + "/" + info.filename.split("/", 1)[1], data)

    # --- sharded torch checkpoint + folder -----------------------------------
    full = collections.OrderedDict()
    full["m.a"] = torch.randn(2, 3)
    full["m.b"] = torch.randn(3)
    full["m.c"] = torch.randn(4, 1).to(torch.float16)
    shards = [("pytorch_model-00001-of-00002.bin", ["m.a", "m.b"]), ("pytorch_model-00002-of-00002.bin", ["m.c"])]
    write_sharded("sharded_pt", full, shards, lambda p, sd: torch.save(sd, p), "pytorch_model.bin.index.json")

    # --- safetensors, by hand --------------------------------------------------
    st = collections.OrderedDict()
    st["h3"] = specials(torch.float16)[:3]          # 6 bytes: the next tensor is unaligned
    st["f32"] = torch.randn(2, 3)
    st["bf"] = specials(torch.bfloat16)
    st["h"] = specials(torch.float16)
    st["f64"] = torch.tensor([1.0 / 3.0, -1e300], dtype=torch.float64)
    st["text_model.embeddings.position_ids"] = torch.arange(77).reshape(1, 77)
    st["scalar"] = torch.tensor(-1.5)
    st["empty"] = torch.zeros(0)
    write_safetensors(path("mixed.safetensors"), st, metadata={"format": "pt", "note": "hand-written"})
    record("mixed.safetensors", st)

    write_sharded("sharded_st", full,
                  [("model-00001-of-00002.safetensors", ["m.a", "m.b"]), ("model-00002-of-00002.safetensors", ["m.c"])],
                  write_safetensors, "model.safetensors.index.json")

    # A folder with both formats: OpenFolder must prefer model.safetensors.
    d = "folder_both"
    shutil.rmtree(path(d), ignore_errors=True)
    both_st = collections.OrderedDict([("from", torch.tensor([1.0]))])
    both_pt = collections.OrderedDict([("from", torch.tensor([2.0]))])
    write_safetensors(path(f"{d}/model.safetensors"), both_st)
    torch.save(both_pt, path(f"{d}/pytorch_model.bin"))
    with open(path(f"{d}/config.json"), "w") as f:
        json.dump({"which": "folder_both"}, f)
    d = "folder_pt"
    shutil.rmtree(path(d), ignore_errors=True)
    torch.save(both_pt, path(f"{d}/pytorch_model.bin"))
    with open(path(f"{d}/config.json"), "w") as f:
        json.dump({"which": "folder_pt"}, f)

    # --- float32 -> half / bfloat16 rounding as torch does it -----------------
    xs = [0.0, -0.0, 1.0, 65504.0, 65519.99, 65520.0, 1e6, -1e6, float("inf"), float("-inf"), float("nan"),
          2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -25, 2.0 ** -26, 5 * 2.0 ** -26, 2.0 ** -14, 2.0 ** -14 - 2.0 ** -25,
          1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11, 1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8, 3.4e38, -3.4e38, 1e-45, 1e-38]
    r = torch.randn(2000) * torch.exp(torch.randn(2000) * 8)
    x = torch.cat([torch.tensor(xs, dtype=torch.float32), r.float()])
    with open(path("half_rounding.json"), "w") as f:
        json.dump({
            "f32_bits": bits(x),
            "f16_bits": [int(v) for v in x.half().view(torch.int16).numpy().astype(np.uint16)],
            "bf16_bits": [int(v) for v in x.bfloat16().view(torch.int16).numpy().astype(np.uint16)],
        }, f)

    # --- a real module's state_dict(): OrderedDict with a _metadata BUILD, a
    # registered position_ids buffer (expanded, stride 0) and a tied weight --
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.token_embedding = torch.nn.Embedding(10, 4)
            self.position_embedding = torch.nn.Embedding(6, 4)
            self.register_buffer("position_ids", torch.arange(6).expand((1, -1)))
            self.layer_norm = torch.nn.LayerNorm(4)
            self.proj = torch.nn.Linear(4, 10, bias=False)
            self.proj.weight = self.token_embedding.weight  # tied

    m = Tiny()
    with torch.no_grad():
        m.layer_norm.weight.uniform_()
    sd = m.state_dict()
    assert hasattr(sd, "_metadata")
    save("module_state_dict.pt", sd, sd)

    with open(path("expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
    print("wrote", len(expected), "expected entries")


def write_sharded(d, full, shards, write, index):
    """Writes folder d: the shards (file name, keys of full) each with
    write(path, state dict), the index naming them and a config.json; records
    the index."""
    shutil.rmtree(path(d), ignore_errors=True)
    wm = {}
    for fname, keys in shards:
        write(path(f"{d}/{fname}"), collections.OrderedDict((k, full[k]) for k in keys))
        for k in keys:
            wm[k] = fname
    with open(path(f"{d}/{index}"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": wm}, f, indent=2)
    with open(path(f"{d}/config.json"), "w") as f:
        json.dump({"model_type": "test", "which": d}, f)
    record(f"{d}/{index}", full)


def write_safetensors(p, sd, metadata=None):
    """The safetensors layout: u64 LE header length, JSON header, packed data."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    blobs = []
    off = 0
    for k, t in sd.items():
        t = t.contiguous()
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().tobytes()
        header[k] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(p, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


if __name__ == "__main__":
    main()
