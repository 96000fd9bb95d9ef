#!/usr/bin/env python3
"""The GIF decoder against Pillow: `clip decode` must give the bytes of
Image.open(f).convert("RGB") for every file Pillow opens, and refuse the
others (with a "clip: " message). A random corpus each run (seed
CLIP_GIF_SEED, size CLIP_GIF_COUNT):
- written by Pillow: modes P (quantized, 2..256 colours), L and RGB, with
  and without transparency, interlaced or not, several frames (save_all)
  with their own palettes, sizes 1..1000;
- written here with our own LZW encoder, for what Pillow's writer never
  makes: minimum code sizes 2..8 (and the odd 0, 1, 9..13), clear codes at
  random, a full table kept without a clear (deferred clear), random
  sub-block lengths, interlacing, frames inside, across and outside the
  logical screen, zero-sized frames, local palettes and no palette at all,
  gray-ramp palettes, palettes shorter than the indices, extensions before
  the image, a missing trailer, truncations, junk after the end code, an
  end code before the frame is full (with and without 64 KiB after it);
and, for a subset, `clip preprocess` against Hugging Face's crop."""
import os
import struct

import numpy as np

from common import PillowCorpus, finish

corpus = PillowCorpus("gif", 300)  # skipped without Pillow; CLIP_GIF_SEED, CLIP_GIF_COUNT
rng = corpus.rng
from PIL import Image  # noqa: E402


# ---------------------------------------------------------------------------
# Our own GIF writer

def lzw(indices, bits, clear_prob=0.0, deferred=False, end_code=True):
    """The LZW code stream for indices at minimum code size bits: clear codes
    at random (clear_prob), and when the table is full unless deferred."""
    clear, end = 1 << bits, (1 << bits) + 1
    out = bytearray()
    state = {"acc": 0, "n": 0, "size": bits + 1}

    def emit(code):
        state["acc"] |= code << state["n"]
        state["n"] += state["size"]
        while state["n"] >= 8:
            out.append(state["acc"] & 255)
            state["acc"] >>= 8
            state["n"] -= 8

    def reset():
        emit(clear)
        state["size"] = bits + 1
        return {}, end + 1

    table, nxt = reset()
    w = None
    for k in indices:
        if w is None:
            w = k
            continue
        if (w, k) in table:
            w = table[(w, k)]
            continue
        emit(w)
        if nxt < 4096:
            table[(w, k)] = nxt
            # the decoder adds this entry one code later, and widens its codes at the same point
            if nxt == 1 << state["size"] and state["size"] < 12:
                state["size"] += 1
            nxt += 1
        elif not deferred:
            table, nxt = reset()
        if clear_prob and rng.random() < clear_prob:
            table, nxt = reset()
        w = k
    if w is not None:
        emit(w)
    if end_code:
        emit(end)
    if state["n"]:
        out.append(state["acc"] & 255)
    return bytes(out)


def sub_blocks(data, maxlen=255):
    out = bytearray()
    i = 0
    while i < len(data):
        n = rng.randint(1, maxlen)
        out.append(len(data[i:i + n]))
        out += data[i:i + n]
        i += n
    return bytes(out) + b"\0"


def palette_bytes(colors):
    """A palette field: colors (a list of RGB triples) padded to a power of two; returns (bits - 1, bytes)."""
    n = 1
    while (1 << n) < len(colors):
        n += 1
    colors = colors + [(0, 0, 0)] * ((1 << n) - len(colors))
    return n - 1, bytes(c for rgb in colors for c in rgb)


def interlaced_rows(h):
    return list(range(0, h, 8)) + list(range(4, h, 8)) + list(range(2, h, 4)) + list(range(1, h, 2))


def write_gif(screen, gpal, frames, before=b"", trailer=True, version=b"GIF89a"):
    out = bytearray(version + struct.pack("<HH", *screen))
    if gpal is not None:
        n, pb = palette_bytes(gpal)
        out += bytes([0x80 | 0x70 | n, 0, 0]) + pb
    else:
        out += bytes([0x70, 0, 0])
    out += before
    for f in frames:
        if f.get("transparency") is not None:
            out += b"!\xf9\x04" + bytes([1 | (rng.randint(0, 3) << 2), 0, 0, f["transparency"]]) + b"\0"
        flags = 0x40 if f["interlace"] else 0
        lp = b""
        if f.get("lpal") is not None:
            n, lp = palette_bytes(f["lpal"])
            flags |= 0x80 | n
        out += b"," + struct.pack("<HHHH", f["x"], f["y"], f["w"], f["h"]) + bytes([flags]) + lp
        idx = f["indices"]
        rows = interlaced_rows(idx.shape[0]) if f["interlace"] else range(idx.shape[0])
        seq = [int(v) for r in rows for v in idx[r]]
        out += bytes([f["bits"]]) + sub_blocks(lzw(seq, f["bits"], f.get("clear_prob", 0), f.get("deferred", False),
                                                    f.get("end_code", True)), f.get("maxblock", 255))
    if trailer:
        out += b";"
    return bytes(out)


def random_colors(n):
    if rng.random() < 0.1:
        return [(i, i, i) for i in range(n)]  # the gray ramp: Pillow opens mode L
    return [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(n)]


def random_extensions():
    out = b""
    for _ in range(rng.randint(0, 3)):
        kind = rng.randrange(4)
        if kind == 0:
            out += b"!\xfe" + sub_blocks(bytes(rng.randrange(32, 127) for _ in range(rng.randint(1, 300))))
        elif kind == 1:
            out += b"!\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", rng.randrange(65536)) + b"\0"
        elif kind == 2:
            out += b"!\x01\x0c" + bytes(12) + sub_blocks(b"hello")
        else:
            out += b"!\xf9\x04\x00\x05\x00\x00\x00"
    return out


