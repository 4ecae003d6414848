#!/bin/sh
# bench/http.sh: issue 11's figures for `engine serve`, measured in one run
# on this machine, with the load generators and the server sharing the cores.
#
#   1. sst2-bert-mini and the MiniLM-L6-shaped model (bench/make_minilm_hf.py):
#      in-process `infer-bench --mode stream` at concurrency $CONCURRENCY,
#      the same through the server (`infer-bench --url`, closed loop, and open
#      loop at 25/50/90% of the HTTP capacity at 64 clients), wrk -c64 with a
#      Lua POST script, and ONNX Runtime's batch 1 (ort_bench.mjs --batch 1,
#      $THREADS threads) on the same weights and sentences. Targets: HTTP at
#      64 connections >= 0.85 x in-process stream at 64, >= 1.5 x ONNX
#      Runtime batch 1. A plot per model ($OUT/MODEL.http.svg) puts the HTTP
#      runs next to the in-process ones.
#   2. The server alone (--model null): wrk -t2 -c64 on /predict. Target
#      >= 50,000 requests/s.
#   3. Drain under load: SIGTERM in the middle of a wrk -c64 run (null model
#      with a 2 ms batch): wrk's "Non-2xx" count must be 0 (connections
#      refused after the drain are socket errors, not answers).
#
# Needs wrk (Debian), node + the peers (../shared/reference/setup-peers.sh)
# and Debian's PyTorch for the MiniLM weights and the ONNX exports. Results
# go to $OUT_DIR (default $BUILD/bench).
set -eu
. "$(dirname "$0")/common.sh"
DURATION=${DURATION:-5}
CONCURRENCY=${CONCURRENCY:-1,16,64,256}
OUT_ABS=$(cd "$OUT" && pwd)
IDS="$SHARED/data/sst2/dev.ids.jsonl"
DEV="$SHARED/data/sst2/dev.tsv"
need_peers
command -v wrk >/dev/null || { echo "http.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }
make -s BUILD="$BUILD" "$BUILD/convert" "$BUILD/infer-bench" "$BUILD/engine"

"$BUILD/convert" "$SHARED/models/sst2-bert-mini" "$OUT/sst2-bert-mini.eng" >/dev/null
ENGINE_SHARED="$SHARED" /usr/bin/python3 "$(dirname "$0")/make_minilm_hf.py" "$OUT/minilm-l6-hf" >/dev/null
"$BUILD/convert" "$OUT/minilm-l6-hf" "$OUT/minilm-l6.eng" >/dev/null
for m in sst2-bert-mini minilm-l6; do
    src="$OUT_ABS/minilm-l6-hf"
    [ $m = sst2-bert-mini ] && src="$SHARED/models/sst2-bert-mini"
    (cd "$SHARED/reference" && /usr/bin/python3 export_onnx.py "$src" "$OUT_ABS/$m.onnx") \
        >"$OUT/$m.export.log" 2>&1 || { cat "$OUT/$m.export.log" >&2; exit 1; }
done

# wrk's script: POSTs the dev sentences in turn as {"inputs": text}.
python3 "$(dirname "$0")/http_post_lua.py" "$DEV" "$OUT/post.lua"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# start_server LOG ARGS...: sets PID and PORT once the server says ready.
start_server() {
    log=$1
    shift
    PORT=$(free_port)
    "$BUILD/engine" serve "$@" --port "$PORT" 2>"$log" &
    PID=$!
    i=0
    until grep -q "engine serve: ready" "$log"; do
        i=$((i + 1))
        [ $i -lt 600 ] || { cat "$log" >&2; exit 1; }
        sleep 0.1
    done
}
wrk_rps() { awk '/^Requests\/sec:/ {print $2}' "$1"; }

for m in sst2-bert-mini minilm-l6; do
    "$BUILD/infer-bench" --model "$OUT/$m.eng" --input "$DEV" --mode stream --batch 32 \
        --concurrency "$CONCURRENCY" --duration "$DURATION" --json >"$OUT/$m.inproc.json"
    start_server "$OUT/$m.serve.log" "$OUT/$m.eng"
    url="http://127.0.0.1:$PORT/predict"
    "$BUILD/infer-bench" --model "$m" --url "$url" --input "$DEV" --concurrency "$CONCURRENCY" \
        --duration "$DURATION" --json >"$OUT/$m.http.json"
    cap=$(python3 -c "import json; print(next(r['requests_per_s'] for r in json.load(open('$OUT/$m.http.json'))['runs'] if r['concurrency'] == 64))")
    for pct in 25 50 90; do
        rate=$(python3 -c "print(round($cap * $pct / 100))")
        "$BUILD/infer-bench" --model "$m" --url "$url" --input "$DEV" --rate "$rate" \
            --duration "$DURATION" --url-conns 256 --json >"$OUT/$m.http.open$pct.json"
    done
    wrk -t2 -c64 -d"${DURATION}s" --latency -s "$OUT/post.lua" "$url" >"$OUT/$m.wrk.txt"
    kill "$PID"
    wait "$PID" || true
    node "$SHARED/reference/ort_bench.mjs" "$OUT/$m.onnx" "$IDS" --threads "$THREADS" \
        --seconds "$DURATION" --batch 1 | tail -n 1 >"$OUT/$m.ort.b1.json"
    python3 "$(dirname "$0")/http_report.py" "$OUT" "$m" "$(wrk_rps "$OUT/$m.wrk.txt")"
done

# The server's own cost: the null model answers at once.
start_server "$OUT/null.serve.log" --model null
wrk -t2 -c64 -d"${DURATION}s" --latency -s "$OUT/post.lua" "http://127.0.0.1:$PORT/predict" >"$OUT/null.wrk.txt"
kill "$PID"
wait "$PID" || true
echo "null model: wrk -t2 -c64 $(wrk_rps "$OUT/null.wrk.txt") requests/s (target >= 50000)"

# Drain under load: SIGTERM halfway through a wrk run.
start_server "$OUT/drain.serve.log" --model null --null-batch-us 2000
wrk -t2 -c64 -d4s -s "$OUT/post.lua" "http://127.0.0.1:$PORT/predict" >"$OUT/drain.wrk.txt" &
WRK=$!
sleep 2
kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
wait "$WRK" || true
non2xx=$(awk '/Non-2xx/ {print $NF}' "$OUT/drain.wrk.txt")
echo "drain under load: server exit $rc; non-2xx answers: ${non2xx:-0} (target 0); wrk: $(grep -E 'requests in|Socket errors' "$OUT/drain.wrk.txt" | tr -s ' ' | tr '\n' ';')"
load_average "at end"
