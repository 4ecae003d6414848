#!/bin/bash
# bench/redis.sh: issue 12's figures, measured in one run on this machine.
#
#   1. Overhead: sst2-bert-mini, one worker with $THREADS threads, clients
#      through Redis (`engine submit --concurrency $C`) against infer-bench's
#      in-process stream at the same concurrency and threads. Target: >= 0.85x.
#      The client, redis-server and the worker share the machine's cores.
#   2. The queue's own ceiling: the null model through Redis, requests/s.
#   3. Scale: 1 worker x 2 threads vs 2 workers x 1 thread, same total.
#   4. Failover: steady load on two workers (--claim-idle-ms $CLAIM_MS), kill -9
#      of one; the longest gap between replies, the time from the kill to the
#      last reply, and the number lost (must be 0).
#   5. The HTTP gateway: wrk -t2 -c$C for $DURATION s on /predict (SST-2 dev
#      sentences) to `engine serve --backend redis://` in front of one worker
#      with $THREADS threads, against wrk on a local `engine serve` of the
#      same model with the same threads; requests/s, p50, p99 and the ratio.
#      Needs wrk.
# Starts its own redis-server (persistence off) on a free loopback port.
# BUILD (default build), ENGINE_SHARED, THREADS (2), C (64), N (4000 requests),
# DURATION (5 s, part 5), PARTS (1,2,3,4,5).
set -eu
. "$(dirname "$0")/common.sh"
C=${C:-64}
N=${N:-4000}
CLAIM_MS=${CLAIM_MS:-2000}
DURATION=${DURATION:-5}
PARTS=${PARTS:-1,2,3,4,5}   # the parts to run, e.g. PARTS=5
part() { case ,$PARTS, in *,$1,*) true ;; *) false ;; esac; }
E=$BUILD/engine
M=$BUILD/models/sst2-bert-mini.eng
make -s BUILD="$BUILD" "$BUILD/engine" "$BUILD/infer-bench" "$M"
T=$(mktemp -d)
PIDS=""
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null; done; rm -rf "$T"' EXIT
P=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=redis://127.0.0.1:$P
redis-server --port "$P" --bind 127.0.0.1 --save '' --appendonly no >"$T/redis.log" 2>&1 &
PIDS="$PIDS $!"
for _ in $(seq 100); do redis-cli -p "$P" ping >/dev/null 2>&1 && break; sleep 0.05; done
# N sentences, the SST-2 dev set repeated.
tail -n +2 "$SHARED/data/sst2/dev.tsv" | cut -f1 >"$T/dev.txt"
python3 -c "
import sys; l = open('$T/dev.txt').read().splitlines()
sys.stdout.write(''.join(l[i % len(l)] + '\n' for i in range($N)))" >"$T/in.txt"
load_average before

rate() { sed -n 's/.* \([0-9.]*\) ok\/s.*/\1/p'; }
# redis_run STREAM ARGS...: submit $T/in.txt on STREAM, prints the stats line.
redis_run() {
    local s=$1; shift
    $E submit --redis "$URL" --stream "$s" --concurrency "$C" --stats "$@" <"$T/in.txt" \
        2>&1 >/dev/null | grep '^submit:'
}
worker() {   # worker STREAM ARGS...
    local s=$1; shift
    $E worker --redis "$URL" --stream "$s" "$@" 2>>"$T/worker.log" &
    PIDS="$PIDS $!"
    LAST=$!
}

if part 1; then
echo "== 1. overhead: sst2-bert-mini, 1 worker x $THREADS threads, concurrency $C"
worker bert "$M" --workers 1 --threads "$THREADS"
W=$LAST
sleep 1
for r in $(seq "$REPS"); do
    inproc=$("$BUILD/infer-bench" --model "$M" --input "$T/dev.txt" --mode stream --concurrency "$C" \
        --workers 1 --threads "$THREADS" --duration 5 --json 2>/dev/null |
        python3 -c "import json,sys; r=json.load(sys.stdin)['runs'][0]; print(r['requests_per_s'], r['latency_ms']['p50'], r['latency_ms']['p99'])")
    line=$(redis_run bert)
    echo "in-process: $inproc (req/s p50 p99 ms) | redis: $line"
    echo "$(echo "$line" | rate) $(echo "$inproc" | cut -d' ' -f1)" >>"$T/ratio"
done
echo "redis / in-process, median of $REPS: $(awk '{print $1 / $2}' "$T/ratio" | median)"
kill -TERM $W; wait $W

fi
if part 2; then
echo "== 2. the null model through Redis (the queue's ceiling), concurrency 1000"
worker null --null --workers 1 --threads 1 --max-inflight 1024
W=$LAST
for r in $(seq "$REPS"); do C=1000 redis_run null; done
kill -TERM $W; wait $W

