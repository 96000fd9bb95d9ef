#!/usr/bin/env python3
"""Collections: zero-shot on many images, prompt ensembles, clip embed --npy,
and the index (clip index / search / --merge / --shard).

Every number is checked against the single-image commands: a batch's
ranking of image i equals the ranking of image i alone (byte for byte), an
index row equals `clip embed` of its file normalized (bit for bit), search
equals a brute-force numpy search and faiss's. The index is checked over a
tree with subfolders, every format, unreadable files, a symbolic-link loop,
non-UTF-8 and non-ASCII names; across runs that change, add and remove
files; after kill -9 at random moments (and in the two states a save can be
interrupted in); shards merged against one run; hostile index folders."""
import json
import os
import random
import shutil
import signal
import subprocess
import time

import numpy as np

from common import CLIP, OUT, check, finish, have_pillow, image, run, skipped, tiny_model

M = tiny_model("tiny-quickgelu")[1]
M2 = tiny_model("tiny-gelu")[1]  # another model
W = os.path.join(OUT, "collections")
shutil.rmtree(W, ignore_errors=True)
os.makedirs(W)
LABELS = os.path.join(W, "labels.txt")
with open(LABELS, "w") as f:
    f.write("cat\ndog\na rocket\ncoffee\nan astronaut\n")
B = os.fsencode


def embed(paths, model=M):
    rc, out, err = run(["embed", model] + list(paths))
    assert rc == 0, err
    return np.array([json.loads(l) for l in out.decode().splitlines()], dtype=np.float32)


def text_features(texts, model=M):
    rc, out, err = run(["embed", model, "--text"] + list(texts))
    assert rc == 0, err
    return np.array([json.loads(l) for l in out.decode().splitlines()], dtype=np.float32)


def normalized(v):
    """As the C does: the sum of squares in double, summed in order, then x * (1 / sqrt(ss)) rounded to float."""
    v64 = np.asarray(v, dtype=np.float64)
    ss = np.add.accumulate(v64 * v64, axis=-1)[..., -1:]
    return (v64 * (1.0 / np.sqrt(ss))).astype(np.float32)


# ---------------------------------------------------------------------------
# Images in every format, and files that are not images

def make_images(folder):
    """A few real images in each format the decoders read; returns their paths."""
    from PIL import Image
    os.makedirs(folder, exist_ok=True)
    src = [Image.open(image(n)).convert("RGB") for n in ("chelsea.ppm", "coffee.ppm", "odd_223x225.ppm")]
    paths = []
    for name in ("chelsea_q90_420.jpg", "rocket.jpg", "camera.pgm", "odd_17x9.ppm"):
        dst = os.path.join(folder, name)
        shutil.copy(image(name), dst)
        paths.append(dst)
    for i, im in enumerate(src):
        for fmt, ext, kw in (("PNG", "png", {}), ("GIF", "gif", {}), ("BMP", "bmp", {}), ("WEBP", "webp", {"quality": 80})):
            dst = os.path.join(folder, f"img{i}.{ext}")
            im.save(dst, fmt, **kw)
            paths.append(dst)
    return paths


if not have_pillow():
    skipped("test_collections", "Pillow is not installed: the test images in PNG, GIF, BMP and WebP are made with it")
    finish("test_collections")

IMG = os.path.join(W, "images")
imgs = make_images(IMG)
bad_txt = os.path.join(W, "notes.txt")
with open(bad_txt, "w") as f:
    f.write("not an image\n")
trunc = os.path.join(W, "truncated.jpg")
with open(image("chelsea_q90_420.jpg"), "rb") as f, open(trunc, "wb") as g:
    g.write(f.read()[:2000])

# ---------------------------------------------------------------------------
# Zero-shot on many images

singles = {}
for p in imgs[:6]:
    rc, out, err = run([M, p, LABELS, "--json"])
    singles[p] = out
    check(rc == 0 and out.count(b"\n") == 1, f"one image, --json: one line ({os.path.basename(p)}) {err.strip()}")
