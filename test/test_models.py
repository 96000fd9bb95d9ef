#!/usr/bin/env python3
"""Every fixture model, exported and run by ./clip, against Hugging Face
transformers' float64 outputs: image and text features, the zero-shot
logits, and the token ids, each to 1e-5 relative (max abs err / max abs)."""
import json
import os

import numpy as np

from common import FIX, OUT, arrays, check, export, finish, need_fixtures, rel_err, run

need_fixtures("test_models")
TOL = 1e-5
VOCAB = os.path.join(FIX, "vocab", "bpe_simple_vocab_16e6.txt.gz")

for model in ("tiny-quickgelu", "tiny-gelu", "tiny-quickgelu-legacy", "tiny-quickgelu-openclip"):
    folder = os.path.join(FIX, "models", model)
    ref = np.load(os.path.join(folder, "reference_outputs.npz"))
    blob = os.path.join(OUT, model + ".bin")
    export(folder, blob, *(["--tokenizer", VOCAB] if "openclip" in model else []))
    with open(os.path.join(folder, "config.json" if "openclip" not in model else "open_clip_config.json")) as f:
        cfg = json.load(f)
    size = cfg["vision_config"]["image_size"] if "vision_config" in cfg else cfg["model_cfg"]["vision_cfg"]["image_size"]
    crops = [os.path.join(FIX, "pixels", str(size), n + ".ppm") for n in ref["images"]]
    texts = [str(t) for t in ref["texts"]]

    # token ids
    bad = 0
    for i, t in enumerate(texts):
        rc, out, err = run(["tokenize", blob, t])
        want = [int(x) for x, m in zip(ref["input_ids"][i], ref["attention_mask"][i]) if m]
        got = json.loads(out) if rc == 0 else None
        if got != want:
            bad += 1
            print(f"     {model} tokenize {t[:30]!r}: got {got}, want {want} ({err.strip()})")
    check(bad == 0, f"{model}: token ids of {len(texts)} texts ({bad} wrong)")

    rc, out, err = run(["embed", blob] + crops)
    e = rel_err(arrays(out), ref["image_features"]) if rc == 0 else float("inf")
    check(e <= TOL, f"{model} image features: max rel err {e:.2e} (fp32 torch: "
                    f"{rel_err(ref['fp32_image_features'], ref['image_features']):.2e}) {err.strip()}")
    rc, out, err = run(["embed", blob, "--text"] + texts)
    e = rel_err(arrays(out), ref["text_features"]) if rc == 0 else float("inf")
    check(e <= TOL, f"{model} text features: max rel err {e:.2e} (fp32 torch: "
                    f"{rel_err(ref['fp32_text_features'], ref['text_features']):.2e}) {err.strip()}")

    # the zero-shot path: one labels file with every text, each image classified
    labels = os.path.join(OUT, model + "-labels.txt")
    usable = [t for t in texts if t.strip() and "\n" not in t]
    with open(labels, "w", encoding="utf-8") as f:
        f.write("\n".join(usable) + "\n")
    cols = [texts.index(t) for t in usable]
    worst = 0.0
    for i, crop in enumerate(crops):
        rc, out, err = run(["--json", blob, crop, labels] if i % 2 else [blob, crop, labels, "--json"])
        if rc != 0:
            worst = float("inf")
            print(err)
            break
        res = json.loads(out)
        got = {d["label"]: d["logit"] for d in res["labels"]}
        want = ref["logits_per_image"][i][cols]
        worst = max(worst, rel_err([got[t.strip()] for t in usable], want))
        probs = np.exp(want - want.max())
        probs /= probs.sum()
        worst_p = rel_err([{d["label"]: d["prob"] for d in res["labels"]}[t.strip()] for t in usable], probs)
        worst = max(worst, worst_p)
        order = [d["label"] for d in res["labels"]]
        if order != [usable[j].strip() for j in np.argsort(-want, kind="stable")]:
            # ties within float rounding could swap; the logits check above is the strict one
            if np.sort(-want)[:2].ptp() > 1e-4:
                worst = float("inf")
    check(worst <= TOL, f"{model} zero-shot logits and probabilities ({len(crops)} images x {len(usable)} labels): "
                        f"max rel err {worst:.2e}")

finish("test_models")
