#!/usr/bin/env bash
# held-headers.sh: the heap of a running `icthp serve` (demo models, default
# flags) before and while N connections hold a raw-tensor body whose header
# declares [1,4700,4700,3] (66 MB) and send no pixel. Loopback only; the
# server is started here and stopped at the end. Usage:
#   scripts/held-headers.sh [ICTHP_BINARY] [N]      (default bin/icthp, 40)
set -euo pipefail
BIN=${1:-bin/icthp}
N=${2:-40}
PORT=18093
"$BIN" serve --addr 127.0.0.1:$PORT 2>/dev/null &
SRV=$!
trap 'kill $SRV 2>/dev/null' EXIT
for _ in $(seq 100); do curl -sf 127.0.0.1:$PORT/readyz >/dev/null && break; sleep 0.3; done
heap() { curl -s 127.0.0.1:$PORT/metrics | awk '/^go_memstats_heap_alloc_bytes /{printf "%.1f", $2/1e6}'; }
rss() { awk '/VmRSS/{printf "%.1f", $2/1e3}' /proc/$SRV/status; }
echo "before: heap ${BEFORE_HEAP:=$(heap)} MB, RSS $(rss) MB"
python3 - "$PORT" "$N" <<'PY'
import socket, sys, time, urllib.request
port, n = int(sys.argv[1]), int(sys.argv[2])
line = b'{"shape": [1, 4700, 4700, 3]}\n'
conns = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-icthp-tensor\r\n"
              b"Content-Length: %d\r\n\r\n" % (len(line) + 4700 * 4700 * 3) + line)
    conns.append(s)
time.sleep(2)
m = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port).read().decode()
heap = [l for l in m.splitlines() if l.startswith("go_memstats_heap_alloc_bytes ")][0].split()[1]
inflight = [l for l in m.splitlines() if l.startswith("icthp_http_in_flight_requests ")][0].split()[1]
print("holding %d connections (%s requests in flight): heap %.1f MB" % (n, inflight, float(heap) / 1e6))
for s in conns:
    s.close()
PY
echo "after:  heap $(heap) MB, RSS $(rss) MB"
