#!/usr/bin/env python3
"""Seed corpora for the fuzzers, written to test/fuzz/seeds/<target>/:
small JPEGs made with cjpeg (every sampling option, progressive, restarts,
grayscale, arithmetic coding) and PPM/PGM variants, two of the test images;
small PNG, GIF, BMP files in every mode Pillow writes, WebP lossy and
lossless made with cwebp (and their bare VP8 bitstreams);
tokenizer strings from test/data/tokenizer_cases.json and the Unicode edge
cases; tiny valid weights files; labels files; small index folders."""
import json
import os
import random
import shutil
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
import export_weights as ew  # noqa: E402

DATA = os.path.join(ROOT, "test", "data")
OUT = os.path.join(HERE, "seeds")
rng = random.Random(5)


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


shutil.rmtree(OUT, ignore_errors=True)

# images
for i in range(40):
    w, h = rng.randint(1, 40), rng.randint(1, 40)
    ppm = b"P6\n%d %d\n255\n" % (w, h) + bytes(rng.randrange(256) for _ in range(w * h * 3))
    put("image", f"p6_{i}.ppm", ppm)
    if not shutil.which("cjpeg"):
        continue
    src = os.path.join(OUT, "tmp.ppm")
    with open(src, "wb") as f:
        f.write(ppm)
    opts = ["-quality", str(rng.randint(5, 95)), "-sample", rng.choice(["1x1", "2x1", "1x2", "2x2", "4x1", "3x2"])]
    if i % 3 == 0:
        opts.append("-progressive")
    if i % 4 == 1:
        opts += ["-restart", "1B"]
    if i % 5 == 2:
        opts = ["-grayscale"] + opts[:2]
    if i % 7 == 3:
        opts.append("-arithmetic")
    jpg = subprocess.run(["cjpeg"] + opts + [src], stdout=subprocess.PIPE).stdout
    put("image", f"j{i}.jpg", jpg)
if os.path.exists(os.path.join(OUT, "tmp.ppm")):
    os.unlink(os.path.join(OUT, "tmp.ppm"))
put("image", "p5.pgm", b"P5 3 2 255 \x00\x10\x20\x30\x40\x50")
put("image", "p3.ppm", b"P3\n# c\n2 1\n65535\n1 2 3 65535 0 7\n")
put("image", "p2.pgm", b"P2 2 2 15 0 5 10 15")
put("image", "p6_16.ppm", b"P6 1 1 1000 \x00\x01\x02\x03\x03\xe8")
for n in ("odd_17x9.jpg", "chelsea_gray.jpg"):
    shutil.copy(os.path.join(DATA, "images", n), os.path.join(OUT, "image", n))


# PNG, GIF, BMP (Pillow's writers) and WebP (cwebp): each format's own fuzzer
# gets them, and the image fuzzer a few of each
def small_images():
    from PIL import Image
    for i in range(12):
        w, h = rng.randint(1, 24), rng.randint(1, 24)
        rgba = Image.frombytes("RGBA", (w, h), bytes(rng.randrange(256) for _ in range(w * h * 4)))
        mode = ["RGB", "RGBA", "L", "LA", "P", "1"][i % 6]
        im = rgba.convert(mode) if mode != "P" else rgba.convert("RGB").quantize(rng.randint(2, 64))
        yield i, mode, im


try:
    import io
    for i, mode, im in small_images():
        for fmt, target, ok in (("PNG", "png", True), ("GIF", "gif", True), ("BMP", "bmp", mode != "LA")):
            if not ok:
                continue
            b = io.BytesIO()
            im.save(b, fmt, **({"interlace": i % 2} if fmt == "GIF" else {}))
            put(target, f"{target}{i}.{target}", b.getvalue())
            if i < 4:
                put("image", f"{target}{i}.{target}", b.getvalue())
    if shutil.which("cwebp"):
        for i, mode, im in small_images():
            src = os.path.join(OUT, "tmp.png")
            im.convert("RGBA").save(src)
            opts = ["-lossless"] if i % 2 else ["-q", str(rng.randint(5, 95))]
            webp = subprocess.run(["cwebp", "-quiet"] + opts + [src, "-o", "-"], stdout=subprocess.PIPE).stdout
            os.unlink(src)
            put("webp", f"webp{i}.webp", webp)
            if i < 4:
                put("image", f"webp{i}.webp", webp)
            # the bare VP8 bitstream of a lossy file, for the VP8 fuzzer
            pos = 12
            while pos + 8 <= len(webp):
                tag, n = webp[pos:pos + 4], struct.unpack("<I", webp[pos + 4:pos + 8])[0]
                if tag == b"VP8 ":
                    put("vp8", f"vp8_{i}.bin", webp[pos + 8:pos + 8 + n])
                pos += 8 + n + (n & 1)
except ImportError:
    pass  # no Pillow: the format fuzzers start from nothing

# tokenizer
texts = ["a photo of a cat", "A Photo Of A CAT!!", "Ελληνικά 中文 🐱", "İSTANBUL ΟΔΟΣ", "e\u0301\u0323 \u1100\u1161\u11a8",
         "it's we'll I'M", "<|endoftext|> <|startoftext|>x <|ENDOFTEXT|>", "a\u00a0b\u3000c\x1cd", "12345 ½ Ⅷ",
         "\xff\xfe", "x " * 100]
