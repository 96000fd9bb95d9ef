// ONNX Runtime (onnxruntime-node) timing for bench/bench_model.py:
//   node bench/ort_bench.js IMAGE.onnx TEXT.onnx THREADS RUNS
// prints one JSON line: load, image and text medians (ms), peak RSS (MiB).
const ort = require('onnxruntime-node');

function median(v) {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function main() {
  const [imagePath, textPath, threads, runs] = process.argv.slice(2);
  const opts = { intraOpNumThreads: Number(threads), interOpNumThreads: 1, graphOptimizationLevel: 'all' };
  let t = process.hrtime.bigint();
  const img = await ort.InferenceSession.create(imagePath, opts);
  const txt = await ort.InferenceSession.create(textPath, opts);
  const load = Number(process.hrtime.bigint() - t) / 1e6;
  const size = Number(process.env.IMAGE_SIZE || 224);
  const px = new ort.Tensor('float32', new Float32Array(3 * size * size).map((_, i) => (i % 251) / 251), [1, 3, size, size]);
  const ids = new BigInt64Array(4 * 7);
  for (let i = 0; i < 4; i++) {
    ids[i * 7] = 49406n;
    for (let j = 1; j < 6; j++) ids[i * 7 + j] = BigInt(320 + 13 * i + j);
    ids[i * 7 + 6] = 49407n;
  }
  const idt = new ort.Tensor('int64', ids, [4, 7]);
  await img.run({ pixels: px });
  await txt.run({ ids: idt });
  const ti = [], tt = [];
  for (let r = 0; r < Number(runs); r++) {
    t = process.hrtime.bigint();
    await img.run({ pixels: px });
    ti.push(Number(process.hrtime.bigint() - t) / 1e6);
    t = process.hrtime.bigint();
    await txt.run({ ids: idt });
    tt.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  console.log(JSON.stringify({ load_ms: load, image_ms: median(ti), text_ms: median(tt),
                               peak_rss_mib: process.resourceUsage().maxRSS / 1024 }));
}

main().catch((e) => { console.error(e); process.exit(1); });
