#!/usr/bin/env python3
"""The BMP decoder against Pillow: `clip decode` must give the bytes of
Image.open(f).convert("RGB") for every file Pillow opens, and refuse the
others (with a "clip: " message). A random corpus each run (seed
CLIP_BMP_SEED, size CLIP_BMP_COUNT):
- written by Pillow: modes 1, L, P, RGB and RGBA (1, 8, 24 and 32 bits);
- written here with struct: 1, 4 and 8 bits with full, short, gray-ramp and
  black-and-white palettes; 16 bits 5-5-5 and bit fields 5-6-5 / 5-5-5;
  24 bits; 32 bits plain and with every bit-field layout (and unsupported
  ones); RLE8 and RLE4 (runs, odd and even literal runs, end of line,
  delta, end of bitmap, runs past the row); top-down rows; the OS/2 12-byte
  and 64-byte, 40-byte, V4 and V5 headers; data offsets of 0 and right
  after the header; JPEG, PNG and alpha-bit-field compressions;
  truncations;
- written by ImageMagick when it is installed (BMP2, BMP3, BMP with RLE);
and, for a subset, `clip preprocess` against Hugging Face's crop."""
import os
import shutil
import struct
import subprocess

import numpy as np

from common import PillowCorpus, finish, skipped

corpus = PillowCorpus("bmp", 300)  # skipped without Pillow; CLIP_BMP_SEED, CLIP_BMP_COUNT
rng = corpus.rng
from PIL import Image  # noqa: E402


# ---------------------------------------------------------------------------
# Our own BMP writer

def rand_bytes(n):
    return np.random.default_rng(rng.randrange(1 << 30)).integers(0, 256, n, dtype=np.uint8).tobytes()


def write_bmp(w, h, bits, pixels, palette=b"", compression=0, hsize=40, masks=None, topdown=False, colors=None,
              offset=None, masks_after=False):
    """A BMP file. pixels: the pixel data as stored; palette: its bytes (4 per
    entry, 3 for the 12-byte header); masks: (r, g, b, a) for the V4/V5
    headers, or written after a 40-byte one when masks_after."""
    if hsize == 12:
        info = struct.pack("<IHHHH", 12, w, h, 1, bits)
    else:
        ncol = len(palette) // 4 if colors is None else colors
        info = struct.pack("<IIiHHIIiiII", hsize, w, -h if topdown else h, 1, bits, compression, len(pixels), 2835,
                           2835, ncol, 0)
        if hsize > 40:
            info += struct.pack("<IIII", *(masks or (0, 0, 0, 0)))
            info += rand_bytes(hsize - 56) if hsize == 64 else bytes(hsize - 56)
    extra = struct.pack("<III", *masks[:3]) if masks_after else b""
    off = 14 + len(info) + len(extra) + len(palette)
    if offset is None:
        offset = off
    return b"BM" + struct.pack("<IHHI", off + len(pixels), 0, 0, offset) + info + extra + palette + pixels


def rows(w, h, bits):
    stride = ((w * bits + 31) >> 3) & ~3
    return rand_bytes(stride * h)


def random_palette(n, padding):
    kind = rng.random()
    if kind < 0.15:
        entries = [(i, i, i) for i in range(n)]  # the gray ramp: Pillow opens mode L
    elif kind < 0.25 and n == 2:
        entries = [(0, 0, 0), (255, 255, 255)]  # mode 1
    else:
        entries = [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(n)]
    return b"".join(bytes([b, g, r]) + (b"\0" if padding == 4 else b"") for r, g, b in entries)


def rle_stream(w, h, rle4):
    """RLE8 / RLE4 data for random indices: runs, literal runs (odd ones
    too), end of line, sometimes a delta, end of bitmap."""
    top = 16 if rle4 else 256
    ncol = rng.randint(1, top)
    out = bytearray()
    for _ in range(h):
        x = 0
        while x < w:
            n = rng.randint(1, min(255, w - x + (2 if rng.random() < 0.05 else 0)))
            kind = rng.random()
            if kind < 0.5 or n < 3:
                v = rng.randrange(ncol)
                out += bytes([n, v * 17 if rle4 else v])
            elif kind < 0.97:
                vals = [rng.randrange(ncol) for _ in range(n)]
                if rle4:
                    packed = bytes((vals[i] << 4) | (vals[i + 1] if i + 1 < n else 0) for i in range(0, n, 2))
                else:
                    packed = bytes(vals)
                out += bytes([0, n]) + packed + (b"\0" if len(packed) % 2 else b"")
            else:
                out += bytes([0, 2, rng.randint(0, 5), rng.randint(0, 1)]) + bytes([0, 0])
            x += n
        out += b"\0\0"
    if rng.random() < 0.8:
        out += b"\0\1"
    return bytes(out)


