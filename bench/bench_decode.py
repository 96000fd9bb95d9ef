#!/usr/bin/env python3
"""Decoding + preprocessing speed of a 12-megapixel JPEG, side by side:
clip (whole process: decode, or decode + resize + crop), djpeg (whole
process, decode to PPM), and Pillow (in-process: decode, or decode + the
Hugging Face resize + crop). Runs interleaved, prints medians and ratios.

    bench/bench_decode.py [--runs N] [--model weights.bin]

Needs cjpeg/djpeg (libjpeg-turbo-progs), numpy and Pillow. Without --model a
tiny 224 px model is exported from ../shared/fixtures for the preprocess
runs (only its image size matters)."""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser()
ap.add_argument("--runs", type=int, default=7)
ap.add_argument("--model")
ap.add_argument("--width", type=int, default=4000)
ap.add_argument("--height", type=int, default=3000)
args = ap.parse_args()
tmp = tempfile.mkdtemp()
clip = os.path.join(ROOT, "clip")

# a photo-like 12 MP image: smooth fields, edges and fine noise
h, w = args.height, args.width
y, x = np.mgrid[0:h, 0:w].astype(np.float32)
rng = np.random.default_rng(1)
img = np.stack([128 + 100 * np.sin(x / 300 + c) * np.cos(y / 200 - c) for c in (0, 1, 2)], -1)
img += rng.normal(0, 12, img.shape)
img[(x.astype(int) // 500 + y.astype(int) // 500) % 2 == 0] *= 0.7
src = os.path.join(tmp, "big.ppm")
Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB").save(src)
jpg = os.path.join(tmp, "big.jpg")
subprocess.run(["cjpeg", "-quality", "90", "-outfile", jpg, src], check=True)
model = args.model
if not model:
    model = os.path.join(tmp, "m.bin")
    subprocess.run([sys.executable, os.path.join(ROOT, "export_weights.py"), "-q",
                    os.path.join(ROOT, "..", "shared", "fixtures", "models", "tiny-quickgelu"), model], check=True)
size = 224


def proc(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def pil_decode():
    t = time.perf_counter()
    im = Image.open(jpg)
    im.load()
    im.convert("RGB")
    return time.perf_counter() - t


def pil_preprocess():
    t = time.perf_counter()
    im = Image.open(jpg).convert("RGB")
    W, H = im.size
    short, long = min(W, H), max(W, H)
    nl = int(size * long / short)
    im = im.resize((size, nl) if W <= H else (nl, size), resample=Image.BICUBIC)
    a = np.asarray(im)
    top, left = (a.shape[0] - size) // 2, (a.shape[1] - size) // 2
    a[top:top + size, left:left + size].copy()
    return time.perf_counter() - t


tasks = {
    "clip decode (process)": lambda: proc([clip, "decode", jpg, "/dev/null"]),
    "djpeg (process)": lambda: proc(["djpeg", "-outfile", "/dev/null", jpg]),
    "Pillow decode (in-process)": pil_decode,
    "clip preprocess (process)": lambda: proc([clip, "preprocess", model, jpg, os.path.join(tmp, "c.ppm")]),
    "Pillow decode+resize+crop (in-process)": pil_preprocess,
}
times = {k: [] for k in tasks}
for _ in range(args.runs):
    for k, f in tasks.items():
        times[k].append(f())
med = {k: statistics.median(v) for k, v in times.items()}
print(f"{w}x{h} JPEG (q90, 4:2:0, {os.path.getsize(jpg) / 1e6:.1f} MB), median of {args.runs} interleaved runs")
for k, v in med.items():
    print(f"  {k:42s} {v * 1000:8.1f} ms")
print(f"  clip decode / djpeg:                        {med['clip decode (process)'] / med['djpeg (process)']:.2f}x")
print(f"  clip decode / Pillow decode:                {med['clip decode (process)'] / med['Pillow decode (in-process)']:.2f}x")
print(f"  clip preprocess / Pillow decode+resize+crop: "
      f"{med['clip preprocess (process)'] / med['Pillow decode+resize+crop (in-process)']:.2f}x")
