"""Tests of icthp_client against a real `icthp serve` (tiny random demo
models) on a free loopback port, plus stdlib HTTP stubs for the retry and
timeout paths. numpy / PIL / torch tests skip when those are absent.

The icthp binary: $ICTHP_BIN, else a fresh `go build` of this tree, else
bin/icthp (skipped, saying so, without any of them).
"""

import concurrent.futures
import http.server
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(HERE, ".."))

import icthp_client  # noqa: E402
from icthp_client import APIError, Client, Encoded, InputError, Raw, TransportError, encode_png  # noqa: E402

try:
    import numpy as np
except ImportError:
    np = None
try:
    from PIL import Image as PILImage
except ImportError:
    PILImage = None
try:
    import torch
except ImportError:
    torch = None

TOKEN = "test-token-h9"
SERVER = {}


def _binary():
    """$ICTHP_BIN; else a fresh build of this tree (a stale bin/icthp would
    test old code); else bin/icthp."""
    b = os.environ.get("ICTHP_BIN")
    if b:
        return b
    if shutil.which("go") is not None:
        SERVER["tmp"] = tempfile.mkdtemp(prefix="icthp-pytest-")
        out = os.path.join(SERVER["tmp"], "icthp")
        subprocess.run(["go", "build", "-o", out, "./cmd/icthp"], cwd=ROOT, check=True)
        return out
    b = os.path.join(ROOT, "bin", "icthp")
    if os.path.exists(b):
        return b
    raise unittest.SkipTest("no Go to build icthp, no $ICTHP_BIN and no bin/icthp: client tests need a server")


