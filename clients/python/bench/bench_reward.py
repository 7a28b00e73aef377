"""Client-side throughput of Client.reward for one batch of 64 512×512
images: raw tensors (the default) against encoding in the client (PNG with
the standard library, PNG and JPEG q95 with Pillow, as ddpo-pytorch's
reward servers are fed), and the ddpo-pytorch shape of server (a pickle of
JPEGs to a one-worker Python server that decodes them; here it forwards the
pixels to icthp, as its model). Every mode runs in the same process against the
same server, interleaved, ROUNDS times; the median is reported.

    bin/icthp serve --addr 127.0.0.1:18080 &        # demo models, or real ones
    python3 clients/python/bench/bench_reward.py --url http://127.0.0.1:18080

Needs numpy (images) and Pillow (the PIL modes, skipped without it).
"""

import argparse
import http.server
import io
import os
import pickle
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

from icthp_client import Client, Encoded  # noqa: E402

try:
    from PIL import Image
except ImportError:
    Image = None


def batch(n, size, seed=0):
    """Smooth gradients plus noise: compressible like a generated image, not trivially."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        base = np.stack([x * (1 + i % 3), y, (x + y) / 2], axis=2) * 200
        out[i] = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    return out


def pil_encoded(arr, fmt, **kw):
    out = []
    for a in arr:
        b = io.BytesIO()
        Image.fromarray(a).save(b, format=fmt, **kw)
        out.append(Encoded(b.getvalue()))
    return out


class PickleHandler(http.server.BaseHTTPRequestHandler):
    """The ddpo-pytorch shape of reward server: one worker, a pickled batch
    of JPEG bytes in, decoded with Pillow, scored (here: forwarded to icthp
    as raw pixels), a pickle of the rewards out."""

    def do_POST(self):
        req = pickle.loads(self.rfile.read(int(self.headers["Content-Length"])))
        arrs = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in req["images"]]
        res = self.server.icthp.reward(arrs, req["prompts"])
        data = pickle.dumps({"rewards": res.rewards})
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


def pickle_server(port, url):
    s = http.server.HTTPServer(("127.0.0.1", port), PickleHandler)  # one worker, as with a single Flask process
    s.icthp = Client(url, timeout=600)
    s.serve_forever()


def pickle_reward(port, arr, prompts):
    jpegs = []
    for a in arr:
        b = io.BytesIO()
        Image.fromarray(a).save(b, format="JPEG", quality=95)
        jpegs.append(b.getvalue())
    body = pickle.dumps({"images": jpegs, "prompts": prompts})
    req = urllib.request.Request("http://127.0.0.1:%d/" % port, data=body, method="POST")
    with urllib.request.urlopen(req, timeout=600) as r:
        rewards = pickle.loads(r.read())["rewards"]

    class R:  # the shape bench checks
        pass

    out = R()
    out.rewards, out.errors = rewards, []
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pickle-server", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--url", default="http://127.0.0.1:18080")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.pickle_server:
        return pickle_server(args.pickle_server, args.url)
    arr = batch(args.n, args.size)
    prompts = ["a photo number %d" % i for i in range(args.n)]
    raw = Client(args.url, timeout=600)
    png = Client(args.url, timeout=600, raw=False)
    modes = {
        "raw tensor (default)": lambda: raw.reward(arr, prompts),
        "PNG, stdlib encoder in client": lambda: png.reward(arr, prompts),
    }
    if Image is not None:
        modes["PNG, Pillow in client"] = lambda: raw.reward(pil_encoded(arr, "PNG"), prompts)
        modes["JPEG q95, Pillow in client (lossy)"] = lambda: raw.reward(pil_encoded(arr, "JPEG", quality=95), prompts)
        port = 18999
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--url", args.url, "--pickle-server", str(port)])
        for _ in range(100):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=1)
            except urllib.error.HTTPError:
                break  # it answers (501 to GET): up
            except OSError:
                time.sleep(0.1)
        modes["ddpo-pytorch shape: JPEG q95 pickle to a one-worker Python server"] = lambda: pickle_reward(port, arr, prompts)
    wall = {m: [] for m in modes}
    cpu = {m: [] for m in modes}
    for m, fn in modes.items():  # warm-up
        fn()
    for _ in range(args.rounds):
        for m, fn in modes.items():
            t0, c0 = time.perf_counter(), time.process_time()
            res = fn()
            wall[m].append(time.perf_counter() - t0)
            cpu[m].append(time.process_time() - c0)
            assert len(res.rewards) == args.n and None not in res.rewards, res.errors
    base = statistics.median(wall["raw tensor (default)"])
    print("reward(%d images %dx%d), median of %d rounds" % (args.n, args.size, args.size, args.rounds))
    print("| mode | wall s | images/s | client CPU s | wall vs raw |")
    print("|---|---|---|---|---|")
    for m in modes:
        w = statistics.median(wall[m])
        print("| %s | %.2f | %.1f | %.2f | %.2f× |" % (m, w, args.n / w, statistics.median(cpu[m]), w / base))
    if Image is not None:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
