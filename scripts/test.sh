#!/usr/bin/env bash
# Everything CI checks: formatting, vet, staticcheck, the whole test suite, and a short run
# of each fuzz target. Assumes `make setup` has run.
set -euo pipefail
cd "$(dirname "$0")/.."
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi
go vet ./...
# staticcheck, pinned (go run fetches it through the module proxy on a clean machine).
staticcheck_version=v0.8.2 # supports Go 1.26
go run "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version" ./...
# The onnxruntime releases one binary must run with (1.29.0, 1.30.0, 1.31.1) and the ORT 1.29
# CUDA plugin kit, so that their tests run here rather than skip (each fetched once, from npm).
bash scripts/fetch-ort.sh --cuda-kit
go test -count=1 -timeout 30m ./...
# The race detector on the packages whose goroutines share buffers and results (the scoring
# pipeline's encoders and decoders, the server's pooled bodies, the unfilter kernels' callers,
# batch's stages): about two minutes.
go test -race -count=1 -timeout 20m ./scoring/... ./server/... ./preprocess/... ./batch/...
# Deployment checks (chart, manifests, compose, Dockerfiles, dashboard): their own module.
(cd deployments/check && go vet ./... && go run "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version" ./... && go test -count=1 -timeout 20m ./...)
# Python client against a real icthp serve (stdlib only; numpy/PIL/torch tests skip when absent).
if command -v python3 >/dev/null; then python3 -m unittest discover -s clients/python/tests -v; else echo "python3 not found: clients/python tests NOT run"; fi
# Hostile-client probes, short mode (RELIABILITY.md; about 2 minutes): asserts the probes main meets.
scripts/hostile.sh --short
# Fuzz targets, briefly (go test runs one target per invocation). They run on Go 1.27.3, taken
# from the module proxy like any module: Go 1.26's fuzz coordinator can fail a target with a bare
# "context deadline exceeded" when -fuzztime ends while a starved worker is mid-input (no input
# written; go.dev/issue/75804, fixed in 1.27). It failed CI once on FuzzImage that way.
fuzztime=${FUZZTIME:-15s}
fuzz_toolchain=${FUZZ_GOTOOLCHAIN:-go1.27.3}
if ! GOTOOLCHAIN=$fuzz_toolchain go version >/dev/null 2>&1; then
  echo "fuzz: toolchain $fuzz_toolchain unavailable; fuzzing on $(go env GOVERSION) (its -fuzztime race may fail a target)"
  fuzz_toolchain=local
fi
for spec in $(grep -rl --include='*_test.go' '^func Fuzz' . | sort); do
  pkg=./$(dirname "${spec#./}")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$spec" | cut -c6-); do
    echo "fuzz $pkg $f ($fuzztime)"
    # Quiet unless it fails; then its whole output says what the fuzzer found.
    if ! out=$(GOTOOLCHAIN=$fuzz_toolchain go test -run '^$' -fuzz "^$f\$" -fuzztime "$fuzztime" -fuzzminimizetime 2s "$pkg" 2>&1); then
      echo "$out"; echo "fuzz $pkg $f failed"; exit 1
    fi
  done
done
echo "all checks passed"
