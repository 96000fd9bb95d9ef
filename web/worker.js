// worker.js - runs clip.wasm away from the page, so the page stays responsive
// while the weights load and the towers run. Messages in (from app.js):
//   {type: "load", file}          a weights file (File or Blob)
//   {type: "load", url}           or the URL of one
//   {type: "classify", image, name, labels, templates}   image: File or Blob; labels, templates: text, one per line
// Messages out: {type: "progress", loaded, total}, {type: "loaded", config, size, seconds},
//   {type: "result", ...} (see classify), {type: "error", message, during}.
"use strict";
importScripts("wasi.js");

const CHUNK = 16 << 20; // bytes of a weights file read at a time
let ex = null; // clip.wasm's exports

// The module, compiled once when the worker starts.
const ready = (async () => {
  const resp = await fetch("clip.wasm");
  if (!resp.ok) throw new Error("clip.wasm: " + resp.status + " " + resp.statusText + " (build it with make wasm)");
  const module = await WebAssembly.compile(await resp.arrayBuffer());
  let instance = null;
  instance = await WebAssembly.instantiate(module, wasiImports(() => instance.exports.memory, module));
  instance.exports._initialize();
  ex = instance.exports;
})();
ready.catch(() => {}); // reported with each request instead

// ---------------------------------------------------------------------------
// The module's memory. Views are made afresh each time: a growing memory
// detaches the old ones. Pointers come back as signed 32-bit integers, and
// memory beyond 2 GiB is real here, hence the >>> 0.

const heap = () => new Uint8Array(ex.memory.buffer);
const u32 = (p) => new DataView(ex.memory.buffer).getUint32(p, true);
const cstring = (p) => {
  const b = heap();
  let e = p;
  while (b[e]) e++;
  return new TextDecoder().decode(b.subarray(p, e));
};
const lastError = () => cstring(ex.wc_error() >>> 0);

// n bytes of the module's memory, or 0. A size_t is 32 bits there: a larger
// n would wrap around to a small buffer, so it is refused here.
function allocate(n) {
  return n < 2 ** 32 - (1 << 20) ? ex.wc_alloc(n) >>> 0 : 0;
}

// bytes into a buffer of the module (the caller frees it, or hands it on)
function copyIn(bytes) {
  const p = allocate(bytes.length);
  if (!p) throw new Error("out of memory (" + bytes.length + " bytes) in the WebAssembly module");
  heap().set(bytes, p);
  return p;
}

function floats(p, n) {
  return new Float32Array(ex.memory.buffer.slice(p, p + 4 * n));
}

// ---------------------------------------------------------------------------
// Weights: streamed into one buffer of the module, never held whole in JS

function progress(loaded, total, force) {
  const now = performance.now();
  if (!force && now - progress.last < 100) return;
  progress.last = now;
  postMessage({ type: "progress", loaded, total });
}
progress.last = 0;

function outOfMemory(size) {
  return new Error("the weights file (" + (size / 1048576).toFixed(0) + " MB) does not fit in this browser's " +
    "WebAssembly memory (at most 4 GiB, less on some devices)");
}

async function fromFile(file) {
  const size = file.size;
  ex.wc_unload(); // the previous model's memory serves the new one
  const p = allocate(size);
  if (!p) throw outOfMemory(size);
  let off = 0;
  try {
    const reader = file.stream().getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (off + value.length > size) throw new Error("the file grew while reading it");
      heap().set(value, p + off);
      off += value.length;
      progress(off, size, off === size);
    }
    if (off !== size) throw new Error("the file ended early while reading it (" + off + " of " + size + " bytes)");
  } catch (e) {
    ex.wc_free(p);
    throw e;
  }
  return { p, size };
}

// A URL: straight into the module when the server says how long the body is;
// otherwise (or when it sends more, e.g. compressed) the pieces are gathered
// first and copied in once at the end.
async function fromUrl(url) {
  const resp = await fetch(url);
  if (!resp.ok) throw new Error(url + ": " + resp.status + " " + resp.statusText);
  const declared = Number(resp.headers.get("Content-Length") || 0);
  ex.wc_unload();
  let p = 0, got = 0, pieces = null;
  if (declared > 0) {
    p = allocate(declared);
    if (!p) throw outOfMemory(declared);
  } else {
    pieces = [];
  }
  try {
    const reader = resp.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!pieces && got + value.length > declared) { // more than announced: gather instead
        pieces = [heap().slice(p, p + got)];
        ex.wc_free(p);
        p = 0;
      }
      if (pieces && got + value.length >= 2 ** 32) throw outOfMemory(got + value.length);
      if (pieces) pieces.push(value);
      else heap().set(value, p + got);
      got += value.length;
      progress(got, declared >= got ? declared : 0);
    }
    if (pieces) {
      p = allocate(got);
      if (!p) throw outOfMemory(got);
      let off = 0;
      for (const piece of pieces) {
        heap().set(piece, p + off);
        off += piece.length;
      }
    }
  } catch (e) {
    if (p) ex.wc_free(p);
    throw e;
  }
  progress(got, got, true);
  return { p, size: got };
}

