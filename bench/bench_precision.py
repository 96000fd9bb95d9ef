#!/usr/bin/env python3
"""Half- and quarter-size weights files against float32, side by side in one
run, on random full-size checkpoints: file size, peak RSS, image and text
tower times (bench/clip_bench, rounds interleaved, medians; the image tower
also per image in a batch of 8), and the
accuracy ledger: the relative feature error of each precision against the
float32 file (max |a - b| / max |b|, over images and prompts), the cosine,
and how often zero-shot over 100 random label sets agrees with float32's
top-1 and top-5 (the same five labels).

    bench/bench_precision.py [--model ViT-B-32] [--model ViT-L-14] [--threads 1,2] [--runs 10] [--rounds 3]
                             [--no-time] [--no-ledger]

Random weights cannot show what a precision does to accuracy on real
photos: they measure how far the numbers move, not whether the answers
stay right. The checkpoints are generated and deleted afterwards."""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test"))
sys.path.insert(0, ROOT)
from make_checkpoint import random_clip  # noqa: E402

CLIP = os.path.join(ROOT, "clip")
BENCH = os.path.join(ROOT, "bench", "clip_bench")
VOCAB = os.path.join(ROOT, "data", "bpe_simple_vocab_16e6.txt.gz")
DTYPES = ["f32", "f16", "bf16", "q8"]
NOUNS = """cat dog horse bird fish car truck bicycle airplane ship train house tree flower mountain river beach
forest city street bridge tower castle church road field garden kitchen bedroom office classroom library
apple banana orange bread cake pizza coffee tea wine beer guitar piano violin drum book newspaper letter
computer phone camera television clock lamp chair table sofa bed door window wall roof fence boat
rocket satellite moon sun star cloud rain snow storm fire smoke sand rock stone ice desert island lake
ocean wave shell crab whale shark dolphin turtle frog snake lizard spider bee butterfly ant""".split()
TEMPLATES = ["a photo of a {}.", "a drawing of a {}.", "a close-up photo of the {}."]


def run(cmd, env=None):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    if p.returncode:
        sys.exit(f"{' '.join(cmd[:3])}: exit {p.returncode}: {p.stderr.decode()[:300]}")
    return p.stdout


def embed(blob, args):
    return np.array([json.loads(line) for line in run([CLIP, "embed", blob] + args).decode().splitlines()])


def images(folder, n):
    """data/cat.jpg and n - 1 smooth random pictures (upscaled noise), as PPM."""
    rng = np.random.default_rng(5)
    paths = [os.path.join(ROOT, "data", "cat.jpg")]
    for i in range(n - 1):
        small = rng.integers(0, 256, size=(rng.integers(3, 9), rng.integers(3, 9), 3)).astype(np.float64)
        h, w = 300 + 20 * i, 400 - 10 * i
        ys = np.linspace(0, small.shape[0] - 1, h)
        xs = np.linspace(0, small.shape[1] - 1, w)
        y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
        y1, x1 = np.minimum(y0 + 1, small.shape[0] - 1), np.minimum(x0 + 1, small.shape[1] - 1)
        fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
        img = (small[y0][:, x0] * (1 - fy) * (1 - fx) + small[y1][:, x0] * fy * (1 - fx) +
               small[y0][:, x1] * (1 - fy) * fx + small[y1][:, x1] * fy * fx)
        img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        p = os.path.join(folder, f"img{i}.ppm")
        with open(p, "wb") as f:
            f.write(b"P6\n%d %d\n255\n" % (w, h) + img.tobytes())
        paths.append(p)
    return paths


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def ledger(blobs, folder, sets=100, per_set=10):
    imgs = images(folder, 16)
    prompts = [t.format(n) for n in NOUNS for t in TEMPLATES]
    feats = {d: (embed(b, imgs), embed(b, ["--text"] + prompts)) for d, b in blobs.items()}
    rng = np.random.default_rng(11)
    choice = [rng.choice(len(prompts), per_set, replace=False) for _ in range(sets)]
    fi, ft = feats["f32"]

    def answers(i, t):
        logits = unit(i) @ unit(t).T        # (images, prompts)
        top1, top5 = [], []
        for c in choice:
            order = np.argsort(-logits[:, c], axis=1, kind="stable")
            top1.append(order[:, 0])
            top5.append(np.sort(order[:, :5], axis=1))
        return np.array(top1), np.array(top5)

    base1, base5 = answers(fi, ft)
    rows = []
    for d in DTYPES[1:]:
        i, t = feats[d]
        e_img = np.abs(i - fi).max() / np.abs(fi).max()
        e_txt = np.abs(t - ft).max() / np.abs(ft).max()
        cos = np.concatenate([(unit(i) * unit(fi)).sum(1), (unit(t) * unit(ft)).sum(1)])
        a1, a5 = answers(i, t)
        rows.append(dict(dtype=d, err_image=float(e_img), err_text=float(e_txt), cos_min=float(cos.min()),
                         cos_mean=float(cos.mean()), top1=float((a1 == base1).mean()),
                         top5=float((a5 == base5).all(axis=2).mean())))
    return rows, len(imgs), len(prompts)


