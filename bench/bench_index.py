#!/usr/bin/env python3
"""Throughput of `clip index` against the same job in Python (Pillow +
Hugging Face's preprocessing + a PyTorch DataLoader + the PyTorch CLIP vision
tower of bench_model.py), on a folder of photo-like JPEGs, side by side in
one run (rounds interleaved), reported as medians and ratios.

    bench/bench_index.py [--images 300] [--rounds 3] [--threads 2[,1]] [--torch-threads 1,2] [--keep] [--quick]

The folder (made once, reused while it exists): about a third 12-megapixel
phone photos (4000 x 3000 or 3000 x 4000, 2-5 MB), the rest web-sized (640 x
480 to 1280 x 960), all 4:2:0 quality 90, progressive with odds 1 in 4; upscaled
crops of the natural test images with lighting gradients, colour casts and
sensor-like noise, so that they compress like photos. The model: a random
ViT-B/32 (bench_model.make_model), the same weights on both sides.

clip: `clip index MODEL INDEX FOLDER` into a new INDEX each round,
OMP_NUM_THREADS=--threads. Python: a fresh process that imports torch, loads
the checkpoint, and runs DataLoader(batch_size=32, num_workers=2) over
Image.open(f).convert("RGB") + the CLIPImageProcessor crop (shortest side to
224, bicubic, center crop, /255, CLIP's mean/std) into the vision tower under
torch.inference_mode, writing L2-normalized features; once per
--torch-threads setting per round, the faster one is compared. Times: the
whole process from its start (cold process, warm page cache), and the
embedding alone (clip: its summary's images/s, which leaves out the model
load, the folder walk and the save; Python: from after the model load to the
last batch).

Checks: every row of embeddings.npy against `clip embed --npy` of its file,
normalized (max |diff| <= 1e-6); clip's crops against Pillow's for a sample
(`clip preprocess`, byte-identical); clip's rows against the PyTorch job's.
Keeps the image folder with --keep (and reuses it next time)."""
import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
from bench_model import make_model, torch_env, torch_model_code  # noqa: E402

CLIP = os.path.join(ROOT, "clip")
FOLDER_VERSION = 1  # bump when make_images changes what it writes

# The Python job, run as its own process: {model} is bench_model.torch_model_code
PY_JOB = r'''
import json, os, sys, time
t_start = time.perf_counter()
sys.path.insert(0, {test!r})
import numpy as np, torch
from PIL import Image
from common import hf_crop  # CLIPImageProcessor's resize + center crop on a PIL image
{model}
S = v["image_size"]
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
files = sorted(os.path.join(d, f) for d, _, fs in os.walk({folder!r}) for f in fs
               if f.lower().endswith((".jpg", ".jpeg", ".png")) and not f.startswith("."))

class Files(torch.utils.data.Dataset):
    def __len__(self):
        return len(files)
    def __getitem__(self, i):
        with Image.open(files[i]) as im:
            a = hf_crop(im.convert("RGB"), S).astype(np.float32) * np.float32(1 / 255)
        return torch.from_numpy(((a - MEAN) / STD).transpose(2, 0, 1).copy())

t_loaded = time.perf_counter()
out = []
loader = torch.utils.data.DataLoader(Files(), batch_size=32, num_workers=2)
with torch.inference_mode():
    for px in loader:
        out.append(F.normalize(image(px), dim=-1).numpy())
np.save({out!r}, np.concatenate(out))
t_end = time.perf_counter()
with open({out!r} + ".txt", "w") as f:
    f.write("".join(p + "\n" for p in files))
print(json.dumps({{"files": len(files), "startup_load_s": t_loaded - t_start, "embed_s": t_end - t_loaded,
                   "threads": torch.get_num_threads()}}))
'''


def load_text():
    a, b, c = os.getloadavg()
    return f"{a:.2f} {b:.2f} {c:.2f}"


def image_sources():
    """The natural test images: committed ones, plus ../shared's when present."""
    names = [os.path.join(ROOT, "test", "data", "images", n) for n in
             ("chelsea.ppm", "coffee.ppm", "rocket.jpg", "astronaut_q100_444.jpg", "camera.pgm")]
    names.append(os.path.join(ROOT, "data", "cat.jpg"))
    shared = os.path.join(ROOT, "..", "shared", "fixtures", "images", "astronaut.ppm")
    if os.path.exists(shared):
        names[3] = shared
    return [n for n in names if os.path.exists(n)]


