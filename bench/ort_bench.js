// ONNX Runtime (onnxruntime-node) side of bench/bench_model.py.
//   node bench/ort_bench.js time IMAGE.onnx TEXT.onnx THREADS RUNS
//     one JSON line: load, image and text medians (ms), peak RSS (MiB)
//   node bench/ort_bench.js check IMAGE.onnx TEXT.onnx SAVE_PREFIX
//     one JSON line: both towers' outputs on the fixed inputs below (for the
//     comparison with PyTorch), the ORT version; the graphs as ORT's own
//     optimizer left them go to SAVE_PREFIX{image,text}.onnx
// Session settings are ORT's fastest for a CPU: every graph optimization
// ("all": constant folding, the transformer fusions of "extended" such as
// LayerNorm / Gelu / QuickGelu / Attention where a pattern matches, then the
// CPU layout transforms), sequential execution, one inter-op thread.
// IMAGE_SIZE (environment, default 224) is the image tower's input size.
const ort = require('onnxruntime-node');

// ---- inputs (bench_model.py builds the same ones for PyTorch) ----

function inputs() {
  const size = Number(process.env.IMAGE_SIZE || 224);
  const px = new ort.Tensor('float32', new Float32Array(3 * size * size).map((_, i) => (i % 251) / 251),
                            [1, 3, size, size]);
  const ids = new BigInt64Array(4 * 7);
  for (let i = 0; i < 4; i++) {
    ids[i * 7] = 49406n;
    for (let j = 1; j < 6; j++) ids[i * 7 + j] = BigInt(320 + 13 * i + j);
    ids[i * 7 + 6] = 49407n;
  }
  return { px, ids: new ort.Tensor('int64', ids, [4, 7]) };
}

function options(threads, saveAs) {
  const o = { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential',
              graphOptimizationLevel: 'all' };
  // saving the optimized graph warns that "all" makes it CPU-specific: known, not shown
  if (saveAs) Object.assign(o, { optimizedModelFilePath: saveAs, logSeverityLevel: 3 });
  return o;
}

function median(v) {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

// ---- modes ----

async function check(imagePath, textPath, prefix) {
  const img = await ort.InferenceSession.create(imagePath, options(1, prefix + 'image.onnx'));
  const txt = await ort.InferenceSession.create(textPath, options(1, prefix + 'text.onnx'));
  const { px, ids } = inputs();
  const fi = (await img.run({ pixels: px })).f;
  const ft = (await txt.run({ ids })).f;
  console.log(JSON.stringify({ version: ort.env.versions.common, image: Array.from(fi.data), image_dims: fi.dims,
                               text: Array.from(ft.data), text_dims: ft.dims }));
}

async function time(imagePath, textPath, threads, runs) {
  let t = process.hrtime.bigint();
  const img = await ort.InferenceSession.create(imagePath, options(threads));
  const txt = await ort.InferenceSession.create(textPath, options(threads));
  const load = Number(process.hrtime.bigint() - t) / 1e6;
  const { px, ids } = inputs();
  await img.run({ pixels: px });
  await txt.run({ ids });
  const ti = [], tt = [];
  for (let r = 0; r < runs; r++) {
    t = process.hrtime.bigint();
    await img.run({ pixels: px });
    ti.push(Number(process.hrtime.bigint() - t) / 1e6);
    t = process.hrtime.bigint();
    await txt.run({ ids });
    tt.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  console.log(JSON.stringify({ load_ms: load, image_ms: median(ti), text_ms: median(tt),
                               peak_rss_mib: process.resourceUsage().maxRSS / 1024 }));
}

async function main() {
  const [mode, imagePath, textPath, a, b] = process.argv.slice(2);
  if (mode === 'check') await check(imagePath, textPath, a);
  else if (mode === 'time') await time(imagePath, textPath, Number(a), Number(b));
  else throw new Error('usage: ort_bench.js time IMAGE TEXT THREADS RUNS | check IMAGE TEXT SAVE_PREFIX');
}

main().catch((e) => { console.error(e); process.exit(1); });
