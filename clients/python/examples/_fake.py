"""Stand-ins for a sampler's output when torch is not installed, so that the
examples run anywhere: a batch of random raw RGB images."""

import random

from icthp_client import Raw


def fake_batch(n, size=64, seed=0):
    rnd = random.Random(seed)
    try:
        import torch

        g = torch.Generator().manual_seed(seed)
        return torch.rand(n, 3, size, size, generator=g)  # what a diffusers pipeline hands back: NCHW in [0, 1]
    except ImportError:
        return [Raw(size, size, bytes(rnd.getrandbits(8) for _ in range(size * size * 3))) for _ in range(n)]
