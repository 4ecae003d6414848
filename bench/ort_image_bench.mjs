// bench/ort_image_bench.mjs: the speed peer for image models (issue 5): ONNX Runtime
// (onnxruntime-node, CPU) on a ResNet exported by ../shared/reference/tvref.py onnx.
//   node bench/ort_image_bench.mjs MODEL.onnx [--batch 1,8,32] [--threads 2] [--samples 7]
// Input "pixels" [B,3,224,224] float32 of seeded random values (the network's
// time does not depend on them). Mirrors build/image-bench's network figure:
// each sample repeats the batch for at least 0.2 s, the figure is the median;
// one JSON line per batch size.
import { createRequire } from 'module';
const peers = process.env.PEERS_DIR || (process.env.HOME + '/.cache/engine-peers');
const ort = createRequire(peers + '/package.json')('onnxruntime-node');
const argv = process.argv.slice(2);
const opt = (name, dflt) => { const i = argv.indexOf(name); return i < 0 ? dflt : argv[i + 1]; };
const modelPath = argv[0];
const batches = opt('--batch', '1,8,32').split(',').map(Number), T = +opt('--threads', 2);
const samples = +opt('--samples', 7), SAMPLE_MS = 200;
const session = await ort.InferenceSession.create(modelPath, {
  intraOpNumThreads: T, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential' });
let seed = 1;
const rand = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32 * 4 - 2; };
for (const B of batches) {
  const pixels = new Float32Array(B * 3 * 224 * 224).map(rand);
  const feeds = { pixels: new ort.Tensor('float32', pixels, [B, 3, 224, 224]) };
  await session.run(feeds);                      // warm-up
  const t = [];
  for (let s = 0; s < samples; s++) {
    let reps = 0; const t0 = performance.now(); let el;
    do { await session.run(feeds); reps++; } while ((el = performance.now() - t0) < SAMPLE_MS);
    t.push(el / reps);
  }
  t.sort((x, y) => x - y);
  const ms = t[Math.floor(samples / 2)];
  console.log(JSON.stringify({ peer: 'onnxruntime-node ' + (ort.env.versions?.common ?? '1.30.0'), batch: B,
    threads: T, ms_per_batch: +ms.toFixed(3), images_per_s: +(B * 1000 / ms).toFixed(1) }));
}