def make_images(folder, n, seed=1):
    """n photo-like JPEGs under folder (album_XX/IMG_NNNN.jpg: phone-sized;
    album_XX/web_NNNN.jpg: web-sized); reuses the folder when a previous call
    finished it with the same n and seed. Returns the total size in bytes."""
    from PIL import Image
    marker = os.path.join(folder, ".complete")
    stamp = json.dumps({"n": n, "seed": seed, "version": FOLDER_VERSION})
    if os.path.exists(marker) and open(marker).read() == stamp:
        print(f"reusing the images in {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        rng = np.random.default_rng(seed)
        srcs = [Image.open(p).convert("RGB") for p in image_sources()]
        t0 = time.perf_counter()
        for i in range(n):
            large = i % 3 == 0
            if large:
                w, h = (3000, 4000) if rng.random() < 0.25 else (4000, 3000)
            else:
                w, h = [(640, 480), (800, 600), (1024, 768), (1280, 960), (960, 1280), (1200, 900),
                        (768, 1024), (1280, 853)][rng.integers(8)]
            src = srcs[rng.integers(len(srcs))]
            if src.getbands() == ("R", "G", "B") and i % 7 == 6:  # a gray source now and then: tinted
                src = Image.merge("RGB", [src.convert("L")] * 3)
            # a crop of the source with the target's aspect ratio, 55-100% of the largest
            sw, sh = src.size
            scale = min(sw / w, sh / h) * rng.uniform(0.55, 1.0)
            cw, ch = max(8, int(w * scale)), max(8, int(h * scale))
            x0, y0 = rng.integers(sw - cw + 1), rng.integers(sh - ch + 1)
            im = src.crop((x0, y0, x0 + cw, y0 + ch))
            if rng.random() < 0.5:
                im = im.transpose(Image.FLIP_LEFT_RIGHT)
            a = np.asarray(im.resize((w, h), Image.BICUBIC), dtype=np.float32)
            # lighting: a vignette and a linear gradient; a colour cast
            yy = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
            xx = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
            gx, gy = rng.uniform(-0.15, 0.15, 2).astype(np.float32)
            light = 1 - np.float32(rng.uniform(0.1, 0.35)) * (xx * xx + yy * yy) + gx * xx + gy * yy
            a *= light[..., None]
            a *= rng.uniform(0.85, 1.15, 3).astype(np.float32)
            # sensor-like noise: luma and weaker chroma (this is what makes the file sizes photo-like)
            sigma = np.float32(rng.uniform(3, 6) if large else rng.uniform(2, 4))
            a += rng.standard_normal((h, w, 1), dtype=np.float32) * sigma
            a += rng.standard_normal((h, w, 3), dtype=np.float32) * (sigma / 2)
            np.clip(a + 0.5, 0, 255, out=a)
            sub = os.path.join(folder, f"album_{i // 50:02d}")
            os.makedirs(sub, exist_ok=True)
            name = f"IMG_{i:04d}.jpg" if large else f"web_{i:04d}.jpg"
            Image.fromarray(a.astype(np.uint8)).save(os.path.join(sub, name), quality=90, subsampling=2,
                                                     progressive=bool(rng.random() < 0.25))
            if (i + 1) % 25 == 0 or i + 1 == n:
                print(f"\rmade {i + 1}/{n} images ({time.perf_counter() - t0:.0f} s)", end="", flush=True)
        print()
        with open(marker, "w") as f:
            f.write(stamp)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs
               if not f.startswith("."))


def image_stats(folder):
    """(count, MB) of the large (IMG_) and small (web_) images, progressive count."""
    from PIL import Image
    st = {"large": [0, 0.0], "small": [0, 0.0], "progressive": 0, "large_sizes": []}
    for d, _, fs in os.walk(folder):
        for f in fs:
            if f.startswith("."):
                continue
            p = os.path.join(d, f)
            k = "large" if f.startswith("IMG_") else "small"
            st[k][0] += 1
            st[k][1] += os.path.getsize(p) / 1e6
            if k == "large":
                st["large_sizes"].append(os.path.getsize(p) / 1e6)
            with Image.open(p) as im:
                st["progressive"] += bool(im.info.get("progressive") or im.info.get("progression"))
    return st


def read_files_tsv(index):
    with open(os.path.join(index, "files.tsv"), "rb") as f:
        lines = f.read().decode("utf-8", "surrogateescape").splitlines()
    assert lines[0] == "path\tsize\tmtime", lines[0]
    return [l.split("\t")[0] for l in lines[1:]]


