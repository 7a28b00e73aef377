#!/usr/bin/env python3
"""icthp against PyTorch eager: the same CLIP vision tower, the same weights.

What a user would run instead of icthp is the official code path: a
transformers CLIPModel in PyTorch eager mode, float32. transformers cannot be
installed here, so this script carries a plain transcription of transformers
4.27's CLIPVisionTransformer + visual_projection (the version the official
ICT/HP code pins: eager attention with bmm, no SDPA) and the HP head. For
each preset it

  1. writes seeded random weights as a Hugging Face folder
     (`benchtool hf`: config.json + pytorch_model.bin, the HP head),
  2. converts that folder with the real converter
     (`icthp convert hp --backbone ... --head ...`),
  3. loads the same pytorch_model.bin into the PyTorch module
     (load_state_dict strict) and checks that both give the same
     image_embeds and hp_logit for one preprocessed image,
  4. times images/s at each batch size, PyTorch and icthp alternately,
     ROUNDS times, and keeps the best of each (the machine is shared),
  5. reports the ratio, and each engine's fraction of the machine's fp32
     peak, measured with a large matmul (and computed from the CPU's
     AVX-512 FMA width and clock, stated as such).

Usage: scripts/bench_torch.py [--presets vit-b-32,vit-l-14,vit-h-14]
           [--batches 1,8] [--runs 3] [--rounds 2] [--threads N] [--json FILE]
Needs python3-torch and libopenblas0-pthread (Debian), bin/icthp and a Go
toolchain (it builds scripts/benchtool). Python is for benchmarks only: no
test or build step needs it.
"""

import argparse
import datetime
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


