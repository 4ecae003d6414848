#!/bin/sh
# bench/serve.sh: issue 3's figures, measured in one run on this machine with
# build/infer-bench (single vs batch vs stream).
#
#   1. SST-2 dev sentences on sst2-bert-mini and on a MiniLM-L6-shaped model
#      (6 layers, hidden 384, 12 heads, 1536; random weights from
#      bench/make_minilm_hf.py): single (batch 1, no scheduler), batch
#      (offline, batches of 32) and stream (closed-loop clients through the
#      scheduler at each concurrency of $CONCURRENCY). Targets: stream at
#      concurrency 64 >= 90% of batch, p99 < 2 x (max_wait + one full batch).
#      JSON and a latency/throughput plot per model go to $OUT.
#   2. ONNX Runtime (../shared/reference/ort_bench.mjs, $THREADS threads) on
#      the same MiniLM-L6 weights (exported with export_onnx.py) and the same
#      sentences as token ids: batch 1, batch 32 in arrival order and batch 32
#      sorted by length. Target: the engine's stream at concurrency 64 >= 3x
#      ONNX Runtime's single; also printed: ONNX Runtime's batch-1 efficiency
#      against its batch 32, the stream against the engine's own single and
#      against ONNX Runtime's batch 32, and how far the two engines' logits
#      differ.
#   3. The scheduler alone (--model null): open loop at 3,000,000 requests/s
#      offered (target >= 1,000,000 completed per second) and at 1,000
#      requests/s (target: p99 queueing overhead < 50 us), the latter with the
#      default idle spin and with --idle-spin-us 20000 (an idle worker polls
#      that long before sleeping, trading CPU time for wake-up latency), and
#      build/wake-bench, the machine's floor: how long a bare sleeping (and
#      polling) thread takes to see a post at that rate.
#
# Needs the peers (../shared/reference/setup-peers.sh: npm + Debian's PyTorch
# for the weights and the ONNX export). Results go to $OUT_DIR (default
# $BUILD/bench); BUILD (default build).
set -eu
. "$(dirname "$0")/common.sh"
DURATION=${DURATION:-5}
CONCURRENCY=${CONCURRENCY:-1,10,25,50,64,100,200,500}
OUT_ABS=$(cd "$OUT" && pwd)
IDS="$SHARED/data/sst2/dev.ids.jsonl"

need_peers
make -s BUILD="$BUILD" "$BUILD/convert" "$BUILD/infer-bench" "$BUILD/engine" "$BUILD/wake-bench"

load_average "at start"
"$BUILD/convert" "$SHARED/models/sst2-bert-mini" "$OUT/sst2-bert-mini.eng" >/dev/null
# One Hugging Face folder feeds both engines, so they run the same weights;
# the weights are seeded, and rebuilt every run so they are never stale.
ENGINE_SHARED="$SHARED" /usr/bin/python3 "$(dirname "$0")/make_minilm_hf.py" "$OUT/minilm-l6-hf" >/dev/null
"$BUILD/convert" "$OUT/minilm-l6-hf" "$OUT/minilm-l6.eng" >/dev/null
# The export's tracer warnings go to a log, shown only when it fails.
(cd "$SHARED/reference" && /usr/bin/python3 export_onnx.py "$OUT_ABS/minilm-l6-hf" "$OUT_ABS/minilm-l6.onnx") \
    >"$OUT/minilm-l6.export.log" 2>&1 || { cat "$OUT/minilm-l6.export.log" >&2; exit 1; }
for m in sst2-bert-mini minilm-l6; do
    "$BUILD/infer-bench" --model "$OUT/$m.eng" --input "$SHARED/data/sst2/dev.tsv" --mode all \
        --batch 32 --concurrency "$CONCURRENCY" --duration "$DURATION" \
        --plot "$OUT/$m.stream.svg" --json >"$OUT/$m.stream.json"
    python3 - "$OUT/$m.stream.json" "$m" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
