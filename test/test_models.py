#!/usr/bin/env python3
"""Models exported and run by ./clip: image and text features, the zero-shot
logits and probabilities, each to 1e-5 relative (max abs err / max abs), and
the token ids exactly.

1. Generated tiny models (test/make_checkpoint.py: the shapes of the two
   fixture models, random weights) in the Hugging Face, legacy and open_clip
   layouts, against the float64 reference (test/reference.py) on crops made
   with Pillow, and against Hugging Face's ids (test/data/tokenizer_cases.json).
2. With ../shared: the Hugging Face fixture models (transformers' own
   float64 outputs), in all four fixture layouts."""
import json
import os

import numpy as np

from common import (CASES, FIX, OUT, arrays, check, crop, crop_array, export, finish, fixtures_part, image, rel_err,
                    run, tiny_model)
from reference import Reference

TOL = 1e-5


def zero_shot(model, blob, crops, texts, logits):
    """One labels file with every usable text, each image classified: logits
    (images x texts) and their softmax against ./clip's, and the order."""
    labels = os.path.join(OUT, os.path.basename(blob)[:-4] + "-labels.txt")
    # a label is a line of the file, stripped: the texts that stay themselves
    usable = [t for i, t in enumerate(texts) if t and t == t.strip() and t.isprintable() and t not in texts[:i]]
    with open(labels, "w", encoding="utf-8") as f:
        f.write("\n".join(usable) + "\n")
    cols = [texts.index(t) for t in usable]
    worst = 0.0
    for i, c in enumerate(crops):
        rc, out, err = run(["--json", blob, c, labels] if i % 2 else [blob, c, labels, "--json"])
        if rc != 0:
            worst = float("inf")
            print(err)
            break
        res = json.loads(out)
        got = {d["label"]: d["logit"] for d in res["labels"]}
        want = logits[i][cols]
        worst = max(worst, rel_err([got[t.strip()] for t in usable], want))
        probs = np.exp(want - want.max())
        probs /= probs.sum()
        worst_p = rel_err([{d["label"]: d["prob"] for d in res["labels"]}[t.strip()] for t in usable], probs)
        worst = max(worst, worst_p)
        order = [d["label"] for d in res["labels"]]
        if order != [usable[j].strip() for j in np.argsort(-want, kind="stable")]:
            # ties within float rounding could swap; the logits check above is the strict one
            if np.ptp(np.sort(-want)[:2]) > 1e-4:
                worst = float("inf")
    check(worst <= TOL, f"{model} zero-shot logits and probabilities ({len(crops)} images x {len(usable)} labels): "
                        f"max rel err {worst:.2e}")


def token_ids(model, blob, texts, ids):
    bad = 0
    for t, want in zip(texts, ids):
        rc, out, err = run(["tokenize", blob, t])
        got = json.loads(out) if rc == 0 else None
        if got != want:
            bad += 1
            print(f"     {model} tokenize {t[:30]!r}: got {got}, want {want} ({err.strip()})")
    check(bad == 0, f"{model}: token ids of {len(texts)} texts ({bad} wrong)")


# ---- 1. generated models against the float64 reference ----
# the images of the fixture models' reference outputs (astronaut as its q100 JPEG)
IMAGES = ["chelsea.ppm", "coffee.ppm", "astronaut_q100_444.jpg", "page.pgm", "rocket.jpg", "chelsea_q90_420.jpg",
          "odd_3x500.ppm"]
with open(CASES, encoding="utf-8") as f:
    cases = json.load(f)["cases"]
by_text = {c["text"]: c for c in cases}
# the committed cases' hand-written strings (punctuation, numbers, whitespace,
# scripts, emoji, special tokens, newlines, empty), every 100th prompt after
# them, and a text past the 77-token context (its ids: the words' ids
# repeated, then cut); not those that begin with "-" (an option to ./clip)
texts = [c["text"] for c in cases[:49] + cases[49::100]]
texts = [t for i, t in enumerate(texts) if t not in texts[:i] and not t.startswith("-")]
ids = [by_text[t]["ids_truncated_77"] for t in texts]
words = by_text["a photo of a cat"]["ids"][1:-1]
texts.append(" ".join(["a photo of a cat"] * 20))
ids.append([49406] + (words * 20)[:75] + [49407])

