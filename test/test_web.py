#!/usr/bin/env python3
"""The web page (web/) in a real browser: `make wasm` builds web/clip.wasm
from the Makefile's sources, web/ is served from 127.0.0.1, and headless
Chromium, driven by test/web/drive.js (puppeteer-core), uses the page as a
person would: weights chosen in the file input or typed as a URL, images
chosen, labels and templates typed, the button clicked. What the page
computed must equal the native ./clip's: token ids and the preprocessed
pixels exactly, image and text features within 1e-5 relative, the
probabilities within 1e-5; a file that is not weights, a truncated one and
an image that is not an image show the library's message. The page is
saved as test/out/web/page.png.

Needs: chromium, node and npm (apt-get install chromium nodejs npm), the
driver's package (npm ci --prefix test/web), and a wasm32 toolchain (apt-get
install clang lld wasi-libc libclang-rt-14-dev-wasm32); skipped without them."""
import functools
import http.server
import json
import os
import shutil
import subprocess
import threading

import numpy as np

from common import CLIP, OUT, ROOT, TEST, arrays, check, finish, image, rel_err, run, skip, skipped, tiny_model

NAME = "test_web"
WEB = os.path.join(ROOT, "web")
DRIVER = os.path.join(TEST, "web")
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
NODE = shutil.which("node") or shutil.which("nodejs")
HERE = os.path.join(OUT, "web")
TOL = 1e-5

# ---------------------------------------------------------------------------
# What is needed, or why not

if not CHROMIUM:
    skip(NAME, "no chromium (apt-get install chromium)")
if not NODE:
    skip(NAME, "no node (apt-get install nodejs npm)")
if not os.path.isdir(os.path.join(DRIVER, "node_modules", "puppeteer-core")):
    skip(NAME, "puppeteer-core is not installed (npm ci --prefix test/web)")
if not os.path.exists(CLIP):
    skip(NAME, f"{CLIP} is not built (make clip)")
p = subprocess.run(["make", "-s", "--no-print-directory", "-C", ROOT, "wasm"], stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT)
log = p.stdout.decode("utf-8", "replace")
if p.returncode != 0:
    if "stdio.h" in log or "wasm-ld" in log or "not found" in log or "No such file" in log:
        skip(NAME, "no wasm32 toolchain (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32): "
             + log.strip().splitlines()[-1][:200])
    check(False, f"make wasm: exit {p.returncode}: {log[-2000:]}")
    finish(NAME)
check("warning" not in log, "make wasm: built without warnings" + (f": {log[-2000:]}" if "warning" in log else ""))

shutil.rmtree(HERE, ignore_errors=True)
os.makedirs(HERE)

# ---------------------------------------------------------------------------
# The inputs

quick = tiny_model("tiny-quickgelu")[1]  # 224 px, quick_gelu
gelu = tiny_model("tiny-gelu")[1]        # 64 px, exact GELU