def _start(args, env):
    """Starts `icthp serve` with args on a free loopback port; returns the
    process and its URL once it is ready."""
    p = subprocess.Popen([SERVER["bin"], "serve", "--addr", "127.0.0.1:0", "--drain-delay", "0s"] + args,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    addr = None
    deadline = time.monotonic() + 120
    while addr is None:
        line = p.stderr.readline()
        if not line:
            raise RuntimeError("icthp serve exited (%s) before listening" % p.poll())
        if line.startswith("{"):
            rec = json.loads(line)
            if rec.get("msg") == "listening":
                addr = rec["addr"]
        if time.monotonic() > deadline:
            raise RuntimeError("icthp serve did not start")
    # Keep draining its log so that it never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
    url = "http://" + addr
    c = Client(url, token=env.get("ICTHP_AUTH_TOKENS"))
    while not c.ready():
        if time.monotonic() > deadline or p.poll() is not None:
            raise RuntimeError("icthp serve never became ready")
        time.sleep(0.1)
    c.close()
    return p, url


def _stop(p):
    p.terminate()
    try:
        p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def setUpModule():
    SERVER["bin"] = _binary()
    SERVER["proc"], SERVER["url"] = _start(["--max-images", "8"], dict(os.environ, ICTHP_AUTH_TOKENS=TOKEN))


def tearDownModule():
    tearDownModule_clients()
    p = SERVER.get("proc")
    if p is not None:
        _stop(p)
    if "tmp" in SERVER:
        shutil.rmtree(SERVER["tmp"], ignore_errors=True)


def pattern(seed, w, h):
    """Deterministic raw RGB pixels (H×W×3)."""
    return Raw(h, w, bytes(((x * 7 + seed * 31) ^ (y * 5 + seed * 17) ^ (c * 40 + x * y)) & 0xFF
                           for y in range(h) for x in range(w) for c in range(3)))


def client(**kw):
    c = Client(SERVER["url"], token=TOKEN, **kw)
    CLIENTS.append(c)
    return c


CLIENTS = []


def tearDownModule_clients():
    for c in CLIENTS:
        c.close()


class TestRawAndEncoded(unittest.TestCase):
    def test_raw_binary_json_and_png_agree_exactly(self):
        imgs = [pattern(s, 33, 21) for s in range(3)]
        c = client()
        binary = c.score(imgs, prompt="a cat")  # one size: the binary tensor body
        png = c.score([Encoded(encode_png(im)) for im in imgs], prompt="a cat")
        png_client = client(raw=False).score(imgs, prompt="a cat")
        png_json = client(multipart=False).score([Encoded(encode_png(im)) for im in imgs], prompt="a cat")
        mixed = c.score(imgs + [pattern(9, 17, 40)], prompt="a cat")[:3]  # two sizes: JSON tensors
        self.assertEqual(set(binary[0]), {"ict", "hp", "hp_logit"})
        self.assertEqual(binary, png)
        self.assertEqual(binary, png_client)
        self.assertEqual(binary, png_json)
        self.assertEqual(binary, mixed)

    def test_files_as_form_parts_or_base64_json(self):
        # Files go as multipart parts by default, as base64 JSON with
        # multipart=False or when a reward has weights: the same answers
        # either way, on every route; a reward's prompts go one per image.
        files = [Encoded(encode_png(pattern(s, 20 + s, 18))) for s in range(3)]
        prompts = ["a cat", "a dog on a hill", "a \"quoted\"\r\nprompt"]
        form, js = client(), client(multipart=False)
        models = ["hp", "ict"]
        self.assertEqual(form.score(files, prompt="a cat", models=models), js.score(files, prompt="a cat", models=models))
        self.assertEqual(form.rank(files, prompt="p"), js.rank(files, prompt="p"))
        self.assertEqual(form.embed(images=files), js.embed(images=files))
        r = form.reward(files, prompts)
        self.assertEqual(r.rewards, js.reward(files, prompts).rewards)
        for i, f in enumerate(files):
            self.assertEqual(r.scores["ict"][i], form.score([f], prompt=prompts[i])[0]["ict"])
        self.assertEqual(form.reward(files, prompts, reward="hp").rewards, js.reward(files, prompts, reward="hp").rewards)
        w = {"ict": 1, "hp": 0.5}
        self.assertEqual(form.reward(files, prompts, weights=w).rewards, js.reward(files, prompts, weights=w).rewards)
        job = form.submit("reward", files, prompts=prompts)
        self.assertEqual(form.result(job).rewards, r.rewards)

    def test_hp_only_without_prompt(self):
        s = client().score([pattern(1, 16, 16)])
        self.assertEqual(set(s[0]), {"hp", "hp_logit"})

    def test_files_and_bytes(self):
        im = pattern(4, 20, 20)
        data = encode_png(im)
        with tempfile.NamedTemporaryFile(suffix=".png", delete=False) as f:
            f.write(data)
        try:
            c = client()
            got = c.score([f.name, data, bytearray(data), im], prompt="x")
            self.assertEqual(got[0], got[3])
            self.assertEqual(got[1], got[3])
            self.assertEqual(got[2], got[3])
        finally:
            os.unlink(f.name)

    def test_per_item_error_keeps_batch(self):
        got = client().score([pattern(1, 16, 16), b"not an image"], prompt="x")
        self.assertIn("hp", got[0])
        self.assertEqual(got[1]["error"]["code"], "unsupported_image")

    def test_bad_inputs(self):
        c = client()
        with self.assertRaises(InputError):
            c.score([object()])
        with self.assertRaises(InputError):
            c.score(["/no/such/file.png"])
        with self.assertRaises(InputError):
            c.reward([pattern(1, 8, 8)], ["a", "b"])


class TestRoutes(unittest.TestCase):
    def test_batches_over_the_server_limit(self):
        # The server takes 8 images per request; 19 go as 3 requests, in order.
        imgs = [pattern(s, 12 + s % 3, 12) for s in range(19)]
        c = client(batch_size=8)
        whole = c.score(imgs, prompt="p")
        one_by_one = [c.score([im], prompt="p")[0] for im in imgs]
        self.assertEqual(whole, one_by_one)
        with self.assertRaises(APIError) as cm:
            client(batch_size=64).score(imgs, prompt="p")
        self.assertEqual((cm.exception.status, cm.exception.code), (413, "too_many_items"))

    def test_reward_default_and_weighted(self):
        imgs = [pattern(s, 24, 24) for s in range(10)]
        prompts = ["prompt %d" % i for i in range(10)]
        c = client(batch_size=4)
        r = c.reward(imgs, prompts)
        self.assertEqual(len(r.rewards), 10)
        self.assertEqual(set(r.models), {"ict", "hp"})
        scores = c.score(imgs[3:4], prompt=prompts[3])[0]
        self.assertEqual(r.scores["ict"][3], scores["ict"])
        self.assertEqual(r.scores["hp"][3], scores["hp"])
        for i in range(10):
            self.assertAlmostEqual(r.rewards[i], r.scores["ict"][i] * r.scores["hp"][i], places=12)
        w = c.reward(imgs, prompts, weights={"ict": 1, "hp": 0.5})
        for i in range(10):
            self.assertAlmostEqual(w.rewards[i], w.scores["ict"][i] + 0.5 * w.scores["hp"][i], places=12)
        one = c.reward(imgs[:2], "same prompt")
        self.assertEqual(one.rewards, c.reward(imgs[:2], ["same prompt"] * 2).rewards)
        with self.assertRaises(APIError) as cm:
            c.reward(imgs[:1], ["x"], weights={"nope": 1})
        self.assertEqual(cm.exception.code, "bad_request")

    def test_reward_item_errors(self):
        r = client().reward([pattern(1, 16, 16), b"\x89PNG broken"], ["a", "b"])
        self.assertIsNotNone(r.rewards[0])
        self.assertIsNone(r.rewards[1])
        self.assertEqual(r.errors[0]["index"], 1)

    def test_rank_merges_chunks(self):
        imgs = [pattern(s, 16, 16) for s in range(11)]
        whole = client(batch_size=4).rank(imgs, prompt="p")
        self.assertEqual(sorted(r["index"] for r in whole), list(range(11)))
        keys = [r["ict_hp"] for r in whole]
        self.assertEqual(keys, sorted(keys, reverse=True))
        ref = client(batch_size=8).score(imgs[:8], prompt="p") + client().score(imgs[8:], prompt="p")
        for r in whole:
            self.assertEqual(r["ict"], ref[r["index"]]["ict"])

    def test_embed(self):
        out = client(batch_size=3).embed(texts=["a", "b", "c", "d"], images=[pattern(s, 16, 16) for s in range(5)])
        self.assertEqual(len(out["text_embeddings"]), 4)
        self.assertEqual(len(out["image_embeddings"]), 5)
        for e in out["text_embeddings"] + out["image_embeddings"]:
            self.assertAlmostEqual(math.sqrt(sum(x * x for x in e)), 1.0, places=5)

    def test_models_and_auth(self):
        names = {m["name"] for m in client().models()}
        self.assertEqual(names, {"ict", "hp"})
        with self.assertRaises(APIError) as cm:
            Client(SERVER["url"]).score([pattern(1, 8, 8)])
        self.assertEqual((cm.exception.status, cm.exception.code), (401, "unauthorized"))
        with self.assertRaises(APIError) as cm:
            Client(SERVER["url"], token="wrong").models()
        self.assertEqual(cm.exception.code, "forbidden")

    def test_async(self):
        c = client()
        imgs = [pattern(s, 16, 16) for s in range(4)]
        f = c.reward_async(imgs, "p")
        self.assertIsInstance(f, concurrent.futures.Future)
        self.assertEqual(f.result(timeout=60).rewards, c.reward(imgs, "p").rewards)
        self.assertEqual(c.score_async(imgs).result(timeout=60), c.score(imgs))


class TestJobs(unittest.TestCase):
    def test_submit_and_result(self):
        c = client()
        imgs = [pattern(s, 20, 20) for s in range(3)]
        jid = c.submit("reward", imgs, prompts=["a", "b", "c"], weights={"ict": 1, "hp": 1})
        got = c.result(jid, timeout=60)
        want = c.reward(imgs, ["a", "b", "c"], weights={"ict": 1, "hp": 1})
        self.assertEqual((got.rewards, got.scores, got.models), (want.rewards, want.scores, want.models))
        mixed = imgs + [Encoded(encode_png(pattern(7, 9, 9)))]  # two sizes: a JSON job
        self.assertEqual(c.result(c.submit("score", mixed, prompt="p"), timeout=60), c.score(mixed, prompt="p"))
        self.assertEqual(c.result(c.submit("rank", imgs, prompt="p"), timeout=60), c.rank(imgs, prompt="p"))

    def test_idempotency_key(self):
        c = client()
        imgs = [pattern(1, 16, 16)]
        a = c.submit("reward", imgs, prompts="x", idempotency_key="h9-key-1")
        b = c.submit("reward", imgs, prompts="x", idempotency_key="h9-key-1")
        self.assertEqual(a, b)
        with self.assertRaises(APIError) as cm:
            c.submit("reward", imgs, prompts="other", idempotency_key="h9-key-1")
        self.assertEqual((cm.exception.status, cm.exception.code), (409, "conflict"))
        c.result(a, timeout=60)

    def test_failed_and_unknown(self):
        c = client()
        jid = c.submit("reward", [pattern(1, 8, 8)], prompts=["x"], weights={"imagereward": 1})
        with self.assertRaises(APIError) as cm:
            c.result(jid, timeout=60)
        self.assertEqual((cm.exception.status, cm.exception.code), (400, "bad_request"))
        with self.assertRaises(APIError) as cm:
            c.job("0" * 32)
        self.assertEqual(cm.exception.code, "not_found")
        with self.assertRaises(InputError):
            client(batch_size=2).submit("score", [pattern(s, 8, 8) for s in range(3)])


class TestRewardFunctions(unittest.TestCase):
    def test_ddpo_signature(self):
        imgs = [pattern(s, 16, 16) for s in range(5)]
        prompts = ["p%d" % i for i in range(5)]
        fn = icthp_client.ddpo_reward_fn(SERVER["url"], token=TOKEN)
        rewards, meta = fn(imgs, prompts, [{} for _ in prompts])
        want = client().reward(imgs, prompts)
        self.assertEqual([float(x) for x in rewards], [float(_f32(x)) for x in want.rewards])
        self.assertEqual(set(meta["models"]), {"ict", "hp"})
        afn = icthp_client.ddpo_reward_fn_async(client(), weights={"hp": 1})
        fut = afn(imgs, prompts, [{} for _ in prompts])
        r2, meta2 = fut.result(timeout=60)
        self.assertEqual([float(x) for x in r2], [float(_f32(x)) for x in meta2["hp"]])

    def test_ddpo_failed_item_is_nan(self):
        fn = icthp_client.ddpo_reward_fn(client())
        rewards, meta = fn([pattern(1, 16, 16), b"garbage"], ["a", "b"], None)
        self.assertFalse(math.isnan(float(rewards[0])))
        self.assertTrue(math.isnan(float(rewards[1])))
        self.assertEqual(meta["errors"][0]["index"], 1)

    def test_flow_grpo_multi_score(self):
        imgs = [pattern(s, 16, 16) for s in range(6)]
        prompts = ["p%d" % i for i in range(6)]
        fn = icthp_client.multi_score(client(batch_size=4), {"ict": 1.0, "hp": 0.5})
        details, meta = fn(imgs, prompts, {}, only_strict=False)
        self.assertEqual(meta, {})
        self.assertEqual(set(details), {"ict", "hp", "avg"})
        for i in range(6):
            want = float(details["ict"][i]) + 0.5 * float(details["hp"][i])
            self.assertAlmostEqual(float(details["avg"][i]), want, places=5)
        fut = icthp_client.multi_score_async(client(), {"ict": 1.0, "hp": 0.5})(imgs, prompts, {})
        d2, _ = fut.result(timeout=60)
        self.assertEqual([float(x) for x in d2["avg"]], [float(x) for x in details["avg"]])
        with self.assertRaises(APIError) as cm:  # the demo server has no ImageReward
            icthp_client.multi_score(client(), {"hp_logit": 1, "imagereward": 1})(imgs, prompts, {})
        self.assertEqual(cm.exception.code, "bad_request")


class TestRewardZoo(unittest.TestCase):
    """A second server with tiny random zoo models (made by `icthp convert
    random`) beside ICT: weights mixing them, each component beside the sum."""

    WEIGHTS = {"pickscore": 0.5, "hpsv2": 1.0, "aesthetic": 0.1}

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="icthp-zoo-")
        args = []
        for seed, (kind, name) in enumerate([("clip", "ict"), ("pickscore", "pickscore"), ("hpsv2", "hpsv2"), ("aesthetic", "aesthetic")]):
            d = os.path.join(cls.tmp, name)
            subprocess.run([SERVER["bin"], "convert", "random", "--kind", kind, "--preset", "tiny", "--seed", str(seed + 11), "--out", d],
                           check=True, stdout=subprocess.DEVNULL)
            args += ["--" + name, d]
        env = {k: v for k, v in os.environ.items() if k != "ICTHP_AUTH_TOKENS"}
        cls.proc, cls.url = _start(args, env)
        cls.client = Client(cls.url, batch_size=4)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        _stop(cls.proc)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_weighted_mix_and_components(self):
        imgs = [pattern(s, 20, 20) for s in range(4)]
        c = self.client
        r = c.reward(imgs, "a fox", weights=self.WEIGHTS)
        self.assertEqual(set(r.models), {"ict", "pickscore", "hpsv2", "aesthetic"})
        self.assertEqual(set(r.scores), {"ict", "pickscore", "pickscore_prob", "hpsv2", "aesthetic"})
        alone = c.score(imgs, prompt="a fox")
        for i in range(4):
            for name in ("ict", "pickscore", "hpsv2", "aesthetic"):
                self.assertAlmostEqual(r.scores[name][i], alone[i][name], places=9, msg=name)
            want = 0.5 * r.scores["pickscore"][i] + r.scores["hpsv2"][i] + 0.1 * r.scores["aesthetic"][i]
            self.assertAlmostEqual(r.rewards[i], want, places=12)
        # PickScore's probability: the softmax of the request's pickscores.
        m = max(r.scores["pickscore"])
        z = sum(math.exp(p - m) for p in r.scores["pickscore"])
        for i in range(4):
            self.assertAlmostEqual(r.scores["pickscore_prob"][i], math.exp(r.scores["pickscore"][i] - m) / z, places=12)
        # Over batch_size, the columns of each request line up with the items.
        big = c.reward(imgs + [imgs[0], imgs[1], b"broken", imgs[3]], "a fox", weights=self.WEIGHTS)
        self.assertEqual(len(big.rewards), 8)
        self.assertEqual([e["index"] for e in big.errors], [6])
        for name in ("pickscore", "hpsv2", "aesthetic"):
            self.assertEqual(len(big.scores[name]), 8)
            self.assertAlmostEqual(big.scores[name][5], r.scores[name][1], places=9)
            self.assertIsNone(big.scores[name][6])

    def test_reward_functions(self):
        imgs = [pattern(s, 20, 20) for s in range(3)]
        prompts = ["a fox", "a cat", "a fox"]
        want = self.client.reward(imgs, prompts, weights=self.WEIGHTS)
        details, meta = icthp_client.multi_score(self.client, self.WEIGHTS)(imgs, prompts, {})
        self.assertEqual(meta, {})
        self.assertEqual(set(details), {"pickscore", "hpsv2", "aesthetic", "avg"})
        for i in range(3):
            self.assertAlmostEqual(float(details["avg"][i]), float(_f32(want.rewards[i])), places=5)
            for name in self.WEIGHTS:
                self.assertEqual(float(details[name][i]), float(_f32(want.scores[name][i])))
        rewards, meta = icthp_client.ddpo_reward_fn(self.client, weights=self.WEIGHTS)(imgs, prompts, None)
        self.assertEqual([float(x) for x in rewards], [float(_f32(x)) for x in want.rewards])
        for name in ("ict", "pickscore", "pickscore_prob", "hpsv2", "aesthetic"):
            self.assertEqual([float(x) for x in meta[name]], [float(_f32(x)) for x in want.scores[name]])
        # The prompts differ: "a cat" is alone in its group.
        self.assertEqual(want.scores["pickscore_prob"][1], 1.0)
        with self.assertRaises(APIError) as cm:  # not loaded here
            icthp_client.multi_score(self.client, {"hp": 1, "pickscore": 1})(imgs, prompts, {})
        self.assertEqual(cm.exception.code, "bad_request")

    def test_models_lists_the_zoo(self):
        ms = {m["name"]: m for m in self.client.models()}
        self.assertEqual(set(ms), {"ict", "pickscore", "hpsv2", "aesthetic"})
        self.assertEqual(ms["pickscore"]["scores"], ["pickscore", "pickscore_prob"])
        self.assertEqual(ms["pickscore"]["formula"]["name"], "pickscore")
        self.assertTrue(ms["hpsv2"]["formula"]["description"].startswith("hpsv2 = cos"))
        self.assertEqual(ms["aesthetic"]["kind"], "aesthetic")
        self.assertEqual(ms["aesthetic"]["source"]["random"]["preset"], "tiny")
        self.assertNotIn("formula", ms["ict"])