batch = imgs[:3] + [bad_txt, os.path.join(W, "missing.jpg")] + imgs[3:6]
rc, out, err = run([M] + batch + [LABELS, "--json"])
lines = out.decode().splitlines(keepends=True)
try:
    objs = [json.loads(l) for l in lines]
    valid = True
except ValueError:
    valid = False
check(valid and len(lines) == 6, f"several images, --json: valid JSON Lines, one per readable image ({len(lines)})")
check(rc == 1, f"an unreadable image makes the exit status 1 (got {rc})")
check("notes.txt" in err and "unknown image format" in err and "missing.jpg" in err and "No such file" in err,
      f"each unreadable image is on stderr with its reason: {err.strip()!r}")
want = b"".join(singles[p] for p in imgs[:6])
check(out == want, "the batch's line for each image equals the line of that image alone (byte for byte)")
rc, out1, _ = run([M, imgs[0], LABELS])
rc2, outn, _ = run([M, imgs[0], imgs[1], LABELS])
blocks = outn.decode().split("\n\n")
check(rc == 0 and rc2 == 0 and blocks[0].splitlines()[0] == imgs[0] and
      [l.strip() for l in blocks[0].splitlines()[1:]] == [l.strip() for l in out1.decode().splitlines()],
      "readable output: one image as before; several: the path, then its ranking")

# prompt ensembles
T1, T2, T3 = "a photo of a {}.", "a blurry photo of a {}.", "art of the {}"
templated = os.path.join(W, "templated.txt")
with open(templated, "w") as f:
    f.write("".join(T1.replace("{}", l) + "\n" for l in open(LABELS).read().split("\n") if l))
rc, a, _ = run([M, imgs[0], LABELS, "--json", "--template", T1])
rc2, b, _ = run([M, imgs[0], templated, "--json"])
ja, jb = json.loads(a), json.loads(b)
check(rc == 0 and [(x["prob"], x["logit"]) for x in ja["labels"]] == [(x["prob"], x["logit"]) for x in jb["labels"]],
      "one --template gives exactly the numbers of the filled-in labels")
tfile = os.path.join(W, "templates.txt")
with open(tfile, "w") as f:
    f.write(f"{T2}\n\n{T3}\n")
rc, e1, _ = run([M, imgs[0], LABELS, "--json", "--template", T1, "--template", T2, "--template", T3])
rc2, e2, _ = run([M, imgs[0], LABELS, "--json", "--template", T1, "--templates", tfile])
check(rc == 0 and e1 == e2, "--templates FILE adds its lines to --template's")
labels = [l for l in open(LABELS).read().split("\n") if l]
tf = text_features([t.replace("{}", l) for l in labels for t in (T1, T2, T3)]).astype(np.float64)
tf /= np.linalg.norm(tf, axis=1, keepdims=True)
ens = tf.reshape(len(labels), 3, -1).mean(axis=1)
ens /= np.linalg.norm(ens, axis=1, keepdims=True)
imf = embed([imgs[0]])[0].astype(np.float64)
cos = ens @ (imf / np.linalg.norm(imf))
scale = ja["labels"][0]["logit"] / float(normalized(text_features([T1.replace("{}", ja["labels"][0]["label"])]))[0]
                                         .astype(np.float64) @ (imf / np.linalg.norm(imf)))
got = {x["label"]: x["logit"] for x in json.loads(e1)["labels"]}
err_ens = max(abs(got[l] - scale * c) for l, c in zip(labels, cos))
check(err_ens < 1e-4, f"an ensemble of 3 templates: each label the mean of its normalized template features, "
                      f"normalized (logits max err {err_ens:.1e} against numpy)")

# embed --npy
npy = os.path.join(W, "features.npy")
rc, out, err = run(["embed", M] + imgs[:5] + ["--npy", npy])
arr = np.load(npy) if rc == 0 and os.path.exists(npy) else None
check(arr is not None and arr.dtype == np.float32 and arr.shape == (5, 48) and np.array_equal(arr, embed(imgs[:5]))
      and out == b"", "embed --npy: one (5, 48) float32 array, equal to the JSON output")
