#!/usr/bin/env python3
"""Speed of clip.c against PyTorch on a random full-size CLIP checkpoint,
measured side by side in one run (rounds interleaved), reported as medians
and ratios: image tower, text tower (4 prompts of 7 tokens as one batch),
load time, peak RSS, and the whole `clip MODEL IMAGE LABELS` process against
the same job in Python + PyTorch.

    bench/bench_model.py [--model ViT-B-32|ViT-B-16|ViT-L-14] [--threads 1,2] [--runs 20] [--rounds 3] [--quick]

PyTorch is measured when `import torch` works (Debian: python3-torch), ONNX
Runtime when node and onnxruntime-node are there too; the checkpoint is
generated (random weights) and deleted afterwards. The peers get their best:
several settings each (threads; for ONNX Runtime two exports at opset 17,
one with its fused Attention op), all in the same interleaved rounds; a row
for n threads shows a peer's fastest setting with at most n threads, tower
by tower, and says which. The ONNX exports are checked against PyTorch
before they are timed."""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test"))
sys.path.insert(0, ROOT)

TORCH_JOB = r'''
import json, os, resource, statistics, sys, time
sys.path.insert(0, {root!r})
import numpy as np, torch
import export_weights as ew
t0 = time.perf_counter()
if {threads}:  # 0: PyTorch's own default
    torch.set_num_threads({threads})
folder = {folder!r}
t, v, top = ew.hf_config(folder)
src = ew.TensorSource(); src.add_safetensors(os.path.join(folder, "model.safetensors"))
W = {{k: torch.from_numpy(np.ascontiguousarray(src.get(k))) for k in src.where}}
load = time.perf_counter() - t0
F = torch.nn.functional
def act(x, kind):
    return x * torch.sigmoid(1.702 * x) if kind == "quick_gelu" else F.gelu(x)
def encoder(p, x, cfg, causal):
    b, n, d = x.shape; h = cfg["num_attention_heads"]
    mask = torch.full((n, n), float("-inf")).triu(1) if causal else None
    for i in range(cfg["num_hidden_layers"]):
        q = p + f".encoder.layers.{{i}}."
        lin = lambda z, nm: F.linear(z, W[q + nm + ".weight"], W[q + nm + ".bias"])
        y = F.layer_norm(x, (d,), W[q + "layer_norm1.weight"], W[q + "layer_norm1.bias"], cfg["layer_norm_eps"])
        qq, kk, vv = (lin(y, f"self_attn.{{z}}_proj").view(b, n, h, d // h).transpose(1, 2) for z in "qkv")
        sc = (qq * (d // h) ** -0.5) @ kk.transpose(-1, -2)
        if mask is not None:
            sc = sc + mask
        a = (sc.softmax(-1) @ vv).transpose(1, 2).reshape(b, n, d)
        x = x + lin(a, "self_attn.out_proj")
        y = F.layer_norm(x, (d,), W[q + "layer_norm2.weight"], W[q + "layer_norm2.bias"], cfg["layer_norm_eps"])
        x = x + lin(act(lin(y, "mlp.fc1"), cfg["hidden_act"]), "mlp.fc2")
    return x
def image(px):
    e = F.conv2d(px, W["vision_model.embeddings.patch_embedding.weight"], stride=v["patch_size"]).flatten(2).transpose(1, 2)
    x = torch.cat([W["vision_model.embeddings.class_embedding"].expand(px.shape[0], 1, -1), e], 1)
    x = x + W["vision_model.embeddings.position_embedding.weight"]
    x = F.layer_norm(x, (v["hidden_size"],), W["vision_model.pre_layrnorm.weight"], W["vision_model.pre_layrnorm.bias"])
    x = encoder("vision_model", x, v, False)
    x = F.layer_norm(x[:, 0], (v["hidden_size"],), W["vision_model.post_layernorm.weight"], W["vision_model.post_layernorm.bias"])
    return x @ W["visual_projection.weight"].T
def text(ids):
    x = W["text_model.embeddings.token_embedding.weight"][ids] + W["text_model.embeddings.position_embedding.weight"][:ids.shape[1]]
    x = encoder("text_model", x, t, True)
    x = F.layer_norm(x, (t["hidden_size"],), W["text_model.final_layer_norm.weight"], W["text_model.final_layer_norm.bias"])
    return x[torch.arange(ids.shape[0]), ids.argmax(-1)] @ W["text_projection.weight"].T
S = v["image_size"]
px = torch.rand(1, 3, S, S)
ids = torch.tensor([[49406] + [320 + 13 * i + j for j in range(1, 6)] + [49407] for i in range(4)])
ti, tt = [], []
with torch.inference_mode():
    image(px); text(ids)
    for _ in range({runs}):
        a = time.perf_counter(); image(px); ti.append(time.perf_counter() - a)
        a = time.perf_counter(); text(ids); tt.append(time.perf_counter() - a)
def blas_threads():
    # torch's matmuls run in OpenBLAS, whose thread count is its own
    import ctypes
    for line in open("/proc/self/maps"):
        if "openblas" in line and line.split()[-1].startswith("/"):
            try:
                return ctypes.CDLL(line.split()[-1]).openblas_get_num_threads()
            except (OSError, AttributeError):
                pass
    return 0
nb = blas_threads()
print(json.dumps({{"threads": max(torch.get_num_threads(), nb), "torch_threads": torch.get_num_threads(),
                  "blas_threads": nb, "load_ms": load * 1e3, "image_ms": statistics.median(ti) * 1e3,
                  "text_ms": statistics.median(tt) * 1e3, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
'''