# On a VM whose CPUID hides the model (as "Intel(R) Xeon(R) Processor"),
# OpenBLAS's run-time dispatch falls back to its Prescott (SSE3) kernels and
# torch's fp32 matmul runs at a tenth of the machine's speed. Ask for the
# AVX-512 kernels when the CPU has them (before torch loads OpenBLAS), so that
# PyTorch gets the BLAS a well-configured machine would give it.
if "OPENBLAS_CORETYPE" not in os.environ and {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= _cpu_flags():
    os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"


def _threads_arg():
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return str(os.cpu_count())


# OpenBLAS keeps its own thread pool, sized when torch loads it: give it the
# same number of threads as torch's and onnxruntime's.
os.environ.setdefault("OPENBLAS_NUM_THREADS", _threads_arg())

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402


# --- transformers 4.27 CLIP vision tower, transcribed -----------------------

class CLIPAttention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.embed_dim, self.num_heads = hidden, heads
        self.head_dim = hidden // heads
        self.scale = self.head_dim ** -0.5
        self.k_proj = nn.Linear(hidden, hidden)
        self.v_proj = nn.Linear(hidden, hidden)
        self.q_proj = nn.Linear(hidden, hidden)
        self.out_proj = nn.Linear(hidden, hidden)

    def _shape(self, t, seq, bsz):
        return t.view(bsz, seq, self.num_heads, self.head_dim).transpose(1, 2).contiguous()

    def forward(self, x):
        bsz, tgt, _ = x.size()
        q = self.q_proj(x) * self.scale
        k = self._shape(self.k_proj(x), -1, bsz)
        v = self._shape(self.v_proj(x), -1, bsz)
        shape = (bsz * self.num_heads, -1, self.head_dim)
        q = self._shape(q, tgt, bsz).view(*shape)
        k, v = k.view(*shape), v.view(*shape)
        w = torch.bmm(q, k.transpose(1, 2))
        w = nn.functional.softmax(w, dim=-1)
        out = torch.bmm(w, v)
        out = out.view(bsz, self.num_heads, tgt, self.head_dim).transpose(1, 2)
        out = out.reshape(bsz, tgt, self.embed_dim)
        return self.out_proj(out)


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


class CLIPMLP(nn.Module):
    def __init__(self, hidden, inter, act):
        super().__init__()
        self.act = quick_gelu if act == "quick_gelu" else nn.functional.gelu
        self.fc1 = nn.Linear(hidden, inter)
        self.fc2 = nn.Linear(inter, hidden)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class CLIPEncoderLayer(nn.Module):
    def __init__(self, a):
        super().__init__()
        h = a["hidden_size"]
        self.self_attn = CLIPAttention(h, a["num_heads"])
        self.layer_norm1 = nn.LayerNorm(h, eps=a["layer_norm_eps"])
        self.mlp = CLIPMLP(h, a["intermediate_size"], a["hidden_act"])
        self.layer_norm2 = nn.LayerNorm(h, eps=a["layer_norm_eps"])

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class CLIPEncoder(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.layers = nn.ModuleList([CLIPEncoderLayer(a) for _ in range(a["num_layers"])])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class CLIPVisionEmbeddings(nn.Module):
    def __init__(self, a):
        super().__init__()
        h, p = a["hidden_size"], a["patch_size"]
        self.class_embedding = nn.Parameter(torch.empty(h))
        self.patch_embedding = nn.Conv2d(3, h, kernel_size=p, stride=p, bias=False)
        n = (a["image_size"] // p) ** 2 + 1
        self.position_embedding = nn.Embedding(n, h)
        self.register_buffer("position_ids", torch.arange(n).expand((1, -1)), persistent=False)

    def forward(self, pixel_values):
        b = pixel_values.shape[0]
        patches = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(b, 1, -1)
        return torch.cat([cls, patches], dim=1) + self.position_embedding(self.position_ids)


class CLIPVisionTransformer(nn.Module):
    def __init__(self, a):
        super().__init__()
        h = a["hidden_size"]
        self.embeddings = CLIPVisionEmbeddings(a)
        self.pre_layrnorm = nn.LayerNorm(h, eps=a["layer_norm_eps"])
        self.encoder = CLIPEncoder(a)
        self.post_layernorm = nn.LayerNorm(h, eps=a["layer_norm_eps"])

    def forward(self, pixel_values):
        x = self.pre_layrnorm(self.embeddings(pixel_values))
        x = self.encoder(x)
        return self.post_layernorm(x[:, 0, :])


class CLIPImageFeatures(nn.Module):
    """CLIPModel.get_image_features: the vision tower and visual_projection."""

    def __init__(self, a):
        super().__init__()
        self.vision_model = CLIPVisionTransformer(a)
        self.visual_projection = nn.Linear(a["hidden_size"], a["projection_dim"], bias=False)

    def forward(self, pixel_values):
        return self.visual_projection(self.vision_model(pixel_values))


class HPHead(nn.Module):
    """The HP scorer's MLP (dropouts are identity at inference)."""

    def __init__(self, d):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(d, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
            nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1))

    def forward(self, x):
        return self.layers(x)


# --- helpers -----------------------------------------------------------------

def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"bench_torch: {' '.join(cmd)} failed: {r.stderr.strip()}")
    return r.stdout


def vision_gflop(a):
    """fp32 GFLOP of one image through get_image_features (2 per multiply-add)."""
    h, i, L = a["hidden_size"], a["intermediate_size"], a["num_layers"]
    g = a["image_size"] // a["patch_size"]
    t = g * g + 1
    macs = (t - 1) * 3 * a["patch_size"] ** 2 * h          # patch embedding
    macs += L * (4 * t * h * h + 2 * t * h * i + 2 * t * t * h)  # q,k,v,out; fc1,fc2; QK^T, AV
    macs += h * a["projection_dim"]
    return 2 * macs / 1e9


def cpu_seconds():
    """CPU time of this process, every thread, user + system."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def matmul_gflops(n, threads, repeats=7):
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def cpu_info():
    model, mhz, flags = platform.processor(), None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                k = k.strip()
                if k == "model name":
                    model = v.strip()
                elif k == "cpu MHz" and mhz is None:
                    mhz = float(v)
                elif k == "flags" and not flags:
                    flags = set(v.split())
    except OSError:
        pass
    return model, mhz, flags


def demo_pixels(size, name="apple.jpg"):
    """One demo image, CLIPImageProcessor-style (Pillow BICUBIC, center crop, normalise)."""
    from PIL import Image
    im = Image.open(os.path.join(ROOT, "testdata", "demo", name)).convert("RGB")
    w, h = im.size
    s = size / min(w, h)
    im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
    w, h = im.size
    left, top = (w - size) // 2, (h - size) // 2
    im = im.crop((left, top, left + size, top + size))
    x = np.asarray(im, dtype=np.float32) / 255.0
    mean = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
    std = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
    return ((x - mean) / std).transpose(2, 0, 1)[None].copy()


def spearman(a, b):
    """Spearman's rank correlation (no ties expected in float scores)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def int8_accuracy(benchtool, d, a, tower, head, dev, args, provider, n_random=13):
    """How far `convert --int8` is from PyTorch float32 on the same weights.

    Inputs: the three demo images, preprocessed, and n_random seeded
    standard-normal tensors. Reports the cosine between the image_embeds of
    the two engines (worst and mean), the largest |Δ hp_logit| against the
    spread of hp_logit over the inputs, and how the two engines order the
    inputs by hp_logit (Spearman, and the fraction of pairs in the same
    order): the property a reward model is used for.
    """
    size = a["image_size"]
    demo = [demo_pixels(size, f) for f in ("apple.jpg", "sunset.png", "checkers.webp")]
    rng = np.random.default_rng(7)
    px = np.concatenate(demo + [rng.standard_normal((1, 3, size, size), dtype=np.float32) for _ in range(n_random)])
    n = len(px)
    px.astype("<f4").tofile(os.path.join(d, "pixels-int8.f32"))
    run([benchtool, "encode", "--model", os.path.join(d, "model-int8"), "--in", os.path.join(d, "pixels-int8.f32"),
         "--n", str(n), "--out", os.path.join(d, "icthp-int8.f32"), "--threads", str(args.threads),
         "--provider", provider])
    got = np.fromfile(os.path.join(d, "icthp-int8.f32"), dtype="<f4")
    D = a["projection_dim"]
    qemb, qlogit = got[:n * D].reshape(n, D), got[n * D:]
    with torch.inference_mode():
        emb = tower(torch.from_numpy(px).to(dev))
        logit = head(emb)[:, 0]
    emb, logit = emb.cpu().numpy().astype(np.float64), logit.cpu().numpy().astype(np.float64)
    cos = np.sum(emb * qemb, axis=1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(qemb, axis=1)
    dl = np.abs(qlogit - logit)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    agree = sum((logit[i] - logit[j]) * (qlogit[i] - qlogit[j]) > 0 for i, j in pairs) / len(pairs)
    res = {"inputs": n, "cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()),
           "hp_logit_max_abs": float(dl.max()), "hp_logit_spread": float(logit.max() - logit.min()),
           "spearman_hp_logit": spearman(logit, qlogit), "pair_order_agreement": float(agree)}
    print(f"  int8 against PyTorch float32 on {n} inputs: image_embeds cosine min {res['cosine_min']:.5f} "
          f"mean {res['cosine_mean']:.5f}; hp_logit max |Δ| {res['hp_logit_max_abs']:.3g} "
          f"(spread of hp_logit {res['hp_logit_spread']:.3g}); Spearman {res['spearman_hp_logit']:.4f}, "
          f"pairs in the same order {100 * agree:.1f}%")
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", default="vit-b-32,vit-l-14,vit-h-14")
    ap.add_argument("--batches", default="1,8", help="batch sizes")
    ap.add_argument("--batches-h14", default="1", help="batch sizes for vit-h-14 (slow: default 1 only)")
    ap.add_argument("--int8", action="store_true", help="also convert with --int8 and report its speed and "
                    "its distance from PyTorch's float32 results")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per engine per round")
    ap.add_argument("--rounds", type=int, default=2, help="alternations of the two engines")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both engines")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", default="", help="folder for checkpoints and models (default: a temporary one)")
    ap.add_argument("--json", default="", help="also write the results here")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda[:N] (icthp then runs onnxruntime's CUDA "
                    "provider: set ICTHP_ORT_LIB to a GPU build)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    provider = "cpu" if dev.type == "cpu" else "cuda:%d" % (dev.index or 0)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    icthp = os.path.join(ROOT, "bin", "icthp")
    if not os.access(icthp, os.X_OK):
        sys.exit("bench_torch: bin/icthp is missing: run `make build` first")
    work = args.work or tempfile.mkdtemp(prefix="icthp-bench-torch-")
    benchtool = os.path.join(work, "benchtool")
    run(["go", "build", "-o", benchtool, "./scripts/benchtool"], cwd=ROOT)

    model, mhz, flags = cpu_info()
    fma = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    # Two FMA units per core is an assumption (true of the Xeon Scalable
    # parts with AVX-512); cpuid does not tell the port count.
    peak_calc = args.threads * (mhz or 0) / 1e3 * fma * 2 * 2
    # The measured peak is the best of a few large matmuls: on a shared
    # machine any one of them may have lost cores to other work.
    mm1024 = max(matmul_gflops(1024, args.threads) for _ in range(3))
    peak_mm = max([mm1024] + [matmul_gflops(2048, args.threads) for _ in range(3)])
    print(f"machine: {model}, {os.cpu_count()} cores at {mhz} MHz, "
          f"{'AVX-512' if fma == 16 else 'AVX2' if fma == 8 else 'SSE'}; shared with other work")
    print(f"torch {torch.__version__}, {args.threads} threads; "
          f"matmul fp32 1024²: {mm1024:.0f} GFLOP/s, best of 1024² and 2048²: {peak_mm:.0f} GFLOP/s (the measured peak); "
          f"computed peak {peak_calc:.0f} GFLOP/s ({args.threads} cores × {mhz:.0f} MHz × {fma} lanes × 2 FMA units × 2)")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(auto)')}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    if mm1024 < 100:
        print("warning: torch's 1024² matmul is under 100 GFLOP/s: is libopenblas0-pthread installed "
              "(Debian's reference BLAS is about 30x slower), does OpenBLAS pick its AVX-512 kernels "
              "(OPENBLAS_VERBOSE=2 prints the core), or is the machine busy?", file=sys.stderr)

    results = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "cpu": model, "mhz": mhz, "threads": args.threads, "torch": torch.__version__,
               "matmul_gflops_1024": mm1024, "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""), "peak_gflops_measured": peak_mm,
               "peak_gflops_computed": peak_calc, "presets": []}
    batches = [int(b) for b in args.batches.split(",")]
    h14_batches = [int(b) for b in args.batches_h14.split(",")]
    for preset in args.presets.split(","):
        d = os.path.join(work, preset)
        if not os.path.exists(os.path.join(d, "model", "model.json")):
            run([benchtool, "hf", "--preset", preset, "--seed", str(args.seed), "--out", d])
            run([icthp, "convert", "hp", "--backbone", os.path.join(d, "backbone"),
                 "--head", os.path.join(d, "head.bin"), "--out", os.path.join(d, "model")])
        with open(os.path.join(d, "arch.json")) as f:
            a = json.load(f)
        sd = torch.load(os.path.join(d, "backbone", "pytorch_model.bin"), map_location="cpu")
        tower = CLIPImageFeatures(a).eval()
        tower.load_state_dict(sd, strict=True)
        head = HPHead(a["projection_dim"]).eval()
        head.load_state_dict(torch.load(os.path.join(d, "head.bin"), map_location="cpu"), strict=True)
        tower, head = tower.to(dev), head.to(dev)
        del sd

        # Parity on one image: the same float32 tensor into both engines.
        px = demo_pixels(a["image_size"])
        px.astype("<f4").tofile(os.path.join(d, "pixels.f32"))
        run([benchtool, "encode", "--model", os.path.join(d, "model"), "--in", os.path.join(d, "pixels.f32"),
             "--n", "1", "--out", os.path.join(d, "icthp.f32"), "--threads", str(args.threads),
             "--provider", provider])
        got = np.fromfile(os.path.join(d, "icthp.f32"), dtype="<f4")
        with torch.inference_mode():
            emb = tower(torch.from_numpy(px).to(dev))
            logit = head(emb)
        emb, logit = emb.cpu().numpy()[0], float(logit[0, 0])
        gemb, glogit = got[:a["projection_dim"]], float(got[a["projection_dim"]])
        diff_raw = float(np.max(np.abs(gemb - emb)))
        scale = float(np.max(np.abs(emb)))
        n1, n2 = emb / np.linalg.norm(emb), gemb / np.linalg.norm(gemb)
        diff_norm = float(np.max(np.abs(n1 - n2)))
        diff_logit = abs(glogit - logit)
        ok = diff_norm <= 1e-4
        print(f"\n{preset}: {vision_gflop(a):.2f} GFLOP/image; parity on one image: "
              f"image_embeds max |Δ| {diff_raw:.2e} (max |x| {scale:.2f}), L2-normalised {diff_norm:.2e}, "
              f"hp_logit |Δ| {diff_logit:.2e}: {'OK' if ok else 'MISMATCH'} (want ≤ 1e-4)")
        entry = {"preset": preset, "gflop_per_image": vision_gflop(a), "parity_max_abs": diff_raw,
                 "parity_max_abs_normalised": diff_norm, "parity_hp_logit": diff_logit, "parity_ok": ok,
                 "batches": []}
        if args.int8:
            if not os.path.exists(os.path.join(d, "model-int8", "model.json")):
                run([icthp, "convert", "hp", "--int8", "--backbone", os.path.join(d, "backbone"),
                     "--head", os.path.join(d, "head.bin"), "--out", os.path.join(d, "model-int8")])
            entry["int8"] = int8_accuracy(benchtool, d, a, tower, head, dev, args, provider)

        for n in (h14_batches if preset == "vit-h-14" else batches):
            x = torch.randn(n, 3, a["image_size"], a["image_size"]).to(dev)
            best_t, best_i, cpu_t, cpu_i = math.inf, math.inf, math.inf, math.inf
            best_q, cpu_q = math.inf, math.inf
            with torch.inference_mode():
                tower(x)  # warm-up
                sync()
                for _ in range(args.rounds):
                    for _ in range(args.runs):
                        t, c = time.perf_counter(), cpu_seconds()
                        head(tower(x))
                        sync()
                        best_t = min(best_t, time.perf_counter() - t)
                        cpu_t = min(cpu_t, cpu_seconds() - c)
                    out = json.loads(run([benchtool, "time", "--model", os.path.join(d, "model"),
                                          "--batch", str(n), "--runs", str(args.runs),
                                          "--threads", str(args.threads), "--provider", provider]))
                    best_i = min(best_i, min(out["seconds"]))
                    cpu_i = min(cpu_i, min(out["cpu_seconds"]))
                    if args.int8:
                        out = json.loads(run([benchtool, "time", "--model", os.path.join(d, "model-int8"),
                                              "--batch", str(n), "--runs", str(args.runs),
                                              "--threads", str(args.threads), "--provider", provider]))
                        best_q = min(best_q, min(out["seconds"]))
                        cpu_q = min(cpu_q, min(out["cpu_seconds"]))
            ti, ii = n / best_t, n / best_i
            g = vision_gflop(a)
            row = {"batch": n, "torch_images_per_s": ti, "icthp_images_per_s": ii, "ratio": ii / ti,
                   "torch_gflops": g * ti, "icthp_gflops": g * ii,
                   "icthp_fraction_of_measured_peak": g * ii / peak_mm,
                   "icthp_fraction_of_computed_peak": g * ii / peak_calc if peak_calc else None,
                   "torch_cpu_ms_per_image": 1e3 * cpu_t / n, "icthp_cpu_ms_per_image": 1e3 * cpu_i / n,
                   "ratio_cpu": cpu_t / cpu_i}
            if args.int8:
                qi = n / best_q
                row.update({"int8_images_per_s": qi, "int8_ratio": qi / ti, "int8_ratio_vs_float": qi / ii,
                            "int8_cpu_ms_per_image": 1e3 * cpu_q / n, "int8_ratio_cpu": cpu_t / cpu_q})
            entry["batches"].append(row)
            print(f"  batch {n:2d}: PyTorch eager {ti:8.2f} images/s ({g * ti:5.0f} GFLOP/s), "
                  f"icthp {ii:8.2f} images/s ({g * ii:5.0f} GFLOP/s): {ii / ti:.2f}x; icthp at "
                  f"{100 * g * ii / peak_mm:.0f}% of the measured peak, "
                  f"{100 * g * ii / peak_calc:.0f}% of the computed one")
            print(f"            CPU time: PyTorch {1e3 * cpu_t / n:8.1f} ms/image, icthp {1e3 * cpu_i / n:8.1f} ms/image: "
                  f"{cpu_t / cpu_i:.2f}x; icthp at {g * n / cpu_i:.0f} GFLOP per CPU-second, "
                  f"{100 * g * n / cpu_i / (peak_calc / args.threads):.0f}% of one core's computed peak")
            if args.int8:
                print(f"            icthp --int8 {qi:8.2f} images/s: {qi / ti:.2f}x PyTorch, {qi / ii:.2f}x icthp float32; "
                      f"CPU {1e3 * cpu_q / n:8.1f} ms/image ({cpu_t / cpu_q:.2f}x PyTorch's)")
            sys.stdout.flush()
        results["presets"].append(entry)
        del tower, head

    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if not all(p["parity_ok"] for p in results["presets"]):
        sys.exit("bench_torch: the two engines disagree: the comparison is not apples to apples")


if __name__ == "__main__":
    main()
