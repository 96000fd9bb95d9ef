#!/usr/bin/env python3
"""The Python module python/clipc.py (ctypes over libclip.so) against the
command line: image features from paths, bytes and arrays, text features,
token ids, crops and zero-shot rankings must equal `clip embed`,
`clip tokenize`, `clip preprocess` and `clip ... --json` exactly (the
CLI's %.9g floats parsed back to float32: equal, not close). Also: several
images at once equal one at a time, errors carry the library's message,
four threads on one Model give the sequential numbers, and the library is
found through CLIPC_LIBRARY and in the source tree.

Builds the library itself (`make lib`); needs numpy only (Pillow for one
part: PIL images as input)."""
import os
import sys

try:
    import numpy as np
except ImportError:
    print("SKIPPED test_python: numpy is not installed (apt-get install python3-numpy); clipc needs it")
    sys.exit(77)

import json
import shutil
import struct
import subprocess
import threading
import zlib

from common import OUT, ROOT, check, finish, have_pillow, image, run, skipped, tiny_model, typed_model

W = os.path.join(OUT, "python")
shutil.rmtree(W, ignore_errors=True)
os.makedirs(W)
LIB = os.path.join(ROOT, "libclip.so")
MODULE_DIR = os.path.join(ROOT, "python")

# ---------------------------------------------------------------------------
# The library, built by the project's Makefile, and the module on it

p = subprocess.run(["make", "-s", "--no-print-directory", "-C", ROOT, "lib"], stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT)
if not check(p.returncode == 0 and os.path.exists(LIB), "make lib builds libclip.so"):
    print(p.stdout.decode("utf-8", "replace")[-2000:])
    finish("test_python")

os.environ["CLIPC_LIBRARY"] = LIB
sys.path.insert(0, MODULE_DIR)
import clipc  # noqa: E402

check(clipc.library_path == LIB, f"CLIPC_LIBRARY chooses the library ({clipc.library_path})")


# ---------------------------------------------------------------------------
# Helpers: the CLI's numbers, images in several forms

def cli_embed(model, args):
    rc, out, err = run(["embed", model] + list(args))
    assert rc == 0, err
    return np.array([json.loads(l) for l in out.decode().splitlines()], dtype=np.float32)


def same(name, got, want):
    """Exactly equal float32 arrays; prints the largest difference otherwise."""
    got, want = np.asarray(got), np.asarray(want, dtype=np.float32)
    ok = got.dtype == np.float32 and got.shape == want.shape and np.array_equal(got, want)
    diff = (f", max |diff| {np.abs(got.astype(np.float64) - want).max():.3g}" if not ok and got.shape == want.shape
            else "")
    return check(ok, f"{name}: {got.dtype} {got.shape} equal to the CLI's {want.shape}{diff}")


def read_ppm(data):
    """A binary P6 file (as clip decode / preprocess write it) as an HxWx3 array."""
    fields, pos = [], 2
    assert data[:2] == b"P6", data[:2]
    while len(fields) < 3:
        while data[pos:pos + 1].isspace():
            pos += 1
        start = pos
        while not data[pos:pos + 1].isspace():
            pos += 1
        fields.append(int(data[start:pos]))
    w, h, maxval = fields
    assert maxval == 255
    return np.frombuffer(data[pos + 1:pos + 1 + w * h * 3], dtype=np.uint8).reshape(h, w, 3)


def ppm_bytes(a):
    return b"P6\n%d %d\n255\n" % (a.shape[1], a.shape[0]) + a.tobytes()


def png_bytes(a):
    """A plain 8-bit RGB PNG of an array (zlib only, so no Pillow is needed)."""
    h, w, _ = a.shape
    raw = b"".join(b"\0" + a[y].tobytes() for y in range(h))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def decoded(path):
    """The full decoded RGB image, by `clip decode`."""
    out = os.path.join(W, "decoded.ppm")
    rc, _, err = run(["decode", path, out])
    assert rc == 0, err
    with open(out, "rb") as f:
        return read_ppm(f.read()).copy()


