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
#   FORMS="avx512fma avx512bf16" runs the engine's bf16 once per listed GEMM
#   unit (ENG_BGEMM=<unit>, kernels/bgemm.h), each its own column in the same
#   alternation; the default, empty, runs the unit the engine picks.
#   MODELS (default "bert-base minilm-l6") picks the text models; CLIP=1 then
#   times the ViT-B/32-shaped CLIP of bench/clip.sh (the same seeded weights
#   and files in $OUT_DIR) at batch $CLIP_BATCHES (default 1,32), image
#   embeddings' network ms per batch in fp32 and in bf16 (per form),
#   alternating, medians of $REPS, without ONNX Runtime.
#
# The machine is shared: the load average is printed at the start and the
# end. Needs the peers (../shared/reference/setup-peers.sh: npm + Debian's
# PyTorch for the ONNX export). Results go to $OUT_DIR (default $BUILD/bench).
set -eu
. "$(dirname "$0")/common.sh"
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
FORMS=${FORMS:-}
MODELS=${MODELS:-bert-base minilm-l6}
CLIP=${CLIP:-0}
CLIP_BATCHES=${CLIP_BATCHES:-1,32}
OUT_ABS=$(cd "$OUT" && pwd)

need_peers
make -s BUILD="$BUILD" "$BUILD/convert" "$BUILD/text-bench" "$BUILD/sgemm-bench" "$BUILD/clip-bench"
# The bf16 variants: "bf16" (the engine's pick) or "bf16-<unit>" per form.
VARIANTS=bf16
[ -n "$FORMS" ] && VARIANTS=$(for f in $FORMS; do printf 'bf16-%s ' "$f"; done)
# bf16_env VARIANT: the environment assignment that runs it.
bf16_env() { case $1 in bf16-*) echo "ENG_BGEMM=${1#bf16-}" ;; *) echo "ENG_BGEMM=" ;; esac; }

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
for shape in $MODELS; do
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
        for v in $VARIANTS fp32 ort; do : >"$OUT/$shape.$run.$v.txt"; done
        i=0
        while [ $i -lt "$REPS" ]; do
            for v in $VARIANTS; do
                env $(bf16_env $v) "$BUILD/text-bench" "$OUT/$shape.bf16.eng" --ids "$idf" --batch "$batch" \
                    --threads "$THREADS" --precision bf16 --seconds "$SECONDS_PER_RUN" |
                    field sequences_per_s >>"$OUT/$shape.$run.$v.txt"
            done
            "$BUILD/text-bench" "$OUT/$shape.fp32.eng" --ids "$idf" --batch "$batch" --threads "$THREADS" \
                --precision fp32 --seconds "$SECONDS_PER_RUN" | field sequences_per_s >>"$OUT/$shape.$run.fp32.txt"
            node "$SHARED/reference/ort_bench.mjs" "$OUT/$shape.fp32.onnx" "$idf" --batch "$batch" \
                --threads "$THREADS" --seconds "$SECONDS_PER_RUN" | field sequences_per_s >>"$OUT/$shape.$run.ort.txt"
            i=$((i + 1))
        done
        f=$(median <"$OUT/$shape.$run.fp32.txt")
        o=$(median <"$OUT/$shape.$run.ort.txt")
        echo "$shape, batch $run tokens, sentences/s (median of $REPS): engine fp32 $f," \
            "ONNX Runtime fp32 $o; engine fp32 / ONNX Runtime fp32 $(ratio "$f" "$o")"
        for v in $VARIANTS; do
            b=$(median <"$OUT/$shape.$run.$v.txt")
            echo "  engine $v $b (runs $(sort -n "$OUT/$shape.$run.$v.txt" | tr '\n' ' '));" \
                "/ engine fp32 $(ratio "$b" "$f"), / ONNX Runtime fp32 $(ratio "$b" "$o")"
        done
    done
done
if [ "$CLIP" = 1 ]; then
    M="$OUT/clip-b32"
    IMAGES="$SHARED/data/imagenet-sample/images"
    [ -f "$M/model.safetensors" ] || /usr/bin/python3 tests/golden/make_vit_clip.py --bench "$M"
    [ -f "$M.eng" ] || "$BUILD/convert" "$M" "$M.eng" >/dev/null
    for v in fp32 $VARIANTS; do : >"$OUT/clip-b32.$v.jsonl"; done
    i=0
    while [ $i -lt "$REPS" ]; do
        "$BUILD/clip-bench" "$M.eng" "$IMAGES"/*.JPEG --batch "$CLIP_BATCHES" --threads "$THREADS" \
            --samples 5 --labels 1 --zs-runs 1 >>"$OUT/clip-b32.fp32.jsonl"
        for v in $VARIANTS; do
            env $(bf16_env $v) "$BUILD/clip-bench" "$M.eng" "$IMAGES"/*.JPEG --batch "$CLIP_BATCHES" \
                --threads "$THREADS" --samples 5 --labels 1 --zs-runs 1 --precision bf16 >>"$OUT/clip-b32.$v.jsonl"
        done
        i=$((i + 1))
    done
    # net NAME BATCH: the median network ms per batch of variant NAME.
    net() { python3 -c "import json, sys
for l in open(sys.argv[1]):
    j = json.loads(l)
    if j.get('batch') == int(sys.argv[2]): print(j['net_ms_per_batch'])" "$OUT/clip-b32.$1.jsonl" "$2" | median; }
    for b in $(echo "$CLIP_BATCHES" | tr , ' '); do
        f=$(net fp32 "$b")
        line="CLIP ViT-B/32 shape, batch $b, network ms per batch (median of $REPS): fp32 $f"
        for v in $VARIANTS; do
            n=$(net "$v" "$b")
            line="$line; $v $n (fp32 / $v $(ratio "$f" "$n"))"
        done
        echo "$line"
    done
fi
"$BUILD/sgemm-bench" --bf16 "$REPS"
load_average "at end"
