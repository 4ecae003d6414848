#!/bin/sh
# bench/resnet.sh: issue 5's speed figures, measured in one run on this machine:
# ResNet-18 (../shared/models/resnet18-random) at batch 1, 8 and 32 on
# $THREADS threads, the engine (build/image-bench: the whole call and the
# network alone, hence the preprocessing share) against ONNX Runtime
# (bench/ort_image_bench.mjs, network only, on the same weights exported by
# ../shared/reference/tvref.py), alternating runs, medians of $REPS runs each.
# ARCH=resnet50 PTH=/tmp/resnet50-seed0.pth (made by
# tests/golden/make_resnet50_golden.py) measures ResNet-50 the same way.
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
ARCH=${ARCH:-resnet18}
PTH=${PTH:-$SHARED/models/resnet18-random/resnet18.pth}
"$BUILD/convert" --arch "$ARCH" --labels "$SHARED/data/imagenet-sample/imagenet_classes.txt" \
    "$PTH" "$OUT/$ARCH.eng" >/dev/null
[ -f "$OUT/$ARCH.onnx" ] ||
    (cd "$SHARED/reference" && /usr/bin/python3 tvref.py onnx "$ARCH" "$PTH" \
        "$(cd - >/dev/null && pwd)/$OUT/$ARCH.onnx") >/dev/null

# Field $2 of the line for batch $1 of a file of JSON lines.
pick() { python3 -c "import json,sys
for l in open('$3'):
    j = json.loads(l)
    if j['batch'] == $1: print(j['$2'])"; }

echo "$ARCH; machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $THREADS threads"
load_average "before"
: >"$OUT/$ARCH.engine.jsonl"
: >"$OUT/$ARCH.ort.jsonl"
i=0
while [ $i -lt "$REPS" ]; do
    "$BUILD/image-bench" "$OUT/$ARCH.eng" "$IMAGES"/*.JPEG --batch "$BATCHES" \
        --threads "$THREADS" --samples 5 >>"$OUT/$ARCH.engine.jsonl"
    node bench/ort_image_bench.mjs "$OUT/$ARCH.onnx" --batch "$BATCHES" --threads "$THREADS" \
        --samples 5 >>"$OUT/$ARCH.ort.jsonl"
    i=$((i + 1))
done
load_average "after"
for b in $(echo "$BATCHES" | tr , ' '); do
    e=$(pick "$b" ms_per_batch "$OUT/$ARCH.engine.jsonl" | median)
    n=$(pick "$b" net_ms_per_batch "$OUT/$ARCH.engine.jsonl" | median)
    o=$(pick "$b" ms_per_batch "$OUT/$ARCH.ort.jsonl" | median)
    echo "$b" "$e" "$n" "$o" | awk '{printf "batch %d: engine %.2f ms (%.1f images/s; network %.2f ms, %.1f images/s, preprocessing %.0f%%), ONNX Runtime network %.2f ms (%.1f images/s), network ratio %.2f\n",
        $1, $2, $1 * 1000 / $2, $3, $1 * 1000 / $3, 100 * ($2 - $3) / $2, $4, $1 * 1000 / $4, $4 / $3}'
done
