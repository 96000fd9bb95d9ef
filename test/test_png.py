#!/usr/bin/env python3
"""The PNG decoder against Pillow: `clip decode` must give exactly the bytes
of Image.open(f).convert("RGB"), and refuse exactly the files Pillow
refuses. A random corpus each run (CLIP_PNG_SEED, CLIP_PNG_COUNT): files
saved by Pillow's writer (modes 1, L, LA, P with and without transparency,
RGB, RGBA, I;16; every compress level) and files written here (every colour
type x bit depth x interlace, every filter type, several IDAT chunks,
ancillary chunks, palettes shorter than the indices, tRNS), the corner cases
of the stream's end (extra data, a bad Adler-32, no IEND, truncation, CRC
errors), an APNG's default image, and `clip preprocess` against
common.crop_array for a subset."""
import os
import random
import struct
import warnings
import zlib

import numpy as np

from common import OUT, blob_for, check, crop_array, finish, need_pillow, run

need_pillow("test_png")
from PIL import Image, PngImagePlugin  # noqa: E402

warnings.simplefilter("ignore")  # Pillow's advice on palettes with transparency

SEED = int(os.environ.get("CLIP_PNG_SEED", "20261202"))
COUNT = int(os.environ.get("CLIP_PNG_COUNT", "120"))
rng = random.Random(SEED)
nrng = np.random.default_rng(SEED)
WEIGHTS = blob_for(224)


# ---------------------------------------------------------------------------
# Comparing with Pillow


def pillow_rgb(path):
    try:
        with Image.open(path) as im:
            return im.convert("RGB").tobytes(), None
    except Exception as e:  # Pillow refuses: any exception
        return None, f"{type(e).__name__}: {e}"


def clip_rgb(path):
    out = os.path.join(OUT, "png-ours.ppm")
    rc, _, err = run(["decode", path, out])
    if rc != 0:
        return None, err.strip()
    with open(out, "rb") as f:
        data = f.read()
    # binary PPM: P6\n<w> <h>\n255\n then the pixels
    parts = data.split(b"\n", 3)
    return parts[3], None


def same_as_pillow(path):
    """(ok, what): clip and Pillow agree on the file (same bytes, or both refuse)."""
    want, perr = pillow_rgb(path)
    got, cerr = clip_rgb(path)
    if want is None and got is None:
        return cerr.startswith("clip: "), f"both refuse ({perr} | {cerr})"
    if want is None:
        return False, f"clip decodes what Pillow refuses ({perr})"
    if got is None:
        return False, f"clip refuses ({cerr})"
    if got != want:
        a = np.frombuffer(got, np.uint8)
        b = np.frombuffer(want, np.uint8)
        if a.shape != b.shape:
            return False, f"size differs ({a.size} vs {b.size} bytes)"
        return False, f"{int((a != b).sum())} bytes differ"
    return True, "identical"


def save_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