def read(path):
    with open(path, "rb") as f:
        return f.read()


# JPEGs of several kinds, PPM / PGM, and PNGs written here
PATHS = [image(n) for n in ("rocket.jpg", "chelsea_q90_420.jpg", "chelsea_prog.jpg", "chelsea_gray.jpg",
                            "odd_17x9.jpg", "odd_223x225.ppm", "camera.pgm")]
for src, name in (("chelsea.ppm", "chelsea.png"), ("odd_3x500.ppm", "tall.png")):
    dst = os.path.join(W, name)
    with open(dst, "wb") as f:
        f.write(png_bytes(read_ppm(read(image(src)))))
    PATHS.append(dst)
ARRAYS = [decoded(p) for p in PATHS]
BYTES = [read(p) for p in PATHS]

TEXTS = ["a photo of a cat", "", "naïve café ✓ 日本語", "word " * 100, "Hello,   WORLD!!  it's 2024"]
LABELS = ["cat", "dog", "a rocket", "coffee", "an astronaut", "a page of text"]
T1 = "a photo of a {}."
T3 = ["a photo of a {}.", "a blurry picture of {}", "{} {} in the wild"]


def cli_zero_shot(model, paths, labels, templates):
    lab = os.path.join(W, "labels.txt")
    with open(lab, "w", encoding="utf-8") as f:
        f.write("".join(l + "\n" for l in labels))
    args = [model] + list(paths) + [lab, "--json"]
    for t in templates:
        args += ["--template", t]
    rc, out, err = run(args)
    assert rc == 0, err
    return [[(d["label"], np.float32(d["prob"])) for d in json.loads(l)["labels"]] for l in out.decode().splitlines()]


def ranking(result):
    return [(d["label"], np.float32(d["score"])) for d in result]


# ---------------------------------------------------------------------------
# Each model: every function against the CLI