rc, out, err = run(["embed", M, "--text", "a cat", "", "a dog", "--npy", npy])
arr = np.load(npy) if rc == 0 else None
check(arr is not None and np.array_equal(arr, text_features(["a cat", "", "a dog"])), "embed --text --npy as well")
rc, out, err = run(["embed", M, imgs[0], bad_txt, "--npy", npy])
check(rc == 1 and "notes.txt" in err, f"embed: an unreadable image is an error (rows must match the images): {err.strip()}")

# ---------------------------------------------------------------------------
# The index

TREE = os.path.join(W, "tree")


def build_tree():
    shutil.rmtree(TREE, ignore_errors=True)
    make_images(os.path.join(TREE, "a"))
    os.makedirs(os.path.join(TREE, "b", "deeper"))
    os.makedirs(os.path.join(TREE, ".hidden"))
    shutil.copy(image("coffee_q5.jpg"), os.path.join(TREE, "b", "deeper", "coffee.jpg"))
    shutil.copy(image("chelsea_prog.jpg"), os.path.join(TREE, ".hidden", "skipped.jpg"))
    shutil.copy(image("odd_17x9.jpg"), os.path.join(B(TREE), b"b/caf\xe9 latin1.jpg"))  # not UTF-8
    shutil.copy(image("chelsea_gray.jpg"), os.path.join(TREE, "b", "猫 é.jpg"))
    shutil.copy(image("odd_223x225.jpg"), os.path.join(TREE, "b", "tab\there\nnewline\\.jpg"))
    shutil.copy(bad_txt, os.path.join(TREE, "b", "notes.txt"))
    shutil.copy(trunc, os.path.join(TREE, "b", "truncated.jpg"))
    os.symlink("..", os.path.join(TREE, "b", "deeper", "loop"))
    os.symlink("/nonexistent/file.jpg", os.path.join(TREE, "b", "broken.jpg"))


def unescape(field):
    out, i = bytearray(), 0
    while i < len(field):
        c = field[i:i + 1]
        if c == b"\\":
            out += {b"t": b"\t", b"n": b"\n", b"r": b"\r", b"\\": b"\\"}[field[i + 1:i + 2]]
            i += 2
        else:
            out += c
            i += 1
    return bytes(out)


def table(path):
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    assert lines[-1] == b""
    return lines[0].split(b"\t"), [[unescape(x) if k in (0, 3) else x for k, x in enumerate(l.split(b"\t"))]
                                   for l in lines[1:-1]]


def load_index(ix):
    emb = np.load(os.path.join(ix, "embeddings.npy"), mmap_mode="r")
    head, rows = table(os.path.join(ix, "files.tsv"))
    fhead, failed = table(os.path.join(ix, "failed.tsv"))
    meta = json.load(open(os.path.join(ix, "index.json")))
    return emb, head, rows, fhead, failed, meta


def index(ix, *args, model=M, input=None):
    return run(["index", model, ix] + list(args), input=input)


def walk_expected():
    """The files the walk must find: not hidden, links followed, each folder once."""
    found = []
    for root, dirs, files in os.walk(B(TREE), followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(b".") and not os.path.islink(os.path.join(root, d))]
        found += [os.path.join(root, f) for f in files if not f.startswith(b".")]
    return sorted(found)


build_tree()
IX = os.path.join(W, "ix")
rc, out, err = index(IX, TREE)
check(rc == 0, f"clip index over a tree: exit 0 ({err.strip()[-200:]})")
emb, head, rows, fhead, failed, meta = load_index(IX)
paths = [r[0] for r in rows]
fpaths = {r[0]: r[3] for r in failed}
want = walk_expected()
check(head == [b"path", b"size", b"mtime"] and fhead == [b"path", b"size", b"mtime", b"reason"],
      "files.tsv and failed.tsv start with their header lines")
check(sorted(paths + list(fpaths)) == want and paths == sorted(paths),
      f"every file found once, in byte order: hidden folder skipped, link loop not followed twice "
      f"({len(paths)} rows, {len(fpaths)} failed, {len(want)} expected)")