def _f32(x):
    """x as the reward functions return it: float32 with numpy, else float."""
    if np is None or x is None:
        return x
    return np.float32(x)


class _Stub(http.server.BaseHTTPRequestHandler):
    """Answers from a script: a list of (status, headers, body, delay)."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.calls.append(self.headers.get("Content-Type"))
        status, hdrs, body, delay = self.server.script.pop(0) if self.server.script else self.server.last
        time.sleep(delay)
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


class TestRetriesAndTimeouts(unittest.TestCase):
    def stub(self, script, last):
        s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
        s.script, s.last, s.calls = list(script), last, []
        threading.Thread(target=s.serve_forever, daemon=True).start()
        self.addCleanup(s.server_close)
        self.addCleanup(s.shutdown)
        return s, "http://127.0.0.1:%d" % s.server_address[1]

    overloaded = (429, {"Retry-After": "0"}, {"error": {"code": "overloaded", "message": "queue full"}}, 0)
    ok = (200, {}, {"scores": [{"hp": 0.5}]}, 0)

    def test_files_go_as_form_parts(self):
        s, url = self.stub([], (200, {}, {"scores": [{"hp": 0.5}], "rewards": [0.5]}, 0))
        png = Encoded(encode_png(pattern(1, 4, 4)))
        Client(url).score([png], prompt="p")
        Client(url, multipart=False).score([png], prompt="p")
        Client(url).reward([png], ["p"], weights={"hp": 1})  # a form has no weights: JSON
        Client(url).score([png, pattern(1, 4, 4)], prompt="p")  # a raw tensor beside a file: JSON
        self.assertTrue(s.calls[0].startswith("multipart/form-data; boundary="), s.calls[0])
        self.assertEqual(s.calls[1:], ["application/json"] * 3)

    def test_retries_429_and_503_then_succeeds(self):
        draining = (503, {"Retry-After": "0"}, {"error": {"code": "draining", "message": "bye"}}, 0)
        s, url = self.stub([self.overloaded, draining, self.overloaded], self.ok)
        self.assertEqual(Client(url, retries=3).score([pattern(1, 4, 4)]), [{"hp": 0.5}])
        self.assertEqual(len(s.calls), 4)
        self.assertEqual(s.calls[0], icthp_client.TENSOR_CONTENT_TYPE)

    def test_gives_up_with_the_servers_code(self):
        s, url = self.stub([], self.overloaded)
        with self.assertRaises(APIError) as cm:
            Client(url, retries=2).score([pattern(1, 4, 4)])
        self.assertEqual((cm.exception.status, cm.exception.code, cm.exception.message), (429, "overloaded", "queue full"))
        self.assertEqual(len(s.calls), 3)

    def test_timeout(self):
        s, url = self.stub([], (200, {}, {"scores": []}, 1.5))
        with self.assertRaises(TransportError):
            Client(url, timeout=0.2).score([pattern(1, 4, 4)])

    def test_unreachable(self):
        s = http.server.HTTPServer(("127.0.0.1", 0), _Stub)
        port = s.server_address[1]
        s.server_close()
        with self.assertRaises(TransportError):
            Client("http://127.0.0.1:%d" % port, timeout=2).score([pattern(1, 4, 4)])


@unittest.skipIf(np is None, "numpy is not installed: numpy-array inputs not tested")
class TestNumpy(unittest.TestCase):
    def test_layouts_and_dtypes(self):
        im = pattern(3, 19, 13)
        hwc = np.frombuffer(im.data, dtype=np.uint8).reshape(13, 19, 3)
        c = client()
        want = c.score([im], prompt="n")
        self.assertEqual(c.score(hwc, prompt="n"), want)
        self.assertEqual(c.score([hwc.transpose(2, 0, 1)], prompt="n"), want)
        self.assertEqual(c.score(hwc[None], prompt="n"), want)
        rgba = np.concatenate([hwc, np.full((13, 19, 1), 7, np.uint8)], axis=2)
        self.assertEqual(c.score([rgba], prompt="n"), want)
        f = hwc.astype(np.float32) / 255  # round(x*255) gives the bytes back
        self.assertEqual(c.score([f], prompt="n"), want)
        with self.assertRaises(InputError):
            c.score([hwc.astype(np.int32)])
        rewards, _ = icthp_client.ddpo_reward_fn(c)(hwc[None].repeat(2, 0), ["a", "b"], None)
        self.assertEqual(rewards.dtype, np.float32)
        self.assertEqual(rewards.shape, (2,))


@unittest.skipIf(PILImage is None, "Pillow is not installed: PIL-image inputs not tested")
class TestPIL(unittest.TestCase):
    def test_pil_modes(self):
        im = pattern(5, 23, 17)
        pil = PILImage.frombytes("RGB", (23, 17), im.data)
        c = client()
        want = c.score([im], prompt="q")
        self.assertEqual(c.score([pil], prompt="q"), want)
        self.assertEqual(c.score(pil.convert("RGBA"), prompt="q"), want)
        self.assertEqual(c.score([pil.convert("L")], prompt="q"), c.score([pil.convert("L").convert("RGB")], prompt="q"))


@unittest.skipIf(torch is None, "torch is not installed: torch-tensor inputs not tested")
class TestTorch(unittest.TestCase):
    def test_chw_float_batch(self):
        ims = [pattern(s, 16, 12) for s in range(3)]
        hwc = torch.stack([torch.tensor(list(im.data), dtype=torch.uint8).reshape(12, 16, 3) for im in ims])
        chw = hwc.permute(0, 3, 1, 2).float() / 255
        c = client()
        want = c.score(ims, prompt="t")
        self.assertEqual(c.score(chw, prompt="t"), want)
        self.assertEqual(c.score(list(hwc), prompt="t"), want)
        rewards, meta = icthp_client.ddpo_reward_fn(c)(chw, ["t"] * 3, [{}] * 3)
        self.assertEqual(len(rewards), 3)


if __name__ == "__main__":
    unittest.main()