with open(os.path.join(DATA, "tokenizer_cases.json"), encoding="utf-8") as f:
    texts += [c["text"] for c in rng.sample(json.load(f)["cases"], 200)]
for i, t in enumerate(texts):
    put("tokenizer", f"t{i}", t.encode("utf-8", "surrogatepass"))
put("tokenizer", "invalid", b"a\xffb\xe2\x82 \xf0\x9f\x90 \xed\xa0\x80 \xc0\xaf")


# tiny weights files: every dimension small, a vocabulary of 4 merges
def tiny_blob(act=0, seed=0, gelu_eps=1e-5):
    r = random.Random(seed)
    merges = [("t", "h"), ("i", "n"), ("th", "e</w>"), ("a", "t</w>")]
    V = 512 + len(merges) + 2
    v = dict(image_size=16, patch_size=8, num_channels=3, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
             intermediate_size=16, hidden_act=["quick_gelu", "gelu"][act], layer_norm_eps=gelu_eps)
    t = dict(vocab_size=V, max_position_embeddings=8, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
             intermediate_size=16, hidden_act=["quick_gelu", "gelu"][act], layer_norm_eps=gelu_eps)
    top = dict(projection_dim=8)
    pp = dict(resize_mode=0, resize_h=16, resize_w=16, crop_h=16, crop_w=16, resample=3, mean=ew.OPENAI_MEAN,
              std=ew.OPENAI_STD, center_crop=1)
    pan = lambda k, o: k * ((o + 63) // 64 * 64)
    D, M, Dt, Mt, E, T = 8, 16, 8, 16, 8, 5
    count = (pan(3 * 64, D) + D + T * D + 2 * D + 2 * D + pan(D, 3 * D) + 3 * D + pan(D, D) + D + 2 * D + pan(D, M) + M
             + pan(M, D) + D + 2 * D + pan(D, E)
             + V * Dt + 8 * Dt + 2 * Dt + pan(Dt, 3 * Dt) + 3 * Dt + pan(Dt, Dt) + Dt + 2 * Dt + pan(Dt, Mt) + Mt
             + pan(Mt, Dt) + Dt + 2 * Dt + pan(Dt, E))
    weights = struct.pack(f"<{count}f", *[r.uniform(-0.5, 0.5) for _ in range(count)])
    mtext = "".join(f"{a} {b}\n" for a, b in merges).encode()
    woff = ew.align(ew.HEADER_SIZE)
    moff = ew.align(woff + len(weights))
    size = moff + len(mtext)
    head = ew.build_header(t, v, top, pp, 2.6592, V - 2, V - 1, woff, len(weights), moff, len(mtext), len(merges), size)
    # version 2 (all float32, tensors back to back): still read, and this layout needs no padding
    head = head[:4] + struct.pack("<I", 2) + head[8:]
    return head + b"\0" * (woff - len(head)) + weights + b"\0" * (moff - woff - len(weights)) + mtext


for i in range(3):
    put("blob", f"tiny{i}.bin", tiny_blob(act=i % 2, seed=i))

# labels
for i, lab in enumerate([b"cat\ndog\n", b"\xef\xbb\xbf a \r\n\r\n b\t\n", b"", b"\n\n\n", b"x\x00y\nz",
                         b"\xff\xfe\n\xc3\xa9t\xc3\xa9\n" + b"w" * 300]):
    put("labels", f"l{i}.txt", lab)

# index folders: index.json, files.tsv, failed.tsv, embeddings.npy joined by "\n@@\n" (fuzz_index.c)
def index_seed(rows, dim, paths, failed=()):
    meta = (f'{{\n  "format": "clip.c index",\n  "version": 1,\n  "fingerprint": "0123456789abcdef",\n'
            f'  "model": "m.bin",\n  "dim": {dim},\n  "rows": {rows},\n  "failed": {len(failed)}\n}}\n').encode()
    files = b"path\tsize\tmtime\n" + b"".join(b"%s\t%d\t1700000000.%09d\n" % (p, 10 + i, i) for i, p in enumerate(paths))
    bad = b"path\tsize\tmtime\treason\n" + b"".join(b"%s\t0\t0.000000000\t%s\n" % f for f in failed)
    d = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (rows, dim)
    d += " " * (64 - (10 + len(d) + 1) % 64) + "\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d.encode() + struct.pack(
        f"<{rows * dim}f", *[rng.uniform(-1, 1) for _ in range(rows * dim)])
    return b"\n@@\n".join([meta, files, bad, npy])


put("index", "empty.idx", index_seed(0, 4, []))
put("index", "three.idx", index_seed(3, 8, [b"a.jpg", b"b/c\\t.png", b"d\xe9.gif"], [(b"x.txt", b"not an image")]))
put("index", "wide.idx", index_seed(5, 33, [b"p%d" % i for i in range(5)]))
print(f"seeds written to {OUT}")
