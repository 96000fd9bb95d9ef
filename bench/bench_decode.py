#!/usr/bin/env python3
"""Decoding + preprocessing a 12-megapixel photo-like image as JPEG, PNG and
WebP, side by side with the reference decoders (djpeg, dwebp), Pillow and
one ViT-B/32 image-tower forward pass, medians of interleaved runs, reported
with ratios.

    bench/bench_decode.py [--runs N] [--threads 1,2] [--model weights.bin] [--width W --height H]

clip.c is timed in-process by bench/clip_bench (file reading included):
clip_image_load (the whole image) and clip_preprocess_file (the crop the
model sees), in the same process as its image-tower forward. djpeg is timed
and dwebp as processes (decode to PPM, output discarded); Pillow in-process
(decode; decode + Hugging Face's resize + center crop; PNG is libpng + zlib
under it, WebP libwebp). The test images: a baseline 4:2:0 q90 JPEG (what
cameras write) and its progressive twin, the same picture as a PNG (Pillow's
default compression) and as WebP, lossy (cwebp -q 80) and lossless.

Without --model a random ViT-B/32 is generated and exported (needs
data/bpe_simple_vocab_16e6.txt.gz for its tokenizer); needs cjpeg/djpeg
(libjpeg-turbo-progs), cwebp/dwebp (webp), numpy and Pillow."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test"))
from common import hf_crop  # noqa: E402  (CLIPImageProcessor's resize + crop on a PIL image)
ap = argparse.ArgumentParser()
ap.add_argument("--runs", type=int, default=7)
ap.add_argument("--threads", default="1,2")
ap.add_argument("--model")
ap.add_argument("--width", type=int, default=4000)
ap.add_argument("--height", type=int, default=3000)
args = ap.parse_args()
tmp = tempfile.mkdtemp(prefix="clipdecode")
bench = os.path.join(ROOT, "bench", "clip_bench")
if not os.path.exists(bench):
    sys.exit("build bench/clip_bench first (make bench/clip_bench)")

# a photo-like image: smooth fields, edges and fine noise
h, w = args.height, args.width
y, x = np.mgrid[0:h, 0:w].astype(np.float32)
rng = np.random.default_rng(1)
img = np.stack([128 + 100 * np.sin(x / 300 + c) * np.cos(y / 200 - c) for c in (0, 1, 2)], -1)
img += rng.normal(0, 12, img.shape)
img[(x.astype(int) // 500 + y.astype(int) // 500) % 2 == 0] *= 0.7
src = os.path.join(tmp, "big.ppm")
Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB").save(src)
del img, x, y
images = {}
for name, extra in (("baseline", []), ("progressive", ["-progressive"])):
    images[name] = os.path.join(tmp, f"{name}.jpg")
    subprocess.run(["cjpeg", "-quality", "90"] + extra + ["-outfile", images[name], src], check=True)
images["png"] = os.path.join(tmp, "big.png")
Image.open(src).save(images["png"])
for name, extra in (("webp lossy", ["-q", "80"]), ("webp lossless", ["-lossless"])):
    images[name] = os.path.join(tmp, name.replace(" ", "_") + ".webp")
    subprocess.run(["cwebp", "-quiet"] + extra + [src, "-o", images[name]], check=True)
os.remove(src)

model = args.model
if not model:
    from make_checkpoint import random_clip
    vocab = os.path.join(ROOT, "data", "bpe_simple_vocab_16e6.txt.gz")
    model = os.path.join(tmp, "b32.bin")
    subprocess.run([sys.executable, os.path.join(ROOT, "export_weights.py"), "-q",
                    random_clip(os.path.join(tmp, "ckpt"), "ViT-B-32"), model, "--tokenizer", vocab], check=True)


def clip_bench(path, threads):
    out = subprocess.run([bench, model, "3", "1", "2", path], check=True, capture_output=True,
                         env=dict(os.environ, OMP_NUM_THREADS=str(threads))).stdout
    return json.loads(out)


def reference(name, path):
    """The format's own command-line decoder, as a process; None for PNG (Pillow is its reference)."""
    if name.startswith("webp"):
        cmd = ["dwebp", "-quiet", "-ppm", path, "-o", os.devnull]
    elif name in ("baseline", "progressive"):
        cmd = ["djpeg", "-outfile", os.devnull, path]
    else:
        return None
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t


def pil_decode(path):
    t = time.perf_counter()
    Image.open(path).convert("RGB")
    return time.perf_counter() - t


def pil_preprocess(path):
    t = time.perf_counter()
    hf_crop(Image.open(path).convert("RGB"), size).copy()
    return time.perf_counter() - t


threads = [int(t) for t in args.threads.split(",")]
size = 224  # the ViT-B/32 crop
res = {}
for _ in range(args.runs):
    for name, path in images.items():
        for th in threads:
            r = clip_bench(path, th)
            for k in ("decode_ms", "preprocess_ms", "image_ms"):
                res.setdefault((name, f"clip {k} @{th}"), []).append(r[k] / 1e3)
        ref = reference(name, path)
        if ref is not None:
            res.setdefault((name, "reference"), []).append(ref)
        res.setdefault((name, "pil decode"), []).append(pil_decode(path))
        res.setdefault((name, "pil preprocess"), []).append(pil_preprocess(path))
med = {k: statistics.median(v) * 1e3 for k, v in res.items()}
print(f"{w}x{h} photo-like image, medians of {args.runs} interleaved runs (clip: medians of 3 inside each run)")
for name, path in images.items():
    refname = "dwebp" if name.startswith("webp") else "djpeg"
    kind = {"baseline": "JPEG q90 4:2:0", "progressive": "JPEG q90 4:2:0 progressive"}.get(name, name)
    print(f"\n{kind} ({os.path.getsize(path) / 1e6:.1f} MB)")
    if (name, "reference") in med:
        print(f"  {refname + ', whole process':44s} {med[(name, 'reference')]:7.1f} ms")
    print(f"  {'Pillow decode':44s} {med[(name, 'pil decode')]:7.1f} ms")
    print(f"  {'Pillow decode + resize + crop':44s} {med[(name, 'pil preprocess')]:7.1f} ms")
    for th in threads:
        d, p, f = (med[(name, f"clip {k} @{th}")] for k in ("decode_ms", "preprocess_ms", "image_ms"))
        vs_ref = f"{d / med[(name, 'reference')]:.2f}x {refname}, " if (name, "reference") in med else ""
        print(f"  {f'clip decode, {th} thread(s)':44s} {d:7.1f} ms   {vs_ref}{d / med[(name, 'pil decode')]:.2f}x Pillow")
        print(f"  {f'clip decode + preprocess, {th} thread(s)':44s} {p:7.1f} ms   "
              f"{p / med[(name, 'pil preprocess')]:.2f}x Pillow, {p / f:.2f}x one ViT-B/32 forward ({f:.1f} ms)")
