#!/bin/sh
# bench/bf16.sh: issue 13's bf16 figures (--precision bf16 on the CPU),
# measured in one run on this machine.
#
#   Two seeded Hugging Face models (bench/make_minilm_hf.py --shape):
#   BERT-base-shaped (12 layers, hidden 768, 12 heads, 3072) and
#   MiniLM-L6-shaped, converted to fp32 and to bf16 (convert --dtype bf16:
#   half the bytes of linear weights to stream). On each, at batch 32 x 128
#   tokens and batch 1 x 16 tokens (random ids, 64 and 32 sequences):
#   sentences/s of the engine in bf16 (the bf16 file, build/text-bench
#   --precision bf16; the fp32 file under bf16 gives the same results, bit for
#   bit) and in fp32, and of ONNX Runtime 1.30 in fp32 (ort_bench.mjs, on the
#   ONNX export of the same weights), the three alternating, medians of $REPS.
#   Targets (BERT-base): 32 x 128, bf16 >= 3x our fp32 and >= 3x ONNX Runtime
#   fp32; 1 x 16, bf16 >= 1.6x ONNX Runtime fp32.
#   Then the GEMMs alone: build/sgemm-bench --bf16 (one thread, M = 4096,
#   against the unit's peak measured in the same run; target >= 50%).
#
# The machine is shared: the load average is printed at the start and the
# end. Needs the peers (../shared/reference/setup-peers.sh: npm + Debian's
# PyTorch for the ONNX export). Results go to $OUT_DIR (default $BUILD/bench).
set -eu
. "$(dirname "$0")/common.sh"
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
OUT_ABS=$(cd "$OUT" && pwd)

need_peers
make -s BUILD="$BUILD" "$BUILD/convert" "$BUILD/text-bench" "$BUILD/sgemm-bench"

ratio() { echo "$1 $2" | awk '{printf "%.2f", $1/$2}'; }

# ids N LEN FILE: N sequences of LEN random ids between [CLS] and [SEP].
ids() {
    python3 -c "
import json, random, sys
random.seed(13)
n, l = int(sys.argv[1]), int(sys.argv[2])
for _ in range(n):
    print(json.dumps([101] + [random.randrange(1000, 30000) for _ in range(l - 2)] + [102]))
" "$1" "$2" >"$3"
}
ids 64 128 "$OUT/bf16.32x128.ids.jsonl"
ids 32 16 "$OUT/bf16.1x16.ids.jsonl"

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $THREADS threads"
load_average "at start"
for shape in bert-base minilm-l6; do
    hf="$OUT/$shape-hf"
    [ -f "$hf/model.safetensors" ] ||
        ENGINE_SHARED="$SHARED" /usr/bin/python3 "$(dirname "$0")/make_minilm_hf.py" --shape $shape "$hf" >/dev/null
    for p in fp32 bf16; do
        "$BUILD/convert" --dtype $p "$hf" "$OUT/$shape.$p.eng" >/dev/null
    done
    echo "$shape: $(stat -c %s "$OUT/$shape.fp32.eng") bytes in fp32, $(stat -c %s "$OUT/$shape.bf16.eng") in bf16"
    [ -f "$OUT/$shape.fp32.onnx" ] ||
        (cd "$SHARED/reference" && /usr/bin/python3 export_onnx.py "$OUT_ABS/$shape-hf" "$OUT_ABS/$shape.fp32.onnx") >/dev/null
    for run in 32x128 1x16; do
        batch=${run%x*}
        idf="$OUT/bf16.$run.ids.jsonl"
        for v in bf16 fp32 ort; do : >"$OUT/$shape.$run.$v.txt"; done
        i=0
        while [ $i -lt "$REPS" ]; do
            for p in bf16 fp32; do
                "$BUILD/text-bench" "$OUT/$shape.$p.eng" --ids "$idf" --batch "$batch" --threads "$THREADS" \
                    --precision $p --seconds "$SECONDS_PER_RUN" | field sequences_per_s >>"$OUT/$shape.$run.$p.txt"
            done
            node "$SHARED/reference/ort_bench.mjs" "$OUT/$shape.fp32.onnx" "$idf" --batch "$batch" \
                --threads "$THREADS" --seconds "$SECONDS_PER_RUN" | field sequences_per_s >>"$OUT/$shape.$run.ort.txt"
            i=$((i + 1))
        done
        b=$(median <"$OUT/$shape.$run.bf16.txt")
        f=$(median <"$OUT/$shape.$run.fp32.txt")
        o=$(median <"$OUT/$shape.$run.ort.txt")
        echo "$shape, batch $run tokens, sentences/s (median of $REPS): engine bf16 $b, engine fp32 $f," \
            "ONNX Runtime fp32 $o"
        echo "  bf16 / engine fp32 $(ratio "$b" "$f"), bf16 / ONNX Runtime fp32 $(ratio "$b" "$o")," \
            "engine fp32 / ONNX Runtime fp32 $(ratio "$f" "$o")"
    done
done
"$BUILD/sgemm-bench" --bf16 "$REPS"
load_average "at end"
