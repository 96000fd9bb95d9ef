#!/usr/bin/env python3
"""The JPEG decoder against libjpeg-turbo (djpeg, and Pillow): byte-identical
output on every committed test JPEG and on a random corpus made here with
cjpeg (random sizes 1..2000, qualities 1..100, every sampling option,
grayscale, progressive, restart markers, optimized tables, arithmetic
coding); the one-pass decode + resize + crop against Pillow's (and against
../shared's fixture crops, made by Pillow 12.3 via Hugging Face, when
present). Needs libjpeg-turbo-progs (cjpeg, djpeg)."""
import os
import random
import shutil
import subprocess

import numpy as np

from common import (FIX, OUT, blob_for, check, crop_array, finish, fixtures_part, hf_crop, image, image_names,
                    need_pillow, run, skip)

need_pillow("test_jpeg")
from PIL import Image  # noqa: E402

if not shutil.which("cjpeg") or not shutil.which("djpeg"):
    skip("test_jpeg", "cjpeg/djpeg not installed (apt-get install libjpeg-turbo-progs)")
SEED = int(os.environ.get("CLIP_JPEG_SEED", "20261127"))
COUNT = int(os.environ.get("CLIP_JPEG_COUNT", "400"))


def djpeg(path):
    p = subprocess.run(["djpeg", "-pnm", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        return None
    out = os.path.join(OUT, "djpeg.pnm")
    with open(out, "wb") as f:
        f.write(p.stdout)
    return np.asarray(Image.open(out).convert("RGB"))


def ours(path):
    out = os.path.join(OUT, "ours.ppm")
    rc, _, err = run(["decode", path, out])
    if rc != 0:
        return None, err.strip()
    return np.asarray(Image.open(out).convert("RGB")), ""


# 1. the committed JPEGs
bad = []
names = image_names(".jpg")
for n in names:
    path = image(n)
    got, err = ours(path)
    want = djpeg(path)
    if got is None or got.shape != want.shape or not np.array_equal(got, want):
        bad.append((n, err))
check(not bad, f"decode: {len(names) - len(bad)} test JPEGs byte-identical to djpeg {bad}")

# 2. JPEG decoding + preprocessing in one pass, against Pillow's decoding, resize and crop
blobs = {size: blob_for(size) for size in (224, 64, 336)}
for size, blob in blobs.items():
    bad = []
    for name in names:
        out = os.path.join(OUT, "jcrop.ppm")
        rc, _, err = run(["preprocess", blob, image(name), out])
        if rc != 0 or not np.array_equal(np.asarray(Image.open(out).convert("RGB")), crop_array(image(name), size)):
            bad.append(name)
    check(not bad, f"preprocess {size}px: {len(names) - len(bad)} of {len(names)} test JPEGs byte-identical to "
                   f"Pillow {bad}")
# ... and against the fixture crops (Pillow 12.3 through Hugging Face's processor)
if fixtures_part("test_jpeg: ../shared's fixture crops"):
    for size, blob in blobs.items():
        bad, n = [], 0
        for name in sorted(os.listdir(os.path.join(FIX, "pixels", str(size)))):
            if not name.endswith(".jpg.ppm"):
                continue
            n += 1
            out = os.path.join(OUT, "jcrop.ppm")
            rc, _, err = run(["preprocess", blob, os.path.join(FIX, "images", name[:-4]), out])
            want = np.asarray(Image.open(os.path.join(FIX, "pixels", str(size), name)).convert("RGB"))
            if rc != 0 or not np.array_equal(np.asarray(Image.open(out).convert("RGB")), want):
                bad.append(name)
        check(not bad, f"preprocess {size}px: {n - len(bad)} of {n} JPEG fixtures byte-identical {bad}")

# 3. a random cjpeg corpus
rng = random.Random(SEED)
samples = ["1x1", "2x1", "1x2", "2x2", "4x1", "1x4", "4x2", "2x4", "3x1", "1x3", "3x2", "4x4",
           "2x2,1x1,2x2", "1x2,1x1,1x1", "2x1,1x1,1x1"]
fails, crop_fails, tested = [], [], 0
for i in range(COUNT):
    big = rng.random() < 0.1
    w = rng.randint(1, 2000) if big else rng.randint(1, 300)
    h = rng.randint(1, 2000) if big else rng.randint(1, 300)
    kind = rng.choice(["noise", "smooth", "blocks"])
    if kind == "noise":
        a = np.frombuffer(rng.randbytes(w * h * 3), dtype=np.uint8).reshape(h, w, 3)
    elif kind == "smooth":
        y, x = np.mgrid[0:h, 0:w]
        a = np.stack([(x * 7 + y * 3) % 256, (y * 5) % 256, (x * y) % 256], -1).astype(np.uint8)
    else:
        a = np.kron(np.frombuffer(rng.randbytes(((h + 7) // 8) * ((w + 7) // 8) * 3), dtype=np.uint8)
                    .reshape((h + 7) // 8, (w + 7) // 8, 3), np.ones((8, 8, 1), dtype=np.uint8))[:h, :w]
    src = os.path.join(OUT, "corpus.ppm")
    Image.fromarray(np.ascontiguousarray(a), "RGB").save(src)
    opts = ["-quality", str(rng.randint(1, 100))]
    if rng.random() < 0.2:
        opts.append("-grayscale")
    else:
        opts += ["-sample", rng.choice(samples)]
    if rng.random() < 0.35:
        opts.append("-progressive")
    if rng.random() < 0.3:
        opts += ["-restart", rng.choice(["1", "2", "5B", "1B", "3"])]
    if rng.random() < 0.3:
        opts.append("-optimize")
    if rng.random() < 0.1:
        opts.append("-rgb")
    if rng.random() < 0.2:
        opts.append("-arithmetic")
    jpg = os.path.join(OUT, "corpus.jpg")
    p = subprocess.run(["cjpeg"] + opts + ["-outfile", jpg, src], stderr=subprocess.PIPE)
    if p.returncode != 0:
        continue  # a combination cjpeg itself refuses
    want = djpeg(jpg)
    if want is None:
        continue
    tested += 1
    got, err = ours(jpg)
    if got is None or got.shape != want.shape or not np.array_equal(got, want):
        keep = os.path.join(OUT, f"corpus-fail-{i}.jpg")
        shutil.copy(jpg, keep)
        diff = None if got is None or got.shape != want.shape else int((got != want).sum())
        fails.append((f"{w}x{h}", " ".join(opts), err or f"{diff} bytes differ", keep))
    # preprocessing decodes a JPEG its own way (only the rows and columns
    # the crop needs, straight into the resize): against Pillow on djpeg's pixels
    size = rng.choice(list(blobs))
    crop = os.path.join(OUT, "corpus-crop.ppm")
    rc, _, err = run(["preprocess", blobs[size], jpg, crop])
    if rc != 0 or not np.array_equal(np.asarray(Image.open(crop).convert("RGB")),
                                     hf_crop(Image.fromarray(want, "RGB"), size)):
        keep = os.path.join(OUT, f"corpus-crop-fail-{i}.jpg")
        shutil.copy(jpg, keep)
        crop_fails.append((f"{w}x{h}", size, " ".join(opts), err.strip(), keep))
for f in fails[:8]:
    print("    ", f)
check(not fails and tested > COUNT // 2,
      f"decode: {tested - len(fails)} of {tested} random cjpeg files byte-identical to djpeg (seed {SEED})")
for f in crop_fails[:8]:
    print("    ", f)
check(not crop_fails and tested > COUNT // 2,
      f"preprocess: {tested - len(crop_fails)} of {tested} random cjpeg files byte-identical to Pillow's resize "
      f"and crop of djpeg's pixels (seed {SEED})")

# 4. hostile JPEGs: truncated anywhere, bytes flipped: refused or decoded, never a crash
src_files = [image(n) for n in ("chelsea_q90_420.jpg", "chelsea_prog.jpg", "chelsea_restart.jpg", "chelsea_arith.jpg",
                                "odd_17x9.jpg")]
crashes, refused, total = [], 0, 0
for path in src_files:
    with open(path, "rb") as f:
        data = f.read()
    variants = [data[:k] for k in sorted({2, 3, 4, 20, 100, 200, len(data) // 3, len(data) // 2, len(data) - 2})]
    for k in range(25):
        b = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            b[rng.randrange(2, len(b))] = rng.randrange(256)
        variants.append(bytes(b))
    for v in variants:
        bad_path = os.path.join(OUT, "hostile.jpg")
        with open(bad_path, "wb") as f:
            f.write(v)
        rc, _, err = run(["decode", bad_path, os.path.join(OUT, "hostile.ppm")])
        total += 1
        if rc not in (0, 1) or (rc == 1 and not err.startswith("clip: ")):
            crashes.append((os.path.basename(path), len(v), rc, err[:100]))
        refused += rc == 1
check(not crashes, f"{total} truncated or damaged JPEGs: {refused} refused with a message, the rest decoded, "
                   f"no crash {crashes[:3]}")
trunc = os.path.join(OUT, "trunc.jpg")
with open(image("chelsea_q90_420.jpg"), "rb") as f:
    data = f.read()
with open(trunc, "wb") as f:
    f.write(data[:len(data) // 2])
rc, _, err = run(["decode", trunc, os.path.join(OUT, "t.ppm")])
check(rc == 1 and "truncated" in err, f"a JPEG cut in half is refused as truncated, as Pillow does: {err.strip()}")

finish("test_jpeg")
