#!/usr/bin/env bash
# Puts into icthp's cache ($ICTHP_CACHE, default ~/.cache/icthp) the onnxruntime releases the tests load one after
# another (models/clip TestScoresWithEachORTVersion: 1.29.0, 1.30.0, 1.31.1, each from npm's onnxruntime-node),
# and with --cuda-kit the ORT 1.29 CUDA kit from npm (com.github.asus4.onnxruntime@0.4.9: a core without the classic
# CUDA API, and ...linux-x64-gpu@0.4.9: libonnxruntime_providers_cuda.so, a plugin EP; about 180 MB to fetch) in
# onnxruntime/asus4-0.4.9/ (models TestCUDAPluginKitNamesMissingLibrary). Needs go and npm.
#   scripts/fetch-ort.sh [--cuda-kit]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
for v in 1.29.0 1.30.0 1.31.1; do
	ICTHP_ORT_LIB= go run ./cmd/icthp setup --ort-version "$v"
done
[ "${1:-}" = --cuda-kit ] || exit 0
cache=${ICTHP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/icthp}
dst=$cache/onnxruntime/asus4-0.4.9
[ -f "$dst/libonnxruntime_providers_cuda.so" ] && { echo "CUDA kit in $dst"; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack -q com.github.asus4.onnxruntime@0.4.9 com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 >/dev/null)
d=package/Plugins/Linux/x64
tar xzf "$tmp/com.github.asus4.onnxruntime-0.4.9.tgz" -C "$tmp" $d/libonnxruntime.so
tar xzf "$tmp/com.github.asus4.onnxruntime.linux-x64-gpu-0.4.9.tgz" -C "$tmp" $d/libonnxruntime_providers_cuda.so $d/libonnxruntime_providers_shared.so
mkdir -p "$dst"
cp "$tmp/$d"/*.so "$dst/"
echo "CUDA kit in $dst"