def model_checks(name):
    blob = tiny_model(name)[1]
    print(f"-- {name}")
    with clipc.Model(blob) as m:
        E, S = m.projection_dim, m.image_size
        check(m.config["projection_dim"] == E and m.config["image_size"] == S == m.config["crop_h"]
              and len(m.config["mean"]) == 3 and m.config["context_length"] == 77,
              f"config: E={E}, S={S}, {len(m.config)} fields")

        want = cli_embed(blob, PATHS)
        same("images from paths, all at once", m.encode_image(PATHS), want)
        same("images from bytes, all at once", m.encode_image(BYTES), want)
        same("images from decoded HxWx3 arrays, all at once", m.encode_image(ARRAYS), want)
        one = np.stack([m.encode_image(p) for p in PATHS])
        same("images from paths, one at a time ((E,) each)", one, want)
        one = np.stack([m.encode_image(b) for b in BYTES] + [m.encode_image(a) for a in ARRAYS])
        same("images from bytes and arrays, one at a time", one, np.concatenate([want, want]))
        mixed = [(PATHS[i], BYTES[i], ARRAYS[i])[i % 3] for i in range(len(PATHS))]
        same("a list mixing paths, bytes and arrays", m.encode_image(mixed), want)
        many = [mixed[i % len(mixed)] for i in range(37)]  # across several batches of 16
        same("37 images (three batches)", m.encode_image(many), want[[i % len(PATHS) for i in range(37)]])
        same("a tuple of pathlib paths", m.encode_image(tuple(__import__("pathlib").Path(p) for p in PATHS[:3])),
             want[:3])
        check(m.encode_image([]).shape == (0, E), "an empty list gives (0, E)")
        same("a 4-D stack of arrays is a list", m.encode_image(np.stack([ARRAYS[0], ARRAYS[0]])), want[[0, 0]])
        if have_pillow():
            from PIL import Image
            with Image.open(PATHS[0]) as im:
                same("a PIL image", m.encode_image(im), want[0])
        else:
            skipped(f"{name}: PIL images", "Pillow is not installed (apt-get install python3-pil)")

        # crops: the bytes of `clip preprocess`, whatever the input
        bad = []
        for i, p in enumerate(PATHS):
            out = os.path.join(W, "crop.ppm")
            rc, _, err = run(["preprocess", blob, p, out])
            cli = read(out)
            for kind, x in (("path", p), ("bytes", BYTES[i]), ("array", ARRAYS[i])):
                c = m.preprocess(x)
                if rc != 0 or c.dtype != np.uint8 or c.shape != (S, S, 3) or ppm_bytes(c) != cli:
                    bad.append((os.path.basename(p), kind))
        check(not bad, f"preprocess of {len(PATHS)} images from paths, bytes and arrays: `clip preprocess`'s "
              f"bytes {bad[:5]}")
        crops = [m.preprocess(p) for p in PATHS]
        check(all(np.array_equal(m.preprocess(c), c) for c in crops), "preprocess of an S x S crop is the identity")
        same("features of the crops (arrays) equal the files'", m.encode_image(crops), want)

        # text
        want_t = cli_embed(blob, ["--text"] + TEXTS)
        same(f"{len(TEXTS)} texts at once", m.encode_text(TEXTS), want_t)
        same("texts one at a time ((E,) each)", np.stack([m.encode_text(t) for t in TEXTS]), want_t)
        check(m.encode_text([]).shape == (0, E), "no texts gives (0, E)")
        bad = []
        for t in TEXTS:
            rc, out, err = run(["tokenize", blob, t])
            ids = m.tokenize(t)
            if rc != 0 or ids != json.loads(out) or len(ids) > 77:
                bad.append(t[:20])
        check(not bad, f"tokenize equals `clip tokenize` on {len(TEXTS)} texts (one truncated to 77) {bad}")

        # zero-shot, as the CLI ranks
        for templates, what in (([], "no template"), ([T1], "one template"), (T3, "a 3-template ensemble")):
            cli = cli_zero_shot(blob, PATHS, LABELS, templates)
            arg = None if not templates else (templates[0] if len(templates) == 1 else templates)
            res = m.zero_shot(PATHS, LABELS, templates=arg)
            got = [ranking(r) for r in res]
            ok = got == cli and all(set(d) == {"score", "label"} and type(d["score"]) is float for r in res for d in r)
            check(ok, f"zero_shot ({what}): {len(PATHS)} images' labels and scores equal `clip --json`'s")
            if not ok:
                print("   ours", got[0], "\n   cli ", cli[0])
            single = [ranking(m.zero_shot(a, LABELS, templates=arg)) for a in ARRAYS[:3]]
            check(single == cli[:3], f"zero_shot ({what}): one image (an array) gives its ranking alone")
        top = m.zero_shot(PATHS[0], LABELS, top_k=2)
        check(ranking(top) == cli_zero_shot(blob, PATHS[:1], LABELS, [])[0][:2], "zero_shot top_k=2")

        # similarity helpers: the library's arithmetic
        f = m.encode_image(PATHS[:2])
        n = clipc.normalize(f)
        check(np.allclose(np.linalg.norm(n, axis=1), 1, atol=1e-6) and clipc.normalize(np.zeros(E)).tolist() == [0] * E,
              "normalize: unit rows, zero stays zero")
        c = clipc.cosine(f, want_t[:3])
        check(c.shape == (2, 3) and isinstance(clipc.cosine(f[0], f[0]), float)
              and abs(clipc.cosine(f[0], f[0]) - 1) < 1e-6
              and np.allclose(c, n @ clipc.normalize(want_t[:3]).T, atol=1e-6), "cosine of vectors and matrices")
    return blob


BLOB = model_checks("tiny-quickgelu")
BLOB2 = model_checks("tiny-gelu")

