#!/usr/bin/env bash
# cold-load.sh BIN IMAGES [RUNS] [loadtest flags...]: a fresh `BIN serve` (demo models, cache off), then RUNS
# (default 4) loads of 4 s each, 16 images a request from IMAGES, 8 clients; prints the server's CPU and minor
# page faults per image in each load (the first is the cold one). BENCHMARKS.md, "A cold server's JSON bodies".
set -euo pipefail
bin=$1 images=$2 runs=${3:-4}
shift $(($# < 3 ? $# : 3))
port=$((18500 + RANDOM % 400))
"$bin" serve --addr 127.0.0.1:$port --cache-bytes 0 --max-body-bytes 268435456 >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 120); do curl -sf 127.0.0.1:$port/readyz >/dev/null && break; sleep 0.5; done
out=""
for r in $(seq "$runs"); do
	read -r t0 f0 < <(awk '{print $14+$15, $10}' /proc/$pid/stat)
	"$bin" loadtest --url http://127.0.0.1:$port --images "$images" --images-per-request 16 --concurrency 8 \
		--duration 4s --json "$@" >/tmp/cold-load.$$.json
	read -r t1 f1 < <(awk '{print $14+$15, $10}' /proc/$pid/stat)
	out="$out $(python3 -c 'import json, sys; r = json.load(open(sys.argv[3])); n = max(r["images_per_s"] * r.get("elapsed_s", 4), 1)
print("%.1f ms/%.0f" % (int(sys.argv[1]) * 1000 / 100 / n, int(sys.argv[2]) / n))' $((t1 - t0)) $((f1 - f0)) /tmp/cold-load.$$.json)"
done
rm -f /tmp/cold-load.$$.json
echo "$(basename "$bin"): server CPU / faults per image, each load:$out; RSS $(awk '/VmRSS/ {printf "%.0f MB", $2 / 1024}' /proc/$pid/status)"
