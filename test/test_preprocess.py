#!/usr/bin/env python3
"""clip preprocess / clip decode against the reference: the committed test
images' crops against Pillow's resize + Hugging Face's crop arithmetic byte
for byte (and against ../shared's fixture crops, made by Pillow 12.3 via
Hugging Face, when present), and Debian's Pillow on random images and sizes
(bicubic and bilinear, downscaling, upscaling, extreme aspect ratios, PGM,
maxval != 255)."""
import os
import random

import numpy as np

from common import (FIX, OUT, blob_for, check, crop_array, finish, fixtures_part, hf_crop, image, image_names,
                    need_pillow, run)

need_pillow("test_preprocess")
from PIL import Image  # noqa: E402


def read_ppm(path):
    im = Image.open(path)
    return np.asarray(im.convert("RGB"))


# 1. the committed PPM/PGM images, against Pillow (JPEG decoding: see test_jpeg.py)
for size in (224, 64, 336):
    bad, names = [], image_names((".ppm", ".pgm"))
    for name in names:
        out = os.path.join(OUT, f"crop-{size}-{name}.ppm")
        rc, _, err = run(["preprocess", blob_for(size), image(name), out])
        if rc != 0 or not np.array_equal(read_ppm(out), crop_array(image(name), size)):
            bad.append(name)
    check(not bad, f"preprocess {size}px: {len(names) - len(bad)} of {len(names)} PPM/PGM test images byte-identical "
                   f"to Pillow {bad}")

# ... and against the fixture crops (Pillow 12.3 through Hugging Face's processor)
if fixtures_part("test_preprocess: ../shared's fixture crops"):
    for size in (224, 64, 336):
        bad, n = [], 0
        for name in sorted(os.listdir(os.path.join(FIX, "pixels", str(size)))):
            src = os.path.join(FIX, "images", name[:-4])
            if src.endswith(".jpg"):
                continue  # JPEG decoding: see test_jpeg.py
            out = os.path.join(OUT, f"crop-{size}-{name}")
            rc, _, err = run(["preprocess", blob_for(size), src, out])
            n += 1
            if rc != 0 or not np.array_equal(read_ppm(out), read_ppm(os.path.join(FIX, "pixels", str(size), name))):
                bad.append(name)
        check(not bad, f"preprocess {size}px: {n - len(bad)} of {n} PPM/PGM fixtures byte-identical {bad}")


# 2. random images against Pillow's resize + Hugging Face's crop arithmetic
rng = random.Random(1234)
bad = []
shapes = [(1, 1), (1, 300), (300, 1), (2, 3), (63, 65), (64, 64), (65, 64), (224, 224), (225, 224), (500, 3),
          (1000, 750), (4000, 30)] + [(rng.randint(1, 1200), rng.randint(1, 1200)) for _ in range(24)]
for i, (w, h) in enumerate(shapes):
    kind = rng.choice(["noise", "smooth", "edges"])
    if kind == "noise":
        a = np.frombuffer(rng.randbytes(w * h * 3), dtype=np.uint8).reshape(h, w, 3)
    elif kind == "smooth":
        y, x = np.mgrid[0:h, 0:w]
        a = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x + y) % 256)], -1).astype(np.uint8)
    else:
        a = (np.frombuffer(rng.randbytes(w * h), dtype=np.uint8).reshape(h, w, 1) > 127).astype(np.uint8) * 255
        a = np.repeat(a, 3, -1)
    src = os.path.join(OUT, f"rand{i}.ppm")
    Image.fromarray(a, "RGB").save(src)
    for size in (224, 64):
        out = os.path.join(OUT, f"rand{i}-{size}.ppm")
        rc, _, err = run(["preprocess", blob_for(size), src, out])
        want = hf_crop(Image.fromarray(a, "RGB"), size)
        if rc != 0 or not np.array_equal(read_ppm(out), want):
            bad.append((w, h, size, err.strip()))
check(not bad, f"preprocess: {2 * len(shapes) - len(bad)} of {2 * len(shapes)} random images match Pillow {bad[:3]}")

# 3. decode: PPM/PGM with comments, maxval != 255 and 16 bits, ASCII forms, as Pillow reads them
cases = {
    "p6-comments.ppm": b"P6 # a comment\n# another\n3 2\n255\n" + bytes(range(18)),
    "p5.pgm": b"P5\n4 1\n255\n\x00\x40\x80\xff",
    "p6-max15.ppm": b"P6\n2 1\n15\n" + bytes([0, 1, 7, 8, 15, 14]),
    "p5-max1.pgm": b"P5\n3 1\n1\n\x00\x01\x00",
    "p5-max1000.pgm": b"P5\n2 1\n1000\n\x00\x01\x03\xe8",
    "p6-16bit.ppm": b"P6\n1 1\n65535\n\x12\x34\x80\x00\xff\xff",
    "p3.ppm": b"P3\n2 1\n255\n1 2 3  4 5 6\n",
    "p2-max7.pgm": b"P2\n3 1 7\n0 3 7\n",
    "p3-max300.ppm": b"P3 1 1 300 0 150 300",
}
for name, data in cases.items():
    src = os.path.join(OUT, name)
    with open(src, "wb") as f:
        f.write(data)
    out = os.path.join(OUT, "dec-" + name + ".ppm")
    rc, _, err = run(["decode", src, out])
    want = np.asarray(Image.open(src).convert("RGB"))
    got = read_ppm(out) if rc == 0 else None
    check(got is not None and np.array_equal(got, want),
          f"decode {name} as Pillow: {None if got is None else got.reshape(-1)[:9]} vs {want.reshape(-1)[:9]} {err.strip()}")

finish("test_preprocess")