def random_own_bmp():
    w = rng.choice([rng.randint(1, 40), rng.randint(1, 1000)])
    h = rng.choice([rng.randint(1, 40), rng.randint(1, 300)])
    hsize = rng.choice([12, 40, 40, 40, 64, 108, 124])
    padding = 3 if hsize == 12 else 4
    topdown = hsize != 12 and rng.random() < 0.25
    kind = rng.random()
    kw = dict(hsize=hsize, topdown=topdown)
    if kind < 0.35:
        bits = rng.choice([1, 4, 8])
        n = 1 << bits
        if hsize != 12 and rng.random() < 0.4:
            n = rng.randint(1, 1 << bits)  # a short palette, the colors field says so
            kw["colors"] = n
        pal = random_palette(n, padding)
        comp = 0
        if hsize != 12 and bits in (4, 8) and rng.random() < 0.5:
            comp = 2 if bits == 4 else 1
            if rng.random() < 0.05:
                comp = 3 - comp  # RLE8 in a 4-bit file and the other way round
            data = rle_stream(w, h, comp == 2)
        else:
            data = rows(w, h, bits)
        blob = write_bmp(w, h, bits, data, pal, compression=comp, **kw)
    elif kind < 0.5:
        bits = 16
        if hsize != 12 and rng.random() < 0.6:
            m = rng.choice([(0xF800, 0x7E0, 0x1F, 0), (0x7C00, 0x3E0, 0x1F, 0), (0xF00, 0xF0, 0xF, 0)])
            kw.update(compression=3, masks=m, masks_after=hsize == 40)
        blob = write_bmp(w, h, bits, rows(w, h, bits), **kw)
    elif kind < 0.65:
        blob = write_bmp(w, h, 24, rows(w, h, 24), **kw)
    else:
        if hsize != 12 and rng.random() < 0.6:
            m = rng.choice([(0xFF0000, 0xFF00, 0xFF, 0), (0xFF000000, 0xFF0000, 0xFF00, 0),
                            (0xFF000000, 0xFF0000, 0xFF00, 0xFF), (0xFF, 0xFF00, 0xFF0000, 0xFF000000),
                            (0xFF0000, 0xFF00, 0xFF, 0xFF000000), (0, 0, 0, 0), (0x3FF00000, 0xFFC00, 0x3FF, 0)])
            if hsize == 40 and m[3]:
                m = (m[0], m[1], m[2], 0)
            kw.update(compression=3, masks=m, masks_after=hsize == 40)
        blob = write_bmp(w, h, 32, rows(w, h, 32), **kw)
    r = rng.random()
    if r < 0.06:
        blob = blob[:rng.randint(2, len(blob))]  # truncated
    elif r < 0.09:
        blob = blob[:10] + struct.pack("<I", rng.choice([0, 14 + hsize])) + blob[14:]  # offset 0 / right after header
    elif r < 0.11:
        blob = blob[:30] + struct.pack("<I", rng.choice([4, 5, 6, 7])) + blob[34:] if hsize != 12 else blob
    return blob


def random_pillow_bmp():
    w, h = rng.choice([(rng.randint(1, 40), rng.randint(1, 40)), (rng.randint(1, 1000), rng.randint(1, 300))])
    a = np.frombuffer(rand_bytes(48), dtype=np.uint8).reshape(4, 4, 3)
    a = np.kron(a, np.ones((h // 4 + 1, w // 4 + 1, 1), dtype=np.uint8))[:h, :w]
    im = Image.fromarray(a)
    mode = rng.choice(["1", "L", "P", "RGB", "RGBA"])
    im = im.quantize(rng.randint(2, 256)) if mode == "P" else im.convert(mode)
    path = os.path.join(corpus.dir, "pillow.bmp")
    im.save(path)
    with open(path, "rb") as f:
        return f.read()


def random_magick_bmp():
    w, h = rng.randint(1, 300), rng.randint(1, 200)
    a = np.frombuffer(rand_bytes(48), dtype=np.uint8).reshape(4, 4, 3)
    a = np.kron(a, np.ones((h // 4 + 1, w // 4 + 1, 1), dtype=np.uint8))[:h, :w]
    src = os.path.join(corpus.dir, "magick.png")
    Image.fromarray(a).save(src)
    out = os.path.join(corpus.dir, "magick.bmp")
    fmt = rng.choice(["BMP2:", "BMP3:", "BMP:"])
    opts = rng.choice([[], ["-colors", "16", "-compress", "RLE"], ["-colors", "200", "-compress", "RLE"],
                       ["-type", "Palette"], ["-colors", "2"], ["-colorspace", "Gray"], ["-alpha", "set"]])
    subprocess.run(["convert", src] + opts + [fmt + out], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    with open(out, "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------
# The runs

def have_magick():
    if not shutil.which("convert"):
        return False
    p = subprocess.run(["convert", "-version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return p.returncode == 0 and b"ImageMagick" in p.stdout


magick = have_magick()
if not magick:
    skipped("ImageMagick-written BMPs", "ImageMagick's convert is not installed")
for i in range(corpus.count):
    kind = ["pillow", "own", "own", "magick"][i % 4]
    if kind == "magick" and not magick:
        kind = "own"
    data = {"pillow": random_pillow_bmp, "own": random_own_bmp, "magick": random_magick_bmp}[kind]()
    corpus.add(i, kind, data, preprocess=i % 10 == 0)
corpus.report("BMPs")
finish("test_bmp")
