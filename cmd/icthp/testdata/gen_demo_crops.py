#!/usr/bin/python3
"""Pillow's 224x224 crops of the demo images, for cmd/icthp's end-to-end test.

Writes demo_crops.json: for each file of testdata/demo/, the sha256 of the
uint8 RGB crop (H, W, 3 bytes, row-major) that CLIPImageProcessor
(transformers 4.27 steps, Pillow 9.4) makes: convert("RGB"), resize the
shortest edge to 224 with BICUBIC, center-crop 224. The steps are those of
preprocess/testdata/gen_image_fixtures.py (imported, not copied). The test
accepts icthp's crop as the reference only when its sha256 matches.

Run with Debian's python3-pil 9.4 and python3-numpy:
    /usr/bin/python3 cmd/icthp/testdata/gen_demo_crops.py
"""
import hashlib
import json
import os
import sys

import numpy as np
import PIL

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "preprocess", "testdata"))
from gen_image_fixtures import clip_crop  # noqa: E402


def main():
    demo = os.path.join(ROOT, "testdata", "demo")
    cases = []
    for name in sorted(os.listdir(demo)):
        crop, resized = clip_crop(os.path.join(demo, name), 224, 224)
        cases.append({
            "image": "testdata/demo/" + name,
            "resized": list(resized),
            "crop_sha256": hashlib.sha256(np.ascontiguousarray(crop).tobytes()).hexdigest(),
        })
    out = {"pillow": PIL.__version__, "numpy": np.__version__, "cases": cases}
    with open(os.path.join(HERE, "demo_crops.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    for c in cases:
        print(c["image"], c["resized"], c["crop_sha256"])


if __name__ == "__main__":
    main()
