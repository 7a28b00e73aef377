#!/usr/bin/env bash
# `make bench`: reproduces the figures of BENCHMARKS.md. Assumes `make setup`
# (bin/icthp and onnxruntime). Sections, each skippable:
#
#   go       every `func Benchmark*` of every package: go test -bench "$BENCH"
#            (the other sections' micro-benchmarks: preprocessing, fused
#            against unfused graphs, the batcher, the cache, ...)
#   encoder  images/s of the vision encoder per preset and batch size, on
#            `icthp convert random` models (benchtool time)
#   torch    icthp against PyTorch eager on the same weights
#            (scripts/bench_torch.py; needs python3-torch and
#            libopenblas0-pthread, skipped with a note when absent)
#   others   the other sections' commands at the sizes BENCHMARKS.md gives:
#            fused/unfused, cached/uncached (Go and over HTTP), batch scoring,
#            Redis memory, the training-loop client (each skipped when its
#            script or tool is absent)
#
# Environment: SECTIONS (default "go encoder torch"), BENCH (go -bench
# pattern, default .), BENCHTIME (default 3x), PRESETS (default
# "tiny vit-b-32 vit-l-14 vit-h-14"), RUNS (timed runs per point, default 5),
# TORCH_THREADS (thread counts for the PyTorch comparison, default "1 nproc"),
# BENCH_WORK (where models are kept between runs, default
# ${TMPDIR:-/tmp}/icthp-bench), PYTHON (an interpreter with torch).
#
# The figures are only comparable within one run on one machine: run it on
# an otherwise idle machine, or say that it was not.
set -euo pipefail
cd "$(dirname "$0")/.."

SECTIONS=${SECTIONS:-go encoder torch others}
BENCH=${BENCH:-.}
BENCHTIME=${BENCHTIME:-3x}
PRESETS=${PRESETS:-tiny vit-b-32 vit-l-14 vit-h-14}
RUNS=${RUNS:-5}
WORK=${BENCH_WORK:-${TMPDIR:-/tmp}/icthp-bench}
mkdir -p "$WORK"

want() { [[ " $SECTIONS " == *" $1 "* ]]; }

# pyfind MODULES: the first python3 that imports MODULES ("torch, numpy").
pyfind() {
  local c
  for c in ${PYTHON:-} python3 /usr/bin/python3; do
    if command -v "$c" >/dev/null && "$c" -c "import $1" 2>/dev/null; then echo "$c"; return; fi
  done
}

echo "# icthp benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores," \
     "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -x bin/icthp ] || { echo "bench: bin/icthp is missing: run make setup" >&2; exit 1; }

if want go; then
  echo; echo "## go test -bench '$BENCH' -benchtime $BENCHTIME ./..."
  go test -run '^$' -bench "$BENCH" -benchtime "$BENCHTIME" -timeout 60m ./...
fi

if want encoder; then
  echo; echo "## Encoder throughput per preset and batch size (vision tower + HP head, fused float32 and int8 graphs, best of $RUNS runs)"
  go build -o "$WORK/benchtool" ./scripts/benchtool
  for p in $PRESETS; do
    dir="$WORK/random-hp-$p"
    [ -f "$dir/model.json" ] || bin/icthp convert random --preset "$p" --kind hp --seed 1 --out "$dir" >/dev/null
    [ -f "$dir-int8/model.json" ] || bin/icthp convert random --preset "$p" --kind hp --seed 1 --int8 --out "$dir-int8" >/dev/null
    case $p in
      tiny|vit-b-32) batches="1 8 32" ;;
      vit-l-14) batches="1 8" ;;
      *) batches="1" ;;
    esac
    for b in $batches; do
      "$WORK/benchtool" time --model "$dir" --batch "$b" --runs "$RUNS" --text
      "$WORK/benchtool" time --model "$dir-int8" --batch "$b" --runs "$RUNS" --text
    done
  done
fi

if want torch; then
  echo; echo "## Against PyTorch eager (scripts/bench_torch.py)"
  py=$(pyfind "torch, PIL, numpy")
  if [ -z "$py" ]; then
    echo "skipped: no python3 with torch, PIL and numpy (apt-get install python3-torch python3-pil libopenblas0-pthread)"
  else
    torch_presets=$(echo "$PRESETS" | tr ' ' '\n' | grep -v '^tiny$' | paste -sd, - || true)
    [ -n "$torch_presets" ] || torch_presets=tiny
    # One thread each (the table in BENCHMARKS.md), then one per core.
    for th in ${TORCH_THREADS:-1 $(nproc)}; do
      "$py" scripts/bench_torch.py --threads "$th" --presets "$torch_presets" --batches 1,8 --int8 \
        --batches-h14 "${H14_BATCHES:-1,8}" \
        --runs "${TORCH_RUNS:-3}" --rounds "${TORCH_ROUNDS:-1}" --work "$WORK/torch" --json "$WORK/torch-$th.json"
    done
  fi
fi

if want others; then
  echo; echo "## The other sections' benchmarks (vit-b-32 models)"
  m="$WORK/b32"
  for k in clip hp; do
    [ "$k" = clip ] && d="$m/ict" || d="$m/hp"
    [ -f "$d/model.json" ] || bin/icthp convert random --preset vit-b-32 --kind "$k" --seed 1 --out "$d" >/dev/null
  done
  echo; echo "### Fused against unfused graphs"
  ICTHP_BENCH_DIR="$WORK/clipbench" ICTHP_BENCH_THREADS=1 ICTHP_BENCH_PRESET=vit-b-32 \
    go test ./models/clip -run '^$' -bench VisionEncoder -benchtime 2x
  echo; echo "### Cached against uncached"
  go test ./scoring -run '^$' -bench CachedAgainstUncached -benchtime 100x
  ICTHP_BENCH_MODELS="$m" go test ./scoring -run '^$' -bench CachedAgainstUncached -benchtime 20x
  if [ -f scripts/bench-cache.sh ]; then
    if command -v redis-server >/dev/null; then
      bash scripts/bench-cache.sh "$m" testdata/demo 10 2
    else
      echo "skipped scripts/bench-cache.sh: no redis-server"
    fi
  fi
  echo; echo "### Batch scoring against the raw encoder"
  ICTHP_BENCH_ICT="$m/ict" ICTHP_BENCH_HP="$m/hp" ICTHP_BENCH_IMAGES=320 ICTHP_BENCH_ROUNDS=4 \
    go test ./batch/ -run '^$' -bench BatchAgainstRaw -benchtime 1x -timeout 60m
  if [ -d deployments/check/redismem ]; then
    echo; echo "### Redis memory per cached embedding"
    if command -v redis-server >/dev/null; then
      (cd deployments/check && go run ./redismem -n 100000 -dim 1024 && go run ./redismem -n 100000 -dim 1024 -scalars 1)
    else
      echo "skipped: no redis-server"
    fi
  fi
  pyc=$(pyfind "numpy, PIL")
  if [ -f clients/python/bench/bench_reward.py ] && [ -n "$pyc" ]; then
    echo; echo "### Training-loop client"
    port=$((20000 + RANDOM % 20000))
    bin/icthp serve --addr "127.0.0.1:$port" --cache-bytes 0 --log-level warn 2>"$WORK/serve.log" &
    serve_pid=$!
    for _ in $(seq 600); do
      curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
      kill -0 "$serve_pid" 2>/dev/null || break
      sleep 0.2
    done
    "$pyc" clients/python/bench/bench_reward.py --url "http://127.0.0.1:$port" --rounds 3 || true
    kill "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
  fi
fi