def timing(blobs, threads, runs, rounds):
    res = {}
    for _ in range(rounds):
        for th in threads:
            for d, b in blobs.items():
                env = dict(os.environ, OMP_NUM_THREADS=str(th))
                r = json.loads(run([BENCH, b, str(runs)], env))
                res.setdefault((th, d), []).append(r)
    out = []
    for (th, d), rs in sorted(res.items(), key=lambda kv: (kv[0][0], DTYPES.index(kv[0][1]))):
        out.append(dict(threads=th, dtype=d, image_ms=statistics.median(r["image_ms"] for r in rs),
                        text_ms=statistics.median(r["text_ms"] for r in rs),
                        batch8_ms=statistics.median(r["image_batch8_ms"] for r in rs),
                        rss_mib=max(r["peak_rss_mib"] for r in rs)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", help="ViT-B-32 (default), ViT-B-16, ViT-L-14, ...")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=10, help="timed runs per clip_bench call")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians over them")
    ap.add_argument("--no-time", action="store_true", help="the ledger only")
    ap.add_argument("--no-ledger", action="store_true", help="sizes and times only")
    ap.add_argument("--read", action="store_true", help="time with the weights read into memory, not mapped "
                    "(clip --no-mmap; on a machine that reclaims mapped pages, the fair baseline)")
    args = ap.parse_args()
    for exe in (CLIP, BENCH):
        if not os.path.exists(exe):
            sys.exit(f"build {os.path.relpath(exe, ROOT)} first (make bench)")
    threads = [int(t) for t in args.threads.split(",")]
    if args.read:
        os.environ["CLIP_BENCH_READ"] = "1"
    for name in args.model or ["ViT-B-32"]:
        work = tempfile.mkdtemp(prefix="clip-precision-")
        try:
            folder = os.path.join(work, name)
            random_clip(folder, name, seed=3, act="gelu" if "L-14" in name else "quick_gelu")
            blobs = {}
            for d in DTYPES:
                blobs[d] = os.path.join(work, f"{name}-{d}.bin")
                run([sys.executable, os.path.join(ROOT, "export_weights.py"), "-q", "--dtype", d, "--tokenizer", VOCAB,
                     folder, blobs[d]])
            size = {d: os.path.getsize(b) for d, b in blobs.items()}
            print(f"## {name}, random weights")
            print("| file | size (MiB) | x float32 |")
            print("| --- | --- | --- |")
            for d in DTYPES:
                print(f"| {d} | {size[d] / 2**20:.1f} | {size[d] / size['f32']:.3f} |")
            if not args.no_time:
                t = timing(blobs, threads, args.runs, args.rounds)
                base = {r["threads"]: r for r in t if r["dtype"] == "f32"}
                print(f"\n{args.rounds} interleaved rounds of {args.runs} runs (bench/clip_bench), medians; "
                      "text: 4 prompts of 7 tokens as one batch; weights "
                      f"{'read into memory (--read)' if args.read else 'mapped'}")
                print("| threads | file | image (ms) | x float32 | text (ms) | x float32 | batch of 8, per image (ms) | "
                      "x batch of 1 | peak RSS (MiB) | RSS - file (MiB) |")
                print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
                for r in t:
                    b = base[r["threads"]]
                    print(f"| {r['threads']} | {r['dtype']} | {r['image_ms']:.1f} | {r['image_ms'] / b['image_ms']:.2f} | "
                          f"{r['text_ms']:.1f} | {r['text_ms'] / b['text_ms']:.2f} | {r['batch8_ms']:.1f} | "
                          f"{r['batch8_ms'] / r['image_ms']:.2f} | {r['rss_mib']:.0f} | "
                          f"{r['rss_mib'] - size[r['dtype']] / 2**20:+.0f} |")
            if not args.no_ledger:
                rows, ni, nt = ledger(blobs, work)
                print(f"\nAgainst the float32 file: {ni} images and {nt} prompts; zero-shot over 100 random sets of "
                      "10 prompts per image")
                print("| file | feature error, image | text | cosine min | cosine mean | same top-1 | same top-5 |")
                print("| --- | --- | --- | --- | --- | --- | --- |")
                for r in rows:
                    print(f"| {r['dtype']} | {r['err_image']:.2e} | {r['err_text']:.2e} | {r['cos_min']:.6f} | "
                          f"{r['cos_mean']:.6f} | {100 * r['top1']:.1f}% | {100 * r['top5']:.1f}% |")
            print()
            sys.stdout.flush()
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
