#!/usr/bin/env bash
# Hostile-client probes against a real `icthp serve` with the demo models
# (RELIABILITY.md): loopback only (127.0.0.1), every probe bounded in count
# and time, everything started is stopped at the end. Prints a table of
# figures; exits 1 when an asserted probe misses its target.
#
#   scripts/hostile.sh              # every probe (about 10 minutes on 2 cores; 3.5 GB of RAM for the bomb)
#   scripts/hostile.sh --short      # what CI runs (a few minutes; no bomb)
#   scripts/hostile.sh --soak 30m --probes soak    # the long soak
#   HOSTILE_ASSERT=all scripts/hostile.sh          # assert every probe (default: those main meets)
#
# Other flags: --probes a,b (headers bomb overload badinput contract redis
# sigterm batch slowloris soak), --assert a,b, --work DIR, -v.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/icthp ./cmd/icthp
go build -o bin/hostile ./scripts/hostile
exec timeout --signal=TERM --kill-after=30s "${HOSTILE_TIMEOUT:-3600}" bin/hostile --bin bin/icthp "$@"