# a quarter-size file, read into memory (mmap=False: clip_model_load_read): its type in the config, the
# same numbers as the CLI's
q8 = typed_model("tiny-gelu", "q8")
with clipc.Model(q8, mmap=False) as m:
    check(m.config["weight_type"] == 3, f"a q8 file's config says weight_type 3 ({m.config['weight_type']})")
    same("a q8 file read with mmap=False: images from paths", m.encode_image(PATHS), cli_embed(q8, PATHS))
    same("a q8 file: texts", m.encode_text(["a photo of a cat", "x " * 20]),
         cli_embed(q8, ["--text", "a photo of a cat", "x " * 20]))

# ---------------------------------------------------------------------------
# Errors: the library's message in a ClipError, bad arguments as ValueError


def raises(kind, fn):
    """The exception fn raises (of kind), or None."""
    try:
        fn()
    except kind as e:
        return e
    return None


def cli_message(args):
    rc, _, err = run(args)
    return err.strip() if rc == 1 else f"(exit {rc})"


m = clipc.Model(BLOB)
missing = os.path.join(W, "no such file.jpg")
corrupt = os.path.join(W, "corrupt.jpg")
with open(corrupt, "wb") as f:
    f.write(BYTES[0][:300])
for path, what in ((missing, "a missing file"), (corrupt, "a corrupt JPEG")):
    e = raises(clipc.ClipError, lambda: m.encode_image([PATHS[0], path]))
    want = cli_message(["embed", BLOB, path])
    check(e is not None and str(e) == want and path in str(e) and e.index == 1,
          f"{what}: ClipError with the library's message, naming the file ({e!r}; CLI: {want!r})")
e = raises(clipc.ClipError, lambda: m.encode_image([BYTES[0], BYTES[0][:300]]))
check(e is not None and str(e).startswith("clip: JPEG") and e.index == 1,
      f"corrupt bytes: ClipError with the decoder's message ({e!r})")
e = raises(clipc.ClipError, lambda: m.preprocess(missing))
check(e is not None and str(e) == cli_message(["preprocess", BLOB, missing, os.path.join(W, "x.ppm")]),
      f"preprocess of a missing file: the library's message ({e!r})")
e = raises(clipc.ClipError, lambda: clipc.Model(os.path.join(ROOT, "README.md")))
want = cli_message(["embed", os.path.join(ROOT, "README.md"), PATHS[0]])
check(e is not None and str(e) == want and "not a clip.c weights file" in str(e),
      f"a file that is not weights: ClipError with the library's message ({e!r})")
e = raises(clipc.ClipError, lambda: clipc.Model(missing))
check(e is not None and str(e).startswith("clip: ") and missing in str(e), f"a missing weights file ({e!r})")
e = raises(clipc.ClipError, lambda: m.zero_shot(PATHS[0], LABELS, templates="no braces"))
check(e is not None and "has no {}" in str(e), f"a template without {{}}: the library's message ({e!r})")
bad = [(np.zeros((10, 10), np.uint8), "HxW"), (np.zeros((10, 10, 4), np.uint8), "HxWx4"),
       (np.zeros((10, 10, 3), np.float32), "float32"), (np.zeros((0, 10, 3), np.uint8), "0 rows")]
for a, what in bad:
    e = raises(ValueError, lambda: m.encode_image(a))
    check(e is not None and "HxWx3 uint8" in str(e), f"a {what} array: ValueError ({e})")
check(raises(TypeError, lambda: m.encode_image(42)) is not None, "a number is no image: TypeError")
check(raises(TypeError, lambda: m.zero_shot(PATHS[0], "cat")) is not None, "labels as one string: TypeError")
check(raises(ValueError, lambda: m.zero_shot(PATHS[0], [])) is not None, "no labels: ValueError")
check(raises(ValueError, lambda: m.encode_image(b"")) is not None, "empty bytes: ValueError")
m.close()
m.close()
check(raises(ValueError, lambda: m.encode_text("a")) is not None, "a closed model: ValueError; close() twice is fine")

