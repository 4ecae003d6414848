#!/bin/bash
# bench/zs_labels.sh: what a /zero-shot request's label list costs engine
# serve besides the scoring. The tiny CLIP of tests/golden/tiny/clip-tok
# (its text tower is small, so a set is cheap to score once cached), one
# --http-threads 1 server per binary, --workers 1 --threads $THREADS; for each
# of $SIZES labels, the set is embedded once, then its warm requests (a cache
# hit: parsing the JSON, the labels, one image, a dot product per label, the
# answer) are timed at the client, the binaries alternating request by
# request, $N each; medians per binary and their ratio. With
# ENGINE_BEFORE=path/to/an/older/engine both run; without, only build/engine.
set -eu
. "$(dirname "$0")/common.sh"
N=${N:-9}
SIZES=${SIZES:-1000 10000 40000}
E=$BUILD/engine
make -s BUILD="$BUILD" "$E" "$BUILD/convert"
T=$(mktemp -d)
PIDS=""
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null; done; rm -rf "$T"' EXIT
"$BUILD/convert" tests/golden/tiny/clip-tok "$T/clip.eng" >/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORTS=""
BINS="after=$E"
[ -n "${ENGINE_BEFORE:-}" ] && BINS="before=$ENGINE_BEFORE $BINS"
for b in $BINS; do
    port=$(free_port)
    "${b#*=}" serve "$T/clip.eng" --port "$port" --workers 1 --threads "$THREADS" --http-threads 1 \
        2>"$T/serve-${b%%=*}.log" &
    PIDS="$PIDS $!"
    for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
    PORTS="$PORTS ${b%%=*}=$port"
done
load_average before
python3 - "$N" "$SIZES" $PORTS <<'PY'
import base64, json, statistics, sys, time, urllib.request
sys.path.insert(0, "bench")
from zs_stall import png
n, sizes, servers = int(sys.argv[1]), [int(s) for s in sys.argv[2].split()], sys.argv[3:]
image = base64.b64encode(png(40, 30, 1)).decode()
def post(port, body):
    t = time.perf_counter()
    req = urllib.request.Request("http://127.0.0.1:%s/v2/models/clip/zero-shot" % port, body,
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        r.read()
    return time.perf_counter() - t
for size in sizes:
    body = json.dumps({"inputs": [image], "labels": ["l%d" % i for i in range(size)]}).encode()
    times = {}
    for s in servers:
        post(s.split("=")[1], body)   # embeds the set: the rest hit the cache
    for _ in range(n):
        for s in servers:
            times.setdefault(s.split("=")[0], []).append(post(s.split("=")[1], body))
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print("%6d labels, warm /zero-shot, median of %d: %s%s" % (
        size, n, ", ".join("%s %.1f ms" % kv for kv in med.items()),
        ", before/after %.1fx" % (med["before"] / med["after"]) if "before" in med else ""))
PY
load_average after