# ---------------------------------------------------------------------------
# A small PNG writer: every colour type, bit depth, filter, interlace


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def filter_rows(raw, bpp, filters):
    """raw: (rows, rowbytes) uint8; returns the filtered bytes with a filter
    byte per row (filters[y] in 0..4)."""
    out = []
    prev = np.zeros(raw.shape[1], np.int32)
    for y in range(raw.shape[0]):
        cur = raw[y].astype(np.int32)
        left = np.concatenate([np.zeros(bpp, np.int32), cur[:-bpp]]) if raw.shape[1] > bpp else np.zeros_like(cur)
        if raw.shape[1] <= bpp:
            left = np.zeros_like(cur)
        upleft = np.concatenate([np.zeros(bpp, np.int32), prev[:-bpp]]) if raw.shape[1] > bpp else np.zeros_like(cur)
        f = filters[y]
        if f == 0:
            pred = np.zeros_like(cur)
        elif f == 1:
            pred = left
        elif f == 2:
            pred = prev
        elif f == 3:
            pred = (left + prev) >> 1
        else:
            p = left + prev - upleft
            pa, pb, pc = np.abs(p - left), np.abs(p - prev), np.abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        out.append(bytes([f]) + ((cur - pred) & 255).astype(np.uint8).tobytes())
        prev = cur
    return b"".join(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
COMBOS = [(0, 1), (0, 2), (0, 4), (0, 8), (0, 16), (2, 8), (2, 16), (3, 1), (3, 2), (3, 4), (3, 8), (4, 8),
          (4, 16), (6, 8), (6, 16)]


def pack_rows(samples, depth):
    """samples: (h, w*channels) ints < 2**depth -> (h, rowbytes) uint8"""
    h, n = samples.shape
    if depth == 8:
        return samples.astype(np.uint8)
    if depth == 16:
        return samples.astype(">u2").view(np.uint8).reshape(h, n * 2)
    per = 8 // depth
    padded = np.zeros((h, (n + per - 1) // per * per), np.uint8)
    padded[:, :n] = samples
    padded = padded.reshape(h, -1, per)
    out = np.zeros(padded.shape[:2], np.uint8)
    for k in range(per):
        out |= (padded[:, :, k] << (8 - depth * (k + 1))).astype(np.uint8)
    return out


def write_png(w, h, ctype, depth, samples, interlace=0, filters="random", level=6, idat_split=1, before=b"",
              after=b"", plte=None, trns=None, stream_edit=None, iend=True):
    """samples: (h, w, channels) array. Returns the file's bytes."""
    ch = CHANNELS[ctype]
    bits = ch * depth
    bpp = max(1, bits // 8)
    data = b""
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for x0, y0, dx, dy in passes:
        sub = samples[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        raw = pack_rows(sub.reshape(sub.shape[0], -1), depth)
        fl = [rng.randrange(5) if filters == "random" else filters for _ in range(raw.shape[0])]
        data += filter_rows(raw, bpp, fl)
    z = zlib.compress(data, level)
    if stream_edit:
        z = stream_edit(z)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, interlace))
    out += before
    if plte is not None:
        out += chunk(b"PLTE", plte)
    if trns is not None:
        out += chunk(b"tRNS", trns)
    cuts = sorted(rng.randrange(len(z) + 1) for _ in range(idat_split - 1))
    prev = 0
    for c in cuts + [len(z)]:
        out += chunk(b"IDAT", z[prev:c])
        prev = c
    out += after
    if iend:
        out += chunk(b"IEND", b"")
    return out


def random_samples(w, h, ch, depth, smooth=None):
    top = (1 << depth) - 1
    if smooth is None:
        smooth = rng.random() < 0.5
    if smooth:  # gradients compress and exercise long matches
        yy, xx = np.mgrid[0:h, 0:w]
        base = (xx * rng.randrange(1, 5) + yy * rng.randrange(1, 5))[:, :, None] + np.arange(ch)[None, None, :] * 37
        return (base % (top + 1)).astype(np.int64)
    return nrng.integers(0, top + 1, (h, w, ch), dtype=np.int64)


ANCILLARY = [chunk(b"gAMA", struct.pack(">I", 45455)), chunk(b"sBIT", b"\x05\x05\x05"),
             chunk(b"pHYs", struct.pack(">IIB", 2835, 2835, 1)), chunk(b"tEXt", b"Comment\x00hello"),
             chunk(b"prVt", b"private data"), chunk(b"bKGD", b"\x00\x01\x00\x02\x00\x03"),
             chunk(b"tIME", b"\x07\xea\x0c\x02\x04\x00\x00"), chunk(b"zTXt", b"k\x00\x00" + zlib.compress(b"text"))]


# ---------------------------------------------------------------------------
# 1. Pillow's writer: random modes, sizes, compress levels

def random_size(big=1500):
    r = rng.random()
    if r < 0.15:
        return rng.randrange(1, 4), rng.randrange(1, 4)
    if r < 0.85:
        return rng.randrange(1, 120), rng.randrange(1, 120)
    return rng.randrange(1, big), rng.randrange(1, big // 3)


bad = []
made = 0
for i in range(COUNT):
    w, h = random_size()
    mode = rng.choice(["1", "L", "LA", "P", "Ptrns", "Pbits", "RGB", "RGBA", "I;16"])
    arr = random_samples(w, h, 3, 8).astype(np.uint8)
    im = Image.fromarray(arr, "RGB")
    kw = {"compress_level": rng.randrange(10)}
    if rng.random() < 0.2:
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", "random corpus")
        info.add_text("zipped", "x" * 200, zip=True)
        kw["pnginfo"] = info
        kw["dpi"] = (72, 72)
    if mode == "I;16":
        im = Image.fromarray(nrng.integers(0, rng.choice([300, 65536]), (h, w)).astype(np.uint16))
    elif mode.startswith("P"):
        im = im.convert("P", palette=Image.ADAPTIVE, colors=rng.randrange(2, 257))
        if mode == "Ptrns":
            kw["transparency"] = rng.choice([0, 1, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20)))])
        if mode == "Pbits":
            im = im.point(lambda v: v % 16)
            kw["bits"] = rng.choice([1, 2, 4])
    else:
        im = im.convert(mode)
    path = os.path.join(OUT, f"png-pil-{i}.png")
    im.save(path, **kw)
    ok, what = same_as_pillow(path)
    made += 1
    if not ok:
        bad.append((path, mode, w, h, what))
check(not bad, f"{made} random PNGs saved by Pillow decode byte-identical {bad[:3]}")

# ---------------------------------------------------------------------------
# 2. Written here: every colour type x bit depth x interlace, all filters

bad = []
made = 0
for ctype, depth in COMBOS:
    for interlace in (0, 1):
        for k in range(max(2, COUNT // 40)):
            w, h = random_size(400) if k else (rng.randrange(1, 12), rng.randrange(1, 12))
            s = random_samples(w, h, CHANNELS[ctype], depth)
            plte = trns = None
            if ctype == 3:
                n = rng.randrange(1, 1 << depth + 1) if depth < 8 else rng.randrange(1, 257)
                n = min(n, 256)
                plte = bytes(rng.randrange(256) for _ in range(3 * n))  # indices past n: Pillow's gray ramp
                if rng.random() < 0.5:
                    trns = bytes(rng.randrange(256) for _ in range(rng.randrange(1, n + 1)))
            elif rng.random() < 0.3:
                trns = bytes(rng.randrange(256) for _ in range(2 if ctype == 0 else 6)) if ctype in (0, 2) else None
            before = b"".join(rng.sample(ANCILLARY, rng.randrange(len(ANCILLARY) + 1)))
            after = b"".join(rng.sample(ANCILLARY, rng.randrange(3)))
            filters = "random" if rng.random() < 0.7 else rng.randrange(5)
            data = write_png(w, h, ctype, depth, s, interlace, filters, rng.randrange(10), rng.randrange(1, 6),
                             before, after, plte, trns)
            path = save_bytes(os.path.join(OUT, f"png-own-{ctype}-{depth}-{interlace}-{k}.png"), data)
            ok, what = same_as_pillow(path)
            made += 1
            if not ok:
                bad.append((os.path.basename(path), w, h, what))
check(not bad, f"{made} PNGs written here (15 colour type/depth pairs x interlace, filters 0-4, "
      f"split IDATs, ancillary chunks) decode byte-identical {bad[:3]}")

# ---------------------------------------------------------------------------
# 3. The edges: what Pillow accepts and refuses around the image data


def edge(name, data):
    path = save_bytes(os.path.join(OUT, f"png-edge-{name}.png"), data)
    return same_as_pillow(path)


s = random_samples(40, 30, 3, 8, smooth=False)
base = write_png(40, 30, 2, 8, s, idat_split=1)
z_ok = zlib.compress(filter_rows(s.reshape(30, -1).astype(np.uint8), 3, [0] * 30))


def with_stream(z, parts=1, after=b"", iend=True, idat_crc_bad=False):
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 40, 30, 8, 2, 0, 0, 0))
    cuts = [len(z) * k // parts for k in range(parts + 1)]
    for a, b in zip(cuts, cuts[1:]):
        c = chunk(b"IDAT", z[a:b])
        if idat_crc_bad:
            c = c[:-4] + b"\0\0\0\0"
        out += c
    return out + after + (chunk(b"IEND", b"") if iend else b"")


bad_adler = z_ok[:-4] + bytes(x ^ 0xFF for x in z_ok[-4:])
cases = {
    "plain": with_stream(z_ok),
    "extra-data-after-stream": with_stream(z_ok + b"garbage after the zlib stream"),
    "extra-stream-data-in-next-idat": with_stream(z_ok) .replace(chunk(b"IEND", b""), chunk(b"IDAT", b"junk") + chunk(b"IEND", b"")),
    "bad-adler": with_stream(bad_adler),
    "bad-adler-in-own-idat": with_stream(bad_adler[:-4]) .replace(chunk(b"IEND", b""), chunk(b"IDAT", bad_adler[-4:]) + chunk(b"IEND", b"")),
    "no-adler": with_stream(z_ok[:-4]),
    "no-iend": with_stream(z_ok, iend=False),
    "garbage-after-iend": with_stream(z_ok) + b"trailing junk",
    "idat-crc-bad": with_stream(z_ok, parts=3, idat_crc_bad=True),
    "truncated-stream": with_stream(z_ok[:len(z_ok) // 2]),
    "truncated-file-in-idat": with_stream(z_ok)[:60 + len(z_ok) // 2],
    "truncated-after-idat": with_stream(z_ok, after=chunk(b"tEXt", b"a\x00b" * 50))[:-40],
    "short-phys-after-idat": with_stream(z_ok, after=chunk(b"pHYs", b"\0\0")),
    "empty-idat-chunks": with_stream(z_ok, parts=1).replace(b"IDAT", b"IDAT", 1)[:33] + chunk(b"IDAT", b"") + with_stream(z_ok)[33:],
    "stored-blocks": with_stream(zlib.compress(filter_rows(s.reshape(30, -1).astype(np.uint8), 3, [0] * 30), 0)),
    "bad-crc-ancillary-before-idat": base.replace(b"IDAT", b"IDAT", 1)[:33] + chunk(b"tEXt", b"a\x00b")[:-1] + b"\0" + base[33:],
    "bad-crc-ancillary-after-idat": base[:-12] + chunk(b"tEXt", b"a\x00b")[:-1] + b"\0" + base[-12:],
}
# Pillow hands zlib 64 KB pieces of an IDAT chunk: an Adler-32 in the piece
# after the one that completes the image is never checked
for name, w, h in (("bad-adler-in-next-64k-piece", 808, 81), ("bad-adler-straddling-64k-pieces", 850, 77)):
    raw = b"".join(b"\0" + bytes([(y * 7 + x) & 255 for x in range(w)]) for y in range(h))
    # one stored block: the Adler-32 starts at byte 65536 (or 65534) of the stream
    zz = b"\x78\x01\x01" + struct.pack("<HH", len(raw), len(raw) ^ 0xFFFF) + raw
    zz += bytes(x ^ 0x55 for x in struct.pack(">I", zlib.adler32(raw)))
    cases[name] = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + \
        chunk(b"IDAT", zz) + chunk(b"IEND", b"")
# Pillow's text limits: 1 MB inflated per zTXt / iTXt / iCCP chunk, 64 MB of text in all
mb = zlib.compress(b"a" * (1 << 20), 9)
mb1 = zlib.compress(b"a" * ((1 << 20) + 1), 9)
chars = zlib.compress(("\u00e9" * (1 << 19)).encode(), 9)  # 512 K characters, 1 MB of UTF-8
cases["ztxt-1mb"] = base[:33] + chunk(b"zTXt", b"k\0\0" + mb) + base[33:]
cases["ztxt-1mb-and-1"] = base[:33] + chunk(b"zTXt", b"k\0\0" + mb1) + base[33:]
cases["itxt-1mb-and-1"] = base[:33] + chunk(b"iTXt", b"k\0\1\0en\0\xff\0" + mb1) + base[33:]
cases["iccp-1mb-and-1"] = base[:33] + chunk(b"iCCP", b"icc\0\0" + mb1) + base[33:]
cases["ztxt-after-idat-1mb-and-1"] = base[:-12] + chunk(b"zTXt", b"k\0\0" + mb1) + base[-12:]
for n in (63, 65):
    cases[f"ztxt-{n}-mb"] = base[:33] + b"".join(chunk(b"zTXt", b"k%d\0\0" % i + mb) for i in range(n)) + base[33:]
for n in (127, 129):
    cases[f"itxt-{n}-x-512k-chars"] = base[:33] + b"".join(
        chunk(b"iTXt", b"k%d\0\1\0en\0t\0" % i + chars) for i in range(n)) + base[33:]
pal_s = nrng.integers(0, 256, (20, 20, 1))
cases["palette-4-entries-indices-to-255"] = write_png(20, 20, 3, 8, pal_s, plte=bytes(range(12)))
cases["palette-missing"] = write_png(20, 20, 3, 8, pal_s)
cases["palette-not-multiple-of-3"] = write_png(20, 20, 3, 8, pal_s, plte=bytes(range(200, 256)) + b"\x01")
cases["palette-after-idat-only"] = write_png(20, 20, 3, 8, pal_s, after=chunk(b"PLTE", bytes(range(90))))
cases["palette-257-entries"] = write_png(20, 20, 3, 8, pal_s, plte=bytes(771))
cases["plte-in-rgb"] = write_png(20, 20, 2, 8, random_samples(20, 20, 3, 8), plte=bytes(range(30)))
cases["gray16-trns"] = write_png(20, 20, 0, 16, random_samples(20, 20, 1, 16), trns=b"\x01\x00")
cases["short-trns-gray"] = write_png(20, 20, 0, 8, random_samples(20, 20, 1, 8), trns=b"\x01")
cases["interlace-method-2"] = write_png(9, 9, 2, 8, random_samples(9, 9, 3, 8), interlace=1).replace(
    chunk(b"IHDR", struct.pack(">IIBBBBB", 9, 9, 8, 2, 0, 0, 1)), chunk(b"IHDR", struct.pack(">IIBBBBB", 9, 9, 8, 2, 0, 0, 2)))
bad = []
for name, data in cases.items():
    ok, what = edge(name, data)
    if os.environ.get("CLIP_PNG_VERBOSE"):
        print(f"     {name}: {what}")
    if not ok:
        bad.append((name, what))
check(not bad, f"{len(cases)} edge cases (stream end, Adler-32, 64 KB pieces, IEND, CRCs, truncation, palettes, text limits) as Pillow {bad}")

# ---------------------------------------------------------------------------
# 4. APNG: the default image (part of the animation, and not)

bad = []
frames = [Image.fromarray(random_samples(50, 40, 3, 8, smooth=True).astype(np.uint8) + 17 * k) for k in range(3)]
for default in (False, True):
    path = os.path.join(OUT, f"png-apng-{int(default)}.png")
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, default_image=default)
    ok, what = same_as_pillow(path)
    if not ok:
        bad.append((path, what))
# an fcTL before IDAT that makes the default image a region of the canvas
# (Pillow decodes it into that region; interlaced, at the top left corner)
for ctype, depth in [(2, 8), (3, 4), (4, 16), (0, 1), (6, 8)]:
    for interlace in (0, 1):
        W, H = rng.randrange(2, 40), rng.randrange(2, 40)
        w, h = rng.randrange(1, W + 1), rng.randrange(1, H + 1)
        x, y = rng.randrange(W - w + 1), rng.randrange(H - h + 1)
        fctl = chunk(b"acTL", struct.pack(">II", 1, 0)) + chunk(b"fcTL", struct.pack(">IIIIIHHBB", 0, w, h, x, y, 1, 1, 0, 0))
        data = write_png(w, h, ctype, depth, random_samples(w, h, CHANNELS[ctype], depth), interlace, before=fctl,
                         plte=bytes(range(48)) if ctype == 3 else None)
        data = data.replace(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, interlace)),
                            chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, depth, ctype, 0, 0, interlace)))
        path = save_bytes(os.path.join(OUT, f"png-apng-region-{ctype}-{interlace}.png"), data)
        ok, what = same_as_pillow(path)
        if not ok:
            bad.append((path, what))
check(not bad, f"APNG default images (and default-image regions) as Pillow gives frame 0 {bad}")

# ---------------------------------------------------------------------------
# 5. clip preprocess on a subset against Hugging Face's crop

bad = []
paths = [os.path.join(OUT, f"png-pil-{i}.png") for i in range(0, COUNT, max(1, COUNT // 12))]
paths += [os.path.join(OUT, "png-apng-0.png"), os.path.join(OUT, "png-own-6-16-1-1.png")]
for path in paths:
    if pillow_rgb(path)[0] is None:
        continue
    out = os.path.join(OUT, "png-crop.ppm")
    rc, _, err = run(["preprocess", WEIGHTS, path, out])
    want = crop_array(path, 224)
    if rc != 0:
        bad.append((path, err.strip()))
        continue
    got = np.asarray(Image.open(out).convert("RGB"))
    if got.shape != want.shape or not np.array_equal(got, want):
        bad.append((path, "crop differs"))
check(not bad, f"clip preprocess of {len(paths)} PNGs equals Hugging Face's crop {bad[:3]}")

finish("test_png")
