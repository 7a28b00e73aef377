"""What the examples share: their command line (the server's URL and token),
and stand-ins for a sampler's output when torch is not installed, so that
they run anywhere: a batch of random raw RGB images."""

import argparse
import os
import random

from icthp_client import Raw


def example_parser():
    """An argument parser with --url and --token ($ICTHP_URL, $ICTHP_TOKEN)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default=os.environ.get("ICTHP_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--token", default=os.environ.get("ICTHP_TOKEN"))
    return ap


def fake_batch(n, size=64, seed=0):
    rnd = random.Random(seed)
    try:
        import torch

        g = torch.Generator().manual_seed(seed)
        return torch.rand(n, 3, size, size, generator=g)  # what a diffusers pipeline hands back: NCHW in [0, 1]
    except ImportError:
        return [Raw(size, size, bytes(rnd.getrandbits(8) for _ in range(size * size * 3))) for _ in range(n)]