fi
if part 3; then
echo "== 3. scale: 1 worker x 2 threads vs 2 workers x 1 thread (sst2-bert-mini, concurrency $C)"
for r in $(seq "$REPS"); do
    worker s1 "$M" --workers 1 --threads 2
    W=$LAST
    sleep 1
    a=$(redis_run s1 | rate)
    kill -TERM $W; wait $W
    worker s2 "$M" --workers 1 --threads 1 --consumer x
    W1=$LAST
    worker s2 "$M" --workers 1 --threads 1 --consumer y
    W2=$LAST
    sleep 1
    b=$(redis_run s2 | rate)
    kill -TERM $W1 $W2; wait $W1 $W2
    echo "1x2: $a req/s   2x1: $b req/s"
done

fi
if part 4; then
echo "== 4. failover: kill -9 of one of two workers under load (--claim-idle-ms $CLAIM_MS)"
worker f "$M" --workers 1 --threads 1 --consumer a --claim-idle-ms "$CLAIM_MS"
WA=$LAST
worker f "$M" --workers 1 --threads 1 --consumer b --claim-idle-ms "$CLAIM_MS"
WB=$LAST
sleep 1
$E submit --redis "$URL" --stream f --concurrency "$C" --stats --times "$T/times" <"$T/in.txt" \
    >/dev/null 2>"$T/f.log" &
S=$!
sleep 3
kill_ms=$(python3 -c 'import time; print(int(time.time() * 1000))')
kill -9 $WA
wait $S || true
grep '^submit:' "$T/f.log"
python3 - "$T/times" "$kill_ms" <<'PY'
import sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
kill = int(sys.argv[2])
got = sorted(r[2] for r in rows if r[2] >= 0)
lost = sum(1 for r in rows if r[2] < 0)
gaps = [b - a for a, b in zip(got, got[1:]) if b >= kill]
print("longest gap in replies after the kill: %d ms; kill to last reply: %d ms; lost: %d"
      % (max(gaps) if gaps else 0, got[-1] - kill, lost))
PY
kill -TERM $WB; wait $WB
fi

if part 5; then
echo "== 5. HTTP: gateway -> Redis -> 1 worker x $THREADS threads vs a local engine serve, wrk -c$C"
command -v wrk >/dev/null || { echo "redis.sh: part 5 needs wrk (apt-get install wrk)" >&2; exit 1; }
python3 "$(dirname "$0")/http_post_lua.py" "$SHARED/data/sst2/dev.tsv" "$T/post.lua"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
serve() {   # serve LOG ARGS...: an engine serve, its PID and PORT once ready
    local log=$1; shift
    PORT=$(free_port)
    $E serve "$@" --port "$PORT" 2>"$log" &
    PID=$!
    PIDS="$PIDS $PID"
    for _ in $(seq 600); do grep -q "engine serve: ready" "$log" && return 0; sleep 0.1; done
    cat "$log" >&2; exit 1
}
# wrk's requests/s, p50 and p99 (ms) from its --latency report.
wrk_line() {
    awk '/^Requests\/sec:/ {r=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2}
         function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; return v * 1000 }
         END {printf "%s %.2f %.2f\n", r, ms(p50), ms(p99)}' "$1"
}
worker http "$M" --workers 1 --threads "$THREADS"
W=$LAST
serve "$T/gw.log" --backend "$URL" --stream http
GPID=$PID GPORT=$PORT
for r in $(seq "$REPS"); do
    wrk -t2 -c"$C" -d"${DURATION}s" --latency -s "$T/post.lua" "http://127.0.0.1:$GPORT/predict" \
        >"$T/wrk.gw"
    kill -STOP $W   # the local server gets the cores to itself meanwhile
    serve "$T/local.log" "$M" --workers 1 --threads "$THREADS"
    wrk -t2 -c"$C" -d"${DURATION}s" --latency -s "$T/post.lua" "http://127.0.0.1:$PORT/predict" \
        >"$T/wrk.local"
    kill -TERM $PID; wait $PID
    kill -CONT $W
    g=$(wrk_line "$T/wrk.gw") l=$(wrk_line "$T/wrk.local")
    echo "local engine serve: $l | gateway: $g (req/s p50 p99 ms)"
    echo "${g%% *} ${l%% *}" >>"$T/gw_ratio"
    grep -h 'Non-2xx' "$T/wrk.gw" "$T/wrk.local" || true
done
echo "gateway / local, median of $REPS: $(awk '{print $1 / $2}' "$T/gw_ratio" | median)"
kill -TERM $GPID $W; wait $GPID $W
fi
load_average after
