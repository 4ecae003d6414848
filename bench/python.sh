#!/bin/sh
# bench/python.sh: issue 14's figures, the Python package's overhead and the
# step from what Python users run today, measured in one run on this machine.
#
#   1. Model.classify, batch 32, SST-2 dev (872 sentences in file order, from
#      text, tokenization included) against build/text-bench on the same model
#      and batches (from Hugging Face's token ids, so without tokenization).
#   2. Scheduler from 64 Python threads (closed loop: submit, wait on the
#      Future) against infer-bench --mode stream --concurrency 64 (64 C
#      threads on tickets), same scheduler settings (batch 32, no wait).
#   3. Model.classify against Debian's PyTorch (python3-torch, the forward of
#      ../shared/reference/hfref.py, padded batches of 32) on the same weights;
#      skipped when torch is not installed.
# Each pair runs back to back, $REPS times, in alternating order; the ratio is
# the median of the pairs' ratios (the machine is shared, its speed drifts). $THREADS threads
# everywhere (default 2). Needs build/libengine.so (make shared).
set -eu
. "$(dirname "$0")/common.sh"
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
PY=${PYTHON:-/usr/bin/python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$ROOT/python" LIBENGINE_PATH="$ROOT/$BUILD/libengine.so"
make -s BUILD="$BUILD" "$BUILD/convert" "$BUILD/text-bench" "$BUILD/infer-bench" "$BUILD/libengine.so"

M=sst2-bert-mini
DEV="$SHARED/data/sst2/dev.tsv"
"$BUILD/convert" "$SHARED/models/$M" "$OUT/$M.eng" >/dev/null
pybench() { "$PY" "$ROOT/bench/python_bench.py" "$@" --threads "$THREADS" --seconds "$SECONDS_PER_RUN"; }
stream_rps() { python3 -c "import json,sys; print(json.load(sys.stdin)['runs'][0]['requests_per_s'])"; }
ratio() { echo "$1 $2" | awk '{printf "%.3f\n", $1/$2}'; }

load_average "at start"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $THREADS threads, $M"
have_torch=1
"$PY" -c "import torch" 2>/dev/null || have_torch=0
: >"$OUT/py.classify.txt"; : >"$OUT/py.stream.txt"; : >"$OUT/py.torch.txt"
# One pair: A (Python) and B (C or PyTorch), run in turn, A first on even reps
# and B first on odd ones so that a drifting machine favours neither; appends
# "A B A/B" to file $1. $2 and $3 are commands printing one figure each.
pair() {
    if [ $((i % 2)) = 0 ]; then a=$(eval "$2"); b=$(eval "$3"); else b=$(eval "$3"); a=$(eval "$2"); fi
    echo "$a $b $(ratio "$a" "$b")" >>"$1"
}
i=0
while [ $i -lt "$REPS" ]; do
    pair "$OUT/py.classify.txt" 'pybench classify "$OUT/$M.eng" "$DEV" | field sequences_per_s' \
        '"$BUILD/text-bench" "$OUT/$M.eng" --ids "$SHARED/data/sst2/dev.ids.jsonl" --batch 32 \
            --threads "$THREADS" --seconds "$SECONDS_PER_RUN" | field sequences_per_s'
    pair "$OUT/py.stream.txt" 'pybench stream "$OUT/$M.eng" "$DEV" --concurrency 64 | field requests_per_s' \
        '"$BUILD/infer-bench" --model "$OUT/$M.eng" --input "$DEV" --mode stream --concurrency 64 \
            --batch 32 --threads "$THREADS" --duration "$SECONDS_PER_RUN" --json 2>/dev/null | stream_rps'
    if [ $have_torch = 1 ]; then
        pair "$OUT/py.torch.txt" 'pybench classify "$OUT/$M.eng" "$DEV" | field sequences_per_s' \
            'pybench torch "$SHARED/models/$M" "$DEV" --eng "$OUT/$M.eng" \
                --reference "$SHARED/reference" | field sequences_per_s'
    fi
    i=$((i + 1))
done
med() { cut -d' ' -f"$2" "$1" | median | awk '{printf($1 < 10 ? "%.2f" : "%.0f", $1)}'; }
f=$OUT/py.classify.txt
echo "Model.classify batch 32: $(med $f 1) sentences/s, text-bench $(med $f 2); ratio $(med $f 3) (median of $REPS pairs)"
f=$OUT/py.stream.txt
echo "Scheduler, 64 Python threads: $(med $f 1) requests/s, infer-bench stream c=64 $(med $f 2); ratio $(med $f 3)"
if [ $have_torch = 1 ]; then
    f=$OUT/py.torch.txt
    echo "Model.classify vs PyTorch $("$PY" -c 'import torch; print(torch.__version__)') (hfref forward, batch 32): $(med $f 1) vs $(med $f 2) sentences/s; ratio $(med $f 3)"
else
    echo "PyTorch: skipped ($PY cannot import torch; ../shared/reference/setup-peers.sh installs it)"
fi
load_average "at end"