async function load(msg) {
  const t0 = performance.now();
  labelsKey = null; // unloading frees the encoded labels
  const { p, size } = msg.file ? await fromFile(msg.file) : await fromUrl(msg.url);
  const t1 = performance.now();
  // the module freed the buffer; its message says "(memory)" where a path would be
  if (ex.wc_load(p, size) !== 0) throw new Error(lastError().replace("(memory)", msg.file ? msg.file.name : msg.url));
  const config = JSON.parse(cstring(ex.wc_config() >>> 0));
  postMessage({ type: "loaded", config, size, seconds: (performance.now() - t0) / 1000,
    readSeconds: (t1 - t0) / 1000, memory: ex.memory.buffer.byteLength });
}

// ---------------------------------------------------------------------------
// Classification: the image and the labels through the towers, then the
// zero-shot softmax. Everything the page shows (and the test compares) is
// read back from the module.

let labelsKey = null; // the labels and templates last encoded: unchanged ones are not encoded again

// the number of labels of the last wc_labels, kept across calls that reuse them
let nLabels = 0;

async function classify(msg) {
  const config = JSON.parse(cstring(ex.wc_config() >>> 0) || "null");
  if (!config) throw new Error("load a weights file first");
  const E = config.projection_dim, S = config.image_size, ctx = config.context_length;
  const enc = new TextEncoder(), dec = new TextDecoder();
  const t0 = performance.now();

  const img = new Uint8Array(await msg.image.arrayBuffer());
  const ip = copyIn(img);
  const rc = ex.wc_image(ip, img.length);
  ex.wc_free(ip);
  if (rc !== 0) throw new Error((msg.name ? msg.name + ": " : "") + lastError());
  const t1 = performance.now();

  const labelBytes = enc.encode(msg.labels);
  const key = msg.labels + "\u0000" + (msg.templates || "");
  const encoded = key !== labelsKey;
  if (encoded) {
    labelsKey = null;
    const tmplBytes = enc.encode(msg.templates || "");
    const lp = copyIn(labelBytes), tp = copyIn(tmplBytes);
    const n = ex.wc_labels(lp, labelBytes.length, tp, tmplBytes.length);
    ex.wc_free(lp);
    ex.wc_free(tp);
    if (n < 0) throw new Error(lastError());
    nLabels = n;
    labelsKey = key;
  }
  const t2 = performance.now();
  if (ex.wc_classify() !== 0) throw new Error(lastError());

  const n = nLabels, P = ex.wc_n_prompts();
  const spans = ex.wc_label_spans() >>> 0; // size_t pairs: 32-bit here
  const labels = [];
  for (let i = 0; i < n; i++) {
    const a = u32(spans + 8 * i), len = u32(spans + 8 * i + 4);
    labels.push(dec.decode(labelBytes.subarray(a, a + len)));
  }
  const pp = ex.wc_prompts() >>> 0, psize = ex.wc_prompts_size() >>> 0;
  const prompts = dec.decode(heap().subarray(pp, pp + psize)).split("\u0000").slice(0, P);
  const idp = ex.wc_prompt_ids() >>> 0, lenp = ex.wc_prompt_lens() >>> 0;
  const ids = [];
  for (let i = 0; i < P; i++) {
    const len = new Int32Array(ex.memory.buffer, lenp + 4 * i, 1)[0];
    ids.push(Array.from(new Int32Array(ex.memory.buffer, idp + 4 * i * ctx, len)));
  }
  const promptF = floats(ex.wc_prompt_features() >>> 0, P * E);
  const labelF = floats(ex.wc_label_features() >>> 0, n * E);
  const cp = ex.wc_crop() >>> 0;
  return {
    type: "result",
    seq: msg.seq,
    name: msg.name || "",
    labels,
    prompts,
    ids,
    probs: Array.from(floats(ex.wc_probs() >>> 0, n)),
    logits: Array.from(floats(ex.wc_logits() >>> 0, n)),
    imageFeatures: Array.from(floats(ex.wc_image_features() >>> 0, E)),
    promptFeatures: Array.from({ length: P }, (_, i) => Array.from(promptF.subarray(i * E, (i + 1) * E))),
    textFeatures: Array.from({ length: n }, (_, i) => Array.from(labelF.subarray(i * E, (i + 1) * E))),
    pixels: heap().slice(cp, cp + S * S * 3),
    size: S,
    seconds: { image: (t1 - t0) / 1000, text: (t2 - t1) / 1000, total: (performance.now() - t0) / 1000 },
    labelsEncoded: encoded, // false: the same labels as last time, their features reused
    memory: ex.memory.buffer.byteLength,
  };
}

// ---------------------------------------------------------------------------
// One request at a time, in the order they came

let queue = Promise.resolve();
onmessage = (ev) => {
  const msg = ev.data;
  queue = queue.then(async () => {
    try {
      await ready;
      if (msg.type === "load") await load(msg);
      else if (msg.type === "classify") postMessage(await classify(msg));
    } catch (e) {
      postMessage({ type: "error", during: msg.type, seq: msg.seq, message: e && e.message ? e.message : String(e) });
    }
  });
};
