#!/usr/bin/env python3
"""The WebP decoder against Pillow 9.4 (libwebp 1.2.4): `clip decode` must
give Image.open(f).convert("RGB")'s bytes, and `clip preprocess` the crop
Hugging Face's processor makes, on a random corpus made here each run
(seed CLIP_WEBP_SEED, count CLIP_WEBP_COUNT): cwebp lossless at every -z
level, with -exact and -near_lossless, cwebp lossy with random -q, -m,
-sharp_yuv, -sns, -f, -segments, -partition_limit and alpha options,
Pillow's writer (lossless and lossy, animations with duration lists),
img2webp and gif2webp animations whose frames differ in size and offset;
images with alpha, 1x1 to ~1500 px. The hostile WebP files (hostile_webp.py)
are test_hostile.py's. Needs the `webp` package (cwebp, img2webp,
gif2webp).

Lossy frames are vp8.c's; while it is unfinished they are counted apart
("lossy, vp8.c") and do not hide lossless failures."""
import os
import random
import shutil
import subprocess

import numpy as np

from common import OUT, blob_for, check, crop_array, finish, need_pillow, run, skip

need_pillow("test_webp")
from PIL import Image  # noqa: E402

for tool in ("cwebp", "img2webp", "gif2webp"):
    if not shutil.which(tool):
        skip("test_webp", f"{tool} not installed (apt-get install webp)")
SEED = int(os.environ.get("CLIP_WEBP_SEED", "20261202"))
COUNT = int(os.environ.get("CLIP_WEBP_COUNT", "150"))
rng = random.Random(SEED)


