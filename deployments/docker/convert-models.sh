#!/bin/sh
# The models init step (compose service `models`, Helm init container): turns
# Hugging Face checkpoints into icthp model directories once, so that serving
# replicas only read ready graphs. Idempotent: a model whose model.json exists
# is left alone, so restarts and many pods sharing one volume cost nothing.
#
#   ICTHP_HF_DIR      where the checkpoints are (default /hf), either folders
#                     made by `huggingface-cli download --local-dir` (base/, ict/,
#                     hp/) or a Hugging Face hub cache (hub/models--8y--ICT/...)
#   ICTHP_MODELS_DIR  where model directories go (default /models): ict/, hp/
#   ICTHP_CONVERT     which to convert, space separated (default "ict hp")
#   ICTHP_DEMO=1      no checkpoints: write tiny seeded random models instead
#                     (scores are meaningless; for trying the deployment)
#   ICTHP_CONVERT_FLAGS extra flags for `icthp convert` (e.g. --fp16 for GPUs, --int8 for CPU-only hosts that accept its error)
set -eu

hf=${ICTHP_HF_DIR:-/hf}
out=${ICTHP_MODELS_DIR:-/models}
want=${ICTHP_CONVERT:-ict hp}
extra=${ICTHP_CONVERT_FLAGS:-}
icthp=${ICTHP_BIN:-icthp}

# folder LOCAL REPO: the checkpoint folder for one Hugging Face repository,
# LOCAL under $hf (the --local-dir layout) or the newest snapshot of REPO in a
# hub cache ($hf/hub/models--OWNER--NAME or $hf/models--OWNER--NAME).
folder() {
  if [ -d "$hf/$1" ]; then echo "$hf/$1"; return 0; fi
  cache=models--$(echo "$2" | sed 's|/|--|g')
  for root in "$hf/hub/$cache" "$hf/$cache"; do
    [ -d "$root/snapshots" ] || continue
    if [ -f "$root/refs/main" ] && [ -d "$root/snapshots/$(cat "$root/refs/main")" ]; then
      echo "$root/snapshots/$(cat "$root/refs/main")"; return 0
    fi
    snap=$(ls -1t "$root/snapshots" | head -n 1)
    if [ -n "$snap" ]; then echo "$root/snapshots/$snap"; return 0; fi
  done
  echo "convert-models: no $2 checkpoint under $hf (looked for $hf/$1 and a hub cache $cache)" >&2
  return 1
}

mkdir -p "$out"
for m in $want; do
  case $m in ict|hp) ;; *) echo "convert-models: unknown model \"$m\" in ICTHP_CONVERT (want ict, hp)" >&2; exit 2 ;; esac
  if [ -f "$out/$m/model.json" ]; then
    echo "convert-models: $out/$m is ready, skipping"
    continue
  fi
  # Convert into a temporary folder and rename it, so that a crash or a second
  # pod never leaves (or reads) half a model.
  tmp="$out/.$m.partial.$$"
  rm -rf "$tmp"
  if [ "${ICTHP_DEMO:-}" = 1 ]; then
    kind=clip; [ "$m" = hp ] && kind=hp
    # shellcheck disable=SC2086
    "$icthp" convert random --preset tiny --kind "$kind" --seed 2025 $extra --out "$tmp"
  else
    base=$(folder base laion/CLIP-ViT-H-14-laion2B-s32B-b79K)
    if [ "$m" = ict ]; then
      ckpt=$(folder ict 8y/ICT)
      # shellcheck disable=SC2086
      "$icthp" convert clip --checkpoint "$ckpt" --base "$base" $extra --out "$tmp"
    else
      ckpt=$(folder hp 8y/HP)
      # shellcheck disable=SC2086
      "$icthp" convert hp --backbone "$ckpt/hp_backbone" --head "$ckpt/hp_scorer/mlp_pytorch_model.bin" \
        --base "$base" $extra --out "$tmp"
    fi
  fi
  # A folder without model.json is an earlier failed attempt: replace it.
  [ -f "$out/$m/model.json" ] || rm -rf "${out:?}/$m"
  if ! mv -T "$tmp" "$out/$m" 2>/dev/null; then
    rm -rf "$tmp"
    [ -f "$out/$m/model.json" ] || { echo "convert-models: could not move $tmp to $out/$m" >&2; exit 1; }
  fi
  echo "convert-models: wrote $out/$m"
done
