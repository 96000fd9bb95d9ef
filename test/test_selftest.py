#!/usr/bin/env python3
"""`clip selftest`: the built-in model passes on this build, with a line per
stage; and builds broken on purpose (one line of one source changed: the
softmax, a LayerNorm, an activation, the IDCT, the tokenizer, ...) fail it,
naming the first stage that diverged, which must be the stage the broken
operation feeds first."""
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

from common import CLIP, OUT, ROOT, check, finish

CC = os.environ.get("CC", "cc")
CFLAGS = ["-O1", "-std=c99"]  # a quick build: the point is the arithmetic, not the speed


def stage_table():
    """The stages the generated data lists, as the report names them."""
    with open(os.path.join(ROOT, "generated", "selftest_data.h"), encoding="ascii") as f:
        text = f.read()
    rows = re.findall(r'^\s*\{"([a-z.]+)", (-?\d+), \d+, \d+, \d+L\},$', text, re.M)
    return [name.replace(".", " ") + ("" if int(layer) < 0 else f" {layer}") for name, layer in rows]


def run_selftest(exe):
    p = subprocess.run([exe, "selftest"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


# ---- the build under test passes ----
STAGES = ["built-in data", "tokenizer", "image"] + stage_table()
rc, out, err = run_selftest(CLIP)
lines = out.splitlines()
check(rc == 0 and err == "", f"clip selftest exits 0 (rc {rc}{', stderr: ' + err.strip() if err else ''})")
for name in STAGES:
    got = [l for l in lines if re.match(rf"\S+ +{re.escape(name)}: ", l)]
    check(len(got) == 1 and got[0].startswith("ok   "),
          f"selftest line: {got[0]}" if len(got) == 1 else f"selftest: {len(got)} lines for {name}")
check(len(STAGES) >= 12 and any("tol" in l for l in lines) and lines[-1].startswith("selftest passed"),
      f"selftest: {len(STAGES)} stages, tolerances stated, a closing line")

# ---- broken builds ----
# (what, file, pattern, replacement, the stage that must diverge first)
BREAKS = [
    ("softmax without its normalization", "clip.c", "for (j = 0; j < own; j++) x[j] /= total;", "", "vision layer 0"),
    ("LayerNorm with the unbiased variance", "clip.c", "sqrt(var / dim + eps)", "sqrt(var / (dim - 1) + eps)",
     "vision embeddings"),
    ("matmul drops the last input column", "clip.c", "const float *wk = panel + (size_t)k * PANEL;",
     "const float *wk = panel + (size_t)k * PANEL; if (k == in_dim - 1) break;", "vision embeddings"),
    ("quick_gelu with sigmoid(x)", "clip.c", "exp_fast(-1.702f * x)", "exp_fast(-x)", "vision layer 0"),
    ("gelu without the 1/sqrt(2)", "clip.c", "z.f = x * 0.70710678118654752f;", "z.f = x;", "text layer 0"),
    ("text position embeddings shifted by one", "clip.c", "*pe = w->pos_emb + (size_t)i * D;",
     "*pe = w->pos_emb + (size_t)(i ? i - 1 : 0) * D;", "text embeddings"),
    ("text attention not causal", "clip.c", "c->text_eps, 1, starts, n_texts, max_len, ends, n_texts);",
     "c->text_eps, 0, starts, n_texts, max_len, ends, n_texts);", "text layer 0"),
    ("logits with logit_scale instead of its exp", "clip.c", "scale = exp((double)m->cfg.logit_scale)",
     "scale = (double)m->cfg.logit_scale", "logits"),
    ("IDCT constant off (FIX(1.847759065))", "decoders/jpeg.c", "x[6][i] * 15137u", "x[6][i] * 15337u", "image"),
    ("YCbCr->RGB red constant off", "decoders/jpeg.c", "91881 * v", "91981 * v", "image"),
    ("BPE merges the highest rank first", "tokenizer.c", "return a.rank < b.rank ||", "return a.rank > b.rank ||",
     "tokenizer"),
    ("ASCII not lowercased", "tokenizer.c", "out[0] = cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;", "out[0] = cp;",
     "tokenizer"),
]


def sources():
    p = subprocess.run(["make", "-s", "--no-print-directory", "-C", ROOT, "sources"], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL)
    src = p.stdout.decode().split() if p.returncode == 0 else []
    return src or ["clip.c", "tokenizer.c", "image.c", "platform/platform.c", "decoders/jpeg.c", "decoders/pnm.c",
                   "selftest/selftest.c"]


def copy_tree(dst):
    """The sources and headers, as laid out in the repository."""
    for d in sorted({"", "generated"} | {os.path.dirname(s) for s in SRC}):
        src = os.path.join(ROOT, d)
        if not os.path.isdir(src):
            continue
        os.makedirs(os.path.join(dst, d), exist_ok=True)
        for f in os.listdir(src):
            if f.endswith((".c", ".h")):
                shutil.copy(os.path.join(src, f), os.path.join(dst, d, f))


def compile_one(tree, src, obj):
    p = subprocess.run([CC] + CFLAGS + ["-c", "-o", obj, os.path.join(tree, src)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    return p.returncode, p.stderr.decode("utf-8", "replace")


def obj_name(src):
    return src.replace("/", "_")[:-2] + ".o"


SRC = sources()
scratch = os.path.join(OUT, "selftest-broken")
shutil.rmtree(scratch, ignore_errors=True)
base = os.path.join(scratch, "base")
copy_tree(base)
with ThreadPoolExecutor(2) as pool:
    built = list(pool.map(lambda s: compile_one(base, s, os.path.join(base, obj_name(s))), SRC))
bad = [(s, e) for s, (rc, e) in zip(SRC, built) if rc]
if not check(not bad, f"selftest: the sources compile with {CC} {' '.join(CFLAGS)}" +
             "".join(f"\n     {s}: {e.strip()[:400]}" for s, e in bad)):
    finish("test_selftest")

for what, path, pattern, repl, stage in BREAKS:
    name = re.sub(r"[^a-z0-9]+", "-", what.lower()).strip("-")
    tree = os.path.join(scratch, name)
    copy_tree(tree)
    with open(os.path.join(tree, path), encoding="utf-8") as f:
        text = f.read()
    n = text.count(pattern)
    if not check(n == 1, f"broken build '{what}': the pattern {pattern!r} occurs once in {path} (found {n})"):
        continue
    with open(os.path.join(tree, path), "w", encoding="utf-8") as f:
        f.write(text.replace(pattern, repl))
    obj = os.path.join(tree, obj_name(path))
    rc, cerr = compile_one(tree, path, obj)
    exe = os.path.join(tree, "clip")
    if rc == 0:
        objs = [obj if s == path else os.path.join(base, obj_name(s)) for s in SRC]
        p = subprocess.run([CC, "-o", exe] + objs + ["-lm"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        rc, cerr = p.returncode, p.stderr.decode("utf-8", "replace")
    if not check(rc == 0, f"broken build '{what}' compiles" + (f": {cerr.strip()[:400]}" if rc else "")):
        continue
    rc, out, err = run_selftest(exe)
    fails = [l for l in out.splitlines() if l.startswith("FAIL")]
    first = fails[0] if fails else "no FAIL line"
    want = f"clip: selftest: first divergence at {stage}: "
    ok = rc == 1 and err.startswith(want) and first.startswith(f"FAIL {stage}: ")
    check(ok, f"broken build '{what}': selftest exits {rc}, {err.strip() or 'nothing on stderr'}" +
          ("" if ok else f" (expected the first divergence at {stage}; first report line: {first})"))

if os.environ.get("CLIP_KEEP_OUT") is None:
    shutil.rmtree(scratch, ignore_errors=True)
finish("test_selftest")
