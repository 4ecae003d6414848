#!/bin/sh
# gpu.sh: the CUDA backend's checks and numbers on a machine with a GPU.
#   1. build (nvcc found, so src/cuda/ is compiled) and print the devices;
#   2. tests/test_cuda (GPU vs CPU on the tiny golden and SST-2 models);
#   3. compute-sanitizer (memcheck) on a short engine run;
#   4. fp16 throughput on a synthetic BERT-base, batch 128 x 128 tokens,
#      against transformers' BertModel in fp16 on the same GPU (skipped when
#      torch/transformers are not installed).
# Usage: bench/gpu.sh [BUILD_DIR]   (default build-gpu)
set -eu
B=${1:-build-gpu}
make BUILD="$B" -j"$(nproc)" all "$B/tests/test_cuda" models
# The backend is loaded at run time: found beside engine and cuda-bench, named
# for the tests, which live a folder below.
export ENG_CUDA_BACKEND="$(pwd)/$B/libengine-cuda.so"

echo "== tests"
ENGINE_BUILD="$B" "$B/tests/test_cuda"

echo "== compute-sanitizer"
SAN=${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer
M="$B/models/sst2-bert-mini.eng"
[ -f "$M" ] || { "$B/convert" --synthetic tiny "$B/tiny.eng"; M="$B/tiny.eng"; }
head -n 64 bench/sample-texts.txt | "$SAN" --tool memcheck --leak-check full --error-exitcode 3 \
    "$B/engine" classify "$M" --device cuda --batch 16 >/dev/null
head -n 16 bench/sample-texts.txt | "$SAN" --tool memcheck --error-exitcode 3 \
    "$B/engine" classify "$M" --device cuda --precision fp16 --batch 16 >/dev/null
echo "memcheck: clean"

echo "== throughput, BERT-base shape, batch 128 x 128"
[ -f "$B/bert-base.eng" ] || "$B/convert" --synthetic bert-base "$B/bert-base.eng"
for p in fp32 tf32 fp16 bf16; do
    "$B/cuda-bench" "$B/bert-base.eng" --device cuda --precision "$p" --batch 128 --seq 128
done
python3 - <<'PY' || echo "transformers comparison skipped (needs torch with CUDA and transformers)"
import time, torch, transformers
cfg = transformers.BertConfig()  # BERT-base: 12 layers, 768 hidden, 12 heads
model = transformers.BertForSequenceClassification(cfg).half().cuda().eval()
ids = torch.randint(1000, cfg.vocab_size, (128, 128), device="cuda")
with torch.inference_mode():
    for _ in range(3):
        model(input_ids=ids)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(20):
        model(input_ids=ids)
    torch.cuda.synchronize()
ms = (time.perf_counter() - t) * 1e3 / 20
print(f"transformers {transformers.__version__} fp16 batch 128 x 128: {ms:.2f} ms/batch, {128e3 / ms:.0f} sequences/s")
PY