check(any(b"caf\xe9" in p for p in paths) and any("猫 é".encode() in p for p in paths) and
      any(b"tab\there\nnewline\\" in p for p in paths), "non-UTF-8, non-ASCII and tab/newline/backslash names survive")
check(set(os.path.basename(p) for p in fpaths) == {b"notes.txt", b"truncated.jpg", b"broken.jpg"} and
      b"unknown image format" in fpaths[os.path.join(B(TREE), b"b/notes.txt")] and
      b"No such file" in fpaths[os.path.join(B(TREE), b"b/broken.jpg")],
      f"failed.tsv: each unreadable file with its reason {sorted(fpaths.items())}")
check(emb.dtype == np.float32 and emb.shape == (len(rows), 48) and meta["dim"] == 48 and meta["rows"] == len(rows),
      f"embeddings.npy: float32 ({len(rows)}, 48), loadable with mmap_mode='r'")
rc, out, err = run(["embed", M] + [p.decode("utf-8", "surrogateescape") for p in paths])
direct = np.array([json.loads(l) for l in out.decode().splitlines()], dtype=np.float32)
check(rc == 0 and np.array_equal(np.asarray(emb), normalized(direct)),
      "every row equals clip embed of its file, normalized (bit for bit)")
st = [os.stat(p) for p in paths]
check(all(int(r[1]) == s.st_size and r[2] == b"%d.%09d" % (s.st_mtime_ns // 10**9, s.st_mtime_ns % 10**9)
          for r, s in zip(rows, st)), "size and mtime (ns) of each file")

# search
def search(ix, *args, model=M):
    rc, out, err = run(["search", model, ix] + list(args))
    return rc, out, err


for q in ("a photo of a cat", "rocket"):
    rc, out, err = search(IX, q, "--top", "7", "--json")
    res = json.loads(out) if rc == 0 else []
    tq = normalized(text_features([q]))[0]
    scores = np.asarray(emb) @ tq
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:7]
    wantp = [paths[i].decode("utf-8", "replace") for i in order]
    check(rc == 0 and [r["path"] for r in res] == wantp and
          max(abs(r["score"] - float(scores[i])) for r, i in zip(res, order)) < 1e-6,
          f"search {q!r} --top 7: the numpy brute force's files and scores")
rc, out, err = search(IX, "--image", os.path.join(TREE, "a", "rocket.jpg"), "--top", "1")
check(rc == 0 and out.decode().split("  ", 1)[1].strip() == os.path.join(TREE, "a", "rocket.jpg") and
      abs(float(out.split()[0]) - 1.0) < 1e-4, f"search --image: the image itself first, score 1 ({out.decode().strip()})")
rc, out, err = search(IX, "cat", "--top", "3")
check(rc == 0 and len(out.decode().splitlines()) == 3, "search: readable output, --top 3 lines")
rc, out, err = search(IX, "cat", model=M2)
check(rc == 1 and "another model" in err, f"search with another model is refused: {err.strip()}")
rc, out, err = index(IX, TREE, model=M2)
check(rc == 1 and "another model" in err, f"index with another model is refused: {err.strip()}")

meta = json.load(open(os.path.join(IX, "index.json")))
check(meta.get("model_size") == os.path.getsize(M), "index.json records the weights file's size and time")
M_copy = os.path.join(W, "same-model-elsewhere.bin")
shutil.copy(M, M_copy)
rc, out, err = search(IX, "cat", model=M_copy)
rc2, out2, _ = search(IX, "cat")
check(rc == 0 and out == out2, "the same model in another file (its time differs): hashed, accepted")
try:
    import faiss
    fx = faiss.IndexFlatIP(emb.shape[1])
    fx.add(np.ascontiguousarray(emb))
    tq = normalized(text_features(["a photo of a dog"]))
    D, I = fx.search(tq, 5)
    rc, out, err = search(IX, "a photo of a dog", "--top", "5", "--json")
    res = json.loads(out)
    # equal images (the same picture as PNG and BMP) tie: faiss may order them otherwise
    byp = {p.decode("utf-8", "replace"): float(np.asarray(emb)[i] @ tq[0]) for i, p in enumerate(paths)}
    same_ids = [r["path"] for r in res] == [paths[i].decode("utf-8", "replace") for i in I[0]]
    check(np.allclose([r["score"] for r in res], D[0], atol=1e-5) and
          all(abs(byp[r["path"]] - d) < 1e-5 for r, d in zip(res, D[0])),
          f"faiss (IndexFlatIP on embeddings.npy as it is) gives clip search's top 5 "
          f"({'the same files' if same_ids else 'the same files up to ties of equal images'})")