def picture(w, h, alpha):
    kind = rng.choice(["noise", "smooth", "blocks", "few"])
    if kind == "noise":
        a = np.frombuffer(rng.randbytes(w * h * 4), dtype=np.uint8).reshape(h, w, 4).copy()
    elif kind == "smooth":
        y, x = np.mgrid[0:h, 0:w]
        k = [rng.randint(1, 9) for _ in range(4)]
        a = np.stack([(x * k[0] + y) % 256, (y * k[1]) % 256, (x * y // k[2]) % 256, (x + y * k[3]) % 256],
                     -1).astype(np.uint8)
    elif kind == "blocks":
        b = rng.choice([2, 4, 8, 16])
        small = np.frombuffer(rng.randbytes(((h + b - 1) // b) * ((w + b - 1) // b) * 4), dtype=np.uint8)
        a = np.kron(small.reshape((h + b - 1) // b, (w + b - 1) // b, 4), np.ones((b, b, 1), np.uint8))[:h, :w]
    else:  # a few colours: the colour-indexing transform with pixel bundling
        pal = np.frombuffer(rng.randbytes(rng.choice([2, 3, 4, 11, 16, 40, 256]) * 4), dtype=np.uint8).reshape(-1, 4)
        a = pal[np.array([rng.randrange(len(pal)) for _ in range(min(w * h, 5000))] * (w * h // 5000 + 1))[:w * h]
                .reshape(h, w)]
    a = np.ascontiguousarray(a)
    if not alpha:
        return Image.fromarray(a[:, :, :3].copy(), "RGB")
    if rng.random() < 0.3:
        a[:, :, 3] = np.where(a[:, :, 3] < 128, 0, 255)
    return Image.fromarray(a, "RGBA")


def size():
    if rng.random() < 0.08:
        return rng.randint(1, 1500), rng.randint(1, 1500)
    if rng.random() < 0.15:
        return rng.randint(1, 4), rng.randint(1, 4)
    return rng.randint(1, 300), rng.randint(1, 300)


def cwebp(lossless):
    w, h = size()
    src = os.path.join(OUT, "webp-src.png")
    picture(w, h, rng.random() < 0.4).save(src)
    if lossless:
        opts = ["-lossless", "-z", str(rng.randint(0, 9))]
        if rng.random() < 0.3:
            opts.append("-exact")
        if rng.random() < 0.2:
            opts += ["-near_lossless", str(rng.choice([0, 20, 40, 60, 80]))]
    else:
        opts = ["-q", str(rng.randint(0, 100)), "-m", str(rng.randint(0, 6))]
        if rng.random() < 0.3:
            opts.append("-sharp_yuv")
        if rng.random() < 0.3:
            opts += ["-sns", str(rng.randint(0, 100))]
        if rng.random() < 0.3:
            opts += ["-f", str(rng.randint(0, 100))]
        if rng.random() < 0.3:
            opts += ["-segments", str(rng.randint(1, 4))]
        if rng.random() < 0.3:
            opts += ["-partition_limit", str(rng.randint(0, 100))]
        if rng.random() < 0.5:
            opts += ["-alpha_q", str(rng.randint(0, 100)), "-alpha_filter", rng.choice(["none", "fast", "best"]),
                     "-alpha_method", str(rng.randint(0, 1))]
        if rng.random() < 0.1:
            opts.append("-exact")
    out = os.path.join(OUT, "webp-case.webp")
    p = subprocess.run(["cwebp", "-quiet"] + opts + [src, "-o", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return (out if p.returncode == 0 else None), f"cwebp {' '.join(opts)} {w}x{h}"


def pillow_still(lossless):
    w, h = size()
    im = picture(w, h, rng.random() < 0.4)
    out = os.path.join(OUT, "webp-case.webp")
    kw = {"lossless": lossless, "quality": rng.randint(0, 100), "method": rng.randint(0, 6)}
    im.save(out, "WEBP", **kw)
    return out, f"Pillow save {kw} {w}x{h} {im.mode}"


def pillow_anim(lossless):
    w, h = rng.randint(1, 200), rng.randint(1, 200)
    alpha = rng.random() < 0.5
    frames = [picture(w, h, alpha) for _ in range(rng.randint(1, 4))]
    if rng.random() < 0.5 and len(frames) > 1:  # mostly unchanged frames: the encoder crops them to sub-rectangles
        base = np.asarray(frames[0]).copy()
        x0, y0 = rng.randrange(w), rng.randrange(h)
        base[y0:, x0:] = np.asarray(frames[1])[y0:, x0:]
        frames[1] = Image.fromarray(base, frames[0].mode)
    out = os.path.join(OUT, "webp-case.webp")
    dur = [rng.randint(0, 500) for _ in frames]
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:], duration=dur, lossless=lossless,
                   quality=rng.randint(0, 100), minimize_size=rng.random() < 0.5,
                   allow_mixed=rng.random() < 0.3 and not lossless)
    return out, f"Pillow animation {len(frames)} frames lossless={lossless} {w}x{h}"


def gif2webp():
    """Frames of different sizes and offsets, from a GIF."""
    w, h = rng.randint(2, 200), rng.randint(2, 200)
    frames = []
    for i in range(rng.randint(1, 4)):
        frames.append(picture(w, h, False).convert("P", palette=Image.ADAPTIVE, colors=rng.choice([2, 16, 256])))
    gif = os.path.join(OUT, "webp-src.gif")
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, disposal=rng.randint(0, 2),
                   optimize=True)
    out = os.path.join(OUT, "webp-case.webp")
    opts = rng.choice([["-lossy", "-q", str(rng.randint(0, 100))], [], ["-mixed"], ["-min_size"]])
    p = subprocess.run(["gif2webp", "-quiet"] + opts + [gif, "-o", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return (out if p.returncode == 0 else None), f"gif2webp {' '.join(opts)} {w}x{h} {len(frames)} frames"


def img2webp():
    w, h = rng.randint(1, 150), rng.randint(1, 150)
    args, alpha = [], rng.random() < 0.5
    for i in range(rng.randint(1, 3)):
        src = os.path.join(OUT, f"webp-src{i}.png")
        picture(w, h, alpha).save(src)
        args += [rng.choice(["-lossless", "-lossy"]), "-q", str(rng.randint(0, 100)), "-d", "80", src]
    out = os.path.join(OUT, "webp-case.webp")
    p = subprocess.run(["img2webp"] + args + ["-o", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return (out if p.returncode == 0 else None), f"img2webp {' '.join(a for a in args if not a.endswith('.png'))}"


def lossy_inside(path):
    """Does the file hold a lossy 'VP8 ' chunk anywhere (then vp8.c decodes it)?"""
    with open(path, "rb") as f:
        return b"VP8 " in f.read()


makers = [(cwebp, True), (cwebp, False), (pillow_still, True), (pillow_still, False), (pillow_anim, True),
          (pillow_anim, False), (gif2webp, None), (img2webp, None)]
blob = blob_for(224)
fails, lossy_fails, crop_fails = [], [], []
tested = lossy = cropped = 0
for i in range(COUNT):
    make, arg = rng.choice(makers)
    path, what = make() if arg is None else make(arg)
    if path is None:
        continue
    try:
        with Image.open(path) as im:
            want = im.convert("RGB")
    except Exception as e:  # a file Pillow refuses: we must refuse it too
        want = None
    tested += 1
    is_lossy = lossy_inside(path)
    lossy += is_lossy
    got = os.path.join(OUT, "webp-ours.ppm")
    rc, _, err = run(["decode", path, got])
    ok = (rc != 0 and want is None and err.startswith("clip: ")) or (
        rc == 0 and want is not None and Image.open(got).convert("RGB").tobytes() == want.tobytes()
        and Image.open(got).size == want.size)
    if not ok:
        keep = os.path.join(OUT, f"webp-fail-{i}.webp")
        shutil.copy(path, keep)
        (lossy_fails if is_lossy else fails).append((what, err.strip() or "pixels differ", keep))
        continue
    if want is not None and rng.random() < 0.25:
        cropped += 1
        out = os.path.join(OUT, "webp-crop.ppm")
        rc, _, err = run(["preprocess", blob, path, out])
        if rc != 0 or not np.array_equal(np.asarray(Image.open(out).convert("RGB")), crop_array(path, 224)):
            keep = os.path.join(OUT, f"webp-crop-fail-{i}.webp")
            shutil.copy(path, keep)
            crop_fails.append((what, err.strip(), keep))
check(not fails, f"decode: {tested - lossy - len(fails)} of {tested - lossy} lossless WebPs identical to Pillow "
                 f"(seed {SEED}) {fails[:5]}")
check(not lossy_fails, f"decode: {lossy - len(lossy_fails)} of {lossy} WebPs with lossy frames identical to Pillow "
                       f"(lossy, vp8.c) {lossy_fails[:3]}")
check(not crop_fails, f"preprocess 224px: {cropped - len(crop_fails)} of {cropped} identical to Pillow {crop_fails[:5]}")
finish("test_webp")
