#!/bin/sh
# bench/resnet.sh: issue 5's speed figures, measured in one run on this machine:
# ResNet-18 (../shared/models/resnet18-random) at batch 1, 8 and 32 on
# $THREADS threads, the engine (build/image-bench: the whole call and the
# network alone, hence the preprocessing share) against ONNX Runtime
# (bench/ort_image_bench.mjs, network only, on the same weights exported by
# ../shared/reference/tvref.py), alternating runs, medians of $REPS runs each.
#
# Needs the peers (../shared/reference/setup-peers.sh: npm + Debian's PyTorch
# for the ONNX export). Results go to $OUT_DIR (default build/bench). The
# machine is shared: the load average is printed with the figures.
set -eu
. "$(dirname "$0")/common.sh"
BATCHES=${BATCHES:-1,8,32}

need_peers
make -s BUILD="$BUILD" "$BUILD/convert" "$BUILD/image-bench"

IMAGES="$SHARED/data/imagenet-sample/images"
PTH="$SHARED/models/resnet18-random/resnet18.pth"
"$BUILD/convert" --arch resnet18 --labels "$SHARED/data/imagenet-sample/imagenet_classes.txt" \
    "$PTH" "$OUT/resnet18.eng" >/dev/null
[ -f "$OUT/resnet18.onnx" ] ||
    (cd "$SHARED/reference" && /usr/bin/python3 tvref.py onnx resnet18 "$PTH" \
        "$(cd - >/dev/null && pwd)/$OUT/resnet18.onnx") >/dev/null

# Field $2 of the line for batch $1 of a file of JSON lines.
pick() { python3 -c "import json,sys
for l in open('$3'):
    j = json.loads(l)
    if j['batch'] == $1: print(j['$2'])"; }

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $THREADS threads"
load_average "before"
: >"$OUT/resnet18.engine.jsonl"
: >"$OUT/resnet18.ort.jsonl"
i=0
while [ $i -lt "$REPS" ]; do
    "$BUILD/image-bench" "$OUT/resnet18.eng" "$IMAGES"/*.JPEG --batch "$BATCHES" \
        --threads "$THREADS" --samples 5 >>"$OUT/resnet18.engine.jsonl"
    node bench/ort_image_bench.mjs "$OUT/resnet18.onnx" --batch "$BATCHES" --threads "$THREADS" \
        --samples 5 >>"$OUT/resnet18.ort.jsonl"
    i=$((i + 1))
done
load_average "after"
for b in $(echo "$BATCHES" | tr , ' '); do
    e=$(pick "$b" ms_per_batch "$OUT/resnet18.engine.jsonl" | median)
    n=$(pick "$b" net_ms_per_batch "$OUT/resnet18.engine.jsonl" | median)
    o=$(pick "$b" ms_per_batch "$OUT/resnet18.ort.jsonl" | median)
    echo "$b" "$e" "$n" "$o" | awk '{printf "batch %d: engine %.2f ms (%.1f images/s; network %.2f ms, %.1f images/s, preprocessing %.0f%%), ONNX Runtime network %.2f ms (%.1f images/s), network ratio %.2f\n",
        $1, $2, $1 * 1000 / $2, $3, $1 * 1000 / $3, 100 * ($2 - $3) / $2, $4, $1 * 1000 / $4, $4 / $3}'
done