# ONNX opset of the export: 17 is the first with LayerNormalization as one op
# (before it, torch.onnx spells LayerNorm out in ReduceMean, Sub, Pow, Sqrt,
# Div, which ORT runs op by op) and the highest torch 1.13 writes.
ONNX_OPSET = 17

# The exports for ONNX Runtime, and the PyTorch towers' outputs on the inputs
# ort_bench.js feeds (same formulas), for the agreement check. Two graphs of
# each tower: "plain", torch.onnx's export as it comes, and "fused", where
# each attention block is ORT's own fused com.microsoft Attention op (one
# packed QKV projection, the heads, the causal mask and the softmax in one
# kernel), the op onnxruntime.transformers' offline optimizer writes for CLIP.
TORCH_ONNX = r'''
import json, sys
exec(open({job!r}).read().split("S = v[")[0])
class Img(torch.nn.Module):
    def forward(self, pixels):
        return image(pixels)
class Txt(torch.nn.Module):
    def forward(self, ids):
        return text(ids)
class Attention(torch.autograd.Function):
    # the ORT op in the exported graph; PyTorch's math (untraced: torch 1.13
    # fails to export a Function whose traced body it has recorded) otherwise
    @staticmethod
    def forward(ctx, y, w, b, heads, causal):
        tracing = torch._C._get_tracing_state()
        torch._C._set_tracing_state(None)
        try:
            bs, n, d = y.shape
            qq, kk, vv = ((y @ w + b)[..., i * d:(i + 1) * d].view(bs, n, heads, d // heads).transpose(1, 2)
                          for i in range(3))
            sc = (qq * (d // heads) ** -0.5) @ kk.transpose(-1, -2)
            if causal:
                sc = sc + torch.full((n, n), float("-inf")).triu(1)
            return (sc.softmax(-1) @ vv).transpose(1, 2).reshape(bs, n, d)
        finally:
            torch._C._set_tracing_state(tracing)
    @staticmethod
    def symbolic(g, y, w, b, heads, causal):
        return g.op("com.microsoft::Attention", y, w, b, num_heads_i=heads, unidirectional_i=int(causal))
def fused_encoder(p, x, cfg, causal):
    d = cfg["hidden_size"]
    for i in range(cfg["num_hidden_layers"]):
        q = p + f".encoder.layers.{{i}}."
        lin = lambda z, nm: F.linear(z, W[q + nm + ".weight"], W[q + nm + ".bias"])
        w = torch.cat([W[q + f"self_attn.{{z}}_proj.weight"] for z in "qkv"]).T.contiguous()
        b = torch.cat([W[q + f"self_attn.{{z}}_proj.bias"] for z in "qkv"])
        y = F.layer_norm(x, (d,), W[q + "layer_norm1.weight"], W[q + "layer_norm1.bias"], cfg["layer_norm_eps"])
        x = x + lin(Attention.apply(y, w, b, cfg["num_attention_heads"], causal), "self_attn.out_proj")
        y = F.layer_norm(x, (d,), W[q + "layer_norm2.weight"], W[q + "layer_norm2.bias"], cfg["layer_norm_eps"])
        x = x + lin(act(lin(y, "mlp.fc1"), cfg["hidden_act"]), "mlp.fc2")
    return x
S = v["image_size"]
px = torch.from_numpy((np.arange(3 * S * S) % 251 / 251).astype(np.float32).reshape(1, 3, S, S))
ids = torch.tensor([[49406] + [320 + 13 * i + j for j in range(1, 6)] + [49407] for i in range(4)])
with torch.no_grad():
    ref = {{"image": image(px).flatten().tolist(), "text": text(ids).flatten().tolist()}}
    for variant in ("plain", "fused"):
        if variant == "fused":
            encoder = fused_encoder
        for tower, model, inp, name in (("image", Img(), px, "pixels"), ("text", Txt(), ids, "ids")):
            torch.onnx.export(model, (inp,), os.path.join({out!r}, f"{{tower}}_{{variant}}.onnx"), input_names=[name],
                              output_names=["f"], opset_version={opset}, custom_opsets={{"com.microsoft": 1}})
with open(os.path.join({out!r}, "torch_ref.json"), "w") as f:
    json.dump(ref, f)
'''