except ImportError:
    skipped("faiss against clip search", "python3-faiss is not installed (apt-get install python3-faiss)")

# incremental
before = os.stat(os.path.join(IX, "embeddings.npy")).st_mtime_ns
rc, out, err = index(IX, TREE)
check(rc == 0 and "0 embedded" in err and os.stat(os.path.join(IX, "embeddings.npy")).st_mtime_ns == before,
      f"a rerun over an unchanged tree embeds nothing and writes nothing ({err.strip()})")
changed = os.path.join(TREE, "a", "rocket.jpg")
shutil.copy(image("astronaut_q100_444.jpg"), changed)
added_f = os.path.join(TREE, "b", "new.png")
shutil.copy(os.path.join(TREE, "a", "img1.png"), added_f)
removed = os.path.join(TREE, "a", "img2.gif")
os.unlink(removed)
rc, out, err = index(IX, TREE)
emb2, _, rows2, _, failed2, _ = load_index(IX)
p2 = [r[0] for r in rows2]
old = dict(zip(paths, np.asarray(emb)))
check(rc == 0 and "2 embedded" in err and B(added_f) in p2 and B(removed) in p2 and "1 gone but kept" in err,
      f"changed and added files are embedded; a removed one is kept without --prune ({err.strip()})")
new = dict(zip(p2, np.asarray(emb2)))
check(np.array_equal(new[B(changed)], normalized(embed([changed]))[0]) and
      all(np.array_equal(new[p], old[p]) for p in paths if p != B(changed)),
      "the changed file's row is its new features; every other row is unchanged")
rc, out, err = index(IX, TREE, "--prune")
_, _, rows3, _, _, _ = load_index(IX)
check(rc == 0 and B(removed) not in [r[0] for r in rows3] and "1 pruned" in err, f"--prune drops it ({err.strip()})")
rc, out, err = index(IX)
check(rc == 0 and "0 embedded" in err, f"clip index MODEL INDEX without paths checks the indexed files again ({err.strip()})")