for name in ("tiny-quickgelu", "tiny-gelu"):
    folder, _ = tiny_model(name)
    ref = Reference(folder)
    size = ref.v["image_size"]
    crops = [crop(n, size) for n in IMAGES]
    pixels = [crop_array(image(n), size) for n in IMAGES]
    want_img = np.stack([ref.image_features(p) for p in pixels])
    want_txt = np.stack([ref.text_features(i) for i in ids])
    ni = want_img / np.linalg.norm(want_img, axis=1, keepdims=True)
    nt = want_txt / np.linalg.norm(want_txt, axis=1, keepdims=True)
    logits = ref.logit_scale() * ni @ nt.T
    for layout in ("hf", "legacy", "openclip") if name == "tiny-quickgelu" else ("hf",):
        model = f"generated {name}" + ("" if layout == "hf" else f" ({layout} layout)")
        blob = tiny_model(name, layout)[1]
        token_ids(model, blob, texts, ids)
        rc, out, err = run(["embed", blob] + crops)
        e = rel_err(arrays(out), want_img) if rc == 0 else float("inf")
        check(e <= TOL, f"{model} image features vs float64 reference: max rel err {e:.2e} {err.strip()}")
        rc, out, err = run(["embed", blob, "--text"] + texts)
        e = rel_err(arrays(out), want_txt) if rc == 0 else float("inf")
        check(e <= TOL, f"{model} text features vs float64 reference: max rel err {e:.2e} {err.strip()}")
        zero_shot(model, blob, crops, texts, logits)

# ---- 2. the Hugging Face fixture models against transformers' float64 outputs ----
if fixtures_part("test_models: the Hugging Face fixture models (transformers' own outputs)"):
    VOCAB = os.path.join(FIX, "vocab", "bpe_simple_vocab_16e6.txt.gz")
    for model in ("tiny-quickgelu", "tiny-gelu", "tiny-quickgelu-legacy", "tiny-quickgelu-openclip"):
        folder = os.path.join(FIX, "models", model)
        ref = np.load(os.path.join(folder, "reference_outputs.npz"))
        blob = os.path.join(OUT, "fixture-" + model + ".bin")
        export(folder, blob, *(["--tokenizer", VOCAB] if "openclip" in model else []))
        with open(os.path.join(folder, "config.json" if "openclip" not in model else "open_clip_config.json")) as f:
            cfg = json.load(f)
        size = cfg["vision_config"]["image_size"] if "vision_config" in cfg else cfg["model_cfg"]["vision_cfg"]["image_size"]
        crops = [os.path.join(FIX, "pixels", str(size), n + ".ppm") for n in ref["images"]]
        texts = [str(t) for t in ref["texts"]]
        token_ids(model, blob, texts, [[int(x) for x, m in zip(i, mask) if m]
                                       for i, mask in zip(ref["input_ids"], ref["attention_mask"])])
        rc, out, err = run(["embed", blob] + crops)
        e = rel_err(arrays(out), ref["image_features"]) if rc == 0 else float("inf")
        check(e <= TOL, f"{model} image features: max rel err {e:.2e} (fp32 torch: "
                        f"{rel_err(ref['fp32_image_features'], ref['image_features']):.2e}) {err.strip()}")
        rc, out, err = run(["embed", blob, "--text"] + texts)
        e = rel_err(arrays(out), ref["text_features"]) if rc == 0 else float("inf")
        check(e <= TOL, f"{model} text features: max rel err {e:.2e} (fp32 torch: "
                        f"{rel_err(ref['fp32_text_features'], ref['text_features']):.2e}) {err.strip()}")
        zero_shot(model, blob, crops, texts, ref["logits_per_image"])

finish("test_models")
