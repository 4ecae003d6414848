#!/bin/sh
# bench/serve.sh: issue 3's figures, measured in one run on this machine with
# build/infer-bench (single vs batch vs stream).
#
#   1. SST-2 dev sentences on sst2-bert-mini and on a synthetic MiniLM-L6-shaped
#      model: single (batch 1, no scheduler), batch (offline, batches of 32)
#      and stream (closed-loop clients through the scheduler at each
#      concurrency of $CONCURRENCY). Targets: stream at concurrency 64 >= 90% of
#      batch, p99 < 2 x (max_wait + one full batch); MiniLM-L6 stream >= 3x
#      single. JSON and a latency/throughput plot per model go to $OUT.
#   2. The scheduler alone (--model null): open loop at 3,000,000 requests/s
#      offered (target >= 1,000,000 completed per second) and at 1,000
#      requests/s (target: p99 queueing overhead < 50 us).
#
# Results go to $OUT_DIR (default $BUILD/bench); BUILD (default build).
set -eu
. "$(dirname "$0")/common.sh"
DURATION=${DURATION:-5}
CONCURRENCY=${CONCURRENCY:-1,10,25,50,64,100,200,500}
make -s BUILD="$BUILD" "$BUILD/convert" "$BUILD/infer-bench"

load_average "at start"
"$BUILD/convert" "$SHARED/models/sst2-bert-mini" "$OUT/sst2-bert-mini.eng" >/dev/null
"$BUILD/convert" --synthetic minilm-l6 "$OUT/minilm-l6.eng" >/dev/null
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
"$BUILD/infer-bench" --model null --input "$SHARED/data/sst2/dev.tsv" --mode stream --rate 3000000 --duration 3
"$BUILD/infer-bench" --model null --input "$SHARED/data/sst2/dev.tsv" --mode stream --rate 1000 --duration 5
load_average "at end"
