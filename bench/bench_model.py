#!/usr/bin/env python3
"""Speed of clip.c against PyTorch on a random full-size CLIP checkpoint,
measured side by side in one run (rounds interleaved), reported as medians
and ratios: image tower, text tower (4 prompts of 7 tokens as one batch),
load time, peak RSS, and the whole `clip MODEL IMAGE LABELS` process against
the same job in Python + PyTorch.

    bench/bench_model.py [--model ViT-B-32|ViT-B-16|ViT-L-14] [--threads 1,2] [--runs 20] [--rounds 3]

PyTorch is measured when `import torch` works (Debian: python3-torch); the
checkpoint is generated (random weights) and deleted afterwards."""
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
    x = F.layer_norm(x, (x.shape[-1],), W["vision_model.pre_layrnorm.weight"], W["vision_model.pre_layrnorm.bias"])
    x = encoder("vision_model", x, v, False)
    x = F.layer_norm(x[:, 0], (x.shape[-1],), W["vision_model.post_layernorm.weight"], W["vision_model.post_layernorm.bias"])
    return x @ W["visual_projection.weight"].T
def text(ids):
    x = W["text_model.embeddings.token_embedding.weight"][ids] + W["text_model.embeddings.position_embedding.weight"][:ids.shape[1]]
    x = encoder("text_model", x, t, True)
    x = F.layer_norm(x, (x.shape[-1],), W["text_model.final_layer_norm.weight"], W["text_model.final_layer_norm.bias"])
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
print(json.dumps({{"load_ms": load * 1e3, "image_ms": statistics.median(ti) * 1e3, "text_ms": statistics.median(tt) * 1e3,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
'''

TORCH_ONNX = r'''
import sys
exec(open({job!r}).read().split("S = v[")[0])
class Img(torch.nn.Module):
    def forward(self, pixels):
        return image(pixels)
class Txt(torch.nn.Module):
    def forward(self, ids):
        return text(ids)
S = v["image_size"]
with torch.inference_mode():
    torch.onnx.export(Img(), (torch.rand(1, 3, S, S),), {image!r}, input_names=["pixels"], output_names=["f"], opset_version=14)
    ids = torch.tensor([[49406] + [320 + 13 * i + j for j in range(1, 6)] + [49407] for i in range(4)])
    torch.onnx.export(Txt(), (ids,), {text!r}, input_names=["ids"], output_names=["f"], opset_version=14)
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
    BLAS threads as torch threads (no oversubscription)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
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
    into W (torch.set_num_threads(threads) first) and defines image(pixels)
    and text(ids), the PyTorch CLIP towers (features, not normalized)."""
    return TORCH_JOB.format(root=ROOT, threads=threads, folder=folder, runs=1).split("S = v[")[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
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
        threads = [int(x) for x in args.threads.split(",")]
        # ONNX Runtime: the same weights exported from the torch model, run by onnxruntime-node
        ort_dir = os.environ.get("ORT_NODE_MODULES", os.path.join(ROOT, "bench", "node_modules"))
        have_ort = have_torch and shutil.which("node") and os.path.isdir(os.path.join(ort_dir, "onnxruntime-node"))
        if not have_ort:
            print("ONNX Runtime not measured: needs torch, node and onnxruntime-node "
                  "(npm install --prefix bench --ignore-scripts onnxruntime-node)")
        else:
            with open(job, "w") as f:
                f.write(TORCH_JOB.format(root=ROOT, threads=2, folder=folder, runs=1))
            exp = os.path.join(tmp, "torch_onnx.py")
            onnx_img, onnx_txt = os.path.join(tmp, "image.onnx"), os.path.join(tmp, "text.onnx")
            with open(exp, "w") as f:
                f.write(TORCH_ONNX.format(job=job, image=onnx_img, text=onnx_txt))
            subprocess.run([sys.executable, exp], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        results = {}
        for r in range(args.rounds):
            for th in threads:
                env = dict(os.environ, OMP_NUM_THREADS=str(th))
                out = subprocess.run([os.path.join(ROOT, "bench", "clip_bench"), blob, str(args.runs)], env=env,
                                     check=True, stdout=subprocess.PIPE).stdout
                results.setdefault(("clip.c", th), []).append(json.loads(out))
                if have_torch:
                    with open(job, "w") as f:
                        f.write(TORCH_JOB.format(root=ROOT, threads=th, folder=folder, runs=args.runs))
                    out = subprocess.run([sys.executable, job], env=torch_env(th), check=True, stdout=subprocess.PIPE).stdout
                    results.setdefault(("PyTorch", th), []).append(json.loads(out.decode().splitlines()[-1]))
                if have_ort:
                    from make_checkpoint import SHAPES
                    out = subprocess.run(["node", os.path.join(ROOT, "bench", "ort_bench.js"), onnx_img, onnx_txt,
                                          str(th), str(args.runs)], check=True, stdout=subprocess.PIPE,
                                         env=dict(env, NODE_PATH=ort_dir, IMAGE_SIZE=str(SHAPES[args.model][0][4]))).stdout
                    results.setdefault(("ONNX RT", th), []).append(json.loads(out.decode().splitlines()[-1]))
        # whole process, warm page cache: clip MODEL IMAGE LABELS vs Python + PyTorch, 4 labels
        image = os.path.join(ROOT, "data", "cat.jpg")
        labels = os.path.join(tmp, "labels.txt")
        with open(labels, "w") as f:
            f.write("cat\ndog\nbird\ncar\n")
        procs = {"clip.c": [os.path.join(ROOT, "clip"), blob, image, labels]}
        if have_torch:
            with open(job, "w") as f:
                f.write(TORCH_JOB.format(root=ROOT, threads=max(threads), folder=folder, runs=1))
            cls = os.path.join(tmp, "torch_classify.py")
            with open(cls, "w") as f:
                f.write(TORCH_CLASSIFY.format(root=ROOT, job=job, image=image))
            procs["PyTorch"] = [sys.executable, cls]
        whole = {k: [] for k in procs}
        for r in range(max(3, args.rounds)):
            for k, cmd in procs.items():
                a = time.perf_counter()
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                               env=torch_env(max(threads)) if k == "PyTorch" else
                               dict(os.environ, OMP_NUM_THREADS=str(max(threads))))
                whole[k].append(time.perf_counter() - a)
        print(f"{args.model}, random weights, fp32, batch 1; medians over {args.rounds} interleaved rounds "
              f"of {args.runs} runs; this machine: {os.cpu_count()} cores")
        print(f"{'system':10s} {'threads':>7s} {'image ms':>9s} {'text ms':>8s} {'load ms':>8s} {'peak RSS MiB':>13s}")
        med = {}
        for (sysname, th), rs in sorted(results.items()):
            m = {k: statistics.median(r[k] for r in rs) for k in ("image_ms", "text_ms", "load_ms", "peak_rss_mib")}
            med[(sysname, th)] = m
            print(f"{sysname:10s} {th:7d} {m['image_ms']:9.2f} {m['text_ms']:8.2f} {m['load_ms']:8.1f} {m['peak_rss_mib']:13.1f}")
        for k, v in whole.items():
            print(f"whole process ({k}): {statistics.median(v) * 1e3:.0f} ms")
        c1 = results[("clip.c", threads[0])]
        print(f"clip.c tokenizer: {statistics.median(r['tokenize_short_us'] for r in c1):.1f} us for a typical label, "
              f"{statistics.median(r['tokenize_long_us'] for r in c1):.1f} us for a long multilingual one")
        for other, name in (("PyTorch", "PyTorch"), ("ONNX RT", "ONNX Runtime")):
            for th in threads:
                if (other, th) in med:
                    c, p = med[("clip.c", th)], med[(other, th)]
                    print(f"ratios at {th} thread(s), clip.c / {name}: image {c['image_ms'] / p['image_ms']:.2f}x, "
                          f"text {c['text_ms'] / p['text_ms']:.2f}x")
        if have_torch:
            print(f"whole process, clip.c / PyTorch: {statistics.median(whole['clip.c']) / statistics.median(whole['PyTorch']):.3f}x")
        print(f"blob size {os.path.getsize(blob) / 2**20:.0f} MiB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