# ---------------------------------------------------------------------------
# Threads: four Python threads on one Model, each call on its own context


def job(model, k):
    imgs = [(PATHS[i], BYTES[i], ARRAYS[i])[(i + k) % 3] for i in range(len(PATHS))]
    return (model.encode_image(imgs), model.encode_text(TEXTS[k % len(TEXTS):]),
            ranking(model.zero_shot(PATHS[k % len(PATHS)], LABELS, templates=T3)))


with clipc.Model(BLOB2) as m:
    seq = [job(m, k) for k in range(4)]
    results, errors = [None] * 4, []
    start = threading.Barrier(4)

    def worker(k):
        try:
            start.wait()
            for _ in range(3):
                r = job(m, k)
                if results[k] is None:
                    results[k] = r
                elif not all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
                             for a, b in zip(r, results[k])):
                    errors.append(f"thread {k}: runs differ")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"thread {k}: {e!r}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = not errors and all(r is not None and all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
                                                  for a, b in zip(r, s)) for r, s in zip(results, seq))
    check(ok, f"4 threads x 3 runs on one Model equal the sequential results ({len(m._all)} contexts made) "
          f"{errors[:3]}")

# ---------------------------------------------------------------------------
# Finding the library: in the tree, beside the module, a bad CLIPC_LIBRARY

PROBE = ("import sys, clipc; m = clipc.Model(sys.argv[1]); "
         "print(clipc.library_path); print(m.encode_text('a dog').tobytes().hex())")
want_hex = clipc.Model(BLOB).encode_text("a dog").tobytes().hex()


def probe(module_dir, env_lib=None, ld_path=None):
    env = {k: v for k, v in os.environ.items() if k != "CLIPC_LIBRARY"}
    env["PYTHONPATH"] = module_dir
    if ld_path is not None:
        env["LD_LIBRARY_PATH"] = ld_path
    if env_lib is not None:
        env["CLIPC_LIBRARY"] = env_lib
    p = subprocess.run([sys.executable, "-c", PROBE, BLOB], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                       cwd=W)
    return p.returncode, p.stdout.decode().split(), p.stderr.decode("utf-8", "replace")


rc, out, err = probe(MODULE_DIR)
check(rc == 0 and out == [LIB, want_hex], f"without CLIPC_LIBRARY the tree's libclip.so is found, same numbers "
      f"({out[:1]} {err[-300:]})")
rc, out, err = probe(MODULE_DIR, os.path.join(W, "nothing.so"))
check(rc != 0 and "ImportError" in err and "CLIPC_LIBRARY" in err and "nothing.so" in err,
      f"CLIPC_LIBRARY naming no library: ImportError naming it ({err.strip().splitlines()[-1:]})")
alone = os.path.join(W, "alone")
os.makedirs(alone)
shutil.copy(os.path.join(MODULE_DIR, "clipc.py"), alone)
rc, out, err = probe(alone)
if rc == 0:
    skipped("the message when no library is found", f"this system has one installed ({out[:1]})")
else:
    check("ImportError" in err and "make lib" in err, f"no library anywhere: ImportError saying to run make lib "
          f"({err.strip().splitlines()[-1:]})")
# the system's: the installed name (soname) on the loader's path
system = os.path.join(W, "system")
os.makedirs(system)
shutil.copy(LIB, os.path.join(system, "libclip.so.1"))
rc, out, err = probe(alone, ld_path=system)
check(rc == 0 and out[1:] == [want_hex], f"an installed libclip.so.1 on the loader's path is found ({out[:1]} "
      f"{err[-300:]})")
shutil.copy(LIB, alone)
rc, out, err = probe(alone)
check(rc == 0 and out == [os.path.join(alone, "libclip.so"), want_hex],
      f"libclip.so beside the module is found ({out[:1]} {err[-300:]})")

finish("test_python")
