#!/bin/sh
# bench/clip_int8_b1.sh: the batch-1 int8 network time of the engine against
# ONNX Runtime int8 on the CLIP of bench/clip.sh (run that first: it makes
# the files in $OUT_DIR), in $REPS (default 9) tight alternations of short
# runs, one pair a line, then the medians and the per-pair ratios' median:
# on a machine shared with other benchmarks, adjacent runs see the same load.
set -eu
N=${REPS:-9} # before common.sh, whose default is 3
. "$(dirname "$0")/common.sh"
M="$OUT/clip-b32"
IMG="$SHARED/data/imagenet-sample/images/n01440764_tench.JPEG"
need_peers
make -s BUILD="$BUILD" "$BUILD/clip-bench"
load_average "before"
: >"$M.int8-b1.txt"
i=0
while [ $i -lt "$N" ]; do
    e=$("$BUILD/clip-bench" "$M-int8.eng" "$IMG" --batch 1 --threads "$THREADS" --samples 3 \
        --labels 1 --zs-runs 1 | head -1 | field net_ms_per_batch)
    o=$(node bench/ort_image_bench.mjs "$M-vision.int8.onnx" --batch 1 --threads "$THREADS" \
        --samples 3 | field ms_per_batch)
    echo "$e $o" | tee -a "$M.int8-b1.txt"
    i=$((i + 1))
done
load_average "after"
echo "batch 1, int8, $THREADS threads, medians of $N: engine $(cut -d' ' -f1 "$M.int8-b1.txt" | median) ms," \
    "ONNX Runtime $(cut -d' ' -f2 "$M.int8-b1.txt" | median) ms," \
    "pair ratio $(awk '{print $2 / $1}' "$M.int8-b1.txt" | median)"
