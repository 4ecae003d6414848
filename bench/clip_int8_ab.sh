#!/bin/sh
# bench/clip_int8_ab.sh: the int8 CLIP vision network (bench/clip.sh's model;
# run that first: it makes the files in $OUT_DIR) at batch $BATCHES (default
# 1,8,32) on $THREADS threads, this tree's build/clip-bench against another
# build's ($BASE, e.g. a copy of main's build/clip-bench, running
# $BASE_MODEL, default the same file: give it the base's own conversion when
# the converter changed; this tree's $OUT_DIR/clip-b32-int8.eng must be its
# own converter's: delete an older one and rerun bench/clip.sh) and ONNX
# Runtime int8, one short run of each in turn per batch size, $REPS rounds
# (default 5): adjacent runs, seconds apart, see the same load on a shared
# machine. Prints per batch the medians (ms, network alone) and the medians
# of the rounds' ratios (base / this tree and ONNX Runtime / this tree: above
# 1, this tree is faster).
set -eu
N=${REPS:-5} # before common.sh, whose default is 3
. "$(dirname "$0")/common.sh"
: "${BASE:?BASE=path to the other build's clip-bench}"
BATCHES=${BATCHES:-1,8,32}
M="$OUT/clip-b32"
BASE_MODEL=${BASE_MODEL:-$M-int8.eng}
IMAGES="$SHARED/data/imagenet-sample/images"
need_peers
make -s BUILD="$BUILD" "$BUILD/clip-bench"
run() { "$1" "$2" "$IMAGES"/*.JPEG --batch "$3" --threads "$THREADS" --samples 3 \
    --labels 1 --zs-runs 1 | grep net_ms_per_batch; }
load_average "before"
: >"$M.int8-ab.base.jsonl"
: >"$M.int8-ab.this.jsonl"
: >"$M.int8-ab.ort.jsonl"
i=0
while [ $i -lt "$N" ]; do
    for b in $(echo "$BATCHES" | tr , ' '); do
        run "$BASE" "$BASE_MODEL" "$b" >>"$M.int8-ab.base.jsonl"
        run "$BUILD/clip-bench" "$M-int8.eng" "$b" >>"$M.int8-ab.this.jsonl"
        node bench/ort_image_bench.mjs "$M-vision.int8.onnx" --batch "$b" \
            --threads "$THREADS" --samples 3 >>"$M.int8-ab.ort.jsonl"
    done
    i=$((i + 1))
done
load_average "after"
python3 - "$M" "$N" "$THREADS" <<'PY'
import json, statistics, sys
m, n, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def load(name, key):
    d = {}
    for line in open(m + '.int8-ab.' + name + '.jsonl'):
        j = json.loads(line)
        d.setdefault(j['batch'], []).append(j[key])
    return d
base, this, ort = load('base', 'net_ms_per_batch'), load('this', 'net_ms_per_batch'), load('ort', 'ms_per_batch')
med = statistics.median
for b in sorted(this):
    print('int8 batch %d, %s threads, medians of %d: base %.1f ms, this tree %.1f ms, ONNX Runtime %.1f ms; '
          'round ratios base/this %.2f, ONNX Runtime/this %.2f' % (
          b, threads, n, med(base[b]), med(this[b]), med(ort[b]),
          med(x / y for x, y in zip(base[b], this[b])), med(x / y for x, y in zip(ort[b], this[b]))))
PY
