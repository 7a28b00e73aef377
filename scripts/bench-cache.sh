#!/usr/bin/env bash
# Cached against uncached, through HTTP: three `icthp serve` side by side on
# loopback (no cache; in-process cache; Redis only, in-process tier off), a
# private redis-server, and `icthp loadtest` rounds taken in turn so that
# all three see the same machine load. Prints each p50 and the Redis round
# trips per request (from the Redis server's /metrics).
#
#   scripts/bench-cache.sh MODELS_DIR IMAGES_DIR [REQUESTS_PER_ROUND] [ROUNDS]
#
# MODELS_DIR holds ict/ and hp/ (e.g. from `icthp convert random --preset
# vit-b-32`); IMAGES_DIR the images (one prompt, four images per request).
set -euo pipefail
models=${1:?models dir with ict/ and hp/}
images=${2:?images dir}
n=${3:-20}
rounds=${4:-2}
bin=${ICTHP_BIN:-bin/icthp}
[ -x "$bin" ] || go build -o "$bin" ./cmd/icthp
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

port() { # a free loopback port
  local p
  while :; do p=$((20000 + RANDOM % 20000)); (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }; done
}

rport=$(port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" --logfile "$tmp/redis.log" &
pids+=($!)

echo "a photo of a lighthouse on a cliff at sunset" >"$tmp/prompts.txt"
lt() { "$bin" loadtest --images "$images" --images-per-request 4 --prompts "$tmp/prompts.txt" --json "$@"; }
declare -A url
start() { # name, extra flags...
  local name=$1 p; shift
  p=$(port)
  "$bin" serve --ict "$models/ict" --hp "$models/hp" --addr "127.0.0.1:$p" --log-level error "$@" 2>"$tmp/$name.log" &
  pids+=($!)
  url[$name]="http://127.0.0.1:$p"
}
start uncached --cache-bytes 0
start local
start redis --cache-bytes 0 --redis "redis://127.0.0.1:$rport"
for name in uncached local redis; do
  for _ in $(seq 600); do curl -fsS "${url[$name]}/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fsS "${url[$name]}/readyz" >/dev/null || { cat "$tmp/$name.log"; exit 1; }
  # One request first, so the cached servers hold everything.
  lt --url "${url[$name]}" --requests 1 >/dev/null
done
trips() { curl -fsS "${url[redis]}/metrics" | awk '/^icthp_cache_redis_seconds_count/ {s+=$2} END {print s+0}'; }
t0=$(trips)
total=0
for r in $(seq "$rounds"); do
  for name in uncached local redis; do
    out=$(lt --url "${url[$name]}" --concurrency 1 --requests "$n")
    echo "round $r $name $(echo "$out" | jq -r '"p50_ms=\(.latency_ms.p50) p90_ms=\(.latency_ms.p90) errors=\(.errors)"' 2>/dev/null || echo "$out")"
  done
  total=$((total + n))
done
t1=$(trips)
echo "redis round trips per request (cached): $(( (t1 - t0) / total ))"
