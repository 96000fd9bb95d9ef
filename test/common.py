"""Helpers shared by the Python tests: paths (the data committed with the
project, ../shared's reference fixtures when present), the generated tiny
models, running ./clip, checks.

A test program exits 0 when every check passed, 1 when one failed, and 77
(SKIP) when it could not run at all (it prints a line starting with SKIPPED
and the reason). A part of a program that cannot run prints such a line
and the rest runs; test/run.sh counts both kinds (see test/README.md).

    python3 test/common.py model tiny-gelu    # prints the path of a generated model's weights file
    python3 test/common.py hostile jpeg DIR   # writes hostile_jpeg.py's files into DIR (see write_hostile)
"""
import hashlib
import os
import random
import shutil
import subprocess
import sys

import numpy as np

TEST = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TEST)
# ../shared: reference data CI has beside the checkout (Hugging Face's outputs)
SHARED = os.environ.get("CLIP_SHARED", os.path.join(ROOT, "..", "shared"))
FIX = os.path.join(SHARED, "fixtures")
HAVE_FIX = os.path.isdir(FIX)
# committed with the project (provenance in data/README.md, test/data/README.md)
VOCAB = os.path.join(ROOT, "data", "bpe_simple_vocab_16e6.txt.gz")
IMAGES = os.path.join(TEST, "data", "images")
CASES = os.path.join(TEST, "data", "tokenizer_cases.json")
OUT = os.environ.get("CLIP_TEST_OUT", os.path.join(TEST, "out"))
CLIP = os.path.abspath(os.environ.get("CLIP", os.path.join(ROOT, "clip")))
PYTHON = sys.executable
SKIP = 77
os.makedirs(OUT, exist_ok=True)
sys.path.insert(0, TEST)

_results = {"passed": 0, "failed": 0}
NO_FIX = "../shared/fixtures is absent (it ships with CI, not with the repository)"


def skip(name, why):
    """The whole program cannot run: say why, exit 77."""
    print(f"SKIPPED {name}: {why}")
    sys.exit(SKIP)


def need_fixtures(name):
    """For programs that need nothing but ../shared's Hugging Face outputs."""
    if not HAVE_FIX:
        skip(name, NO_FIX)


def skipped(what, why):
    """One part of a program cannot run; the rest goes on."""
    print(f"SKIPPED {what}: {why}")


def fixtures_part(what):
    """True when ../shared is there; otherwise prints that `what` is skipped."""
    if not HAVE_FIX:
        skipped(what, NO_FIX)
    return HAVE_FIX


def check(ok, what):
    _results["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {what}")
    return ok


