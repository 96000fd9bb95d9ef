// app.js - the page: asks worker.js to load weights and classify, shows the
// progress, the ranking and any error. The numbers of the last run are kept
// in window.clipLast (token ids, the crop's pixels, features, probabilities)
// for whoever wants them: the project's browser test compares them with the
// command line's.
"use strict";

const $ = (id) => document.getElementById(id);
const worker = new Worker("worker.js");
let modelReady = false;
let image = null; // {blob, name}
let requests = 0; // classify requests sent; an answer to an older one is not the page's state
window.clipRequests = 0;

function setState(state) {
  $("state").dataset.state = state;
  $("busy").textContent = state === "working" ? "working…" : "";
}

function showError(msg) {
  $("error").textContent = msg;
  setState("error");
}

const mb = (n) => (n / 1048576).toFixed(n < 10485760 ? 1 : 0) + " MB";

// ---------------------------------------------------------------------------
// Weights

function loadWeights(what) {
  $("error").textContent = "";
  modelReady = false;
  $("model-status").textContent = "Loading " + (what.file ? what.file.name : what.url) + "…";
  const bar = $("weights-progress");
  bar.hidden = false;
  bar.removeAttribute("value"); // indeterminate until the size is known
  setState("loading");
  worker.postMessage(Object.assign({ type: "load" }, what));
}

$("weights-file").addEventListener("change", (ev) => {
  const f = ev.target.files[0];
  if (f) loadWeights({ file: f });
});
$("weights-load").addEventListener("click", () => {
  const url = $("weights-url").value.trim();
  if (url) loadWeights({ url });
  else showError("Type the URL of a weights file first.");
});

// ---------------------------------------------------------------------------
// The image: dropped, or chosen

function setImage(blob, name) {
  image = { blob, name };
  $("image-name").textContent = name + " (" + mb(blob.size) + ")";
  const img = $("image-preview");
  if (img.src) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(blob); // PPM and a few others do not show here; the crop will
  img.hidden = false;
  if (modelReady) classify();
}

$("image-file").addEventListener("change", (ev) => {
  const f = ev.target.files[0];
  if (f) setImage(f, f.name);
});
const drop = $("drop");
drop.addEventListener("dragover", (ev) => {
  ev.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (ev) => {
  ev.preventDefault();
  drop.classList.remove("over");
  const f = ev.dataTransfer.files[0];
  if (f) setImage(f, f.name);
});

// ---------------------------------------------------------------------------
// Classification

function classify() {
  if (!modelReady) return showError("Load a weights file first.");
  if (!image) return showError("Choose or drop an image first.");
  $("error").textContent = "";
  setState("working");
  window.clipRequests = ++requests;
  worker.postMessage({ type: "classify", seq: requests, image: image.blob, name: image.name, labels: $("labels").value,
    templates: $("templates").value });
}
$("classify").addEventListener("click", classify);

function showCrop(r) {
  const c = $("crop"), S = r.size;
  c.width = c.height = S;
  const rgba = new ImageData(S, S);
  for (let i = 0, j = 0; i < S * S * 3; i += 3, j += 4) {
    rgba.data[j] = r.pixels[i];
    rgba.data[j + 1] = r.pixels[i + 1];
    rgba.data[j + 2] = r.pixels[i + 2];
    rgba.data[j + 3] = 255;
  }
  c.getContext("2d").putImageData(rgba, 0, 0);
  c.hidden = false;
  $("crop-caption").textContent = "what the model sees (" + S + " × " + S + ")";
}

function showRanking(r) {
  // best first; ties keep the labels' order (as the command line)
  const order = r.probs.map((_, i) => i).sort((a, b) => r.logits[b] - r.logits[a] || a - b);
  const list = $("ranking");
  list.textContent = "";
  for (const i of order) {
    const li = document.createElement("li");
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = label.title = r.labels[i];
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = (100 * r.probs[i]).toFixed(2) + "%";
    bar.appendChild(fill);
    const pct = document.createElement("span");
    pct.className = "pct";
    pct.textContent = (100 * r.probs[i]).toFixed(2) + "%";
    li.append(label, bar, pct);
    list.appendChild(li);
  }
  $("timing").textContent = "image " + (1000 * r.seconds.image).toFixed(0) + " ms, " + (r.labelsEncoded ?
    "labels " + (1000 * r.seconds.text).toFixed(0) + " ms (" + r.prompts.length + " prompts)" : "labels as before");
}

// ---------------------------------------------------------------------------
// The worker's answers

worker.onmessage = (ev) => {
  const m = ev.data;
  if (m.type === "progress") {
    const bar = $("weights-progress");
    if (m.total) {
      bar.max = m.total;
      bar.value = m.loaded;
      $("model-status").textContent = "Loading… " + mb(m.loaded) + " of " + mb(m.total);
    } else {
      $("model-status").textContent = "Loading… " + mb(m.loaded);
    }
  } else if (m.type === "loaded") {
    const c = m.config;
    modelReady = true;
    $("weights-progress").hidden = true;
    $("model-status").textContent = "Loaded " + mb(m.size) + " in " + m.seconds.toFixed(1) + " s: image " +
      c.image_size + " px, patch " + c.patch_size + ", vision " + c.vision_layers + " × " + c.vision_width +
      ", text " + c.text_layers + " × " + c.text_width + ", features " + c.projection_dim + ".";
    window.clipModel = m;
    setState("ready");
    if (image) classify();
  } else if (m.type === "result") {
    window.clipLast = m;
    showCrop(m);
    showRanking(m);
    if (m.seq === requests) setState("done");
  } else if (m.type === "error") {
    if (m.during === "load") {
      $("weights-progress").hidden = true;
      $("model-status").textContent = "No model loaded.";
    }
    window.clipLastError = m;
    showError((m.during === "load" ? "Could not load the weights: " : "") + m.message);
  }
};
worker.onerror = (ev) => showError("The worker failed: " + (ev.message || "unknown error"));
