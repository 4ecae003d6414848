#!/bin/sh
# bench/int8.sh: issue 4's int8 figures, measured in one run on this machine.
#
#   1. SST-2 dev (872 sentences, Hugging Face token ids), batch 32, sorted by
#      length, 2 threads: sentences/s of the engine in fp32 and in int8
#      (convert --dtype int8; build/text-bench) and of ONNX Runtime 1.30 in
#      fp32 and in int8 (../shared/reference/quantize_onnx.py: MatMulInteger
#      with per-tensor int8 weights and dynamically quantized activations),
#      on the same models, the four alternating, medians of $REPS runs each.
#      Target: engine int8 >= 1.2 x ONNX Runtime int8.
#   2. The accuracy of the four on the dev set (from their logits: the engine
#      CLI on the texts, ort_bench.mjs --out on the ids) and how often each
#      agrees with the fp32 PyTorch reference's label.
#   3. A synthetic MiniLM-L6-shaped model (6 layers, hidden 384, 12 heads, 1536)
#      at batch 32 x 128 tokens: engine int8 against engine fp32, alternating,
#      medians of $REPS. Target (issue 13, on AMX): 3x.
#   4. A BERT-base-shaped model (12 layers, hidden 768, 12 heads, 3072; seeded
#      weights in a Hugging Face folder, bench/make_minilm_hf.py --shape
#      bert-base) at batch 32 x 128 and 1 x 16 tokens (the same seeded random
#      ids for all): engine int8 and fp32 against ONNX Runtime int8 and fp32
#      on the same weights, the four alternating, medians of $REPS. Targets
#      (issue 13, on AMX): 32 x 128 int8 >= 2.0x ONNX Runtime int8; 1 x 16
#      fp32 >= 1.0x ONNX Runtime fp32, int8 >= 1.5x ONNX Runtime int8.
# SKIP_SST2=1 skips parts 1 and 2.
#
# The machine is shared: the load average is printed at the start and the end.
# Needs the peers (../shared/reference/setup-peers.sh: npm + Debian's PyTorch
# for the ONNX export, python3-onnx for the quantization). Results go to
# $OUT_DIR (default $BUILD/bench); BUILD (default build) is the build folder.
set -eu
. "$(dirname "$0")/common.sh"
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
OUT_ABS=$(cd "$OUT" && pwd)
IDS="$SHARED/data/sst2/dev.ids.jsonl"

need_peers
make -s BUILD="$BUILD" "$BUILD/convert" "$BUILD/text-bench" "$BUILD/engine"

ratio() { echo "$1 $2" | awk '{printf "%.2f", $1/$2}'; }