def random_own_gif():
    sw, sh = rng.choice([(rng.randint(1, 64), rng.randint(1, 64)), (rng.randint(1, 400), rng.randint(1, 400))])
    frames = []
    for i in range(rng.choice([1, 1, 1, 2, 3])):
        place = rng.random()
        w, h = rng.randint(1, sw + 8), rng.randint(1, sh + 8)
        if place < 0.5:
            x, y = 0, 0
            w, h = sw, sh
        elif place < 0.75:
            x, y = rng.randint(0, sw), rng.randint(0, sh)  # inside or across the screen's edge
        elif place < 0.9:
            x, y = rng.randint(sw, sw + 50), rng.randint(sh, sh + 50)  # outside the screen
        else:
            x, y = rng.choice([0, rng.randint(0, sw)]), rng.randint(0, sh)
            w, h = rng.choice([(0, h), (w, 0), (0, 0)])  # empty
        bits = rng.choice([2, 2, 3, 4, 5, 6, 7, 8, 8, 8]) if rng.random() < 0.95 else rng.choice([0, 1, 9, 12, 13])
        top = min(1 << bits, 256)
        ncolors = rng.randint(1, top)
        if rng.random() < 0.3:
            hh, ww = max(h, 1), max(w, 1)
            blocks = np.array([rng.randrange(ncolors) for _ in range(16)]).reshape(4, 4)
            idx = np.kron(blocks, np.ones((hh // 4 + 1, ww // 4 + 1), dtype=int))[:hh, :ww]
        else:
            idx = np.array([rng.randrange(ncolors) for _ in range(max(w, 1) * max(h, 1))]).reshape(max(h, 1), max(w, 1))
        if w == 0 or h == 0:
            idx = idx[:h, :w] if rng.random() < 0.5 else idx
        f = dict(x=x, y=y, w=w, h=h, bits=bits, indices=idx, interlace=rng.random() < 0.3,
                 clear_prob=rng.choice([0, 0, 0.001, 0.05]), deferred=rng.random() < 0.3,
                 maxblock=rng.choice([255, 255, 1, 7, 100]), end_code=rng.random() < 0.95)
        if rng.random() < 0.3:
            f["lpal"] = random_colors(rng.randint(1, 256))
        if rng.random() < 0.25:
            f["transparency"] = rng.randrange(256)
        frames.append(f)
    gpal = random_colors(rng.randint(1, 256)) if rng.random() < 0.8 else None
    data = write_gif((sw, sh), gpal, frames, random_extensions(), trailer=rng.random() < 0.85,
                     version=rng.choice([b"GIF89a", b"GIF87a"]))
    r = rng.random()
    if r < 0.08:
        data = data[:rng.randint(6, len(data))]  # truncated
    elif r < 0.12:
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))  # junk after it
    return data


def random_pillow_gif():
    w, h = rng.choice([(rng.randint(1, 40), rng.randint(1, 40)), (rng.randint(1, 1000), rng.randint(1, 300))])
    a = np.array([rng.randrange(256) for _ in range(48)], dtype=np.uint8).reshape(4, 4, 3)
    a = np.kron(a, np.ones((h // 4 + 1, w // 4 + 1, 1), dtype=np.uint8))[:h, :w]
    noise = np.random.default_rng(rng.randrange(1 << 30)).integers(0, 40, a.shape, dtype=np.uint8)
    im = Image.fromarray(a + noise)
    mode = rng.choice(["P", "P", "L", "RGB"])
    if mode == "P":
        im = im.quantize(rng.randint(2, 256))
    elif mode == "L":
        im = im.convert("L")
    kw = {}
    if rng.random() < 0.3:
        kw["transparency"] = rng.randrange(2)
    if rng.random() < 0.5:
        kw["interlace"] = rng.random() < 0.5
    if rng.random() < 0.25:
        more = [Image.fromarray(np.roll(np.asarray(im.convert("RGB")), k * 7, axis=1)).quantize(rng.randint(2, 64))
                for k in range(1, rng.randint(2, 4))]
        kw.update(save_all=True, append_images=more, optimize=False)
    path = os.path.join(corpus.dir, "pillow.gif")
    im.save(path, **kw)
    with open(path, "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------
# The runs

for i in range(corpus.count):
    kind = "pillow" if i % 3 == 0 else "own"
    corpus.add(i, kind, random_pillow_gif() if kind == "pillow" else random_own_gif(), preprocess=i % 10 == 0)
# an end code before the frame is full: Pillow reads on when the file has
# more than its 64 KiB chunk (here a big second frame), and fails at its end
for i in range(4):
    w = h = 100
    bits = rng.choice([2, 8])
    pal = [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(256)]
    seq = [rng.randrange(1 << min(bits, 8)) for _ in range(rng.randint(1, w * h - 1))]
    data = bytearray(b"GIF89a" + struct.pack("<HH", w, h) + bytes([0xF7, 0, 0]) + bytes(c for p in pal for c in p))
    data += b"," + struct.pack("<HHHHB", 0, 0, w, h, 0) + bytes([bits]) + sub_blocks(lzw(seq, bits))
    if i:
        data += b"," + struct.pack("<HHHHB", 0, 0, 300, 300, 0) + b"\x08" + sub_blocks(
            lzw([rng.randrange(256) for _ in range(300 * 300)], 8))
    data += b";"
    corpus.add(f"early-end{i}", "early end code", data)
corpus.report("GIFs")
finish("test_gif")
