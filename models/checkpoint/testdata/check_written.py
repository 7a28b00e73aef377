#!/usr/bin/python3
"""Dev-time check that the Go writers produce files the real readers accept.

    d=$(mktemp -d)
    CHECKPOINT_WRITE_DIR=$d go test ./models/checkpoint/ -run TestWriteForTorch -count=1
    /usr/bin/python3 models/checkpoint/testdata/check_written.py $d

It torch.load()s go_written.pt (WriteTorchZip) and parses go_written.safetensors
(WriteSafetensors) by hand with numpy, as the safetensors package is not
installed here, and compares keys, order, dtypes, shapes and every value with
go_written.json. CI has no Python; there the Go round-trip test reads the same
files back with our reader.

Last run: torch 1.13.1 (Debian python3-torch), all 13 tensors of both files
identical, "OK" printed.
"""
import collections
import json
import os
import struct
import sys

import numpy as np
import torch

NP = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32,
      "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
TORCH = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
         torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
         torch.uint8: "U8", torch.bool: "BOOL"}


def as_bits(t):
    return [int(x) for x in t.float().contiguous().reshape(-1).view(torch.int32).numpy().astype(np.uint32)]


def same(a, b):
    fa = np.array(a, dtype=np.uint32).view(np.float32)
    fb = np.array(b, dtype=np.uint32).view(np.float32)
    return a == b or bool(np.all((fa.view(np.uint32) == fb.view(np.uint32)) | (np.isnan(fa) & np.isnan(fb))))


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n], object_pairs_hook=collections.OrderedDict)
    header.pop("__metadata__", None)
    data = raw[8 + n:]
    out = collections.OrderedDict()
    for k, e in header.items():
        b, end = e["data_offsets"]
        buf = data[b:end]
        if e["dtype"] == "BF16":
            t = torch.from_numpy(np.frombuffer(buf, dtype=np.int16).copy()).view(torch.bfloat16)
        else:
            t = torch.from_numpy(np.frombuffer(buf, dtype=NP[e["dtype"]]).copy())
        out[k] = t.reshape(e["shape"])
    return out


def check(name, sd, exp):
    assert list(sd.keys()) == exp["keys"], (name, list(sd.keys()), exp["keys"])
    for k, t in sd.items():
        e = exp["tensors"][k]
        assert TORCH[t.dtype] == e["dtype"], (name, k, t.dtype, e["dtype"])
        assert list(t.shape) == e["shape"], (name, k, list(t.shape), e["shape"])
        assert same(as_bits(t), e["bits"]), (name, k, t, e["bits"])
    print(name, len(sd), "tensors match")


def main():
    d = sys.argv[1]
    with open(os.path.join(d, "go_written.json")) as f:
        exp = json.load(f)
    sd = torch.load(os.path.join(d, "go_written.pt"))
    assert isinstance(sd, collections.OrderedDict), type(sd)
    check("go_written.pt", sd, exp)
    # torch's restricted unpickler (torch >= 1.13) accepts it too.
    check("go_written.pt (weights_only)", torch.load(os.path.join(d, "go_written.pt"), weights_only=True), exp)
    check("go_written.safetensors", read_safetensors(os.path.join(d, "go_written.safetensors")), exp)
    print("OK")


if __name__ == "__main__":
    main()
