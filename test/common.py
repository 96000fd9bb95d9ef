"""Helpers shared by the Python tests: paths, running ./clip, checks."""
import os
import subprocess
import sys

import numpy as np

TEST = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TEST)
SHARED = os.environ.get("CLIP_SHARED", os.path.join(ROOT, "..", "shared"))
FIX = os.path.join(SHARED, "fixtures")
OUT = os.path.join(TEST, "out")
CLIP = os.path.abspath(os.environ.get("CLIP", os.path.join(ROOT, "clip")))
PYTHON = sys.executable
os.makedirs(OUT, exist_ok=True)

_results = {"passed": 0, "failed": 0}


def need_fixtures(name):
    if not os.path.isdir(FIX):
        print(f"SKIPPED {name}: ../shared/fixtures is absent (it ships with CI, not with the repository)")
        sys.exit(0)


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


def blob_336():
    """A weights file whose preprocessing is 336 px (no tiny fixture model
    has it): a small random checkpoint, exported with the fixtures' vocab."""
    from make_checkpoint import random_clip
    folder = random_clip(os.path.join(OUT, "ckpt-336"), "tiny-336", seed=7)
    return export(folder, os.path.join(OUT, "tiny-336.bin"), "--tokenizer",
                  os.path.join(FIX, "vocab", "bpe_simple_vocab_16e6.txt.gz"))


def arrays(stdout):
    """clip embed output: one JSON array per line."""
    import json
    return np.array([json.loads(l) for l in stdout.decode().splitlines() if l.strip()])


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


def finish(name):
    p, f = _results["passed"], _results["failed"]
    print(f"{name}: {p} passed, {f} failed")
    sys.exit(1 if f else 0)
