#!/usr/bin/env python3
"""Full-size CLIP shapes with random weights: ./clip against the float64
numpy reference (test/reference.py, itself proven on the transformers
fixtures by test_reference.py when ../shared is there), on crops of two
test images made with Pillow. The checkpoints are made here and deleted.

    test_fullsize.py [ViT-B-32] [ViT-L-14-336] ...   (default: both of those)"""
import os
import shutil
import sys
import time

import numpy as np

from common import OUT, VOCAB, arrays, check, crop, export, finish, run
from make_checkpoint import random_clip
from reference import Reference, read_ppm

TOL = 1e-5
TEXTS = ["a photo of a cat", "a diagram", "Ελληνικά 中文 🐱", "x " * 100]
names = sys.argv[1:] or ["ViT-B-32", "ViT-L-14-336"]

for name in names:
    folder = os.path.join(OUT, "ckpt-" + name)
    blob = os.path.join(OUT, name + ".bin")
    t0 = time.time()
    random_clip(folder, name, seed=len(name), act="gelu" if "L-14" in name else "quick_gelu")
    export(folder, blob, "--tokenizer", VOCAB)
    t1 = time.time()
    ref = Reference(folder)
    size = ref.v["image_size"]
    crops = [crop(n, size) for n in ("chelsea.ppm", "page.pgm")]
    want_img = np.stack([ref.image_features(read_ppm(c)) for c in crops])
    rc, out, err = run(["embed", blob] + crops)
    e = np.inf if rc else np.abs(arrays(out) - want_img).max() / np.abs(want_img).max()
    check(e <= TOL, f"{name} image features vs float64 reference: max rel err {e:.2e} {err.strip()}")
    rc, ids_out, err = run(["embed", blob, "--text"] + TEXTS)
    toks = []
    for t in TEXTS:
        rc2, o, _ = run(["tokenize", blob, t])
        toks.append(eval(o))
    want_txt = np.stack([ref.text_features(i) for i in toks])
    e = np.inf if rc else np.abs(arrays(ids_out) - want_txt).max() / np.abs(want_txt).max()
    check(e <= TOL, f"{name} text features vs float64 reference: max rel err {e:.2e} {err.strip()}")
    print(f"     ({name}: made and exported in {t1 - t0:.0f} s, compared in {time.time() - t1:.0f} s)")
    shutil.rmtree(folder)
    os.unlink(blob)

finish("test_fullsize")