# accuracy LOGITS.jsonl REFERENCE.jsonl: "correct/872 = x%, agrees with the
# fp32 reference on k/872".
accuracy() {
    python3 - "$SHARED/data/sst2/dev.tsv" "$1" "$2" <<'EOF'
import json, sys
gold = [int(l.rsplit("\t", 1)[1]) for l in open(sys.argv[1]).read().splitlines()[1:]]
def labels(path):
    rows = [json.loads(l)["logits"] for l in open(path) if l.strip()]
    return [max(range(len(r)), key=r.__getitem__) for r in rows]
got, ref = labels(sys.argv[2]), labels(sys.argv[3])
assert len(got) == len(gold) == len(ref), (len(got), len(gold), len(ref))
n, ok = len(gold), sum(g == y for g, y in zip(got, gold))
agree = sum(g == r for g, r in zip(got, ref))
print(f"{ok}/{n} = {100 * ok / n:.2f}%, agrees with the fp32 reference on {agree}/{n}")
EOF
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $THREADS threads"
load_average "at start"
[ "${SKIP_SST2:-0}" = 1 ] && set -- || set -- sst2-bert-mini sst2-distilbert-mini
for m in "$@"; do
    "$BUILD/convert" "$SHARED/models/$m" "$OUT/$m.fp32.eng" >/dev/null
    "$BUILD/convert" --dtype int8 "$SHARED/models/$m" "$OUT/$m.int8.eng" >/dev/null
    [ -f "$OUT/$m.fp32.onnx" ] ||
        (cd "$SHARED/reference" && /usr/bin/python3 export_onnx.py "$SHARED/models/$m" "$OUT_ABS/$m.fp32.onnx") >/dev/null
    [ -f "$OUT/$m.int8.onnx" ] ||
        (cd "$SHARED/reference" && /usr/bin/python3 quantize_onnx.py "$OUT_ABS/$m.fp32.onnx" "$OUT_ABS/$m.int8.onnx") >/dev/null
    for v in engine.fp32 engine.int8 ort.fp32 ort.int8; do : >"$OUT/$m.$v.txt"; done
    i=0
    while [ $i -lt "$REPS" ]; do
        for d in fp32 int8; do
            "$BUILD/text-bench" "$OUT/$m.$d.eng" --ids "$IDS" --sort --batch 32 --threads "$THREADS" \
                --seconds "$SECONDS_PER_RUN" | field sequences_per_s >>"$OUT/$m.engine.$d.txt"
            # The first run also keeps ONNX Runtime's logits, for the accuracy.
            set --
            [ $i -eq 0 ] && set -- --out "$OUT/$m.ort.$d.logits.jsonl"
            node "$SHARED/reference/ort_bench.mjs" "$OUT/$m.$d.onnx" "$IDS" --sort --batch 32 \
                --threads "$THREADS" --seconds "$SECONDS_PER_RUN" "$@" | field sequences_per_s >>"$OUT/$m.ort.$d.txt"
        done
        i=$((i + 1))
    done
    ef=$(median <"$OUT/$m.engine.fp32.txt")
    ei=$(median <"$OUT/$m.engine.int8.txt")
    of=$(median <"$OUT/$m.ort.fp32.txt")
    oi=$(median <"$OUT/$m.ort.int8.txt")
    echo "$m, sentences/s (median of $REPS): engine fp32 $ef, engine int8 $ei," \
        "ONNX Runtime fp32 $of, ONNX Runtime int8 $oi"
    echo "  engine int8 / ONNX Runtime int8 $(ratio "$ei" "$oi") (target >= 1.20)," \
        "engine int8 / engine fp32 $(ratio "$ei" "$ef"), engine fp32 / ONNX Runtime fp32 $(ratio "$ef" "$of")"
    ref="$SHARED/data/sst2/$m.logits.jsonl"
    for d in fp32 int8; do
        cut -f1 "$SHARED/data/sst2/dev.tsv" | tail -n +2 |
            "$BUILD/engine" classify "$OUT/$m.$d.eng" --threads "$THREADS" >"$OUT/$m.engine.$d.logits.jsonl"
        echo "  accuracy engine $d: $(accuracy "$OUT/$m.engine.$d.logits.jsonl" "$ref")"
        echo "  accuracy ONNX Runtime $d: $(accuracy "$OUT/$m.ort.$d.logits.jsonl" "$ref")"
    done
done

"$BUILD/convert" --synthetic minilm-l6 "$OUT/minilm-l6.fp32.eng" >/dev/null
"$BUILD/convert" --synthetic minilm-l6 --dtype int8 "$OUT/minilm-l6.int8.eng" >/dev/null
: >"$OUT/minilm-l6.fp32.txt"
: >"$OUT/minilm-l6.int8.txt"
i=0
while [ $i -lt "$REPS" ]; do
    for d in fp32 int8; do
        "$BUILD/text-bench" "$OUT/minilm-l6.$d.eng" --synthetic-len 128 --batch 32 --threads "$THREADS" \
            --seconds "$SECONDS_PER_RUN" | field sequences_per_s >>"$OUT/minilm-l6.$d.txt"
    done
    i=$((i + 1))
done
f=$(median <"$OUT/minilm-l6.fp32.txt")
q=$(median <"$OUT/minilm-l6.int8.txt")
echo "minilm-l6 synthetic, batch 32 x 128 tokens, sentences/s (median of $REPS): engine fp32 $f," \
    "engine int8 $q, ratio $(ratio "$q" "$f") (target >= 3.00)"

hf="$OUT/bert-base-hf"
[ -f "$hf/model.safetensors" ] ||
    ENGINE_SHARED="$SHARED" /usr/bin/python3 "$(dirname "$0")/make_minilm_hf.py" --shape bert-base "$hf" >/dev/null
"$BUILD/convert" "$hf" "$OUT/bert-base.fp32.eng" >/dev/null
"$BUILD/convert" --dtype int8 "$hf" "$OUT/bert-base.int8.eng" >/dev/null
[ -f "$OUT/bert-base.fp32.onnx" ] ||
    (cd "$SHARED/reference" && /usr/bin/python3 export_onnx.py "$OUT_ABS/bert-base-hf" "$OUT_ABS/bert-base.fp32.onnx") >/dev/null
[ -f "$OUT/bert-base.int8.onnx" ] ||
    (cd "$SHARED/reference" && /usr/bin/python3 quantize_onnx.py "$OUT_ABS/bert-base.fp32.onnx" "$OUT_ABS/bert-base.int8.onnx") >/dev/null
# Seeded random ids ([CLS] ... [SEP]), one sequence per line.
python3 - "$OUT" <<'EOF'
import json, random, sys
rng = random.Random(13)
for name, batch, length in (("32x128", 32, 128), ("1x16", 1, 16)):
    with open(f"{sys.argv[1]}/bert-base.ids-{name}.jsonl", "w") as f:
        for _ in range(batch):
            f.write(json.dumps([101] + [rng.randrange(1000, 30000) for _ in range(length - 2)] + [102]) + "\n")
EOF
for shape in 32x128 1x16; do
    batch=${shape%x*}
    ids="$OUT/bert-base.ids-$shape.jsonl"
    for v in engine.fp32 engine.int8 ort.fp32 ort.int8; do : >"$OUT/bert-base.$shape.$v.txt"; done
    i=0
    while [ $i -lt "$REPS" ]; do
        for d in fp32 int8; do
            "$BUILD/text-bench" "$OUT/bert-base.$d.eng" --ids "$ids" --batch "$batch" --threads "$THREADS" \
                --seconds "$SECONDS_PER_RUN" | field sequences_per_s >>"$OUT/bert-base.$shape.engine.$d.txt"
            node "$SHARED/reference/ort_bench.mjs" "$OUT/bert-base.$d.onnx" "$ids" --batch "$batch" \
                --threads "$THREADS" --seconds "$SECONDS_PER_RUN" | field sequences_per_s >>"$OUT/bert-base.$shape.ort.$d.txt"
        done
        i=$((i + 1))
    done
    ef=$(median <"$OUT/bert-base.$shape.engine.fp32.txt")
    ei=$(median <"$OUT/bert-base.$shape.engine.int8.txt")
    of=$(median <"$OUT/bert-base.$shape.ort.fp32.txt")
    oi=$(median <"$OUT/bert-base.$shape.ort.int8.txt")
    echo "bert-base shape, batch $shape tokens, sequences/s (median of $REPS): engine fp32 $ef," \
        "engine int8 $ei, ONNX Runtime fp32 $of, ONNX Runtime int8 $oi"
    echo "  engine int8 / ONNX Runtime int8 $(ratio "$ei" "$oi")," \
        "engine fp32 / ONNX Runtime fp32 $(ratio "$ef" "$of"), engine int8 / engine fp32 $(ratio "$ei" "$ef")"
done
load_average "at end"
