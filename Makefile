# icthp: `make demo` scores the sample images with built-in demo models;
# `make test` runs every check CI runs. Both install what they need first.
GO      ?= go
BIN     := bin/icthp
PROMPT  ?= a red apple on a wooden table

.PHONY: setup system build demo test bench serve clean
setup: build
	$(BIN) setup

system:
	bash scripts/setup-system.sh

build: system
	$(GO) build -o $(BIN) ./cmd/icthp

demo: setup
	$(BIN) score --prompt "$(PROMPT)" testdata/demo

serve: setup
	$(BIN) serve

test: setup
	bash scripts/test.sh

bench: setup
	bash scripts/bench.sh

clean:
	rm -rf bin

# The onnxruntime releases the version test loads (1.29.0, 1.30.0, 1.31.1) and the ORT 1.29
# CUDA kit (README: GPUs); the tests that need them skip without.
.PHONY: setup-ort-versions
setup-ort-versions: build
	bash scripts/fetch-ort.sh --cuda-kit

# icthp + Redis + Prometheus + Grafana on this machine (needs Docker with compose);
# see deployments/README.md. `make down` keeps the volumes.
COMPOSE ?= docker compose -f deployments/docker-compose.yml
.PHONY: up down
up:
	$(COMPOSE) up -d --build

down:
	$(COMPOSE) down
