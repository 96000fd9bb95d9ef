#!/usr/bin/env python3
"""The time `clip search` takes on a synthetic index of a million rows
(ViT-B/32's 512 dimensions: a 2 GB embeddings.npy), against numpy's brute
force and faiss's IndexFlatIP on the same rows, hot page cache, medians of
interleaved runs.

    bench/bench_search.py [--rows 1000000] [--runs 7] [--threads 2,1] [--dir DIR] [--keep]

The index: a real one first (`clip index` of a few generated photos, with a
random ViT-B/32: bench_index.make_images, bench_model.make_model), so that
index.json's model fingerprint is the model's; then its files grown to
--rows rows: the real rows, then synthetic/0000000.jpg ... (byte order, as
clip keeps files.tsv) with random sizes and mtimes written as clip writes
them (seconds with nine decimals), and random unit float32 vectors, written
in chunks of 64k rows; index.json's "rows" updated.

Timed, each run a new process (the index is mapped again each time):
`clip search MODEL INDEX "a photo of a cat" --top 10`, and `clip embed MODEL
--text "a photo of a cat"` (process start, model load, tokenizing and the
text tower), and `clip search` on the small real index (the same, plus the
model check: the weights' fingerprint); the differences give the model check
and the big index's own part (files.tsv parsed, embeddings.npy mapped, the
scan, the top 10).
In this process: numpy on np.load(mmap_mode="r") (a new map each time, like
clip; and on a map already read once), E @ q + argpartition + sort of the
10; faiss IndexFlatIP.search for one query (its add not timed). Checks that
clip's top 10 is numpy's (and faiss's). Deletes the files unless --keep."""
import argparse
import json
import os
import re
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
from bench_index import CLIP, load_text, make_images  # noqa: E402
from bench_model import make_model  # noqa: E402

QUERY = "a photo of a cat"
CHUNK = 65536


