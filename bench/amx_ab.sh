#!/bin/sh
# bench/amx_ab.sh: issue 13's end-to-end figures before and after a change,
# in one run: the BERT-base-shaped model of bench/int8.sh (its files in
# $OUT_DIR, default build/bench: run bench/int8.sh and bench/bf16.sh first)
# at batch 32 x 128 and 1 x 16 tokens, sequences/s of
#   this build's text-bench and $BASE_BUILD's (another worktree's build
#   folder, e.g. main's) in int8 and in bf16 (--precision bf16 on the
#   convert --dtype bf16 file), this build in fp32, and ONNX Runtime 1.30
#   (ort_bench.mjs) in int8 and fp32 on the same weights,
# all seven alternating, medians of $REPS runs of $SECONDS_PER_RUN s, 2 threads.
#
#   BASE_BUILD=../main/build REPS=3 SECONDS_PER_RUN=4 sh bench/amx_ab.sh
set -eu
. "$(dirname "$0")/common.sh"
SECONDS_PER_RUN=${SECONDS_PER_RUN:-4}
: "${BASE_BUILD:?set BASE_BUILD to the build folder to compare with}"
need_peers
make -s BUILD="$BUILD" "$BUILD/text-bench"
ORT="$SHARED/reference/ort_bench.mjs"
load_average "at start"
for shape in 32x128 1x16; do
    batch=${shape%x*}
    ids="$OUT/bert-base.ids-$shape.jsonl"
    for v in base.int8 new.int8 ort.int8 base.bf16 new.bf16 new.fp32 ort.fp32; do
        : >"$OUT/ab.$shape.$v.txt"
    done
    run() { # NAME COMMAND...: one run's sequences/s appended to NAME's file
        name=$1
        shift
        "$@" --batch "$batch" --threads "$THREADS" --seconds "$SECONDS_PER_RUN" |
            field sequences_per_s >>"$OUT/ab.$shape.$name.txt"
    }
    i=0
    while [ $i -lt "$REPS" ]; do
        run base.int8 "$BASE_BUILD/text-bench" "$OUT/bert-base.int8.eng" --ids "$ids"
        run new.int8 "$BUILD/text-bench" "$OUT/bert-base.int8.eng" --ids "$ids"
        run ort.int8 node "$ORT" "$OUT/bert-base.int8.onnx" "$ids"
        run base.bf16 "$BASE_BUILD/text-bench" "$OUT/bert-base.bf16.eng" --ids "$ids" --precision bf16
        run new.bf16 "$BUILD/text-bench" "$OUT/bert-base.bf16.eng" --ids "$ids" --precision bf16
        run new.fp32 "$BUILD/text-bench" "$OUT/bert-base.fp32.eng" --ids "$ids"
        run ort.fp32 node "$ORT" "$OUT/bert-base.fp32.onnx" "$ids"
        i=$((i + 1))
    done
    for v in base.int8 new.int8 ort.int8 base.bf16 new.bf16 new.fp32 ort.fp32; do
        printf '%s %-9s median %6s   runs %s\n' "$shape" "$v" "$(median <"$OUT/ab.$shape.$v.txt")" \
            "$(sort -n "$OUT/ab.$shape.$v.txt" | tr '\n' ' ')"
    done
done
load_average "at end"
