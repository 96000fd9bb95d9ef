#!/usr/bin/env python3
"""The JPEG decoder against libjpeg-turbo (djpeg, and Pillow): byte-identical
output on every committed test JPEG and on a random corpus made here with
cjpeg (random sizes 1..2000, qualities 1..100, every sampling option,
grayscale, progressive, restart markers, optimized tables, arithmetic
coding); the one-pass decode + resize + crop against Pillow's (and against
../shared's fixture crops, made by Pillow 12.3 via Hugging Face, when
present). Then the paths off the well-formed road, on generated files:
CMYK and YCCK (Pillow's and ImageMagick's, against Pillow's
convert("RGB")), and what libjpeg reads with a warning (junk between
segments, bad APP/COM lengths, corrupt scans, markers inside scans,
Motion-JPEG frames without DHT, DNL segments, progressive files cut after a
scan, which libjpeg shows with block smoothing), against djpeg wherever
Pillow decodes the file too (hostile_jpeg.py has the refusals). Needs
libjpeg-turbo-progs (cjpeg, djpeg); ImageMagick's convert where present."""
import os
import random
import shutil
import struct
import subprocess
import warnings

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

# 5. CMYK and YCCK: Pillow's convert("RGB") is the reference (djpeg's PPM of
# a CMYK file is its own conversion); decode, and preprocess (the streaming
# path) against Pillow's crop of its own RGB
def pillow_rgb(path):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(Image.open(path).convert("RGB"))
    except Exception:
        return None


def adobe_transform(data, t):
    """the file with its Adobe APP14 transform set to t, or the marker dropped (t None)"""
    i = data.find(b"\xff\xee")
    if i < 0 or data[i + 4:i + 9] != b"Adobe":
        return data
    if t is None:
        return data[:i] + data[i + 2 + struct.unpack(">H", data[i + 2:i + 4])[0]:]
    return data[:i + 15] + bytes([t]) + data[i + 16:]


def against(path, want, label, fails):
    """clip decode and preprocess of path against the RGB array want"""
    got, err = ours(path)
    if got is None or got.shape != want.shape or not np.array_equal(got, want):
        keep = os.path.join(OUT, f"{label}.jpg")
        shutil.copy(path, keep)
        fails.append((label, err or "differs", keep))
        return
    size = rng.choice(list(blobs))
    crop = os.path.join(OUT, "x-crop.ppm")
    rc, _, err = run(["preprocess", blobs[size], path, crop])
    if rc != 0 or not np.array_equal(np.asarray(Image.open(crop).convert("RGB")),
                                     hf_crop(Image.fromarray(want, "RGB"), size)):
        keep = os.path.join(OUT, f"{label}-crop.jpg")
        shutil.copy(path, keep)
        fails.append((label, f"preprocess {size}px: {err.strip() or 'differs'}", keep))


def random_rgb(w, h):
    kind = rng.choice(["noise", "smooth", "blocks"])
    if kind == "noise":
        return np.frombuffer(rng.randbytes(w * h * 3), dtype=np.uint8).reshape(h, w, 3)
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([(x * 7 + y * 3) % 256, (y * 5) % 256, (x * y) % 256], -1).astype(np.uint8)
    if kind == "blocks":
        a = a // 64 * 64
    return a