TORCH_CLASSIFY = r'''
import os, sys
sys.path.insert(0, {root!r})
import numpy as np, torch
from PIL import Image
exec(open({job!r}).read().split("S = v[")[0])
im = Image.open({image!r}).convert("RGB")
w, h = im.size; s = v["image_size"]; nl = int(s * max(w, h) / min(w, h))
im = im.resize((s, nl) if w <= h else (nl, s), Image.BICUBIC)
a = np.asarray(im, dtype=np.float32)[(im.size[1] - s) // 2:][:s, (im.size[0] - s) // 2:][:, :s] / 255
a = (a - np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)) / np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
with torch.inference_mode():
    fi = image(torch.from_numpy(a.transpose(2, 0, 1)).unsqueeze(0))
    ids = torch.tensor([[49406, 320, 1125, 539, 320, 2368 + i, 49407] for i in range(4)])
    ft = text(ids)
    print(torch.softmax(100 * F.normalize(fi) @ F.normalize(ft).T, -1))
'''


def torch_env(threads):
    """PyTorch at its best here: OpenBLAS with the AVX-512 kernels when the CPU
    has them (Debian's OpenBLAS picks AVX2 ones on some such CPUs), and as many
    BLAS threads as torch threads (no oversubscription). threads 0: the
    thread counts left to PyTorch and OpenBLAS (their defaults)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    if not threads:
        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env.pop(k)
    try:
        with open("/proc/cpuinfo") as f:
            if " avx512f" in f.read():
                env["OPENBLAS_CORETYPE"] = "SkylakeX"
    except OSError:
        pass
    return env


def make_model(tmp, name="ViT-B-32"):
    """A random full-size checkpoint of model `name` (Hugging Face layout, in
    tmp/ckpt) and its export to tmp/model.bin; returns (folder, blob)."""
    from make_checkpoint import random_clip
    folder = random_clip(os.path.join(tmp, "ckpt"), name)
    blob = os.path.join(tmp, "model.bin")
    vocab = os.path.join(ROOT, "data", "bpe_simple_vocab_16e6.txt.gz")
    subprocess.run([sys.executable, os.path.join(ROOT, "export_weights.py"), "-q", folder, blob, "--tokenizer", vocab],
                   check=True)
    return folder, blob


def torch_model_code(folder, threads):
    """TORCH_JOB's first part, as Python source: loads the checkpoint in folder
    into W (torch.set_num_threads(threads) first unless 0) and defines image(pixels)
    and text(ids), the PyTorch CLIP towers (features, not normalized)."""
    return TORCH_JOB.format(root=ROOT, threads=threads, folder=folder, runs=1).split("S = v[")[0]


def onnx_op_counts(path):
    """{op type: count} of the nodes of an ONNX model's main graph, contrib
    ops prefixed with their domain. A minimal protobuf walk (ModelProto field
    7 = graph, GraphProto 1 = node, NodeProto 4 = op_type, 7 = domain), so
    that the onnx package is not needed."""
    import mmap
    with open(path, "rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)

    def varint(i):
        v = shift = 0
        while True:
            b = buf[i]
            i += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return v, i

    def fields(lo, hi):
        """(field number, start, end) of each length-delimited field in [lo, hi)."""
        i = lo
        while i < hi:
            key, i = varint(i)
            wire = key & 7
            if wire == 0:
                i = varint(i)[1]
            elif wire == 1:
                i += 8
            elif wire == 5:
                i += 4
            elif wire == 2:
                n, i = varint(i)
                yield key >> 3, i, i + n
                i += n
            else:
                raise ValueError(f"{path}: protobuf wire type {wire} at {i}")

    counts = {}
    try:
        for num, lo, hi in fields(0, len(buf)):
            if num != 7:
                continue
            for gnum, nlo, nhi in fields(lo, hi):
                if gnum != 1:
                    continue
                op = domain = ""
                for fnum, a, b in fields(nlo, nhi):
                    if fnum == 4:
                        op = buf[a:b].decode()
                    elif fnum == 7:
                        domain = buf[a:b].decode()
                name = f"{domain}.{op}" if domain not in ("", "ai.onnx") else op
                counts[name] = counts.get(name, 0) + 1
    finally:
        buf.close()
    return counts


# the two ONNX graphs of each tower (see TORCH_ONNX), both timed
ORT_VARIANTS = ("plain", "fused")


def onnx_files(tmp, variant):
    return [os.path.join(tmp, f"{tower}_{variant}.onnx") for tower in ("image", "text")]


def load_average():
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--threads", default="1,2", help="the rows: clip.c at each count; the peers at their fastest "
                    "setting with at most that many threads (default 1,2)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a short sanity run: 3 runs, 1 round")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.rounds = 3, 1
    try:
        threads = sorted({int(x) for x in args.threads.split(",")})
    except ValueError:
        threads = []
    if not threads or threads[0] < 1 or args.runs < 1 or args.rounds < 1:
        ap.error("--threads takes counts >= 1 (1,2), --runs and --rounds >= 1")
    print(f"load average at start: {load_average()}", flush=True)
    tmp = tempfile.mkdtemp(prefix="clipbench")
    try:
        folder, blob = make_model(tmp, args.model)
        try:
            import torch  # noqa: F401
            have_torch = True
        except ImportError:
            have_torch = False
            print("PyTorch not installed: clip.c alone (apt-get install python3-torch to compare)")
        job = os.path.join(tmp, "torch_job.py")
        # ONNX Runtime: the same weights exported from the torch model, run by onnxruntime-node
        ort_dir = os.environ.get("ORT_NODE_MODULES", os.path.join(ROOT, "bench", "node_modules"))
        have_ort = have_torch and shutil.which("node") and os.path.isdir(os.path.join(ort_dir, "onnxruntime-node"))
        from make_checkpoint import SHAPES
        ort_env = dict(os.environ, NODE_PATH=ort_dir, IMAGE_SIZE=str(SHAPES[args.model][0][4]))
        ort_js = os.path.join(ROOT, "bench", "ort_bench.js")
        if not have_ort:
            print("ONNX Runtime not measured: needs torch, node and onnxruntime-node "
                  "(npm install --prefix bench --ignore-scripts onnxruntime-node)")
        else:
            with open(job, "w") as f:
                f.write(TORCH_JOB.format(root=ROOT, threads=2, folder=folder, runs=1))
            exp = os.path.join(tmp, "torch_onnx.py")
            with open(exp, "w") as f:
                f.write(TORCH_ONNX.format(job=job, out=tmp, opset=ONNX_OPSET))
            p = subprocess.run([sys.executable, exp], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if p.returncode:
                sys.exit(f"ONNX export failed:\n{p.stdout.decode(errors='replace')}")
            with open(os.path.join(tmp, "torch_ref.json")) as f:
                ref = json.load(f)
            bad = []
            for variant in ORT_VARIANTS:
                # the export must compute what the checkpoint does before its speed means anything
                prefix = os.path.join(tmp, f"ort_optimized_{variant}_")
                out = subprocess.run(["node", ort_js, "check", *onnx_files(tmp, variant), prefix], check=True,
                                     stdout=subprocess.PIPE, env=ort_env).stdout
                got = json.loads(out.decode().splitlines()[-1])
                if variant == ORT_VARIANTS[0]:
                    print(f"ONNX Runtime {got['version']} (onnxruntime-node) on torch.onnx's exports at opset "
                          f"{ONNX_OPSET}; session: graphOptimizationLevel 'all', sequential execution, "
                          "1 inter-op thread")
                for tower in ("image", "text"):
                    r, o = ref[tower], got[tower]
                    scale = max(abs(x) for x in r)
                    err = max(abs(a - b) for a, b in zip(o, r)) / scale if len(o) == len(r) else float("inf")
                    ops = onnx_op_counts(prefix + tower + ".onnx")
                    os.remove(prefix + tower + ".onnx")
                    print(f"  {variant} export, {tower} tower: max error against PyTorch on one input {err:.2e} of "
                          "the largest output; the graph after ORT's optimizer: "
                          + ", ".join(f"{k} {n}" for k, n in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))))
                    if not err <= 1e-4:
                        bad.append(f"{variant} {tower}")
            print("  (onnxruntime.transformers, ORT's offline optimizer for transformer graphs, is a Python package "
                  "from PyPI and is not used: the fused export writes the Attention op it would write; "
                  "the other fusions above are ORT's own graph optimizer's)")
            if bad:
                sys.exit(f"the ONNX export disagrees with PyTorch ({', '.join(bad)} > 1e-4): not timed")
        # the settings swept: clip.c at each row's thread count; PyTorch at
        # each count and at its default (0); ONNX Runtime at each intra-op count
        # clip.c twice: the weights mapped (its default) and read into memory (--no-mmap), as the peers hold theirs
        plan = [("clip.c", th) for th in threads] + [("clip.c read", th) for th in threads]
        if have_torch:
            plan += [("PyTorch", th) for th in threads] + [("PyTorch", 0)]
        if have_ort:
            plan += [("ONNX RT", (variant, th)) for variant in ORT_VARIANTS for th in threads]
        results = {}
        for r in range(args.rounds):
            for th in threads + [0]:  # interleaved: every system and setting once per round
                for sysname, setting in plan:
                    if (setting[1] if sysname == "ONNX RT" else setting) != th:
                        continue
                    if sysname.startswith("clip.c"):
                        cmd, env = [os.path.join(ROOT, "bench", "clip_bench"), blob, str(args.runs)], \
                            dict(os.environ, OMP_NUM_THREADS=str(th), CLIP_BENCH_READ=str(int(sysname != "clip.c")))
                    elif sysname == "PyTorch":
                        with open(job, "w") as f:
                            f.write(TORCH_JOB.format(root=ROOT, threads=th, folder=folder, runs=args.runs))
                        cmd, env = [sys.executable, job], torch_env(th)
                    else:
                        cmd, env = ["node", ort_js, "time", *onnx_files(tmp, setting[0]), str(th), str(args.runs)], \
                            ort_env
                    out = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE).stdout
                    res = json.loads(out.decode().splitlines()[-1])
                    res.setdefault("threads", th)
                    results.setdefault((sysname, setting), []).append(res)
        med = {}
        for key, rs in results.items():
            med[key] = {k: statistics.median(r[k] for r in rs)
                        for k in ("image_ms", "text_ms", "load_ms", "peak_rss_mib", "threads", "torch_threads",
                                  "blas_threads") if k in rs[0]}

        def name(sysname, setting):
            if sysname == "PyTorch":
                m = med[(sysname, setting)]
                blas = f", OpenBLAS {m['blas_threads']:.0f}" if m["blas_threads"] else ""
                return f"torch.set_num_threads({setting})" if setting else \
                    f"PyTorch's default (torch {m['torch_threads']:.0f}{blas})"
            if sysname == "ONNX RT":
                return f"{setting[0]} export, intraOpNumThreads {setting[1]}"
            return f"OMP_NUM_THREADS={setting}" + (", weights read (--no-mmap)" if sysname != "clip.c" else "")

        def best(sysname, th, what):
            """The fastest setting of sysname for `what` with at most th threads."""
            cands = [s for (n, s) in med if n == sysname and med[(n, s)]["threads"] <= th]
            return min(cands, key=lambda s: med[(sysname, s)][what]) if cands else None

        rows = {}
        for sysname in ("clip.c", "clip.c read", "ONNX RT", "PyTorch"):
            for th in threads:
                si, st = (th, th) if sysname.startswith("clip.c") else (best(sysname, th, "image_ms"), best(sysname, th, "text_ms"))
                if si is not None:
                    rows[(sysname, th)] = (si, st)
        # whole process, warm page cache: clip MODEL IMAGE LABELS vs Python + PyTorch, 4 labels
        image = os.path.join(ROOT, "data", "cat.jpg")
        labels = os.path.join(tmp, "labels.txt")
        with open(labels, "w") as f:
            f.write("cat\ndog\nbird\ncar\n")
        procs = {"clip.c": ([os.path.join(ROOT, "clip"), blob, image, labels],
                            dict(os.environ, OMP_NUM_THREADS=str(max(threads))))}
        if have_torch:
            tth = rows[("PyTorch", max(threads))][0]
            with open(job, "w") as f:
                f.write(TORCH_JOB.format(root=ROOT, threads=tth, folder=folder, runs=1))
            cls = os.path.join(tmp, "torch_classify.py")
            with open(cls, "w") as f:
                f.write(TORCH_CLASSIFY.format(root=ROOT, job=job, image=image))
            procs["PyTorch"] = ([sys.executable, cls], torch_env(tth))
        whole = {k: [] for k in procs}
        for r in range(1 if args.quick else max(3, args.rounds)):
            for k, (cmd, env) in procs.items():
                a = time.perf_counter()
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
                whole[k].append(time.perf_counter() - a)
        print(f"{args.model}, random weights, fp32, batch 1; medians over {args.rounds} interleaved rounds "
              f"of {args.runs} runs; this machine: {os.cpu_count()} cores; load average at the end: {load_average()}")
        print("every setting measured:")
        print(f"  {'system':11s} {'setting':44s} {'image ms':>9s} {'text ms':>8s} {'load ms':>8s} {'peak RSS MiB':>13s}")
        for (sysname, setting), m in sorted(med.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
            print(f"  {sysname:11s} {name(sysname, setting):44s} {m['image_ms']:9.2f} {m['text_ms']:8.2f} "
                  f"{m['load_ms']:8.1f} {m['peak_rss_mib']:13.1f}")
        print("the table: clip.c at each thread count; ONNX Runtime and PyTorch at their fastest setting with at "
              "most that many threads, chosen per tower (load and RSS: the image tower's setting)")
        print(f"  {'system':11s} {'threads':>7s} {'image ms':>9s} {'text ms':>8s} {'load ms':>8s} {'peak RSS MiB':>13s}"
              "  settings")
        for (sysname, th), (si, st) in rows.items():
            mi, mt = med[(sysname, si)], med[(sysname, st)]
            how = name(sysname, si) if si == st else f"image {name(sysname, si)}, text {name(sysname, st)}"
            print(f"  {sysname:11s} {th:7d} {mi['image_ms']:9.2f} {mt['text_ms']:8.2f} {mi['load_ms']:8.1f} "
                  f"{mi['peak_rss_mib']:13.1f}  {how}")
        for k, v in whole.items():
            print(f"whole process ({k}{', ' + name('PyTorch', tth) if k == 'PyTorch' else ''}): "
                  f"{statistics.median(v) * 1e3:.0f} ms")
        c1 = results[("clip.c", threads[0])]
        print(f"clip.c tokenizer: {statistics.median(r['tokenize_short_us'] for r in c1):.1f} us for a typical label, "
              f"{statistics.median(r['tokenize_long_us'] for r in c1):.1f} us for a long multilingual one")
        for other, oname in (("ONNX RT", "ONNX Runtime"), ("PyTorch", "PyTorch")):
            for th in threads:
                for cname in ("clip.c", "clip.c read"):
                    if (other, th) not in rows:
                        continue
                    c = med[(cname, th)]
                    si, st = rows[(other, th)]
                    print(f"ratios at {th} thread(s), {cname} / {oname} at its best: "
                          f"image {c['image_ms'] / med[(other, si)]['image_ms']:.2f}x, "
                          f"text {c['text_ms'] / med[(other, st)]['text_ms']:.2f}x")
        if have_torch:
            print(f"whole process, clip.c / PyTorch: {statistics.median(whole['clip.c']) / statistics.median(whole['PyTorch']):.3f}x")
        print(f"blob size {os.path.getsize(blob) / 2**20:.0f} MiB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
