#!/bin/bash
# bench/zs_stall.sh: does a cold zero-shot label set stall the requests behind
# it (issue 17)? A CLIP model (default: bench/clip.sh's ViT-B/32-shaped
# $OUT/clip-b32.eng), served by `engine worker` through Redis and by `engine
# serve` over HTTP, each with --workers 1 --threads $THREADS; bench/zs_stall.py
# sends a zero_shot request of a label set never seen ($LABELS prompts), then
# at once a warm request (Redis: an image embed entry, or a zero_shot entry of
# a cached set; HTTP: a /zero-shot of a cached set, $GAP_MS after the cold
# one), and measures the warm one's latency, alternating with the same
# request alone. With ENGINE_BEFORE=path/to/an/older/engine both binaries
# run side by side (idle between their turns), their blocks of $TRIALS trials
# alternating, $REPS blocks each; medians per binary.
# Starts its own redis-server (persistence off) on a free loopback port.
set -eu
. "$(dirname "$0")/common.sh"
TRIALS=${TRIALS:-3}
MODEL=${MODEL:-$OUT/clip-b32.eng}
E=$BUILD/engine
make -s BUILD="$BUILD" "$E"
[ -f "$MODEL" ] || { echo "zs_stall: $MODEL not found (bench/clip.sh makes it)"; exit 1; }
T=$(mktemp -d)
PIDS=""
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null; done; rm -rf "$T"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
P=$(free_port)
redis-server --port "$P" --bind 127.0.0.1 --save '' --appendonly no >"$T/redis.log" 2>&1 &
PIDS="$PIDS $!"
for _ in $(seq 100); do redis-cli -p "$P" ping >/dev/null 2>&1 && break; sleep 0.05; done
BINS="after=$E"
[ -n "${ENGINE_BEFORE:-}" ] && BINS="before=$ENGINE_BEFORE $BINS"
for b in $BINS; do
    name=${b%%=*} bin=${b#*=}
    "$bin" worker "$MODEL" --redis "redis://127.0.0.1:$P" --stream "zs:$name" --model-name "clip-$name" \
        --workers 1 --threads "$THREADS" 2>"$T/worker-$name.log" &
    PIDS="$PIDS $!"
    port=$(free_port)
    echo "$port" >"$T/port-$name"
    "$bin" serve "$MODEL" --port "$port" --workers 1 --threads "$THREADS" 2>"$T/serve-$name.log" &
    PIDS="$PIDS $!"
    for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
done
M=$(basename "$MODEL" .eng)
echo "zero-shot stall: $M, ${LABELS:-80} labels per cold set, --workers 1 --threads $THREADS, $TRIALS trials x ${REPS} blocks per binary"
load_average "before"
for _ in $(seq "$REPS"); do
    for b in $BINS; do
        name=${b%%=*}
        python3 bench/zs_stall.py redis "$P" "zs:$name" "$TRIALS" | sed "s/^{/{\"bin\": \"$name\", /" >>"$T/all.jsonl"
        python3 bench/zs_stall.py http "$(cat "$T/port-$name")" "$M" "$TRIALS" |
            sed "s/^{/{\"bin\": \"$name\", /" >>"$T/all.jsonl"
    done
done
load_average "after"
python3 - "$T/all.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = sorted({(r["mode"], r["warm"], r["bin"]) for r in rows}, key=lambda k: (k[0], k[1], k[2] != "before"))
print("%-6s %-8s %-7s %5s %10s %14s %9s" % ("path", "warm", "binary", "n", "alone ms", "after cold ms", "cold ms"))
for k in keys:
    rs = [r for r in rows if (r["mode"], r["warm"], r["bin"]) == k]
    med = lambda f: statistics.median(r[f] for r in rs)
    print("%-6s %-8s %-7s %5d %10.1f %14.1f %9.1f" % (k[0], k[1], k[2], len(rs), med("alone"), med("after_cold"), med("cold")))
PY
