#!/bin/sh
# bench/sst2.sh: issue 2's speed figures, measured in one run on this machine.
#
#   1. SST-2 dev (872 sentences, Hugging Face token ids), batch 32, sorted by
#      length, 2 threads: sentences/s of the engine (build/text-bench) and of
#      ONNX Runtime 1.30 (../shared/reference/ort_bench.mjs --sort), on the same
#      model, alternating runs, medians of $REPS runs each.
#      The engine also runs with ENG_GEMM=openblas, for the GEMM's share.
#   2. A synthetic MiniLM-L6-shaped model (6 layers, hidden 384, 12 heads, 1536)
#      at batch 32 x 128 tokens: GFLOP/s against the AVX-512 FMA peak of the
#      same two cores, measured in the same run.
#
# Needs the peers (../shared/reference/setup-peers.sh: npm + Debian's PyTorch
# for the ONNX export). Results go to $OUT_DIR (default $BUILD/bench); BUILD
# (default build) is the build folder.
set -eu
. "$(dirname "$0")/common.sh"
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}

need_peers
make -s BUILD="$BUILD" "$BUILD/convert" "$BUILD/text-bench"

load_average "at start"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $THREADS threads"
for m in sst2-bert-mini sst2-distilbert-mini; do
    "$BUILD/convert" "$SHARED/models/$m" "$OUT/$m.eng" >/dev/null
    [ -f "$OUT/$m.onnx" ] ||
        (cd "$SHARED/reference" && /usr/bin/python3 export_onnx.py "$SHARED/models/$m" "$(cd - >/dev/null && pwd)/$OUT/$m.onnx") >/dev/null
    : >"$OUT/$m.engine.txt"
    : >"$OUT/$m.ort.txt"
    : >"$OUT/$m.openblas.txt"
    i=0
    while [ $i -lt "$REPS" ]; do
        "$BUILD/text-bench" "$OUT/$m.eng" --ids "$SHARED/data/sst2/dev.ids.jsonl" --sort --batch 32 \
            --threads "$THREADS" --seconds "$SECONDS_PER_RUN" | field sequences_per_s >>"$OUT/$m.engine.txt"
        ENG_GEMM=openblas "$BUILD/text-bench" "$OUT/$m.eng" --ids "$SHARED/data/sst2/dev.ids.jsonl" --sort \
            --batch 32 --threads "$THREADS" --seconds "$SECONDS_PER_RUN" | field sequences_per_s >>"$OUT/$m.openblas.txt"
        node "$SHARED/reference/ort_bench.mjs" "$OUT/$m.onnx" "$SHARED/data/sst2/dev.ids.jsonl" --sort \
            --batch 32 --threads "$THREADS" --seconds "$SECONDS_PER_RUN" | field sequences_per_s >>"$OUT/$m.ort.txt"
        i=$((i + 1))
    done
    e=$(median <"$OUT/$m.engine.txt")
    o=$(median <"$OUT/$m.ort.txt")
    b=$(median <"$OUT/$m.openblas.txt")
    echo "$m: engine $e sentences/s (on OpenBLAS: $b), ONNX Runtime $o sentences/s (median of $REPS), ratio $(echo "$e $o" | awk '{printf "%.2f", $1/$2}')"
done

"$BUILD/convert" --synthetic minilm-l6 "$OUT/minilm-l6.eng" >/dev/null
echo "minilm-l6 synthetic, batch 32 x 128 tokens:"
"$BUILD/text-bench" "$OUT/minilm-l6.eng" --synthetic-len 128 --batch 32 --threads "$THREADS" --seconds "$SECONDS_PER_RUN"
load_average "at end"
