#!/bin/sh
# bench/clip.sh: issue 17's speed figures, measured in one run on this machine:
# a ViT-B/32-shaped CLIP (vision 12 x 768, patch 32, 224 px; text 12 x 512,
# 77 positions) with seeded random weights (tests/golden/make_vit_clip.py
# --bench), image embeddings at batch 1, 8 and 32 on $THREADS threads: the
# engine (build/clip-bench: the whole call, and the network alone) against
# ONNX Runtime (bench/ort_image_bench.mjs, network only) on the same vision
# tower exported by bench/clip_onnx.py with Debian's PyTorch, alternating
# runs, medians of $REPS runs each; then zero-shot at batch 1 over 80 labels
# (warm cache p50/p95, and a cold label set's call); then the engine at bf16
# precision (GEMM inputs rounded to bf16, AMX or AVX512-BF16), not a
# like-for-like comparison with ONNX Runtime's fp32; last, the scheduler's
# throughput at concurrency 16 (build/infer-bench, one run of 15 s each at
# fp32 and bf16, the images sent as encoded bytes).
#
# Needs the peers (../shared/reference/setup-peers.sh). Results go to
# $OUT_DIR (default build/bench). The machine is shared: the load average is
# printed with the figures.
set -eu
. "$(dirname "$0")/common.sh"
BATCHES=${BATCHES:-1,8,32}

need_peers
make -s BUILD="$BUILD" "$BUILD/convert" "$BUILD/clip-bench"

IMAGES="$SHARED/data/imagenet-sample/images"
M="$OUT/clip-b32"
[ -f "$M/model.safetensors" ] || /usr/bin/python3 tests/golden/make_vit_clip.py --bench "$M"
[ -f "$M.eng" ] || "$BUILD/convert" "$M" "$M.eng" >/dev/null
[ -f "$M-vision.onnx" ] ||
    ENGINE_SHARED="$SHARED" /usr/bin/python3 bench/clip_onnx.py "$M" "$M-vision.onnx" >/dev/null 2>&1

# Field $2 of the line for batch $1 of a file of JSON lines.
pick() { python3 -c "import json,sys
for l in open('$3'):
    j = json.loads(l)
    if j.get('batch') == $1: print(j['$2'])"; }

echo "CLIP ViT-B/32 shape; machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $THREADS threads"
load_average "before"
: >"$M.engine.jsonl"
: >"$M.ort.jsonl"
: >"$M.bf16.jsonl"
i=0
while [ $i -lt "$REPS" ]; do
    "$BUILD/clip-bench" "$M.eng" "$IMAGES"/*.JPEG --batch "$BATCHES" --threads "$THREADS" \
        --samples 5 --labels 80 --zs-runs 100 >>"$M.engine.jsonl"
    node bench/ort_image_bench.mjs "$M-vision.onnx" --batch "$BATCHES" --threads "$THREADS" \
        --samples 5 >>"$M.ort.jsonl"
    "$BUILD/clip-bench" "$M.eng" "$IMAGES"/*.JPEG --batch "$BATCHES" --threads "$THREADS" \
        --samples 5 --labels 80 --zs-runs 100 --precision bf16 >>"$M.bf16.jsonl"
    i=$((i + 1))
done
load_average "after"
for b in $(echo "$BATCHES" | tr , ' '); do
    e=$(pick "$b" ms_per_batch "$M.engine.jsonl" | median)
    n=$(pick "$b" net_ms_per_batch "$M.engine.jsonl" | median)
    o=$(pick "$b" ms_per_batch "$M.ort.jsonl" | median)
    echo "$b" "$e" "$n" "$o" | awk '{printf "batch %d: engine %.2f ms (%.1f images/s; network %.2f ms, %.1f images/s, preprocessing %.0f%%), ONNX Runtime network %.2f ms (%.1f images/s), network ratio %.2f\n",
        $1, $2, $1 * 1000 / $2, $3, $1 * 1000 / $3, 100 * ($2 - $3) / $2, $4, $1 * 1000 / $4, $4 / $3}'
done
zs() { python3 -c "import json
for l in open('$2'):
    j = json.loads(l)
    if 'zero_shot_labels' in j: print(j['$1'])" | median; }
for p in fp32 bf16; do
    f="$M.engine.jsonl"
    [ $p = bf16 ] && f="$M.bf16.jsonl"
    echo "zero-shot $p, batch 1, 80 labels: warm cache p50 $(zs warm_ms_p50 "$f") ms, p95 $(zs warm_ms_p95 "$f") ms; cold label set $(zs cold_ms_median "$f") ms (medians of $REPS runs)"
done
for b in $(echo "$BATCHES" | tr , ' '); do
    e=$(pick "$b" ms_per_batch "$M.bf16.jsonl" | median)
    n=$(pick "$b" net_ms_per_batch "$M.bf16.jsonl" | median)
    o=$(pick "$b" ms_per_batch "$M.ort.jsonl" | median)
    echo "$b" "$e" "$n" "$o" | awk '{printf "bf16 batch %d: engine %.2f ms (%.1f images/s; network %.2f ms, %.1f images/s), ONNX Runtime fp32 network %.2f ms, ratio %.2f\n",
        $1, $2, $1 * 1000 / $2, $3, $1 * 1000 / $3, $4, $4 / $3}'
done
for p in fp32 bf16; do
    "$BUILD/infer-bench" --model "$M.eng" --input "$IMAGES" --mode stream --concurrency 16 \
        --duration 15 --threads "$THREADS" --precision $p --json 2>/dev/null >"$M.sched.$p.json"
    python3 -c "import json
r = json.load(open('$M.sched.$p.json'))['runs'][0]
print('scheduler $p, concurrency 16: %.1f images/s, p50 %.0f ms, p95 %.0f ms, mean batch %.1f' % (r['requests_per_s'], r['latency_ms']['p50'], r['latency_ms']['p95'], r['mean_batch']))"
done
