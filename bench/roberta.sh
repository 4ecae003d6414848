#!/bin/sh
# bench/roberta.sh: issue 16's RoBERTa figure: a RoBERTa-base-shaped classifier
# (bench/make_roberta_hf.py: 12 layers, hidden 768, 12 heads, 3072, vocab
# 50265, 514 positions from padding_idx 1, seeded random weights in Hugging
# Face layout, written under $OUT_DIR) converted with build/convert, against
# ONNX Runtime 1.30 in fp32 (ort_bench.mjs) on the ONNX export of the same
# weights (tests/golden/robertaref.py --onnx: transformers' RoBERTa forward,
# position ids from the token ids). At batch 32 x 128 tokens and 1 x 16
# (random ids between <s> and </s>, 64 and 32 sequences): sentences/s of the
# engine in fp32 (build/text-bench) and of ONNX Runtime, $THREADS threads
# each, the two alternating, medians of $REPS. Target: engine fp32 >= 1.15x
# ONNX Runtime fp32 at 32 x 128 (the lead our BERT path has).
# PRECISIONS="fp32 bf16 int8" adds the engine's bf16 (--precision bf16 on a
# --dtype bf16 file) and int8 (--dtype int8) to the alternation.
#
# The machine is shared: the load average is printed at the start and the
# end. Needs the peers (../shared/reference/setup-peers.sh: npm + Debian's
# PyTorch for the ONNX export). Results go to $OUT_DIR (default $BUILD/bench).
set -eu
. "$(dirname "$0")/common.sh"
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
PRECISIONS=${PRECISIONS:-fp32}
OUT_ABS=$(cd "$OUT" && pwd)

need_peers
make -s BUILD="$BUILD" "$BUILD/convert" "$BUILD/text-bench"

ratio() { echo "$1 $2" | awk '{printf "%.2f", $1/$2}'; }

# ids N LEN FILE: N sequences of LEN random ids between <s> (0) and </s> (2),
# none the padding id (1).
ids() {
    python3 -c "
import json, random, sys
random.seed(16)
n, l = int(sys.argv[1]), int(sys.argv[2])
for _ in range(n):
    print(json.dumps([0] + [random.randrange(4, 50265) for _ in range(l - 2)] + [2]))
" "$1" "$2" >"$3"
}
ids 64 128 "$OUT/roberta.32x128.ids.jsonl"
ids 32 16 "$OUT/roberta.1x16.ids.jsonl"

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $THREADS threads"
load_average "at start"
hf="$OUT/roberta-base-hf"
[ -f "$hf/model.safetensors" ] || /usr/bin/python3 "$(dirname "$0")/make_roberta_hf.py" "$hf" >/dev/null
for p in $PRECISIONS; do
    "$BUILD/convert" --dtype "$p" "$hf" "$OUT/roberta-base.$p.eng" >/dev/null
done
[ -f "$OUT/roberta-base.fp32.onnx" ] ||
    ENGINE_SHARED="$SHARED" /usr/bin/python3 "$(dirname "$0")/../tests/golden/robertaref.py" --onnx \
        "$OUT_ABS/roberta-base-hf" "$OUT_ABS/roberta-base.fp32.onnx" >/dev/null
for run in 32x128 1x16; do
    batch=${run%x*}
    idf="$OUT/roberta.$run.ids.jsonl"
    for v in $PRECISIONS ort; do : >"$OUT/roberta.$run.$v.txt"; done
    i=0
    while [ $i -lt "$REPS" ]; do
        for p in $PRECISIONS; do
            "$BUILD/text-bench" "$OUT/roberta-base.$p.eng" --ids "$idf" --batch "$batch" \
                --threads "$THREADS" --precision "$([ "$p" = bf16 ] && echo bf16 || echo fp32)" \
                --seconds "$SECONDS_PER_RUN" | field sequences_per_s >>"$OUT/roberta.$run.$p.txt"
        done
        node "$SHARED/reference/ort_bench.mjs" "$OUT/roberta-base.fp32.onnx" "$idf" --batch "$batch" \
            --threads "$THREADS" --seconds "$SECONDS_PER_RUN" | field sequences_per_s >>"$OUT/roberta.$run.ort.txt"
        i=$((i + 1))
    done
    o=$(median <"$OUT/roberta.$run.ort.txt")
    line="roberta-base, batch $run tokens, sentences/s (median of $REPS): ONNX Runtime fp32 $o"
    for p in $PRECISIONS; do
        e=$(median <"$OUT/roberta.$run.$p.txt")
        line="$line, engine $p $e ($(ratio "$e" "$o")x)"
    done
    echo "$line"
done
load_average "at end"