def grow_index(real, out, rows, seed=2):
    """out: the index real grown to rows rows (see the module's text)."""
    os.makedirs(out)
    with open(os.path.join(real, "files.tsv"), "rb") as f:
        lines = f.read().splitlines(keepends=True)
    head, real_rows = lines[0], lines[1:]
    real_emb = np.load(os.path.join(real, "embeddings.npy"))
    dim = real_emb.shape[1]
    n_syn = rows - len(real_rows)
    if n_syn < 0:
        raise ValueError(f"--rows must be at least {len(real_rows)}")
    width = max(7, len(str(n_syn - 1)))
    assert all(r < b"synthetic/" for r in real_rows)  # the real (absolute) paths sort first
    rng = np.random.default_rng(seed)
    with open(os.path.join(out, "files.tsv"), "wb") as f:
        f.write(head)
        f.writelines(real_rows)
        for start in range(0, n_syn, CHUNK):
            n = min(CHUNK, n_syn - start)
            size = rng.integers(20_000, 6_000_000, n)
            sec = rng.integers(1_500_000_000, 1_700_000_000, n)
            ns = rng.integers(0, 1_000_000_000, n)
            f.write("".join(f"synthetic/{start + i:0{width}d}.jpg\t{size[i]}\t{sec[i]}.{ns[i]:09d}\n"
                            for i in range(n)).encode())
    with open(os.path.join(out, "embeddings.npy"), "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (rows, dim)})
        f.write(real_emb.astype("<f4").tobytes())
        for start in range(0, n_syn, CHUNK):
            x = rng.standard_normal((min(CHUNK, n_syn - start), dim), dtype=np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            f.write(x.tobytes())
    shutil.copy(os.path.join(real, "failed.tsv"), out)
    with open(os.path.join(real, "index.json")) as f:
        meta = f.read()
    meta, k = re.subn(r'"rows": \d+', f'"rows": {rows}', meta)
    assert k == 1, meta
    with open(os.path.join(out, "index.json"), "w") as f:
        f.write(meta)
    return dim


def timed(cmd, env):
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {p.stderr.decode()}")
    return dt, p.stdout


def numpy_search(path, q, k, emb=None):
    """(seconds, rows best first, scores); a new map of path unless emb is given."""
    t = time.perf_counter()
    e = np.load(path, mmap_mode="r") if emb is None else emb
    s = e @ q
    top = np.argpartition(-s, k)[:k]
    top = top[np.lexsort((top, -s[top]))]  # best first, ties by row (as clip)
    return time.perf_counter() - t, top, s[top]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=7, help="timed runs of each (default 7), interleaved")
    ap.add_argument("--threads", default="2,1", help="clip's OMP_NUM_THREADS settings (default 2,1)")
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where to write the index (default: temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the index and the model")
    args = ap.parse_args()
    if not os.path.exists(CLIP):
        sys.exit("build ./clip first (make clip)")
    dim = 512
    need = args.rows * (dim * 4 + 48) + 700 * 2**20  # embeddings, files.tsv, the model and its checkpoint
    free = shutil.disk_usage(args.dir).free
    print(f"disk: {free / 2**30:.1f} GiB free in {args.dir}, {need / 2**30:.1f} GiB needed")
    if free < need * 1.1:
        sys.exit(f"not enough disk space in {args.dir}: need {need / 2**30:.1f} GiB (+10%), "
                 f"{free / 2**30:.1f} GiB free; use --dir elsewhere or fewer --rows")
    print(f"load average at the start: {load_text()} ({os.cpu_count()} cores)")
    tmp = tempfile.mkdtemp(prefix="clipbenchsearch", dir=args.dir)
    threads = [int(t) for t in args.threads.split(",")]
    envs = {th: dict(os.environ, OMP_NUM_THREADS=str(th)) for th in threads}
    env = envs[threads[0]]
    try:
        _, blob = make_model(tmp, "ViT-B-32")
        photos = os.path.join(tmp, "photos")
        make_images(photos, 6)
        real = os.path.join(tmp, "real_index")
        subprocess.run([CLIP, "index", "-q", blob, real, photos], env=env, check=True)
        n_real = len(np.load(os.path.join(real, "embeddings.npy")))
        index = os.path.join(tmp, "index")
        t = time.perf_counter()
        dim = grow_index(real, index, args.rows)
        npy = os.path.join(index, "embeddings.npy")
        print(f"wrote a {args.rows}-row index in {time.perf_counter() - t:.0f} s: embeddings.npy "
              f"{os.path.getsize(npy) / 1e9:.2f} GB, files.tsv "
              f"{os.path.getsize(os.path.join(index, 'files.tsv')) / 1e6:.0f} MB")
        import faiss
        mapped = np.load(npy, mmap_mode="r")
        fx = faiss.IndexFlatIP(dim)
        for start in range(0, args.rows, CHUNK * 4):
            fx.add(np.ascontiguousarray(mapped[start:start + CHUNK * 4]))
        search = [CLIP, "search", blob, index, QUERY, "--top", "10", "--json"]
        embed = [CLIP, "embed", blob, "--text", QUERY]
        small = [CLIP, "search", blob, real, QUERY, "--top", "10", "--json"]
        # warm: the page cache, and the query vector for numpy and faiss
        for th in threads:
            timed(search, envs[th])
        q = np.array(json.loads(timed(embed, env)[1]), dtype=np.float64)
        q = (q / np.linalg.norm(q)).astype(np.float32)
        numpy_search(npy, q, 10, mapped)
        res = {}
        loads = []
        for r in range(args.runs):
            loads.append(os.getloadavg()[0])
            for th in threads:
                dt, out = timed(search, envs[th])
                res.setdefault(("search", th), []).append(dt)
                top = json.loads(out)
                if th == threads[0]:
                    clip_top = top
                elif top != clip_top:
                    print(f"clip search's results with {th} thread(s) differ from {threads[0]}'s")
                res.setdefault(("embed", th), []).append(timed(embed, envs[th])[0])
                res.setdefault(("small", th), []).append(timed(small, envs[th])[0])
            dt, np_top, np_scores = numpy_search(npy, q, 10)
            res.setdefault("numpy", []).append(dt)
            res.setdefault("numpy_mapped", []).append(numpy_search(npy, q, 10, mapped)[0])
            t = time.perf_counter()
            fs, fi = fx.search(q[None], 10)
            res.setdefault("faiss", []).append(time.perf_counter() - t)
        # checks: clip's top 10 (paths -> rows) against numpy's, and faiss's
        with open(os.path.join(index, "files.tsv"), "rb") as f:
            f.readline()
            wanted, row_of = {h["path"] for h in clip_top}, {}
            for i, line in enumerate(f):
                p = line.split(b"\t", 1)[0].decode()
                if p in wanted:
                    row_of[p] = i
        clip_rows = [row_of[h["path"]] for h in clip_top]
        clip_scores = np.array([h["score"] for h in clip_top])
        same = clip_rows == list(np_top)
        faiss_same = list(fi[0]) == list(np_top)
        d_score = float(np.abs(clip_scores - np_scores).max())
        print(f"clip's top 10 rows: {clip_rows}")
        print(f"numpy's top 10 rows: {list(np_top)} ({'the same' if same else 'DIFFERENT'}; "
              f"max |score diff| {d_score:.1e}); faiss's: {'the same' if faiss_same else list(fi[0])}")

        med = {k: statistics.median(v) * 1e3 for k, v in res.items()}
        try:
            from threadpoolctl import threadpool_info
            blas = ", ".join(f"{i['internal_api']} {i['num_threads']} threads" for i in threadpool_info()
                             if i["user_api"] == "blas")
        except ImportError:
            blas = f"OpenBLAS default threads (OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')})"
        print(f"\n## clip search on {args.rows:,} rows x {dim} (float32, "
              f"{os.path.getsize(npy) / 1e9:.2f} GB), random ViT-B/32, query \"{QUERY}\", top 10")
        print(f"medians of {args.runs} interleaved runs after one warm-up; hot page cache; load average (1 min) at "
              f"the runs: {min(loads):.2f}-{max(loads):.2f}; now {load_text()}; {os.cpu_count()} cores\n")
        print("| what | threads | median | note |")
        print("| --- | --- | --- | --- |")
        runs = lambda k: ", ".join(f"{x * 1e3:.0f}" for x in res[k])  # noqa: E731
        for th in threads:
            s, e, sm = med[("search", th)], med[("embed", th)], med[("small", th)]
            print(f"| clip search, whole process | OMP_NUM_THREADS={th} | {s:.0f} ms | runs: {runs(('search', th))} |")
            print(f"| - clip embed --text (start + model load + text tower) | {th} | {e:.0f} ms | "
                  f"runs: {runs(('embed', th))} |")
            print(f"| - clip search on the {n_real}-row real index | {th} | {sm:.0f} ms | runs: {runs(('small', th))} |")
            print(f"| = model check (fingerprint of the weights) + tiny index | {th} | {sm - e:.0f} ms | "
                  f"small search - embed |")
            print(f"| = open the {args.rows:,}-row index + scan + top 10 | {th} | {s - sm:.0f} ms | "
                  f"search - small search |")
        print(f"| numpy, new mmap: E @ q + argpartition | {blas} | {med['numpy']:.0f} ms | "
              f"np.load(mmap_mode='r') each run |")
        print(f"| numpy, mmap already read once | same | {med['numpy_mapped']:.0f} ms | pages already mapped |")
        print(f"| faiss IndexFlatIP.search, 1 query | faiss omp max {faiss.omp_get_max_threads()} | "
              f"{med['faiss']:.0f} ms | in RAM, add() not timed |")
        print()
        for th in threads:
            rest = med[("search", th)] - med[("small", th)]
            print(f"clip's index part ({th} thread(s)) / numpy (new mmap): {rest / med['numpy']:.2f}x; "
                  f"/ faiss: {rest / med['faiss']:.2f}x")
        print(f"top 10 equal to numpy's: {'yes' if same else 'NO'}")
        if not same:
            sys.exit(1)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
