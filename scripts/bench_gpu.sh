#!/usr/bin/env bash
# GPU figures for BENCHMARKS.md: images/s of the vision encoder on
# onnxruntime's CUDA (or TensorRT) provider, float32 and float16 graphs, per
# preset and batch size; then, when a CUDA-enabled torch is importable, the
# PyTorch eager comparison on the same GPU (scripts/bench_torch.py --device).
#
#   ICTHP_ORT_LIB=/path/to/onnxruntime-gpu/lib/libonnxruntime.so scripts/bench_gpu.sh
#
# ICTHP_ORT_LIB must name a GPU build of onnxruntime (≥ 1.24, with
# libonnxruntime_providers_cuda.so next to it; CUDA 12 and cuDNN 9 on the
# library path). Environment: PROVIDER (cuda[:N] or tensorrt[:N], default
# cuda), PRESETS (default "vit-b-32 vit-l-14 vit-h-14"), BATCHES (default
# "1 8 32 64"), RUNS (default 10), BENCH_WORK (default
# ${TMPDIR:-/tmp}/icthp-bench-gpu), PYTHON. Needs Go to build bin/icthp and
# benchtool when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${ICTHP_ORT_LIB:?set ICTHP_ORT_LIB to the libonnxruntime.so of a GPU build of onnxruntime}"
export ICTHP_ORT_LIB
PROVIDER=${PROVIDER:-cuda}
PRESETS=${PRESETS:-vit-b-32 vit-l-14 vit-h-14}
BATCHES=${BATCHES:-1 8 32 64}
RUNS=${RUNS:-10}
WORK=${BENCH_WORK:-${TMPDIR:-/tmp}/icthp-bench-gpu}
mkdir -p "$WORK"

echo "# icthp GPU benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | sed 's/^/# GPU: /'
echo "# onnxruntime: $ICTHP_ORT_LIB, provider $PROVIDER"

[ -x bin/icthp ] || go build -o bin/icthp ./cmd/icthp
go build -o "$WORK/benchtool" ./scripts/benchtool

echo; echo "## Encoder throughput on $PROVIDER (vision tower + HP head, fused graphs, best of $RUNS runs)"
for p in $PRESETS; do
  for prec in fp32 fp16; do
    dir="$WORK/random-hp-$p-$prec"
    flags=()
    [ "$prec" = fp16 ] && flags=(--fp16)
    [ -f "$dir/model.json" ] || bin/icthp convert random --preset "$p" --kind hp --seed 1 "${flags[@]}" --out "$dir" >/dev/null
    for b in $BATCHES; do
      "$WORK/benchtool" time --model "$dir" --provider "$PROVIDER" --batch "$b" --runs "$RUNS" --text
    done
  done
done

echo; echo "## Against PyTorch eager on the GPU"
py=""
for c in ${PYTHON:-} python3 /usr/bin/python3; do
  if command -v "$c" >/dev/null && "$c" -c 'import torch, PIL, numpy; assert torch.cuda.is_available()' 2>/dev/null; then py=$c; break; fi
done
if [ -z "$py" ]; then
  echo "skipped: no python3 whose torch sees a CUDA device"
else
  dev=cuda
  [[ $PROVIDER == *:* ]] && dev=cuda:${PROVIDER#*:}
  "$py" scripts/bench_torch.py --device "$dev" --presets "$(echo "$PRESETS" | tr ' ' ',')" \
    --batches "$(echo "$BATCHES" | tr ' ' ',')" --runs "$RUNS" --work "$WORK/torch" --json "$WORK/torch.json"
fi
