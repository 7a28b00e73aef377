"""HTTP client for icthp serve (SPEC §4), standard library only."""

import base64
import concurrent.futures
import http.client
import json
import os
import threading
import time
import urllib.parse

from .images import Encoded, InputError, Raw, encode_png, to_images

__all__ = ["Client", "IcthpError", "APIError", "TransportError", "InputError", "RewardResult", "TENSOR_CONTENT_TYPE"]

TENSOR_CONTENT_TYPE = "application/x-icthp-tensor"


class IcthpError(Exception):
    """Base of the client's errors."""


class APIError(IcthpError):
    """The server answered with an error: status, its error code (bad_request,
    too_large, overloaded, ...), message and request id."""

    def __init__(self, status, code, message, request_id=None):
        super().__init__("icthp: %d %s: %s" % (status, code, message))
        self.status, self.code, self.message, self.request_id = status, code, message, request_id


class TransportError(IcthpError):
    """The server could not be reached, or did not answer in time."""


class RewardResult:
    """One reward per item in order (None for an item that failed), the
    score columns by name (every score of the loaded models: ict, hp,
    hp_logit, imagereward, pickscore, pickscore_prob, clipscore,
    clipscore100, hpsv2, aesthetic: those loaded), the models' versions,
    and the failed items' errors ({index, code, message})."""

    __slots__ = ("rewards", "scores", "models", "errors")

    def __init__(self, rewards, scores, models, errors):
        self.rewards, self.scores, self.models, self.errors = rewards, scores, models, errors

    def __repr__(self):
        return "RewardResult(rewards=%r, models=%r, errors=%r)" % (self.rewards, self.models, self.errors)


# The members of a /v1/reward answer that are not score columns.
_NOT_COLUMNS = ("rewards", "models", "errors")


def _columns(res):
    """The score columns of a /v1/reward answer: every other list member."""
    return {k: v for k, v in res.items() if k not in _NOT_COLUMNS and isinstance(v, list)}