# progress: on a terminal only
def index_on_terminal(ix, *args):
    import pty
    master, slave = pty.openpty()
    p = subprocess.Popen([CLIP, "index", M, ix] + list(args), stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return p.wait(), b"".join(chunks).decode("utf-8", "replace")


rc, tty = index_on_terminal(os.path.join(W, "ix-tty"), TREE)
rc2, _, err = index(os.path.join(W, "ix-notty"), TREE)
check(rc == 0 and "embedding 0/" in tty and "images/s" in tty and "left" in tty and "clip index:" in tty and
      rc2 == 0 and "embedding " not in err and "clip index:" in err,
      "progress (done/total, images/s, time left) on a terminal only; the summary either way")
rc, tty = index_on_terminal(os.path.join(W, "ix-tty-q"), os.path.join(TREE, "b"), "-q")
check(rc == 0 and tty.strip() == "", f"-q: nothing at all on a terminal {tty!r}")

# paths from stdin, against the same files as arguments
listed = [os.path.join(TREE, "a", n) for n in sorted(os.listdir(os.path.join(TREE, "a")))]
IXS, IXA = os.path.join(W, "ix-stdin"), os.path.join(W, "ix-args")
rc, out, err = index(IXS, "-", input="\n".join(listed).encode() + b"\n")
rc2, out2, err2 = index(IXA, *listed)
check(rc == 0 and rc2 == 0 and open(os.path.join(IXS, "files.tsv"), "rb").read() ==
      open(os.path.join(IXA, "files.tsv"), "rb").read() and
      open(os.path.join(IXS, "embeddings.npy"), "rb").read() == open(os.path.join(IXA, "embeddings.npy"), "rb").read(),
      "paths read from stdin (-) index exactly as the same paths given as arguments")
rc, out, err = index(os.path.join(W, "ix-typo"), os.path.join(W, "no-such-folder"))
check(rc == 1 and "no-such-folder" in err and not os.path.exists(os.path.join(W, "ix-typo", "index.json")),
      f"a path on the command line that does not exist stops before any work: {err.strip()}")

# shards, merged, against one run
build_tree()
ONE = os.path.join(W, "ix-one")
rc, _, err = index(ONE, TREE, "-q")
shards = [os.path.join(W, f"shard{k}") for k in (1, 2, 3)]
ok = rc == 0
for k, s in enumerate(shards, 1):
    rc, _, err = index(s, TREE, "--shard", f"{k}/3", "-q")
    ok = ok and rc == 0
n_rows = [len(table(os.path.join(s, "files.tsv"))[1]) for s in shards]
check(ok and all(n_rows) and sum(n_rows) == len(table(os.path.join(ONE, "files.tsv"))[1]),
      f"--shard K/3: three disjoint slices ({n_rows})")
MERGED = os.path.join(W, "ix-merged")
rc, out, err = run(["index", "--merge", MERGED] + shards[::-1])
same = all(open(os.path.join(MERGED, f), "rb").read() == open(os.path.join(ONE, f), "rb").read()
           for f in ("files.tsv", "failed.tsv", "embeddings.npy"))
check(rc == 0 and same, f"--merge of the shards (in any order) equals one run: files, failures and embeddings "
                        f"byte for byte {err.strip()}")
rc, out, err = run(["index", "--merge", MERGED, shards[0], IXS.replace("ix-stdin", "nope")])
check(rc == 1 and "nope" in err, f"--merge with a folder that is not an index: refused ({err.strip()})")

# ---------------------------------------------------------------------------
# Crash safety

def journal_rows(ix):
    """Valid records in journal.bin (the format in index.c)."""
    import struct
    p = os.path.join(ix, "journal.bin")
    if not os.path.exists(p):
        return 0
    d = open(p, "rb").read()
    n, off = 0, 24
    while off + 8 <= len(d):
        body, chk = struct.unpack_from("<II", d, off)
        if body > len(d) - off - 8:
            break
        h = 0xcbf29ce484222325
        for c in d[off + 8:off + 8 + body]:
            h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
        if (h & 0xFFFFFFFF) != chk:
            break
        n += 1
        off += 8 + body
    return n


def consistent(ix):
    """An index folder a reader accepts (or none yet)."""
    if not os.path.exists(os.path.join(ix, "index.json")) and not os.path.exists(os.path.join(ix, "index.json.new")):
        return True, 0
    rc, out, err = search(ix, "x", "--top", "1")
    if rc != 0:
        return False, err
    rc, out, err = search(ix, "x", "--top", "1000000", "--json")
    return rc == 0, len(json.loads(out)) if rc == 0 else err


# a bigger collection: the same images under many names
BIG = os.path.join(W, "big")
os.makedirs(BIG)
for i in range(60):
    src = imgs[i % len(imgs)]
    shutil.copy(src, os.path.join(BIG, f"{i:03d}{os.path.splitext(src)[1]}"))
CLEAN = os.path.join(W, "ix-clean")
t0 = time.time()
rc, _, err = index(CLEAN, BIG, "-q")
full = time.time() - t0
KILLED = os.path.join(W, "ix-killed")
rng = random.Random(14)
kills, bad, lost = 0, [], []
big_files = sorted(os.listdir(BIG))
mtimes = {f: os.stat(os.path.join(BIG, f)).st_mtime_ns for f in big_files}
for attempt in range(30):
    # new modification times for some of the files: each run has work to do
    for f in rng.sample(big_files, rng.randint(10, len(big_files))):
        os.utime(os.path.join(BIG, f), ns=(mtimes[f], mtimes[f] + rng.randint(1, 10**12)))
    p = subprocess.Popen([CLIP, "index", M, KILLED, BIG, "--checkpoint", "0", "-q"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    time.sleep(rng.uniform(0, full * 1.1))
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
        kills += 1
    p.wait()
    ok, n = consistent(KILLED)
    if not ok:
        bad.append((attempt, n))
        break
    pending = journal_rows(KILLED)
    if pending and attempt % 3 == 0:
        # the journal's rows are saved by the next run, before anything else: none lost
        rc, _, err = index(KILLED, "-q")
        ok2, n2 = consistent(KILLED)
        if not ok2 or rc != 0 or n2 < pending:
            lost.append((attempt, pending, n, n2, err))
check(not bad, f"after kill -9 at random moments ({kills} kills in 30 runs) the index is always readable {bad}")
check(not lost, f"rows an interrupted run had written are never lost: the next run saves them {lost}")
for f in big_files:  # the files as the clean run saw them
    os.utime(os.path.join(BIG, f), ns=(mtimes[f], mtimes[f]))
rc, _, err = index(KILLED, BIG, "-q")
same = all(open(os.path.join(KILLED, f), "rb").read() == open(os.path.join(CLEAN, f), "rb").read()
           for f in ("files.tsv", "failed.tsv", "embeddings.npy"))
check(rc == 0 and same and not os.path.exists(os.path.join(KILLED, "journal.bin")),
      "the rerun after the kills finishes the job: the index equals an uninterrupted run's")

# the two states a save can be interrupted in, made by hand
def copy_index(src, dst):
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)


OLD, NEW = os.path.join(W, "ix-old"), os.path.join(W, "ix-new")
copy_index(IXA, OLD)  # the images of folder a
for f in ("embeddings.npy", "files.tsv", "failed.tsv", "index.json"):  # a newer index, saved as .new
    shutil.copy(os.path.join(ONE, f), os.path.join(OLD, f + ".new"))
rc, out, err = search(OLD, "cat", "--top", "1000", "--json")
n_old = len(table(os.path.join(IXA, "files.tsv"))[1])
check(rc == 0 and len(json.loads(out)) == n_old, "a save interrupted before its commit marker: readers see the old index")
rc, _, err = index(OLD, "-q")
check(rc == 0 and not any(f.endswith(".new") for f in os.listdir(OLD)) and
      len(table(os.path.join(OLD, "files.tsv"))[1]) == n_old, "... and the next run removes the unfinished files")
copy_index(IXA, NEW)
for f in ("embeddings.npy", "files.tsv"):  # renames done for two files of four
    shutil.copy(os.path.join(ONE, f), os.path.join(NEW, f))
for f in ("failed.tsv", "index.json"):
    shutil.copy(os.path.join(ONE, f), os.path.join(NEW, f + ".new"))
open(os.path.join(NEW, "commit"), "w").write("x\n")
rc, out, err = search(NEW, "cat", "--top", "1000", "--json")
n_new = len(table(os.path.join(ONE, "files.tsv"))[1])
check(rc == 0 and len(json.loads(out)) == n_new, "a save interrupted after its commit marker: readers see the new index")
rc, _, err = index(NEW, "-q")
check(rc == 0 and not os.path.exists(os.path.join(NEW, "commit")) and
      all(open(os.path.join(NEW, f), "rb").read() == open(os.path.join(ONE, f), "rb").read()
          for f in ("files.tsv", "failed.tsv", "embeddings.npy")), "... and the next run finishes the renames")

# ---------------------------------------------------------------------------
# Hostile index folders: refused with a message, never read out of bounds

def npy_bytes(arr, header=None):
    import io
    b = io.BytesIO()
    np.save(b, arr)
    return b.getvalue()


good = os.path.join(W, "ix-good")
copy_index(IXA, good)
E0 = np.load(os.path.join(good, "embeddings.npy"))
emb_raw = open(os.path.join(good, "embeddings.npy"), "rb").read()
files_raw = open(os.path.join(good, "files.tsv"), "rb").read()
meta_raw = open(os.path.join(good, "index.json"), "rb").read()
hostile = [
    ("truncated embeddings.npy", "embeddings.npy", emb_raw[:len(emb_raw) - 100], "truncated"),
    ("embeddings.npy cut inside its header", "embeddings.npy", emb_raw[:40], "header"),
    ("empty embeddings.npy", "embeddings.npy", b"", "not a numpy"),
    ("float64 embeddings", "embeddings.npy", npy_bytes(E0.astype(np.float64)), "float32"),
    ("big-endian float32", "embeddings.npy", npy_bytes(E0.astype(">f4")), "float32"),
    ("Fortran order", "embeddings.npy", npy_bytes(np.asfortranarray(E0)), "Fortran"),
    ("1-D array", "embeddings.npy", npy_bytes(E0.ravel()), "2-D"),
    ("another dimension", "embeddings.npy", npy_bytes(E0[:, :32].copy()), "damaged"),
    ("one row too many", "embeddings.npy", npy_bytes(np.vstack([E0, E0[:1]])), "damaged"),
    ("a huge shape in the header", "embeddings.npy",
     emb_raw.replace(b"(%d, 48)" % len(E0), b"(%d, 48)" % (2**60)), "does not match"),
    ("a table with a row missing", "files.tsv", b"".join(files_raw.split(b"\n", 2)[0:1]) + b"\n" +
     files_raw.split(b"\n", 2)[2], "damaged"),
    ("a table without its header", "files.tsv", files_raw.split(b"\n", 1)[1], "header"),
    ("a table cut mid-line", "files.tsv", files_raw[:-5], "cut short"),
    ("a table with a bad size", "files.tsv", files_raw.replace(b"\t", b"\tx").replace(b"size\tx", b"size\t")
     .replace(b"path\tx", b"path\t"), "not a valid row"),
    ("a table out of order", "files.tsv", b"path\tsize\tmtime\n" + b"\n".join(
        sorted(files_raw.split(b"\n")[1:-1], reverse=True)) + b"\n", "sorted"),
    ("a bad escape in a path", "files.tsv", files_raw.replace(b"\n/", b"\n/\\q", 1), "not a valid row"),
    ("index.json of another format", "index.json", b'{"format": "other"}', "not a clip.c index"),
    ("index.json of a future version", "index.json", meta_raw.replace(b'"version": 1', b'"version": 7'), "version"),
    ("index.json without a fingerprint", "index.json", meta_raw.replace(b"fingerprint", b"fingerprunt"), "fingerprint"),
    ("index.json of another model", "index.json", meta_raw.replace(meta_raw.split(b'"fingerprint": "')[1][:16],
                                                                 b"0123456789abcdef").replace(b"model_size", b"msize"),
     "another model"),
    ("files.tsv missing", "files.tsv", None, "files.tsv"),
    ("embeddings.npy missing", "embeddings.npy", None, "embeddings.npy"),
]
lazy_ok = {"a table out of order"}
lazy_words = {"a bad escape in a path": "damaged"}
for what, name, data, words in hostile:
    H = os.path.join(W, "ix-hostile")
    copy_index(good, H)
    if data is None:
        os.unlink(os.path.join(H, name))
    else:
        with open(os.path.join(H, name), "wb") as f:
            f.write(data)
    rc, out, err = search(H, "cat", "--top", "1000")
    rc2, out2, err2 = index(H, "-q")
    if what in lazy_ok:  # search checks each row's fields, not the order of the rows
        check(rc == 0 and rc2 == 1 and words in err2,
              f"hostile index ({what}): index refuses it, search answers: {err2.strip()[:150]}")
    else:
        check(rc == 1 and (words in err or (what in lazy_words and lazy_words[what] in err)) and rc2 == 1 and
              words in err2, f"hostile index ({what}): search and index refuse it: {err.strip()[:150]}")
    check(open(os.path.join(H, name), "rb").read() == data if data is not None else not os.path.exists(
        os.path.join(H, name)), f"hostile index ({what}): left as it was")
rc, out, err = search(os.path.join(W, "no-index-here"), "cat")
check(rc == 1 and "not an index" in err, f"search of a folder without an index: {err.strip()}")
finish("test_collections")
