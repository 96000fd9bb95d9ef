#!/usr/bin/env python3
"""export_weights.py on every repository layout users download: F16 and
BF16 weights (the same file as their float32 upcast), sharded safetensors,
pickled pytorch_model.bin (when torch is installed; a clear message when it
is not), a config.json with only non-default fields; and clear refusals of
what is not plain CLIP or does not match its config. Run on the generated
tiny-quickgelu (Hugging Face and open_clip layouts, test/make_checkpoint.py)
and, with ../shared, again on the Hugging Face fixture folders."""
import json
import os
import shutil
import struct
import subprocess

import numpy as np

from common import FIX, OUT, PYTHON, ROOT, VOCAB, check, export, finish, fixtures_part, skipped, tiny_model
from make_checkpoint import write_safetensors

# set by suite(): the Hugging Face folder, the open_clip folder, the vocabulary, a label for the checks
SRC = OCSRC = TOK = TAG = None


def tcheck(ok, what):
    return check(ok, TAG + what)


def read_st(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        base = 8 + n
        h.pop("__metadata__", None)
        out = {}
        for k, v in h.items():
            f.seek(base + v["data_offsets"][0])
            raw = f.read(v["data_offsets"][1] - v["data_offsets"][0])
            dt = {"F32": "<f4", "I64": "<i8"}[v["dtype"]]
            out[k] = np.frombuffer(raw, dtype=dt).reshape(v["shape"])
        return out


def variant(name, tensors=None, dtype="F32", config=None, files=("tokenizer.json", "processor_config.json")):
    d = os.path.join(OUT, "layout-" + name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for f in files:
        shutil.copy(os.path.join(SRC, f), d)
    with open(os.path.join(SRC, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config if config is not None else cfg, f)
    if tensors is not None:
        write_safetensors(os.path.join(d, "model.safetensors"),
                          [(k, v.shape, (lambda v=v: v)) for k, v in tensors.items()], dtype)
    return d


def try_export(folder, *extra):
    out = os.path.join(OUT, "layout.bin")
    p = subprocess.run([PYTHON, os.path.join(ROOT, "export_weights.py"), folder, out] + list(extra),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return p.returncode, p.stderr.decode(), out


def read(path):
    with open(path, "rb") as f:
        return f.read()


def suite(src, ocsrc, tok, tag):
    global SRC, OCSRC, TOK, TAG
    SRC, OCSRC, TOK, TAG = src, ocsrc, tok, tag
    ref_blob = read(export(SRC, os.path.join(OUT, "layout-ref.bin")))
    tensors = read_st(os.path.join(SRC, "model.safetensors"))

    # F16: the export equals the export of the float32 upcast of the same values
    f16 = {k: v.astype(np.float16) for k, v in tensors.items()}
    rc, err, out = try_export(variant("f16", f16, "F16"))
    up = read(export(variant("f16up", {k: v.astype(np.float32) for k, v in f16.items()}), os.path.join(OUT, "up.bin")))
    tcheck(rc == 0 and read(out) == up, f"F16 weights: same file as their float32 upcast {err[-200:] if rc else ''}")
    tcheck("F16" in err, "the summary names the source dtype")

    # BF16: write raw bfloat16 (the top half of float32) by hand
    d = variant("bf16", None)
    items = list(tensors.items())
    header, off = {}, 0
    for k, v in items:
        header[k] = {"dtype": "BF16", "shape": list(v.shape), "data_offsets": [off, off + v.size * 2]}
        off += v.size * 2
    hb = json.dumps(header).encode()
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb)
        for k, v in items:
            f.write((np.ascontiguousarray(v, dtype="<f4").view("<u4") >> 16).astype("<u2").tobytes())
    rc, err, out = try_export(d)
    bf_up = {k: ((np.ascontiguousarray(v, dtype="<f4").view("<u4") >> 16) << 16).astype("<u4").view("<f4")
             for k, v in tensors.items()}
    up = read(export(variant("bf16up", bf_up), os.path.join(OUT, "up2.bin")))
    tcheck(rc == 0 and read(out) == up, f"BF16 weights: same file as their float32 upcast {err[-200:] if rc else ''}")

    # sharded safetensors with an index
    d = variant("sharded", None)
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[:len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    for fn, ks in shards.items():
        write_safetensors(os.path.join(d, fn), [(k, tensors[k].shape, (lambda k=k: tensors[k])) for k in ks])
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": {k: fn for fn, ks in shards.items() for k in ks}}, f)
    rc, err, out = try_export(d)
    tcheck(rc == 0 and read(out) == ref_blob, f"sharded safetensors: same file {err[-200:] if rc else ''}")

    # pytorch_model.bin
    d = variant("torchbin", None)
    try:
        import torch
        torch.save({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, os.path.join(d, "pytorch_model.bin"))
        rc, err, out = try_export(d)
        tcheck(rc == 0 and read(out) == ref_blob, f"pytorch_model.bin (torch installed): same file {err[-200:] if rc else ''}")
    except ImportError:
        with open(os.path.join(d, "pytorch_model.bin"), "wb") as f:
            f.write(b"PK\x03\x04 not really a checkpoint")
        rc, err, out = try_export(d)
        tcheck(rc == 1 and "need torch" in err, f"pytorch_model.bin without torch: a clear message ({err.strip()[-120:]})")

    # open_clip_pytorch_model.bin (torch only)
    try:
        import torch
        oc = os.path.join(OUT, "layout-oc-bin")
        shutil.rmtree(oc, ignore_errors=True)
        os.makedirs(oc)
        shutil.copy(os.path.join(OCSRC, "open_clip_config.json"), oc)
        octs = read_st(os.path.join(OCSRC, "open_clip_model.safetensors"))
        torch.save({k: torch.from_numpy(v.copy()) for k, v in octs.items()}, os.path.join(oc, "open_clip_pytorch_model.bin"))
        rc, err, out = try_export(oc, "--tokenizer", TOK)
        tcheck(rc == 0 and read(out) == ref_blob, f"open_clip_pytorch_model.bin: same file {err[-200:] if rc else ''}")
    except ImportError:
        skipped(TAG + "open_clip_pytorch_model.bin", "torch not installed")

    # config.json listing only non-default fields (everything else: transformers' defaults)
    minimal = {"model_type": "clip", "projection_dim": 48,
               "text_config": {"hidden_size": 32, "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 2},
               "vision_config": {"hidden_size": 64, "intermediate_size": 256, "num_attention_heads": 4,
                                 "num_hidden_layers": 2}}
    rc, err, out = try_export(variant("minimal", tensors, config=minimal))
    tcheck(rc == 0 and read(out) == ref_blob, f"config.json with only non-default fields {err[-200:] if rc else ''}")

    # refusals, each with a message naming the problem
    cfg = json.load(open(os.path.join(SRC, "config.json")))
    cases = [
        ("siglip", dict(cfg, model_type="siglip"), "model_type 'siglip'"),
        ("relu", dict(cfg, vision_config=dict(cfg["vision_config"], hidden_act="relu")), "hidden_act 'relu'"),
        ("layers", dict(cfg, text_config=dict(cfg["text_config"], num_hidden_layers=3)), "is missing"),
        ("width", dict(cfg, vision_config=dict(cfg["vision_config"], intermediate_size=200)), "has shape"),
        ("heads", dict(cfg, text_config=dict(cfg["text_config"], num_attention_heads=5)), "not divisible"),
    ]
    for name, c, want in cases:
        rc, err, out = try_export(variant("bad-" + name, tensors, config=c))
        tcheck(rc == 1 and want in err, f"refused: {name}: {err.strip()[-150:]}")
    rc, err, out = try_export(variant("notok", tensors, files=("processor_config.json",)))
    tcheck(rc == 1 and "--tokenizer" in err, f"no tokenizer: says how to give one ({err.strip()[-100:]})")
    oc = os.path.join(OUT, "layout-oc-attnpool")
    shutil.rmtree(oc, ignore_errors=True)
    shutil.copytree(OCSRC, oc)
    ocfg = json.load(open(os.path.join(oc, "open_clip_config.json")))
    ocfg["model_cfg"]["vision_cfg"]["attentional_pool"] = True
    json.dump(ocfg, open(os.path.join(oc, "open_clip_config.json"), "w"))
    rc, err, out = try_export(oc, "--tokenizer", TOK)
    tcheck(rc == 1 and "attentional pool" in err, f"refused: open_clip attentional pooling: {err.strip()[-120:]}")


suite(tiny_model("tiny-quickgelu")[0], tiny_model("tiny-quickgelu", "openclip")[0], VOCAB, "generated: ")
if fixtures_part("test_export: the Hugging Face fixture folders"):
    suite(os.path.join(FIX, "models", "tiny-quickgelu"), os.path.join(FIX, "models", "tiny-quickgelu-openclip"),
          os.path.join(FIX, "vocab", "bpe_simple_vocab_16e6.txt.gz"), "fixture: ")
finish("test_export")
