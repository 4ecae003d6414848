#!/bin/sh
# bench/small_m.sh: issue 13's and issue 17's batch-1 figures, where a linear
# layer has few rows (a ViT-B/32 image: 50; BERT-base 1 x 16 tokens: 16) and
# its time is the streaming of its weights. In one run on this machine:
#   1. build/stream-bench: the weights' streaming rate at M = 1, 16, 50
#      against a plain read of 1 GiB and the FMA peak (see its header);
#   2. this build against another one ($BASE, e.g. main's build folder),
#      alternating, medians of $REPS runs each, $THREADS threads: the CLIP
#      ViT-B/32 vision tower at batch 1 (build/clip-bench, the network alone,
#      as bench/clip.sh makes the model) beside ONNX Runtime on the same
#      tower, and the BERT-base-shaped model at 1 x 16 tokens in fp32 and int8
#      (build/text-bench, as bench/int8.sh makes it) beside ONNX Runtime fp32.
#
#   BASE=/path/to/main/build sh bench/small_m.sh
#
# Needs the peers (../shared/reference/setup-peers.sh). The machine is shared:
# the load average is printed at the start and the end.
set -eu
. "$(dirname "$0")/common.sh"
BASE=${BASE:?set BASE to the build folder to compare against}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-4}
OUT_ABS=$(cd "$OUT" && pwd)

need_peers
make -s BUILD="$BUILD" "$BUILD/convert" "$BUILD/clip-bench" "$BUILD/text-bench" "$BUILD/stream-bench"
for b in clip-bench text-bench; do
    [ -x "$BASE/$b" ] || { echo "small_m.sh: $BASE/$b missing" >&2; exit 1; }
done

# The models, as bench/clip.sh and bench/int8.sh make them.
C="$OUT/clip-b32"
[ -f "$C/model.safetensors" ] || /usr/bin/python3 tests/golden/make_vit_clip.py --bench "$C"
[ -f "$C.eng" ] || "$BUILD/convert" "$C" "$C.eng" >/dev/null
[ -f "$C-vision.onnx" ] ||
    ENGINE_SHARED="$SHARED" /usr/bin/python3 bench/clip_onnx.py "$C" "$C-vision.onnx" >/dev/null 2>&1
hf="$OUT/bert-base-hf"
[ -f "$hf/model.safetensors" ] ||
    ENGINE_SHARED="$SHARED" /usr/bin/python3 bench/make_minilm_hf.py --shape bert-base "$hf" >/dev/null
[ -f "$OUT/bert-base.fp32.eng" ] || "$BUILD/convert" "$hf" "$OUT/bert-base.fp32.eng" >/dev/null
[ -f "$OUT/bert-base.int8.eng" ] || "$BUILD/convert" --dtype int8 "$hf" "$OUT/bert-base.int8.eng" >/dev/null
[ -f "$OUT/bert-base.fp32.onnx" ] ||
    (cd "$SHARED/reference" && /usr/bin/python3 export_onnx.py "$OUT_ABS/bert-base-hf" "$OUT_ABS/bert-base.fp32.onnx") >/dev/null
# int8.sh's seeded 1 x 16 ids ([CLS] ... [SEP]).
ids="$OUT/bert-base.ids-1x16.jsonl"
python3 -c "import json, random
rng = random.Random(13)
for _ in range(32): [rng.randrange(1000, 30000) for _ in range(126)]
print(json.dumps([101] + [rng.randrange(1000, 30000) for _ in range(14)] + [102]))" >"$ids"
IMAGES="$SHARED/data/imagenet-sample/images"

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $THREADS threads"
load_average "at start"
"$BUILD/stream-bench" "${STREAM_REPS:-5}"

netms() { python3 -c "import json,sys
for l in sys.stdin:
    j = json.loads(l)
    if j.get('batch') == 1: print(j['${1:-net_ms_per_batch}'])"; }
for f in clip.new clip.old clip.ort fp32.new fp32.old int8.new int8.old fp32.ort; do : >"$OUT/small_m.$f.txt"; done
i=0
while [ $i -lt "$REPS" ]; do
    for v in new old; do
        b=$BUILD
        [ $v = old ] && b=$BASE
        "$b/clip-bench" "$C.eng" "$IMAGES"/*.JPEG --batch 1 --threads "$THREADS" --samples 5 \
            --labels 1 --zs-runs 1 | netms >>"$OUT/small_m.clip.$v.txt"
        for d in fp32 int8; do
            "$b/text-bench" "$OUT/bert-base.$d.eng" --ids "$ids" --batch 1 --threads "$THREADS" \
                --seconds "$SECONDS_PER_RUN" | field sequences_per_s >>"$OUT/small_m.$d.$v.txt"
        done
    done
    node bench/ort_image_bench.mjs "$C-vision.onnx" --batch 1 --threads "$THREADS" --samples 5 |
        netms ms_per_batch >>"$OUT/small_m.clip.ort.txt"
    node "$SHARED/reference/ort_bench.mjs" "$OUT/bert-base.fp32.onnx" "$ids" --batch 1 \
        --threads "$THREADS" --seconds "$SECONDS_PER_RUN" | field sequences_per_s >>"$OUT/small_m.fp32.ort.txt"
    i=$((i + 1))
done
load_average "at end"
m() { median <"$OUT/small_m.$1.txt"; }
echo "$(m clip.new) $(m clip.old) $(m clip.ort)" | awk '{printf "CLIP ViT-B/32 vision network, batch 1 (median of %d): this build %.2f ms, base %.2f ms, new/old time %.3f; ONNX Runtime %.2f ms, ONNX Runtime / this build %.2f\n", '"$REPS"', $1, $2, $1 / $2, $3, $3 / $1}'
for d in fp32 int8; do
    echo "$(m $d.new) $(m $d.old) $(m fp32.ort)" | awk '{printf "BERT-base 1 x 16 '"$d"', sequences/s (median of %d): this build %.1f, base %.1f, new/old %.3f; ONNX Runtime fp32 %.1f, this build / ONNX Runtime fp32 %.2f\n", '"$REPS"', $1, $2, $1 / $2, $3, $1 / $3}'
done
