#!/usr/bin/env bash
# Installs the system packages icthp builds and tests with, when missing:
#   libturbojpeg0-dev  JPEG decoding identical to Pillow's (cgo)
#   libdeflate-dev     the Adler-32 of PNG image data (cgo, vectorised; BENCHMARKS.md, "One pass")
#   redis-server       the cache tests start their own instances
#   chromium           the gallery page's test drives it headless (cmd/icthp/gallery_test.go)
# and checks for Go and npm (npm fetches onnxruntime's library).
set -euo pipefail
need=()
for p in libturbojpeg0-dev libdeflate-dev redis-server chromium; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "setup: Go 1.26 or newer is needed (https://go.dev/dl)" >&2; exit 1; }
command -v npm >/dev/null || { echo "setup: npm is needed to fetch onnxruntime (or set ICTHP_ORT_LIB to a libonnxruntime.so)" >&2; exit 1; }
