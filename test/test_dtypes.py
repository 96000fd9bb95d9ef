#!/usr/bin/env python3
"""Half- and quarter-size weights files (export_weights.py --dtype f16,
bf16, q8) on both tiny models:
  - the file: version 3, its weight type, sizes as the layout says;
  - exact arithmetic: clip on the file against the float64 reference run on
    the values the file holds (export_weights.dequantize), within 1e-5, so
    the expansion to float32 adds no error of its own;
  - the precision's own effect: features against the float32 file's within
    the bound README's ledger states, and zero-shot answers;
  - hostile typed files: truncated at every tensor boundary, the weight type
    word changed: refused with a message, never a crash."""
import json
import os
import shutil
import struct

import numpy as np

from common import OUT, arrays, check, crop, finish, run, tiny_model, typed_model
from make_checkpoint import read_safetensors, write_safetensors
from reference import Reference, read_ppm

import export_weights as ew

TOL = 1e-5
# feature error against the float32 file (max |a - b| / max |b|): README's
# ledger, measured on full-size random ViT-B/32 and ViT-L/14, is well inside
BOUND = {"f16": 2e-3, "bf16": 2e-2, "q8": 3e-2}
TEXTS = ["a photo of a cat", "a diagram of the moon", "x " * 30]
LABELS = os.path.join(OUT, "dtype-labels.txt")
with open(LABELS, "w") as f:
    f.write("".join(f"a photo of {w}\n" for w in ("a cat", "a dog", "coffee", "a rocket", "the moon", "text")))

TYPED = ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.out_proj.weight",
         "mlp.fc1.weight", "mlp.fc2.weight", "patch_embedding.weight", "visual_projection.weight",
         "text_projection.weight", "token_embedding.weight")


def dequantized_folder(folder, dtype):
    """A copy of the Hugging Face folder whose weights are the values a
    dtype file holds."""
    dst = os.path.join(OUT, "models", os.path.basename(folder) + "-deq-" + dtype)
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(folder, dst)
    t = read_safetensors(os.path.join(folder, "model.safetensors"))
    out = []
    for name in sorted(t):
        a = np.asarray(t[name], dtype=np.float32)
        if name.endswith(TYPED):
            a = ew.dequantize(a, dtype)
        out.append((name, a.shape, lambda a=a: a))
    write_safetensors(os.path.join(dst, "model.safetensors"), out)
    return dst


def features(blob, img):
    rc, out, err = run(["embed", blob, img])
    rc2, out2, err2 = run(["embed", blob, "--text"] + TEXTS)
    if rc or rc2:
        return None, None, err + err2
    return arrays(out)[0], arrays(out2), ""


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max()) if a is not None else float("inf")


for name, size in (("tiny-quickgelu", 224), ("tiny-gelu", 64)):
    folder, f32 = tiny_model(name)
    img = crop("chelsea.ppm", size)
    base_img, base_txt, err = features(f32, img)
    check(base_img is not None, f"{name} f32 embeds {err.strip()}")
    rc, base_zs, _ = run(["--json", f32, img, LABELS])
    for dtype in ("f16", "bf16", "q8"):
        blob = typed_model(name, dtype)
        with open(blob, "rb") as f:
            data = f.read()
        words = struct.unpack("<64I", data[:256])
        wsize = words[42] | words[43] << 32
        check(words[1] == 3 and words[37] == ew.DTYPES[dtype], f"{name} {dtype}: version 3, weight type {words[37]}")
        f32_w = struct.unpack("<Q", open(f32, "rb").read(256)[168:176])[0]
        print(f"     {name} {dtype}: weights {wsize} bytes, {wsize / f32_w:.3f}x the float32 file's")

        # the arithmetic is float32 on exactly the stored values
        ref = Reference(dequantized_folder(folder, dtype))
        want_img = ref.image_features(read_ppm(img))
        toks = []
        for t in TEXTS:
            rc, o, _ = run(["tokenize", blob, t])
            toks.append(eval(o))
        want_txt = np.stack([ref.text_features(i) for i in toks])
        got_img, got_txt, err = features(blob, img)
        e1, e2 = rel(got_img, want_img), rel(got_txt, want_txt)
        check(max(e1, e2) <= TOL, f"{name} {dtype}: image / text features vs float64 on the stored values: "
                                  f"max rel err {e1:.2e} / {e2:.2e} {err.strip()}")

        # the precision's own effect, against the float32 file
        e1, e2 = rel(got_img, base_img), rel(got_txt, base_txt)
        cos = float(got_img @ base_img / np.linalg.norm(got_img) / np.linalg.norm(base_img))
        check(max(e1, e2) <= BOUND[dtype], f"{name} {dtype}: image / text features vs the float32 file: "
                                           f"{e1:.2e} / {e2:.2e} (bound {BOUND[dtype]:g}), image cosine {cos:.6f}")
        rc, zs, err = run(["--json", blob, img, LABELS])
        probs = {r["label"]: r["prob"] for r in json.loads(zs)["labels"]} if rc == 0 else {}
        want = {r["label"]: r["prob"] for r in json.loads(base_zs)["labels"]}
        dp = max(abs(probs[k] - want[k]) for k in want) if probs.keys() == want.keys() else float("inf")
        check(dp <= 5 * BOUND[dtype], f"{name} {dtype}: zero-shot probabilities vs float32's: max diff {dp:.2e} "
                                      f"(bound {5 * BOUND[dtype]:g}) {err.strip()}")

# hostile typed files
blob = typed_model("tiny-gelu", "q8")
with open(blob, "rb") as f:
    data = f.read()
words = list(struct.unpack("<64I", data[:256]))
woff, wsize = words[40] | words[41] << 32, words[42] | words[43] << 32
bad_path = os.path.join(OUT, "dtype-bad.bin")
img = crop("coffee.ppm", 64)


def try_blob(b):
    with open(bad_path, "wb") as f:
        f.write(b)
    return run(["embed", bad_path, img])


bad = []
for cut in range(woff, woff + wsize + 1, max(1, wsize // 97)):
    rc, out, err = try_blob(data[:cut])
    if rc != 1 or not err.startswith("clip: "):
        bad.append((cut, rc, err[:80]))
check(not bad, f"q8 file truncated at 98 points in its weights: refused {bad[:2]}")
for v, what in ((0, "f32"), (1, "f16"), (2, "bf16"), (4, "type 4"), (0xFFFFFFFF, "type 2^32-1")):
    w = list(words)
    w[37] = v
    rc, out, err = try_blob(struct.pack("<64I", *w) + data[256:])
    check(rc == 1 and err.startswith("clip: ") and ("weights section" in err or "weight_type" in err),
          f"q8 file labelled {what}: {err.strip()}")
w = list(words)
w[1] = 2
rc, out, err = try_blob(struct.pack("<64I", *w) + data[256:])
check(rc == 1 and "reserved header word 37" in err, f"a typed file labelled version 2: {err.strip()}")

finish("test_dtypes")