def rel_err(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def run(args, input=None, check_rc=0):
    """Run ./clip; returns (rc, stdout bytes, stderr text)."""
    p = subprocess.run([CLIP] + [str(a) for a in args], input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def export(src, out, *extra):
    p = subprocess.run([PYTHON, os.path.join(ROOT, "export_weights.py"), "-q", src, out] + list(extra),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise RuntimeError(f"export of {src} failed: {p.stderr.decode()}")
    return out


def arrays(stdout):
    """clip embed output: one JSON array per line."""
    import json
    return np.array([json.loads(l) for l in stdout.decode().splitlines() if l.strip()])


# ---------------------------------------------------------------------------
# Test images (test/data/images) and their crops

def image(name):
    """A committed test image (see test/data/README.md)."""
    path = os.path.join(IMAGES, name)
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    return path


def image_names(ext=None):
    """The committed test images, sorted; ext: ".jpg" or (".ppm", ".pgm")."""
    names = sorted(n for n in os.listdir(IMAGES) if n.endswith((".jpg", ".ppm", ".pgm")))
    return [n for n in names if ext is None or n.endswith(ext)]


def hf_crop(img, size):
    """What CLIPImageProcessor makes of a PIL image: the short side to size
    (long side int(size * long / short)) with Pillow's bicubic, then the
    center crop (top = (h - size) // 2)."""
    from PIL import Image
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    nl = int(size * long / short)
    nw, nh = (size, nl) if w <= h else (nl, size)
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), resample=Image.BICUBIC)
    a = np.asarray(img)
    top, left = (nh - size) // 2, (nw - size) // 2
    return a[top:top + size, left:left + size]


def have_pillow():
    try:
        import PIL  # noqa: F401
        return True
    except ImportError:
        return False


def need_pillow(name):
    """For programs whose expected values come from Pillow."""
    if not have_pillow():
        skip(name, "Pillow is not installed (apt-get install python3-pil); the expected images are made with it")


def crop_array(path, size):
    """The S x S uint8 RGB image the model sees for the image file at path,
    as Hugging Face's processor makes it (Pillow decodes, converts to RGB,
    resizes and crops)."""
    need_pillow(os.path.basename(sys.argv[0]))
    from PIL import Image
    with Image.open(path) as im:
        return np.ascontiguousarray(hf_crop(im.convert("RGB"), size))


def crop(name, size):
    """A binary PPM of crop_array for the committed image name (or a path),
    made once per run. Without Pillow, ../shared's fixture
    crop of the same image when there is one; else the program is skipped."""
    path = name if os.sep in name else image(name)
    base = os.path.basename(path)
    out = os.path.join(OUT, "crops", str(size), base + ".ppm")
    if (path, size) in _crops:
        return out
    if not have_pillow():
        fixture = os.path.join(FIX, "pixels", str(size), base + ".ppm")
        if os.path.exists(fixture):
            return fixture
        need_pillow(os.path.basename(sys.argv[0]))
    from PIL import Image
    os.makedirs(os.path.dirname(out), exist_ok=True)
    Image.fromarray(crop_array(path, size), "RGB").save(out + ".tmp", format="PPM")
    os.replace(out + ".tmp", out)
    _crops.add((path, size))
    return out


_crops = set()


# ---------------------------------------------------------------------------
# Generated models: random weights of the fixture models' shapes, made with
# test/make_checkpoint.py and exported with export_weights.py, their
# tokenizer the committed OpenAI merges. Cached in OUT/models, rebuilt when
# make_checkpoint.py, export_weights.py or the vocabulary change.

TINY = {
    # like ../shared/fixtures/models/tiny-quickgelu: 224 px, patch 32, widths 64 / 32, quick_gelu
    "tiny-quickgelu": dict(seed=101, act="quick_gelu"),
    # like ../shared/fixtures/models/tiny-gelu: 64 px, patch 16, widths 48 / 40, 3 / 5 heads, 3 layers, gelu
    "tiny-gelu": dict(seed=102, act="gelu"),
    # the 336 px preprocessing (no tiny fixture has it)
    "tiny-336": dict(seed=7, act="quick_gelu"),
}
LAYOUTS = ("hf", "legacy", "openclip")


def _key(*parts):
    h = hashlib.sha256(repr(parts).encode())
    for f in (os.path.join(TEST, "make_checkpoint.py"), os.path.join(ROOT, "export_weights.py"), VOCAB):
        with open(f, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()[:16]


def tiny_model(name, layout="hf"):
    """(folder, weights file) of a generated tiny model. layout "hf": a
    Hugging Face folder as transformers 5 saves it (config.json,
    model.safetensors, tokenizer.json, processor_config.json); "legacy": the
    same weights in the older layout (merges.txt, vocab.json,
    preprocessor_config.json, position_ids buffers, eos 2); "openclip": the
    same weights as an open_clip checkpoint (exported with --tokenizer and
    the committed vocabulary). test/reference.py reads the "hf" folder."""
    import make_checkpoint as mc
    if layout not in LAYOUTS:
        raise ValueError(layout)
    base = os.path.join(OUT, "models")
    stem = name if layout == "hf" else f"{name}-{layout}"
    folder, blob, stamp = (os.path.join(base, stem), os.path.join(base, stem + ".bin"),
                           os.path.join(base, stem + ".key"))
    key = _key(name, layout, TINY[name])
    if os.path.exists(blob) and os.path.isdir(folder) and os.path.exists(stamp):
        with open(stamp) as f:
            if f.read() == key:
                return folder, blob
    if layout != "hf":
        src = tiny_model(name, "hf")[0]
    shutil.rmtree(folder, ignore_errors=True)
    for f in (blob, stamp):
        if os.path.exists(f):
            os.unlink(f)
    tmp = folder + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    extra = []
    if layout == "hf":
        mc.random_clip(tmp, name, seed=TINY[name]["seed"], act=TINY[name]["act"])
        mc.add_hf_files(tmp, VOCAB)
    elif layout == "legacy":
        mc.legacy_layout(src, tmp, VOCAB)
    else:
        mc.openclip_layout(src, tmp)
        extra = ["--tokenizer", VOCAB]
    os.rename(tmp, folder)
    export(folder, blob + ".tmp", *extra)
    os.replace(blob + ".tmp", blob)
    with open(stamp, "w") as f:
        f.write(key)
    return folder, blob


def typed_model(name, dtype):
    """The weights file of tiny_model(name) exported with --dtype dtype
    (f32, f16, bf16, q8)."""
    folder, blob = tiny_model(name)
    if dtype == "f32":
        return blob
    out = os.path.join(OUT, "models", f"{name}-{dtype}.bin")
    stamp = out[:-4] + ".key"
    key = _key(name, dtype, TINY[name])
    if os.path.exists(out) and os.path.exists(stamp):
        with open(stamp) as f:
            if f.read() == key:
                return out
    export(folder, out + ".tmp", "--dtype", dtype)
    os.replace(out + ".tmp", out)
    with open(stamp, "w") as f:
        f.write(key)
    return out


def blob_336():
    """A weights file whose preprocessing is 336 px (no tiny fixture model
    has it): a small random checkpoint, exported with the committed vocab."""
    return tiny_model("tiny-336")[1]


def blob_for(size):
    """A generated weights file whose image size is 224, 64 or 336."""
    return tiny_model({224: "tiny-quickgelu", 64: "tiny-gelu", 336: "tiny-336"}[size])[1]


# ---------------------------------------------------------------------------
# A decoder against Pillow on a random corpus (test_gif, test_bmp)

def pillow_pixels(path):
    """Image.open(path).convert("RGB") as an array, or (a str) why Pillow
    refuses the file."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as e:  # noqa: BLE001 - any failure is a refusal
        return repr(e)


class PillowCorpus:
    """Files made at random, checked one by one as they come: `clip decode`
    must give Pillow's pixels, or refuse (with a "clip: " message) where
    Pillow refuses; for the files picked, `clip preprocess` must give
    Hugging Face's crop. For test_<fmt>: skips it without Pillow; rng is
    seeded with CLIP_<FMT>_SEED, and count is CLIP_<FMT>_COUNT (default:
    count). Works in OUT/<fmt>, where a file that fails is kept as
    fail-NAME.<fmt>."""

    def __init__(self, fmt, count):
        need_pillow("test_" + fmt)
        self.seed = int(os.environ.get(f"CLIP_{fmt.upper()}_SEED", "20261202"))
        self.count = int(os.environ.get(f"CLIP_{fmt.upper()}_COUNT", str(count)))
        self.rng = random.Random(self.seed)
        self.dir = os.path.join(OUT, fmt)
        self.ext = "." + fmt
        os.makedirs(self.dir, exist_ok=True)
        self.blob = blob_for(224)
        self.fails, self.preprocess_fails = [], []
        self.tally = {"decoded": 0, "refused": 0}
        self.preprocessed = 0

    def _ours(self, path):
        from PIL import Image
        out = os.path.join(self.dir, "ours.ppm")
        rc, _, err = run(["decode", path, out])
        if rc != 0:
            return err.strip()
        return np.asarray(Image.open(out).convert("RGB"))

    def _same(self, path, want):
        """'ok' when clip agrees with Pillow (want: pillow_pixels), else what differs."""
        got = self._ours(path)
        self.tally["refused" if isinstance(want, str) else "decoded"] += 1
        if isinstance(want, str) and isinstance(got, str):
            return "ok" if got.startswith("clip: ") else f"bad message {got!r}"
        if isinstance(want, str):
            return f"clip decodes what Pillow refuses ({want})"
        if isinstance(got, str):
            return f"clip refuses: {got}"
        if got.shape != want.shape:
            return f"size {got.shape} vs Pillow's {want.shape}"
        if not np.array_equal(got, want):
            return f"{int((got != want).any(axis=2).sum())} pixels differ"
        return "ok"

    def add(self, name, kind, data, preprocess=False):
        """Check one file's bytes (kind: what made it, for the report); with
        preprocess, its crop too when Pillow decodes it."""
        from PIL import Image
        path = os.path.join(self.dir, "case" + self.ext)
        with open(path, "wb") as f:
            f.write(data)
        want = pillow_pixels(path)
        verdict = self._same(path, want)
        if verdict != "ok":
            keep = os.path.join(self.dir, f"fail-{name}{self.ext}")
            with open(keep, "wb") as f:
                f.write(data)
            self.fails.append((name, kind, verdict, keep))
        elif preprocess and not isinstance(want, str):
            self.preprocessed += 1
            out = os.path.join(self.dir, "crop.ppm")
            rc, _, err = run(["preprocess", self.blob, path, out])
            if rc != 0 or not np.array_equal(np.asarray(Image.open(out).convert("RGB")), crop_array(path, 224)):
                self.preprocess_fails.append((name, err.strip()))

    def report(self, what):
        """The two checks: decode (what: "GIFs", ...) and preprocess."""
        n = self.tally["decoded"] + self.tally["refused"]
        for f in self.fails[:10]:
            print("   ", f)
        check(not self.fails, f"decode: {n - len(self.fails)} of {n} random {what} (seed {self.seed}) as Pillow "
              f"decodes ({self.tally['decoded']}) or refuses ({self.tally['refused']}) them")
        n = self.preprocessed
        check(not self.preprocess_fails, f"preprocess: {n - len(self.preprocess_fails)} of {n} identical to Hugging "
              f"Face's crop {self.preprocess_fails[:5]}")


# ---------------------------------------------------------------------------
# The hostile files of test/hostile_<format>.py, which test_hostile.py runs

def write_hostile(fmt, folder):
    """Write hostile_<fmt>.py's files into folder, for tools that take files
    (valgrind.sh): bad-NAME for each file CASES says must be refused,
    ok-NAME for each that must decode (CASES with words None, ACCEPT)."""
    import importlib
    mod = importlib.import_module("hostile_" + fmt)
    files = [(("ok-" if words is None else "bad-") + name, data) for name, data, words in mod.CASES]
    files += [("ok-" + name, data) for name, data in getattr(mod, "ACCEPT", [])]
    os.makedirs(folder, exist_ok=True)
    for name, data in files:
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


# ---------------------------------------------------------------------------
# The project's build

def sources():
    """The library + command line sources, as the Makefile lists them
    (`make sources`), relative to ROOT."""
    p = subprocess.run(["make", "-s", "--no-print-directory", "-C", ROOT, "sources"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    names = p.stdout.decode().split()
    if p.returncode != 0 or not names or not all(n.endswith(".c") for n in names):
        raise RuntimeError(f"make sources: exit {p.returncode}, {p.stdout.decode()!r} {p.stderr.decode()[-300:]}")
    return names


def finish(name):
    p, f = _results["passed"], _results["failed"]
    print(f"{name}: {p} passed, {f} failed")
    sys.exit(1 if f else 0)


if __name__ == "__main__":
    if len(sys.argv) in (3, 4) and sys.argv[1] == "model" and sys.argv[2] in TINY:
        print(tiny_model(sys.argv[2], *sys.argv[3:])[1])
    elif len(sys.argv) == 4 and sys.argv[1] == "typed" and sys.argv[2] in TINY:
        print(typed_model(sys.argv[2], sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "hostile":
        write_hostile(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: common.py model {" + ",".join(TINY) + "} [" + "|".join(LAYOUTS) + "]\n"
                 "       common.py typed {" + ",".join(TINY) + "} {f16|bf16|q8}\n"
                 "       common.py hostile FORMAT DIR")
