#!/usr/bin/env python3
"""The two summaries of scripts/gpu-check.sh (standard library only).

  gpu_check_table.py parity OUT   icthp's scores (OUT/icthp-fp32.jsonl, -fp16.jsonl) against transformers' (OUT/ref.json,
                                  torch_anchor.py ref), or fp16 against icthp fp32 when there is no reference (the CPU dry
                                  run); prints JSON lines {"step": "parity", ...}
  gpu_check_table.py table OUT    one table from OUT/results.jsonl
"""
import json, os, sys


def load_scores(path):
    rows = {}
    for line in open(path):
        r = json.loads(line)
        if "image" in r:
            rows[os.path.basename(r["image"])] = r
    return rows


def pair_agreement(a, b):
    """Fraction of image pairs that a and b order the same way."""
    same = total = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            if a[i] == a[j] or b[i] == b[j]:
                continue
            total += 1
            same += (a[i] < a[j]) == (b[i] < b[j])
    return same / total if total else None


def compare(name, got, want_logit, want_ict, bound):
    imgs = sorted(set(got) & set(want_logit))
    gl = [got[k]["hp_logit"] for k in imgs]
    wl = [want_logit[k] for k in imgs]
    d_logit = max(abs(x - y) for x, y in zip(gl, wl))
    d_ict = max(abs(got[k]["ict"] - want_ict[k]) for k in imgs) if want_ict else None
    r = {"step": "parity", "check": name, "images": len(imgs), "max_abs_d_hp_logit": d_logit, "max_abs_d_ict": d_ict,
         "pair_agreement_hp": pair_agreement(gl, wl)}
    if bound is not None:
        r["bound"] = bound
        r["pass"] = d_logit <= bound and (d_ict is None or d_ict <= bound)
    print(json.dumps(r))


def parity(out):
    s32 = load_scores(os.path.join(out, "icthp-fp32.jsonl"))
    s16 = load_scores(os.path.join(out, "icthp-fp16.jsonl"))
    ref = os.path.join(out, "ref.json")
    if os.path.exists(ref):
        r = json.load(open(ref))
        for prec, got, bound in (("fp32", s32, 1e-4), ("fp16", s16, None)):
            logit = dict(zip(r["images"], r[prec]["hp_logit"]))
            ict = dict(zip(r["images"], r[prec]["ict"]))
            compare("icthp %s vs transformers %s" % (prec, "eager fp32, TF32 off" if prec == "fp32" else "SDPA fp16"),
                    got, logit, ict, bound)
        logit = dict(zip(r["images"], r["fp32"]["hp_logit"]))
        ict = dict(zip(r["images"], r["fp32"]["ict"]))
        compare("icthp fp16 vs transformers eager fp32", s16, logit, ict, None)
    else:
        compare("icthp fp16 vs icthp fp32 (no transformers here)", s16,
                {k: v["hp_logit"] for k, v in s32.items()}, {k: v["ict"] for k, v in s32.items()}, None)


def fmt(v, spec="%.1f"):
    return "" if v is None else spec % v


def table(out):
    rows = [json.loads(l) for l in open(os.path.join(out, "results.jsonl")) if l.strip()]
    machine = next((r for r in rows if r.get("step") == "machine"), {})
    print("\n== icthp GPU check %s: %s, provider %s, %s cores%s ==" % (
        machine.get("date", ""), machine.get("gpu") or "no GPU", machine.get("provider"), machine.get("cores"),
        " (DRY RUN: tiny random weights, CPU)" if machine.get("dry_run") else ""))
    print("\n-- graph forms (one fused kind each; small random weights) --")
    for r in rows:
        if r.get("step") == "form":
            print("%-26s %-5s %s%s" % (r["form"], r["precision"], r["verdict"], "" if r["verdict"] == "ok" else ": " + r["message"][:160]))
    print("\n-- parity (ViT-H-14 seeded weights; %s) --" % ("tiny" if machine.get("dry_run") else "16 PNGs, icthp preprocessing"))
    for r in rows:
        if r.get("step") == "parity":
            print("%-48s max|Δ hp_logit| %-9s max|Δ ict| %-9s pairs same order %-6s %s" % (
                r["check"], fmt(r["max_abs_d_hp_logit"], "%.2e"), fmt(r["max_abs_d_ict"], "%.2e"),
                fmt(r["pair_agreement_hp"], "%.3f"),
                "" if "pass" not in r else ("PASS (<= %g)" % r["bound"] if r["pass"] else "FAIL (> %g)" % r["bound"])))
    for r in rows:
        if r.get("step") == "pixels":
            print("\n-- fp16 pixel_values: float16 input (host-rounded) vs float32 cast inside (%s, batch %d) --" % (r["preset"], r["batch"]))
            print("outputs %s (max|Δ| %.2e)%s; images/s float16 input %.1f, float32 input %.1f" % (
                "identical" if r["identical"] else "differ", r["max_abs_diff"],
                "" if r["identical"] or r["provider"] != "cpu" else " (expected on the CPU provider: README GPUs)",
                r["float16_images_per_s"], r["float32_images_per_s"]))
    batches = sorted({r["batch"] for r in rows if "batch" in r and r.get("step") != "pixels"})
    lines = {}
    for r in rows:
        if "engine" in r and "best_img_s" in r:  # torch_anchor.py time
            lines.setdefault(r["engine"], {})[r["batch"]] = r["best_img_s"]
        elif r.get("step") == "graph":
            lines.setdefault("icthp graph alone, HP %s" % r["precision"], {})[r["batch"]] = r["best_images_per_s"]
        elif r.get("step") == "serve":
            ips = r.get("images_per_s") or r.get("throughput_images_per_s") or r.get("images_per_second")
            p50 = r.get("latency_p50_ms") or (r.get("latency_ms") or {}).get("p50")
            lines.setdefault("icthp serve+loadtest ICT+HP %s, cache off" % r["precision"], {})[r["batch"]] = ips
            if r["batch"] == 1 and p50 is not None:
                lines.setdefault("  1-image request p50 ms (%s)" % r["precision"], {})[1] = p50
    print("\n-- images/s (best of runs; serve: sustained over the load) --")
    print("%-52s" % "engine" + "".join("%10s" % ("b=%d" % b) for b in batches))
    for name, by in lines.items():
        print("%-52s" % name + "".join("%10s" % fmt(by.get(b)) for b in batches))
    feed = [r for r in rows if r.get("step") == "feed"]
    if feed:
        print("\n-- the host feeding HP fp16 (16 images a request, 8 clients, cache off; %s cores) --" % feed[0].get("cores"))
        for r in feed:
            ips = r.get("images_per_s")
            print("%-18s %10s images/s   p50 %s ms" % (r["kind"], fmt(ips), fmt((r.get("latency_ms") or {}).get("p50"))))
    for r in rows:
        if r.get("step") == "overload" and "rows" in r:
            dec = r.get("decoders") or 0
            print("\n-- issue 16 overload: demo models on %d CPU cores (%s), 200 clients on the others --"
                  % (r.get("server_cpus", 0), "--decoders %d" % dec if dec else "a decoder per core"))
            for line in r["rows"]:
                print(line)
    for r in rows:
        if "error" in r:
            print("\nFAILED %s: %s" % (r["step"], r["error"]))
    skipped = ["%s (%s)" % (r["step"], r["skipped"]) for r in rows if "skipped" in r]
    if skipped:
        print("\nskipped: " + ", ".join(skipped))


if __name__ == "__main__":
    {"parity": parity, "table": table}[sys.argv[1]](sys.argv[2])