def write(name, data):
    path = os.path.join(HERE, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


# a PNG: Pillow when it is there, else a hand-made one (zlib from the standard library)
png = os.path.join(HERE, "chelsea.png")
try:
    from PIL import Image
    Image.open(image("chelsea.ppm")).save(png)
except ImportError:
    import struct
    import zlib
    w, h = 97, 61
    rows = b"".join(b"\0" + bytes((x * 3 + y * 5) % 256 for x in range(w) for _ in range(3)) for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    write("chelsea.png", b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
          + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
truncated = write("truncated.bin", open(gelu, "rb").read()[:100000])
not_weights = image("chelsea_q90_420.jpg")
not_image = write("labels.txt", b"a cat\na dog\n")

LABELS_A = "a cat\na dog\n  Ελληνικά 中文 🐱 İstanbul  \n\nx " + "y " * 90 + "\nCafé\u0301 <|endoftext|> ok\n"
LABELS_B = "a cat\na rocket\na cup of coffee"
runs = [  # (weights, image, labels, templates)
    (quick, image("chelsea_q90_420.jpg"), LABELS_A, ""),
    (quick, png, LABELS_B, "a photo of a {}."),
    (gelu, image("rocket.jpg"), LABELS_B, "a photo of a {}.\nart of {} and {}\n"),
    (gelu, image("odd_17x9.jpg"), LABELS_A, "a photo of a {}."),
]

# ---------------------------------------------------------------------------
# The server: web/, and the fixture models under /models/ (for the URL field)


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = dict(http.server.SimpleHTTPRequestHandler.extensions_map,
                          **{".wasm": "application/wasm", ".js": "text/javascript"})

    def translate_path(self, path):
        if path.startswith("/models/"):
            return os.path.join(os.path.dirname(gelu), os.path.basename(path.split("?")[0]))
        return super().translate_path(path)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=WEB))
threading.Thread(target=server.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{server.server_address[1]}"

steps = []
loaded = None
for i, (blob, img, labels, templates) in enumerate(runs):
    if blob != loaded:
        # the second model comes through the URL field, the first through the file input
        steps.append({"weights_url": base + "/models/" + os.path.basename(blob)} if blob == gelu else
                     {"weights": blob})
        loaded = blob
    steps.append({"image": img, "labels": labels, "templates": templates})
    if i == 1:
        steps[-1]["screenshot"] = os.path.join(HERE, "page.png")
steps += [{"weights": not_weights}, {"weights": truncated}, {"weights": quick},
          {"image": not_image, "labels": "a cat", "templates": ""}]
job = {"url": base + "/index.html", "chromium": CHROMIUM, "timeout": int(os.environ.get("WEB_TIMEOUT", 120000)), "steps": steps}
with open(os.path.join(HERE, "job.json"), "w") as f:
    json.dump(job, f)
out_path = os.path.join(HERE, "out.json")
p = subprocess.run([NODE, os.path.join(DRIVER, "drive.js"), os.path.join(HERE, "job.json"), out_path],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900, cwd=DRIVER)
server.shutdown()
if p.returncode == 77:
    skip(NAME, p.stdout.decode("utf-8", "replace").strip())
if not check(p.returncode == 0, f"drive.js ran the page in {os.path.basename(CHROMIUM)}"):
    print(p.stdout.decode("utf-8", "replace")[-3000:])
    finish(NAME)
with open(out_path) as f:
    out = json.load(f)
bad = [line for line in out["console"] if line.startswith(("error", "pageerror", "worker error"))]
check(not bad, "no errors in the page's console" + "".join("\n     " + line[:300] for line in bad))
results = iter(out["steps"])

# ---------------------------------------------------------------------------
# The comparisons with ./clip


def native_labels(labels):
    """The labels as the command line splits a labels file."""
    path = write("labels-native.txt", labels.encode())
    return path, [l.strip() for l in labels.split("\n") if l.strip()]


def compare(blob, img, labels, templates, r):
    what = f"{os.path.basename(blob)} {os.path.basename(img)}" + (f" templates {templates!r}" if templates else "")
    if not check(r["state"] == "done", f"{what}: the page classified it ({r['error'] or r['state']})"):
        return
    res = r["result"]
    S = res["size"]
    # pixels: the crop the native build writes
    ppm = os.path.join(HERE, "crop.ppm")
    rc, _, err = run(["preprocess", blob, img, ppm])
    with open(ppm, "rb") as f:
        want = np.frombuffer(f.read(), np.uint8)[-S * S * 3:]
    got = np.array(res["pixels"], np.uint8)
    diff = int(np.count_nonzero(got != want)) if got.shape == want.shape else -1
    check(rc == 0 and diff == 0, f"{what}: preprocessed pixels ({S}x{S}) identical to clip preprocess's "
          f"({diff} differ)")
    # image features
    rc, so, err = run(["embed", blob, img])
    e = rel_err(np.array([res["imageFeatures"]]), arrays(so)) if rc == 0 else float("inf")
    check(e <= TOL, f"{what}: image features within {TOL} of clip embed's (max relative error {e:.2e})")
    # the labels, the prompts, their token ids and features
    lpath, want_labels = native_labels(labels)
    check(res["labels"] == want_labels, f"{what}: the {len(want_labels)} labels split as the command line splits them")
    tmpl = [t.strip() for t in templates.split("\n") if t.strip()]
    want_prompts = [t.replace("{}", lab) for lab in want_labels for t in tmpl] if tmpl else want_labels
    check(res["prompts"] == want_prompts, f"{what}: the {len(want_prompts)} prompts")
    bad = [pr for pr, ids in zip(want_prompts, res["ids"])
           if json.loads(run(["tokenize", blob, pr])[1] or b"null") != ids]
    check(len(res["ids"]) == len(want_prompts) and not bad,
          f"{what}: token ids identical to clip tokenize's" + (f" (differ: {bad[:2]!r})" if bad else ""))
    rc, so, err = run(["embed", blob, "--text"] + want_prompts)
    e = rel_err(np.array(res["promptFeatures"]), arrays(so)) if rc == 0 else float("inf")
    check(e <= TOL, f"{what}: text features within {TOL} of clip embed --text's (max relative error {e:.2e})")
    # the ranking
    args = [blob, img, lpath, "--json"]
    for t in tmpl:
        args += ["--template", t]
    rc, so, err = run(args)
    ranked = json.loads(so)["labels"] if rc == 0 else []
    by_label = {x["label"]: x for x in ranked}
    dp = max((abs(res["probs"][i] - by_label[lab]["prob"]) for i, lab in enumerate(res["labels"])
              if lab in by_label), default=float("inf"))
    dl = max((abs(res["logits"][i] - by_label[lab]["logit"]) / max(abs(by_label[lab]["logit"]), 1.0)
              for i, lab in enumerate(res["labels"]) if lab in by_label), default=float("inf"))
    check(len(by_label) == len(res["labels"]) and dp <= TOL and dl <= TOL,
          f"{what}: probabilities and logits within {TOL} of the command line's (max {dp:.2e}, {dl:.2e})")
    shown = [row.rsplit("%", 1)[0] for row in r.get("ranking", [])]
    top = ranked[0]["label"] if ranked else None
    check(len(shown) == len(want_labels) and top is not None and shown[0].startswith(top),
          f"{what}: the page ranks {len(shown)} labels, best first ({shown[0][:40] if shown else None!r})")
    print(f"     in the browser: image {1000 * res['seconds']['image']:.0f} ms, "
          f"labels {1000 * res['seconds']['text']:.0f} ms")


loaded = None
for blob, img, labels, templates in runs:
    if blob != loaded:
        r = next(results)
        how = "its URL" if blob == gelu else "the file input"
        check(r["result"] is not None and r["result"]["size"] == os.path.getsize(blob),
              f"{os.path.basename(blob)} loaded through {how} ({r['status']}{r['error']})")
        loaded = blob
    compare(blob, img, labels, templates, next(results))

# ---------------------------------------------------------------------------
# Wrong files: the library's message, on the page


def native_error(args, name):
    """The native message with the path the page cannot know cut out."""
    rc, _, err = run(args)
    return err.strip().split(name + ": ", 1)[-1]


for path, what in ((not_weights, "a JPEG given as the weights"), (truncated, "a truncated weights file")):
    r = next(results)
    want = native_error(["embed", path, image("chelsea.ppm")], path)
    check(r["result"] is None and want and want in r["error"] and os.path.basename(path) in r["error"],
          f"{what}: the page says {r['error']!r} (the library: {want!r})")
r = next(results)
check(r["result"] is not None, f"a model loads again after the errors ({r['status']})")
r = next(results)
want = native_error(["embed", quick, not_image], not_image)
check(r["state"] == "error" and want and want in r["error"],
      f"a text file given as the image: the page says {r['error']!r} (the library: {want!r})")
shot = os.path.join(HERE, "page.png")
check(os.path.exists(shot) and os.path.getsize(shot) > 1000, f"screenshot kept: {os.path.relpath(shot, ROOT)}")
finish(NAME)