path = os.path.join(OUT, "x.jpg")
fails, n_cmyk = [], 0
have_magick = shutil.which("convert") is not None
for i in range(int(os.environ.get("CLIP_JPEG_CMYK", "36"))):
    w, h = rng.randint(1, 160), rng.randint(1, 160)
    rgb = random_rgb(w, h)
    if have_magick and i % 3 == 2:
        src = os.path.join(OUT, "x.ppm")
        Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(src)
        opts = ["-quality", str(rng.randint(5, 100)), "-sampling-factor", rng.choice(["1x1", "2x1", "2x2"])]
        if rng.random() < 0.3:
            opts += ["-interlace", "Plane"]
        if subprocess.run(["convert", src, "-colorspace", "CMYK"] + opts + [path]).returncode != 0:
            continue
        with open(path, "rb") as f:
            data = f.read()
        label = f"magick-cmyk-{w}x{h}-{'-'.join(opts)}"
    else:
        cmyk = np.concatenate([rgb, rgb[:, :, :1] // 2], -1)
        opts = {"quality": rng.randint(5, 100), "subsampling": rng.choice([0, 1, 2]),
                "progressive": rng.random() < 0.3}
        Image.fromarray(np.ascontiguousarray(cmyk), "CMYK").save(path, "JPEG", **opts)
        with open(path, "rb") as f:
            data = f.read()
        label = f"pillow-cmyk-{w}x{h}-q{opts['quality']}-s{opts['subsampling']}-p{int(opts['progressive'])}"
    # the same file as CMYK (transform 0), YCCK (2; 1 is taken for YCCK too)
    # and without the Adobe marker (CMYK; Pillow still reads it inverted)
    for t in rng.sample([0, 1, 2, None], 2):
        with open(path, "wb") as f:
            f.write(adobe_transform(data, t))
        want = pillow_rgb(path)
        if want is None:
            continue
        n_cmyk += 1
        against(path, want, f"{label}-t{t}", fails)
for f in fails[:8]:
    print("    ", f)
check(not fails and n_cmyk > 20, f"CMYK/YCCK: {n_cmyk - len(fails)} of {n_cmyk} generated 4-component JPEGs "
                                  f"(Pillow, ImageMagick; Adobe transform 0, 1, 2, none) byte-identical to Pillow")


# 6. damaged files that libjpeg reads with a warning (Huffman- or
# arithmetic-coded): where djpeg decodes (exit 0 or 2) and Pillow decodes
# too, clip must give djpeg's bytes; where Pillow fails, clip must refuse
def djpeg_any(path):
    p = subprocess.run(["djpeg", "-pnm", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode not in (0, 2) or not p.stdout:
        return None
    out = os.path.join(OUT, "djpeg.pnm")
    with open(out, "wb") as f:
        f.write(p.stdout)
    return np.asarray(Image.open(out).convert("RGB"))


def segs(data):
    """[(offset, marker, length)] up to EOI, a scan's length covering its data"""
    out, i = [], 2
    while i + 4 <= len(data) and data[i + 1] != 0xD9:
        m = data[i + 1]
        n = struct.unpack(">H", data[i + 2:i + 4])[0]
        if m == 0xDA:
            j = i + 2 + n
            while j + 1 < len(data) and not (data[j] == 0xFF and data[j + 1] != 0 and not 0xD0 <= data[j + 1] <= 0xD7):
                j += 1
            n = j - i - 2
        out.append((i, m, n))
        i += 2 + n
    return out


def damage(data, kind):
    """one kind of damage, or None where the file has no place for it"""
    ss = segs(data)
    scans = [(o, n) for o, m, n in ss if m == 0xDA]
    if kind == "junk":  # junk bytes (and 0xFF00 pairs) before a header segment after the first
        o = rng.choice([o for o, m, n in ss[1:] if m != 0xDA] or [None])
        junk = bytes(rng.choice([0x00, 0x12, 0x80, 0xFE]) for _ in range(rng.randint(1, 40)))
        return None if o is None else data[:o] + junk.replace(b"\x00", b"\xff\x00", 1) + data[o:]
    if kind == "applen":  # an APPn or COM whose length is under 2: libjpeg skips nothing after it
        o = ss[1][0]
        return data[:o] + bytes([0xFF, rng.choice([0xE3, 0xED, 0xFE]), 0, rng.randint(0, 1)]) + b"text" + data[o:]
    if kind == "flip":  # random bytes inside a scan's data
        o, n = rng.choice(scans)
        a, b = o + 2 + struct.unpack(">H", data[o + 2:o + 4])[0], o + 2 + n
        if b - a < 4:
            return None
        d = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            d[rng.randrange(a, b)] = rng.randrange(256)
        return bytes(d)
    if kind == "marker":  # a marker inside a scan's data
        o, n = rng.choice(scans)
        a, b = o + 2 + struct.unpack(">H", data[o + 2:o + 4])[0], o + 2 + n
        if b - a < 4:
            return None
        k = rng.randrange(a, b)
        while k > a and data[k - 1] == 0xFF:
            k -= 1
        return data[:k] + bytes([0xFF, rng.choice([0xD9, 0xC4, 0xD0 + rng.randrange(8), 0xDA])]) + data[k:]
    if kind == "nodht":  # a Motion-JPEG frame: the standard tables implied
        for o, m, n in reversed(ss):
            if m == 0xC4:
                data = data[:o] + data[o + 2 + n:]
        return data
    if kind == "dnl":  # a DNL segment after the first scan (libjpeg skips it)
        o, n = scans[0]
        h = struct.unpack(">H", data[[o2 for o2, m, n2 in ss if 0xC0 <= m <= 0xCA][0] + 5:][:2])[0]
        return data[:o + 2 + n] + b"\xff\xdc\x00\x04" + struct.pack(">H", h) + data[o + 2 + n:]
    if kind == "cut":  # a progressive file cut after scan k, EOI appended: block smoothing
        if len(scans) < 2:
            return None
        o, n = scans[rng.randrange(len(scans) - 1)]
        return data[:o + 2 + n] + b"\xff\xd9"
    raise ValueError(kind)


fails, counts = [], {}
for i in range(int(os.environ.get("CLIP_JPEG_DAMAGED", "150"))):
    w, h = rng.randint(1, 200), rng.randint(1, 200)
    src = os.path.join(OUT, "x.ppm")
    Image.fromarray(np.ascontiguousarray(random_rgb(w, h)), "RGB").save(src)
    kind = rng.choice(["junk", "applen", "flip", "flip", "marker", "nodht", "dnl", "cut", "cut"])
    opts = ["-quality", str(rng.randint(5, 100))]
    opts += ["-grayscale"] if rng.random() < 0.2 else ["-sample", rng.choice(samples[:12])]
    if kind == "cut" or (kind != "nodht" and rng.random() < 0.3):
        opts.append("-progressive")
    if kind != "nodht" and rng.random() < 0.3:
        opts += ["-restart", rng.choice(["1", "2", "1B"])]
    if kind not in ("nodht", "cut") and rng.random() < 0.3:
        opts.append("-optimize")
    if kind != "nodht" and rng.random() < 0.2:
        opts.append("-arithmetic")
    jpg = os.path.join(OUT, "x-src.jpg")
    if subprocess.run(["cjpeg"] + opts + ["-outfile", jpg, src], stderr=subprocess.PIPE).returncode != 0:
        continue
    with open(jpg, "rb") as f:
        bad_data = damage(f.read(), kind)
    if bad_data is None:
        continue
    with open(path, "wb") as f:
        f.write(bad_data)
    want, pil = djpeg_any(path), pillow_rgb(path)
    label = f"damaged-{i}-{kind}-{w}x{h}-{'_'.join(opts)}"
    if want is not None and pil is not None:
        counts[kind] = counts.get(kind, 0) + 1
        against(path, want, label, fails)
    elif pil is None:
        rc, _, err = run(["decode", path, os.path.join(OUT, "x.ppm")])
        counts["refused"] = counts.get("refused", 0) + 1
        if rc != 1 or not err.startswith("clip: "):
            keep = os.path.join(OUT, f"{label}.jpg")
            shutil.copy(path, keep)
            fails.append((label, f"Pillow refuses it, clip exit {rc}", keep))
for f in fails[:8]:
    print("    ", f)
check(not fails and sum(counts.values()) > 80,
      f"damaged JPEGs: {sum(counts.values()) - len(fails)} of {sum(counts.values())} as libjpeg reads them "
      f"(decoded like djpeg where Pillow decodes, refused where it fails) {counts}")

finish("test_jpeg")
