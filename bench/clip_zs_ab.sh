#!/bin/sh
# bench/clip_zs_ab.sh: a warm zero-shot call at batch 1 over 80 labels (the
# latency of issue 17) on the CLIP of bench/clip.sh (run that first: it makes
# the models in $OUT_DIR), this tree's build/clip-bench against another
# build's ($BASE, e.g. a copy of main's build/clip-bench), alternating short
# runs of $RUNS calls (default 60) $REPS times (default 9) for the fp32 and
# the int8 model: adjacent runs see the same load on a shared machine. Prints
# each pair's p50 and p95 (ms), then the medians and the median of the pair
# ratios (base / this tree: above 1, this tree is faster). BASE_INT8: the int8
# model the base runs (default the same file; the base's own conversion when
# the converter changed).
set -eu
N=${REPS:-9} # before common.sh, whose default is 3
. "$(dirname "$0")/common.sh"
: "${BASE:?BASE=path to the other build's clip-bench}"
RUNS=${RUNS:-60}
M="$OUT/clip-b32"
IMG="$SHARED/data/imagenet-sample/images/n01440764_tench.JPEG"
make -s BUILD="$BUILD" "$BUILD/clip-bench"
zs() { "$1" "$2" "$IMG" --batch 0 --threads "$THREADS" --labels 80 --zs-runs "$RUNS" | tail -1; }
load_average "before"
for model in "$M.eng" "$M-int8.eng"; do
    f="$model.zs-ab.txt"
    : >"$f"
    i=0
    base_model="$model"
    [ "$model" = "$M.eng" ] || base_model=${BASE_INT8:-$model}
    while [ $i -lt "$N" ]; do
        b=$(zs "$BASE" "$base_model")
        e=$(zs "$BUILD/clip-bench" "$model")
        echo "$(echo "$b" | field warm_ms_p50) $(echo "$b" | field warm_ms_p95)" \
            "$(echo "$e" | field warm_ms_p50) $(echo "$e" | field warm_ms_p95)" | tee -a "$f"
        i=$((i + 1))
    done
    echo "$(basename "$model"), $THREADS threads, medians of $N (p50, p95 ms):" \
        "base $(cut -d' ' -f1 "$f" | median), $(cut -d' ' -f2 "$f" | median);" \
        "this tree $(cut -d' ' -f3 "$f" | median), $(cut -d' ' -f4 "$f" | median);" \
        "pair ratios $(awk '{print $1 / $3}' "$f" | median), $(awk '{print $2 / $4}' "$f" | median)"
done
load_average "after"