runs = doc["runs"]
batch = next(r for r in runs if r["mode"] == "batch")["requests_per_s"]
single = next(r for r in runs if r["mode"] == "single")["requests_per_s"]
print(f"{sys.argv[2]}: single {single:.0f}/s, batch {batch:.0f}/s")
for r in runs:
    if r["mode"] == "stream":
        l = r["latency_ms"]
        print(f"  stream c={r['concurrency']:>4}: {r['requests_per_s']:8.0f}/s "
              f"({100 * r['requests_per_s'] / batch:5.1f}% of batch, {r['requests_per_s'] / single:4.1f}x single), "
              f"p50 {l['p50']:.2f} ms, p99 {l['p99']:.2f} ms, mean batch {r['mean_batch']:.1f}")
EOF
done

# ONNX Runtime on the same model and sentences: batch 1 (keeping its logits),
# batch 32 in arrival order as a server sees them, and batch 32 sorted by
# length (its offline best case, with little padding).
ort() {
    name=$1
    shift
    node "$SHARED/reference/ort_bench.mjs" "$OUT/minilm-l6.onnx" "$IDS" --threads "$THREADS" \
        --seconds "$DURATION" "$@" | tail -n 1 >"$OUT/minilm-l6.ort.$name.json"
}
ort b1 --batch 1 --out "$OUT/minilm-l6.ort.logits.jsonl"
ort b32 --batch 32
ort b32-sorted --batch 32 --sort
cut -f1 "$SHARED/data/sst2/dev.tsv" | tail -n +2 |
    "$BUILD/engine" classify "$OUT/minilm-l6.eng" --threads "$THREADS" >"$OUT/minilm-l6.engine.logits.jsonl"
python3 - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
runs = json.load(open(f"{out}/minilm-l6.stream.json"))["runs"]
single = next(r for r in runs if r["mode"] == "single")["requests_per_s"]
stream = next((r for r in runs if r["mode"] == "stream" and r["concurrency"] == 64), None)
ort = {k: json.load(open(f"{out}/minilm-l6.ort.{k}.json")) for k in ("b1", "b32", "b32-sorted")}
o1, o32, o32s = (ort[k]["sequences_per_s"] for k in ("b1", "b32", "b32-sorted"))
print(f"minilm-l6, ONNX Runtime ({ort['b1']['threads']} threads, same weights and sentences as token ids): "
      f"single {o1:.0f}/s, batch 32 {o32:.0f}/s in arrival order, {o32s:.0f}/s sorted by length")
print(f"  ONNX Runtime batch 1 at {100 * o1 / o32:.0f}% of its batch-32 efficiency in arrival order, "
      f"{100 * o1 / o32s:.0f}% sorted")
if stream:
    s = stream["requests_per_s"]
    print(f"  engine stream c=64 {s:.0f}/s = {s / o1:.1f}x ONNX Runtime single (target >= 3.0), "
          f"{s / single:.1f}x the engine's single, {s / o32:.2f}x ONNX Runtime batch 32 in arrival order, "
          f"{s / o32s:.2f}x sorted")
else:
    print("  no stream run at concurrency 64 (CONCURRENCY lacks it)")
def logits(path):
    return [json.loads(l)["logits"] for l in open(path) if l.strip()]
eng, ref = logits(f"{out}/minilm-l6.engine.logits.jsonl"), logits(f"{out}/minilm-l6.ort.logits.jsonl")
assert len(eng) == len(ref), (len(eng), len(ref))
diff = max(abs(a - b) for e, o in zip(eng, ref) for a, b in zip(e, o))
print(f"  same model: max |engine - ONNX Runtime| logit over {len(eng)} sentences {diff:.2e}")
EOF

"$BUILD/infer-bench" --model null --input "$SHARED/data/sst2/dev.tsv" --mode stream --rate 3000000 --duration 3
"$BUILD/infer-bench" --model null --input "$SHARED/data/sst2/dev.tsv" --mode stream --rate 1000 --duration 5
"$BUILD/infer-bench" --model null --input "$SHARED/data/sst2/dev.tsv" --mode stream --rate 1000 --duration 5 \
    --idle-spin-us 20000
"$BUILD/wake-bench"
load_average "at end"