class Client:
    """A client of one icthp server.

    images, wherever taken, may be file paths, bytes of PNG/JPEG/WebP files,
    PIL images, numpy arrays or torch tensors (H×W×C uint8, C×H×W or H×W×C
    float in [0, 1], or batches of them). With raw=True (the default) arrays
    and PIL images travel as raw uint8 pixels, with no encoding; with
    raw=False they are PNG-encoded here first (lossless: the same scores).
    Encoded files (paths, file bytes) travel as multipart/form-data parts
    (multipart=True, the default): no base64 to make, a third fewer bytes
    on the wire; JSON where a request has what a form cannot carry (reward
    weights, raw tensors beside files).

    Inputs longer than batch_size (or whose pixels pass max_request_bytes)
    are split into several requests, up to concurrency of them at once; the
    results come back in order. A 429 or 503 answer is retried up to retries
    times, after the server's Retry-After. timeout bounds each request, in
    seconds, and is sent to the server as its deadline too.
    """

    def __init__(self, url, token=None, timeout=60.0, retries=5, batch_size=64,
                 max_request_bytes=60 << 20, concurrency=4, raw=True, max_retry_wait=30.0, multipart=True):
        u = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("icthp: bad server URL %r" % url)
        self._scheme, self._host, self._port = u.scheme, u.hostname, u.port
        self._base = u.path.rstrip("/")
        self.token, self.timeout, self.retries = token, timeout, retries
        self.batch_size, self.max_request_bytes = max(1, batch_size), max_request_bytes
        self.concurrency, self.raw, self.max_retry_wait = max(1, concurrency), raw, max_retry_wait
        self.multipart = multipart
        self._local = threading.local()
        self._conns = []  # every thread's connection, for close()
        self._lock = threading.Lock()
        self._pool = None  # chunks of one call
        self._async = None  # whole calls (the *_async methods)

    # ---- public API -------------------------------------------------

    def score(self, images, prompt=None, models=None):
        """One dict per image, in order: each score of the loaded models
        ("ict", "hp", "hp_logit", "imagereward", "pickscore", ...; those
        with a text side need a prompt), or
        {"error": {"code", "message"}} for an image that failed."""
        imgs = to_images(images)

        def one(chunk):
            body = {}
            if prompt is not None:
                body["prompt"] = prompt
            if models:
                body["models"] = list(models)
            return self._post_images("/v1/score", body, chunk)["scores"]

        return [s for part in self._map(one, self._chunks(imgs)) for s in part]

    def rank(self, images, prompt=None):
        """The images best first: dicts with "index" (into images) and the
        scores; failed images last. Over batch_size images, the chunks'
        rankings are merged by ict_hp (or hp)."""
        imgs = to_images(images)
        chunks = self._chunks(imgs)

        def one(chunk):
            body = {} if prompt is None else {"prompt": prompt}
            return self._post_images("/v1/rank", body, chunk)["ranking"]

        parts = self._map(one, chunks)
        if len(parts) == 1:
            return parts[0]
        ok, failed, start = [], [], 0
        for chunk, part in zip(chunks, parts):
            for r in part:
                r = dict(r, index=r["index"] + start)
                (failed if "error" in r else ok).append(r)
            start += len(chunk)
        ok.sort(key=lambda r: -r.get("ict_hp", r.get("hp", float("-inf"))))
        return ok + failed

    def reward(self, images, prompts, weights=None, reward=None):
        """A RewardResult: one reward per (image, prompt), each score of the
        loaded models beside it. prompts is a list as long as images, or
        one string for all. weights ({"ict": 1, "hp": 1, "imagereward": 0.5},
        or any mix of the loaded models' scores: {"pickscore": 0.5, "hpsv2":
        1, "aesthetic": 0.1}) asks for that weighted sum; reward names
        another combination (product, a score name, weighted:NAME=W,...);
        neither: the server's default. pickscore_prob is the softmax over
        one request's items with the same prompt: with more items than
        batch_size, over each request's share."""
        imgs = to_images(images)
        if isinstance(prompts, str):
            prompts = [prompts] * len(imgs)
        prompts = list(prompts)
        if len(prompts) != len(imgs):
            raise InputError("%d prompts for %d images" % (len(prompts), len(imgs)))
        idx = self._chunk_bounds(imgs)

        def one(bounds):
            lo, hi = bounds
            body = {}
            if weights is not None:
                body["weights"] = dict(weights)
            if reward is not None:
                body["reward"] = reward
            return self._post_images("/v1/reward", body, imgs[lo:hi], prompts=prompts[lo:hi])

        parts = self._map(one, idx)
        rewards, scores, models, errors = [], {}, {}, []
        for (lo, hi), part in zip(idx, parts):
            rewards += part["rewards"]
            models.update(part.get("models", {}))
            for name, col in _columns(part).items():
                scores.setdefault(name, [None] * lo)
                scores[name] += col
            for name in scores:  # a column a chunk lacked
                scores[name] += [None] * (hi - len(scores[name]))
            for e in part.get("errors", []):
                errors.append(dict(e, index=e["index"] + lo))
        return RewardResult(rewards, scores, models, errors)

    def embed(self, texts=None, images=None):
        """L2-normalised embeddings: {"text_embeddings": [...],
        "image_embeddings": [...]} for what was given (a failed image's
        embedding is None, its error in "errors")."""
        out = {}
        if texts:
            texts = list(texts)
            embs, models = [], {}
            for i in range(0, len(texts), self.batch_size):
                r = self._request("POST", "/v1/embed", json_body={"texts": texts[i:i + self.batch_size]})
                embs += r["text_embeddings"]
                models.update(r.get("models", {}))
            out["text_embeddings"], out["models"] = embs, models
        if images is not None:
            imgs = to_images(images)
            idx = self._chunk_bounds(imgs)
            parts = self._map(lambda b: self._post_images("/v1/embed", {}, imgs[b[0]:b[1]]), idx)
            out["image_embeddings"], errs = [], []
            for (lo, _), p in zip(idx, parts):
                out["image_embeddings"] += p["image_embeddings"]
                errs += [dict(e, index=e["index"] + lo) for e in p.get("errors", [])]
                out.setdefault("models", {}).update(p.get("models", {}))
            if errs:
                out["errors"] = errs
        if not out:
            raise InputError("embed needs texts and/or images")
        return out

    def submit(self, route, images, prompts=None, prompt=None, weights=None, reward=None, models=None,
               idempotency_key=None):
        """Starts a job on the server (POST /v1/jobs) and returns its id at
        once: route is "reward" (with prompts, weights, reward), "score" or
        "rank" (with prompt, models), or "embed". At most batch_size images
        (one request). With idempotency_key, submitting the same request
        again (from any replica sharing the server's Redis) returns the same
        job. result(id) waits for it."""
        if route not in ("score", "rank", "reward", "embed"):
            raise InputError("route %r: score, rank, reward or embed" % (route,))
        imgs = to_images(images)
        if len(imgs) > self.batch_size:
            raise InputError("a job takes at most batch_size (%d) images, got %d" % (self.batch_size, len(imgs)))
        body = {}
        if route == "reward":
            if prompts is None:
                prompts = prompt
            if isinstance(prompts, str):
                prompts = [prompts] * len(imgs)
            if prompts is None or len(prompts) != len(imgs):
                raise InputError("reward needs one prompt per image")
            prompts = list(prompts)
            if weights is not None:
                body["weights"] = dict(weights)
            if reward is not None:
                body["reward"] = reward
        else:
            if prompt is not None and route != "embed":
                body["prompt"] = prompt
            if models and route == "score":
                body["models"] = list(models)
            prompts = None
        hdrs = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        job = self._post_images("/v1/jobs?route=" + route, body, imgs, prompts=prompts, headers=hdrs)
        return job["id"]

    def job(self, job_id):
        """The job as the server has it: {"id", "route", "status": pending,
        done or failed, "http_status", "result", ...}."""
        return self._request("GET", "/v1/jobs/" + urllib.parse.quote(job_id, safe=""))

    def result(self, job_id, timeout=None, poll=0.05):
        """Waits for a job and returns what its route returns (reward: a
        RewardResult; score: the list of scores; rank: the ranking; embed:
        the answer); a failed job raises its APIError; TimeoutError after
        timeout seconds (None: wait as long as it takes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        wait = poll
        while True:
            j = self.job(job_id)
            if j["status"] != "pending":
                break
            if deadline is not None and time.monotonic() + wait > deadline:
                raise TimeoutError("icthp: job %s still pending after %gs" % (job_id, timeout))
            time.sleep(wait)
            wait = min(wait * 1.5, 1.0)
        res = j.get("result") or {}
        if j["status"] == "failed":
            err = res.get("error", {})
            raise APIError(j.get("http_status", 500), err.get("code", "internal"), err.get("message", "job failed"), "job-" + job_id)
        route = j.get("route")
        if route == "reward":
            return RewardResult(res["rewards"], _columns(res), res.get("models", {}), res.get("errors", []))
        if route == "score":
            return res["scores"]
        if route == "rank":
            return res["ranking"]
        return res

    def models(self):
        """The loaded models: name, version, device, ..."""
        return self._request("GET", "/v1/models")["models"]

    def ready(self):
        """Whether /readyz answers 200."""
        try:
            self._request("GET", "/readyz", retry=False)
            return True
        except IcthpError:
            return False

    def score_async(self, *args, **kw):
        """score in the background: a concurrent.futures.Future."""
        return self._submit(self.score, *args, **kw)

    def reward_async(self, *args, **kw):
        """reward in the background: a concurrent.futures.Future of its
        RewardResult (asyncio code can await asyncio.wrap_future(f))."""
        return self._submit(self.reward, *args, **kw)

    def close(self):
        with self._lock:
            for p in (self._pool, self._async):
                if p is not None:
                    p.shutdown(wait=False)
            self._pool = self._async = None
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing left to close with
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- requests ---------------------------------------------------

    def _submit(self, fn, *args, **kw):
        with self._lock:
            if self._async is None:
                self._async = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="icthp-async")
            return self._async.submit(fn, *args, **kw)

    def _map(self, fn, chunks):
        if len(chunks) <= 1 or self.concurrency == 1:
            return [fn(c) for c in chunks]
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="icthp")
            pool = self._pool
        return list(pool.map(fn, chunks))

    def _chunk_bounds(self, imgs):
        """[lo, hi) ranges of at most batch_size images and about
        max_request_bytes on the wire each (at least one image): raw bytes
        in a tensor body, 4/3 of them in base64 JSON."""
        binary = self.raw and imgs and all(isinstance(im, Raw) for im in imgs) and len({im.shape for im in imgs}) == 1
        out, lo, size = [], 0, 0
        for i, im in enumerate(imgs):
            n = len(im.data) if binary else len(im.data) * 4 // 3 + 64
            if i > lo and (i - lo >= self.batch_size or size + n > self.max_request_bytes):
                out.append((lo, i))
                lo, size = i, 0
            size += n
        if lo < len(imgs) or not imgs:
            out.append((lo, len(imgs)))
        return out

    def _chunks(self, imgs):
        return [imgs[lo:hi] for lo, hi in self._chunk_bounds(imgs)]

    def _post_images(self, path, body, imgs, prompts=None, headers=None):
        """Sends imgs with body: as one raw tensor body when every image is
        raw and of one size, else as JSON (raw tensors or base64 files)."""
        if not self.raw:
            imgs = [Encoded(encode_png(im)) if isinstance(im, Raw) else im for im in imgs]
        if imgs and all(isinstance(im, Raw) for im in imgs) and len({im.shape for im in imgs}) == 1:
            hdr = dict(body, shape=[len(imgs), imgs[0].height, imgs[0].width, 3], dtype="uint8")
            if prompts is not None:
                hdr["prompts"] = prompts
            payload = [json.dumps(hdr).encode(), b"\n"] + [im.data for im in imgs]
            return self._request("POST", path, data=b"".join(payload), content_type=TENSOR_CONTENT_TYPE, headers=headers)
        form = self._form_fields(body, prompts) if self.multipart and imgs and all(isinstance(im, Encoded) for im in imgs) else None
        if form is not None:
            data, ctype = _multipart(form, [im.data for im in imgs])
            return self._request("POST", path, data=data, content_type=ctype, headers=headers)
        enc = [_image_json(im) for im in imgs]
        if prompts is not None:
            body = dict(body, items=[{"prompt": p, "image": e} for p, e in zip(prompts, enc)])
        else:
            body = dict(body, images=enc)
        return self._request("POST", path, json_body=body, headers=headers)

    @staticmethod
    def _form_fields(body, prompts):
        """body's fields as (name, value) form fields in the server's form
        (README, HTTP API: prompt, models, reward; a reward's prompts one per
        image), or None when a field has no form (weights)."""
        fields = []
        for k, v in body.items():
            if k in ("prompt", "reward") and isinstance(v, str):
                fields.append((k, v))
            elif k == "models" and all(isinstance(m, str) for m in v):
                fields += [("models", m) for m in v]
            else:
                return None
        return fields + [("prompt", p) for p in (prompts or [])]

    def _conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self.timeout)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _drop_conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)
        self._local.conn = None

    def _request(self, method, path, json_body=None, data=None, content_type=None, retry=True, headers=None):
        if json_body is not None:
            data, content_type = json.dumps(json_body).encode(), "application/json"
        headers = dict(headers or {}, Accept="application/json")
        if content_type:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        if self.timeout:
            headers["X-Request-Timeout"] = "%gs" % self.timeout
        attempt = 0
        while True:
            try:
                status, hdrs, raw = self._once(method, self._base + path, data, headers)
            except (OSError, http.client.HTTPException) as e:
                # A kept-alive connection the server closed fails at once:
                # one fresh try, then it is the caller's error.
                self._drop_conn()
                if attempt == 0 and not isinstance(e, TimeoutError):
                    attempt += 1
                    continue
                raise TransportError("icthp: %s %s: %s" % (method, path, e)) from e
            if status in (429, 503) and retry and attempt < self.retries:
                time.sleep(self._retry_wait(hdrs.get("Retry-After"), attempt))
                attempt += 1
                continue
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = None
            if status >= 400 or not isinstance(body, dict):
                err = body.get("error", {}) if isinstance(body, dict) else {}
                raise APIError(status, err.get("code", "http_%d" % status), err.get("message", raw[:200].decode("utf-8", "replace")),
                               hdrs.get("X-Request-Id"))
            return body

    def _once(self, method, path, data, headers):
        conn = self._conn()
        conn.request(method, path, body=data, headers=headers)
        res = conn.getresponse()
        raw = res.read()
        if (res.getheader("Connection") or "").lower() == "close":
            self._drop_conn()
        return res.status, res.headers, raw

    def _retry_wait(self, header, attempt):
        try:
            wait = float(header)
        except (TypeError, ValueError):
            wait = 0.25 * (2 ** attempt)
        return min(max(wait, 0.0), self.max_retry_wait)


def _multipart(fields, files):
    """A multipart/form-data body: the fields, then the files as parts named
    images. The boundary is random and found in no part."""
    while True:
        boundary = "icthp" + os.urandom(16).hex()
        sep = b"--" + boundary.encode()
        if not any(sep in f for f in files) and not any(boundary in v for _, v in fields):
            break
    out = []
    for name, value in fields:
        out += [sep, b'\r\nContent-Disposition: form-data; name="%s"\r\n\r\n' % name.encode(), value.encode(), b"\r\n"]
    for i, f in enumerate(files):
        out += [sep, b'\r\nContent-Disposition: form-data; name="images"; filename="%d"\r\n' % i,
                b"Content-Type: application/octet-stream\r\n\r\n", f, b"\r\n"]
    out += [sep, b"--\r\n"]
    return b"".join(out), "multipart/form-data; boundary=" + boundary


def _image_json(im):
    if isinstance(im, Raw):
        return {"data": base64.b64encode(im.data).decode(), "shape": [im.height, im.width, 3], "dtype": "uint8"}
    return base64.b64encode(im.data).decode()