def run_clip_index(blob, index, folder, threads):
    shutil.rmtree(index, ignore_errors=True)
    u0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run([CLIP, "index", blob, index, folder], env=dict(os.environ, OMP_NUM_THREADS=str(threads)),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    wall = time.perf_counter() - t
    u1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (u1.ru_utime - u0.ru_utime) + (u1.ru_stime - u0.ru_stime)
    err = p.stderr.decode()
    m = re.search(r"this run: (\d+) embedded \(([\d.]+) images/s\)", err)
    if not m:
        raise RuntimeError(f"unexpected clip index output: {err}")
    n, rate = int(m.group(1)), float(m.group(2))
    return {"wall_s": wall, "embed_s": n / rate, "files": n, "summary": err.strip(), "cpu_s": cpu}


def run_python(job, threads):
    t = time.perf_counter()
    p = subprocess.run([sys.executable, job], env=torch_env(threads), stdout=subprocess.PIPE, check=True)
    wall = time.perf_counter() - t
    r = json.loads(p.stdout.decode().splitlines()[-1])
    r["wall_s"] = wall
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="2", help="clip's OMP_NUM_THREADS, or several: 2,1 (default 2)")
    ap.add_argument("--torch-threads", default="1,2", help="torch.set_num_threads settings to try (default 1,2)")
    ap.add_argument("--folder", help="where to make (or find) the images (default: in the temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the image folder (reused by the next run)")
    ap.add_argument("--quick", action="store_true", help="a small run: 24 images, 1 round")
    args = ap.parse_args()
    if args.quick:
        args.images, args.rounds = min(args.images, 24), 1
    if not os.path.exists(CLIP):
        sys.exit("build ./clip first (make clip)")
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.exit("needs PyTorch (Debian: python3-torch)")
    print(f"load average at the start: {load_text()} ({os.cpu_count()} cores)")
    folder = args.folder or os.path.join(tempfile.gettempdir(), f"clip-bench-index-{args.images}")
    tmp = tempfile.mkdtemp(prefix="clipbenchindex")
    try:
        total = make_images(folder, args.images)
        st = image_stats(folder)
        ls = st["large_sizes"] or [0]
        print(f"{args.images} images, {total / 1e6:.0f} MB: {st['large'][0]} large ({st['large'][1]:.0f} MB, "
              f"{min(ls):.1f}-{max(ls):.1f} MB each), {st['small'][0]} small ({st['small'][1]:.0f} MB), "
              f"{st['progressive']} progressive")
        ckpt, blob = make_model(tmp, "ViT-B-32")
        torch_threads = [int(t) for t in args.torch_threads.split(",")]
        jobs = {}
        for th in torch_threads:
            jobs[th] = os.path.join(tmp, f"py_index_{th}.py")
            with open(jobs[th], "w") as f:
                f.write(PY_JOB.format(test=os.path.join(ROOT, "test"), model=torch_model_code(ckpt, th),
                                      folder=folder, out=os.path.join(tmp, f"py_{th}.npy")))
        clip_threads = [int(t) for t in args.threads.split(",")]
        index = os.path.join(tmp, "index")  # the last run with clip_threads[0]: checked below
        res = {}
        loads = []
        for r in range(args.rounds):
            loads.append(os.getloadavg()[0])
            line = f"round {r + 1}/{args.rounds} (load {loads[-1]:.2f}):"
            for th in clip_threads:
                c = run_clip_index(blob, index if th == clip_threads[0] else index + "_other", folder, th)
                res.setdefault(("clip", th), []).append(c)
                line += f" clip {th} thread(s) {c['wall_s']:.1f} s,"
            for th in torch_threads:
                p = run_python(jobs[th], th)
                assert p["files"] == args.images, p
                res.setdefault(th, []).append(p)
                line += f" Python {th} thread(s) {p['wall_s']:.1f} s,"
            print(line.rstrip(","), flush=True)
        print(f"clip's own summary (last round): {res[('clip', clip_threads[0])][-1]['summary']}")

        # --- checks, on the last round's outputs
        paths = read_files_tsv(index)
        emb = np.load(os.path.join(index, "embeddings.npy"))
        with open(os.path.join(index, "failed.tsv")) as f:
            n_failed = len(f.read().splitlines()) - 1
        meta = json.load(open(os.path.join(index, "index.json")))
        print(f"index: {emb.shape[0]} rows of {emb.shape[1]}, {n_failed} failed, index.json rows {meta['rows']}, "
              f"dim {meta['dim']}")
        ok = emb.shape == (args.images, 512) and n_failed == 0 and meta["rows"] == args.images
        ref = os.path.join(tmp, "embed.npy")
        t = time.perf_counter()
        subprocess.run([CLIP, "embed", blob] + paths + ["--npy", ref], check=True,
                       env=dict(os.environ, OMP_NUM_THREADS=str(clip_threads[0])))
        t_embed = time.perf_counter() - t
        raw = np.load(ref).astype(np.float64)
        want = (raw / np.linalg.norm(raw, axis=1, keepdims=True)).astype(np.float32)
        d_embed = float(np.abs(emb - want).max())
        ok &= d_embed <= 1e-6
        print(f"index rows vs clip embed --npy, normalized ({len(paths)} files, {t_embed:.1f} s): "
              f"max |diff| {d_embed:.2e} {'ok' if d_embed <= 1e-6 else 'FAIL (> 1e-6)'}")
        # crops: clip preprocess against Pillow + Hugging Face's resize and crop, on a sample
        sys.path.insert(0, os.path.join(ROOT, "test"))
        from common import hf_crop
        from PIL import Image
        sample = paths[:: max(1, len(paths) // 12)]
        crop_diff = 0
        for p in sample:
            out = os.path.join(tmp, "crop.ppm")
            subprocess.run([CLIP, "preprocess", blob, p, out], check=True)
            with Image.open(p) as im:
                want_crop = hf_crop(im.convert("RGB"), 224).astype(int)
            crop_diff = max(crop_diff, int(np.abs(np.asarray(Image.open(out), dtype=int) - want_crop).max()))
        ok &= crop_diff == 0
        print(f"crops, clip preprocess vs Pillow + HF resize/crop ({len(sample)} files): max |diff| {crop_diff} "
              f"{'ok (byte-identical)' if crop_diff == 0 else 'FAIL'}")
        d_py = {}
        for th in torch_threads:
            py = np.load(os.path.join(tmp, f"py_{th}.npy"))
            with open(os.path.join(tmp, f"py_{th}.npy.txt")) as f:
                order = {p: i for i, p in enumerate(f.read().splitlines())}
            py = py[[order[p] for p in paths]]
            d_py[th] = float(np.abs(emb - py).max())
            print(f"clip rows vs the PyTorch job's ({th} thread(s)): max |diff| {d_py[th]:.2e}, "
                  f"min cosine {float((emb * py).sum(1).min()):.8f}")
        ok &= max(d_py.values()) <= 1e-4

        # --- summary
        med = lambda k, key: statistics.median(x[key] for x in res[k])  # noqa: E731
        n = args.images
        best = min(torch_threads, key=lambda th: med(th, "wall_s"))
        print(f"\n## clip index vs Python + PyTorch: {n} JPEGs ({st['large'][0]} at 12 MP), random ViT-B/32, fp32")
        print(f"medians of {args.rounds} interleaved round(s); warm page cache, a new process each run; "
              f"load average (1 min) at the rounds: {', '.join(f'{x:.2f}' for x in loads)}; now {load_text()}; "
              f"{os.cpu_count()} cores\n")
        print("| job | threads | whole process | images/s | embedding only | images/s | startup + load |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for th in clip_threads:
            cw, ce = med(("clip", th), "wall_s"), med(("clip", th), "embed_s")
            print(f"| clip index | OMP_NUM_THREADS={th} | {cw:.2f} s | {n / cw:.2f} | {ce:.2f} s | "
                  f"{n / ce:.2f} | {cw - ce:.2f} s (load, walk, save) |")
        for th in torch_threads:
            pw, pe, pl = med(th, "wall_s"), med(th, "embed_s"), med(th, "startup_load_s")
            print(f"| Python (DataLoader 32 x 2 workers) | torch {th}{' (faster)' if th == best else ''} | "
                  f"{pw:.2f} s | {n / pw:.2f} | {pe:.2f} s | {n / pe:.2f} | {pw - pe:.2f} s "
                  f"(in-process: {pl:.2f} s) |")
        pw, pe = med(best, "wall_s"), med(best, "embed_s")
        print()
        for th in clip_threads:
            cw, ce = med(("clip", th), "wall_s"), med(("clip", th), "embed_s")
            print(f"ratio of throughputs, clip {th} thread(s) / Python (torch {best} thread(s), its faster setting): "
                  f"whole process {pw / cw:.2f}x, embedding only {pe / ce:.2f}x")
        for th in clip_threads:
            cw, cc = med(("clip", th), "wall_s"), med(("clip", th), "cpu_s")
            print(f"clip index, {th} thread(s): {cc:.1f} s of CPU time in {cw:.1f} s = {cc / cw:.2f} of {th} "
                  f"core(s) busy on average (what overlapping decoding with encoding could still win is the rest)")
        print(f"checks: rows vs clip embed {d_embed:.1e} (<= 1e-6), crops identical to Pillow's "
              f"({'yes' if crop_diff == 0 else 'NO'}), clip vs PyTorch features max |diff| "
              f"{max(d_py.values()):.1e}: {'all ok' if ok else 'FAILED'}")
        if not ok:
            sys.exit(1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"kept the images in {folder}")


if __name__ == "__main__":
    main()
