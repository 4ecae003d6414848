#!/bin/sh
# bench/clip.sh: issue 17's speed figures, measured in one run on this machine:
# a ViT-B/32-shaped CLIP (vision 12 x 768, patch 32, 224 px; text 12 x 512,
# 77 positions) with seeded random weights (tests/golden/make_vit_clip.py
# --bench), image embeddings at batch 1, 8 and 32 on $THREADS threads: the
# engine (build/clip-bench: the whole call, and the network alone) against
# ONNX Runtime (bench/ort_image_bench.mjs, network only) on the same vision
# tower exported by bench/clip_onnx.py with Debian's PyTorch, alternating
# runs, medians of $REPS runs each; then zero-shot at batch 1 over 80 labels
# (warm cache p50/p95, and a cold label set's call); then the same for the
# model converted with --dtype int8 (int8 linear layers, VNNI) against ONNX
# Runtime int8 (../shared/reference/quantize_onnx.py on the same export:
# MatMulInteger, per-tensor int8 weights, dynamically quantized
# activations), and int8's zero-shot top-1 agreement with fp32 over the
# sample images (clip-bench --agree); then the engine at bf16 precision
# (GEMM inputs rounded to bf16, AMX or AVX512-BF16), not a like-for-like
# comparison with ONNX Runtime's fp32; last, the scheduler's throughput at
# concurrency 16 (build/infer-bench, one run of 15 s each at fp32, int8 and
# bf16, the images sent as encoded bytes).
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
[ -f "$M-int8.eng" ] || "$BUILD/convert" "$M" "$M-int8.eng" --dtype int8 >/dev/null
[ -f "$M-vision.onnx" ] ||
    ENGINE_SHARED="$SHARED" /usr/bin/python3 bench/clip_onnx.py "$M" "$M-vision.onnx" >/dev/null 2>&1
[ -f "$M-vision.int8.onnx" ] ||
    /usr/bin/python3 "$SHARED/reference/quantize_onnx.py" "$M-vision.onnx" "$M-vision.int8.onnx" >/dev/null

# Field $2 of the line for batch $1 of a file of JSON lines.
pick() { python3 -c "import json,sys
for l in open('$3'):
    j = json.loads(l)
    if j.get('batch') == $1: print(j['$2'])"; }

echo "CLIP ViT-B/32 shape; machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $THREADS threads"
load_average "before"
: >"$M.engine.jsonl"
: >"$M.ort.jsonl"
: >"$M.int8.jsonl"
: >"$M.ort-int8.jsonl"
: >"$M.bf16.jsonl"
i=0
while [ $i -lt "$REPS" ]; do
    "$BUILD/clip-bench" "$M.eng" "$IMAGES"/*.JPEG --batch "$BATCHES" --threads "$THREADS" \
        --samples 5 --labels 80 --zs-runs 100 >>"$M.engine.jsonl"
    node bench/ort_image_bench.mjs "$M-vision.onnx" --batch "$BATCHES" --threads "$THREADS" \
        --samples 5 >>"$M.ort.jsonl"
    "$BUILD/clip-bench" "$M-int8.eng" "$IMAGES"/*.JPEG --batch "$BATCHES" --threads "$THREADS" \
        --samples 5 --labels 80 --zs-runs 100 >>"$M.int8.jsonl"
    node bench/ort_image_bench.mjs "$M-vision.int8.onnx" --batch "$BATCHES" --threads "$THREADS" \
        --samples 5 >>"$M.ort-int8.jsonl"
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
for b in $(echo "$BATCHES" | tr , ' '); do
    e=$(pick "$b" ms_per_batch "$M.int8.jsonl" | median)
    n=$(pick "$b" net_ms_per_batch "$M.int8.jsonl" | median)
    o=$(pick "$b" ms_per_batch "$M.ort-int8.jsonl" | median)
    f=$(pick "$b" net_ms_per_batch "$M.engine.jsonl" | median)
    echo "$b" "$e" "$n" "$o" "$f" | awk '{printf "int8 batch %d: engine %.2f ms (%.1f images/s; network %.2f ms, %.1f images/s, preprocessing %.0f%%), ONNX Runtime int8 network %.2f ms (%.1f images/s), network ratio %.2f; engine int8 vs fp32 network %.2fx\n",
        $1, $2, $1 * 1000 / $2, $3, $1 * 1000 / $3, 100 * ($2 - $3) / $2, $4, $1 * 1000 / $4, $4 / $3, $5 / $3}'
done
zs() { python3 -c "import json
for l in open('$2'):
    j = json.loads(l)
    if 'zero_shot_labels' in j: print(j['$1'])" | median; }
for p in fp32 int8 bf16; do
    f="$M.$p.jsonl"
    [ $p = fp32 ] && f="$M.engine.jsonl"
    echo "zero-shot $p, batch 1, 80 labels: warm cache p50 $(zs warm_ms_p50 "$f") ms, p95 $(zs warm_ms_p95 "$f") ms; cold label set $(zs cold_ms_median "$f") ms (medians of $REPS runs)"
done
"$BUILD/clip-bench" "$M.eng" "$IMAGES"/*.JPEG --agree "$M-int8.eng" --batch 32 --labels 80 \
    --threads "$THREADS" >"$M.agree.json"
python3 -c "import json
j = json.load(open('$M.agree.json'))
print('zero-shot top-1 agreement, %s: %d of %d images, %d labels (worst image-feature cosine %.5f; fp32 top-1 to top-2 logit gap: median %.3f, widest where they differ %.3f)' % (j['agree'], j['same_top1'], j['images'], j['labels'], j['worst_feature_cosine'], j['median_top_gap'], j['widest_flipped_gap']))"
for b in $(echo "$BATCHES" | tr , ' '); do
    e=$(pick "$b" ms_per_batch "$M.bf16.jsonl" | median)
    n=$(pick "$b" net_ms_per_batch "$M.bf16.jsonl" | median)
    o=$(pick "$b" ms_per_batch "$M.ort.jsonl" | median)
    echo "$b" "$e" "$n" "$o" | awk '{printf "bf16 batch %d: engine %.2f ms (%.1f images/s; network %.2f ms, %.1f images/s), ONNX Runtime fp32 network %.2f ms, ratio %.2f\n",
        $1, $2, $1 * 1000 / $2, $3, $1 * 1000 / $3, $4, $4 / $3}'
done
for p in fp32 int8 bf16; do
    m="$M.eng" prec=$p
    [ $p = int8 ] && m="$M-int8.eng" prec=fp32
    "$BUILD/infer-bench" --model "$m" --input "$IMAGES" --mode stream --concurrency 16 \
        --duration 15 --threads "$THREADS" --precision $prec --json 2>/dev/null >"$M.sched.$p.json"
    python3 -c "import json
r = json.load(open('$M.sched.$p.json'))['runs'][0]
print('scheduler $p, concurrency 16: %.1f images/s, p50 %.0f ms, p95 %.0f ms, mean batch %.1f' % (r['requests_per_s'], r['latency_ms']['p50'], r['latency_ms']['p95'], r['mean_batch']))"
done
