#!/usr/bin/env python3
"""Export a CLIP checkpoint to the flat float32 blob that clip.c runs.

    export_weights.py SRC OUT.bin [--tokenizer PATH]

SRC is a local model directory (Hugging Face CLIPModel: config.json +
model.safetensors, sharded safetensors or pytorch_model.bin; or open_clip:
open_clip_config.json + open_clip_model.safetensors) or a Hub model id such as
openai/clip-vit-base-patch32, whose files are downloaded first (HF_ENDPOINT,
HF_TOKEN and HF_HUB_CACHE / XDG_CACHE_HOME are honoured).

Needs Python 3 and numpy; torch only to read pickled *.bin weights.
The blob format is documented in README.md ("The weights file"); the tensor
order below (write_tensors) is the same table as weight_layout() in clip.c.
"""

import gzip
import json
import math
import os
import struct
import sys
import urllib.error
import urllib.parse
import urllib.request

try:
    import numpy as np
except ImportError:  # pragma: no cover - message for users without numpy
    sys.exit("export_weights.py: numpy is required (pip install numpy, or apt-get install python3-numpy)")

MAGIC = b"CLIP"
VERSION = 3
HEADER_WORDS = 64           # the header is 64 little-endian 32-bit words
HEADER_SIZE = HEADER_WORDS * 4
ALIGN = 64                  # sections start on 64-byte boundaries
PANEL = 64                  # linear weights: panels of 64 output columns (clip.c PANEL)
Q8_BLOCK = 32               # q8: one scale per 32 weights of a row (clip.c Q8_BLOCK)
# how the linear weights and the token embedding are stored (header word 37; clip.h CLIP_WEIGHTS_*)
DTYPES = {"f32": 0, "f16": 1, "bf16": 2, "q8": 3}

ACT_IDS = {"quick_gelu": 0, "gelu": 1}
OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]

# Defaults of transformers' CLIPTextConfig / CLIPVisionConfig / CLIPConfig,
# used for every field a config.json leaves out.
TEXT_DEFAULTS = dict(vocab_size=49408, hidden_size=512, intermediate_size=2048,
                     num_hidden_layers=12, num_attention_heads=8,
                     max_position_embeddings=77, hidden_act="quick_gelu",
                     layer_norm_eps=1e-5, bos_token_id=49406, eos_token_id=49407)
VISION_DEFAULTS = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                       num_attention_heads=12, num_channels=3, image_size=224,
                       patch_size=32, hidden_act="quick_gelu", layer_norm_eps=1e-5)
CLIP_DEFAULTS = dict(projection_dim=512, logit_scale_init_value=2.6592)


class ExportError(Exception):
    pass


def fail(msg):
    raise ExportError(msg)


# ---------------------------------------------------------------------------
# Reading tensors: safetensors (by hand), sharded safetensors, torch pickles

SAFETENSORS_DTYPES = {"F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2),
                      "F64": ("<f8", 8)}


class SafetensorsFile:
    """A safetensors file, memory-mapped; tensors are read one at a time."""

    def __init__(self, path):
        self.path = path
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                fail(f"{path}: too short to be a safetensors file")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8 or n > 100 << 20:
                fail(f"{path}: header length {n} does not fit the file ({size} bytes); the file is damaged or not safetensors")
            try:
                self.header = json.loads(f.read(n))
            except ValueError as e:
                fail(f"{path}: unreadable safetensors header: {e}")
        self.header.pop("__metadata__", None)
        self.base = 8 + n
        self.size = size

    def keys(self):
        return self.header.keys()

    def dtype(self, name):
        return self.header[name]["dtype"]

    def shape(self, name):
        return tuple(self.header[name]["shape"])

    def get(self, name):
        info = self.header[name]
        dt = info["dtype"]
        if dt not in SAFETENSORS_DTYPES:
            fail(f"{self.path}: tensor {name} has dtype {dt}; only F32, F16, BF16 (and F64) weights can be exported")
        np_dt, width = SAFETENSORS_DTYPES[dt]
        start, end = info["data_offsets"]
        count = int(np.prod(info["shape"], dtype=np.int64))
        if end - start != count * width or self.base + end > self.size or start > end:
            fail(f"{self.path}: tensor {name}: offsets {start}..{end} do not match its shape {info['shape']} ({dt}) or the file size")
        # read just this tensor (no mapping: memory stays one tensor's worth)
        raw = np.fromfile(self.path, dtype=np_dt, count=count, offset=self.base + start)
        if dt == "BF16":
            arr = (raw.astype(np.uint32) << 16).view(np.float32)
        else:
            arr = raw.astype(np.float32, copy=False)
        return arr.reshape(info["shape"])


class TensorSource:
    """name -> float32 array, over one or more files. Non-float tensors
    (int64 position_ids buffers and the like) are invisible."""

    def __init__(self):
        self.where = {}      # name -> (reader, kind)
        self.dtypes = set()

    def add_safetensors(self, path):
        st = SafetensorsFile(path)
        for k in st.keys():
            dt = st.dtype(k)
            if dt in SAFETENSORS_DTYPES:
                self.where[k] = (st, "st")
                self.dtypes.add(dt)

    def add_torch(self, path):
        try:
            import torch
        except ImportError:
            fail(f"{path}: pickled PyTorch weights need torch to read (pip install torch, or apt-get install python3-torch); "
                 "safetensors checkpoints need only numpy")
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except TypeError:  # torch older than 1.13 has no weights_only
            sd = torch.load(path, map_location="cpu")
        if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
            sd = sd["state_dict"]
        if not isinstance(sd, dict):
            fail(f"{path}: expected a state dict, found {type(sd).__name__}")
        for k, v in sd.items():
            if hasattr(v, "is_floating_point") and v.is_floating_point():
                if k.startswith("module."):
                    k = k[len("module."):]
                self.where[k] = (v, "torch")
                self.dtypes.add(str(v.dtype).replace("torch.", ""))

    def has(self, name):
        return name in self.where

    def shape(self, name):
        r, kind = self.where[name]
        return r.shape(name) if kind == "st" else tuple(r.shape)

    def get(self, name):
        if name not in self.where:
            fail(f"tensor {name} is missing from the checkpoint")
        r, kind = self.where[name]
        if kind == "st":
            return r.get(name)
        return r.detach().to(dtype=__import__("torch").float32).numpy()


# ---------------------------------------------------------------------------
# Hub downloads

def hub_cache_dir():
    if os.environ.get("CLIP_CACHE"):
        return os.environ["CLIP_CACHE"]
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.join(os.environ["HF_HUB_CACHE"], "clip.c")
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub", "clip.c")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "huggingface", "hub", "clip.c")


class _StripAuthOnHostChange(urllib.request.HTTPRedirectHandler):
    """Follow redirects; never send the Hub token to another host (the Hub
    redirects large files to a CDN with a signed URL)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


def hub_download(repo_id, filename, revision="main", quiet=False):
    """Download one file of a Hub repository into the cache; return its path,
    or None when the repository has no such file (HTTP 404)."""
    dest_dir = os.path.join(hub_cache_dir(), *repo_id.split("/"), revision)
    dest = os.path.join(dest_dir, filename)
    missing = os.path.join(dest_dir, "." + filename + ".missing")  # a remembered 404
    if os.path.exists(dest):
        return dest
    if os.path.exists(missing):
        return None
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    url = f"{endpoint}/{repo_id}/resolve/{urllib.parse.quote(revision, safe='')}/{urllib.parse.quote(filename)}"
    req = urllib.request.Request(url, headers={"User-Agent": "clip.c-export/1"})
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(_StripAuthOnHostChange())
    try:
        resp = opener.open(req, timeout=60)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            # remember missing optional files, not a missing repository
            if filename not in ("config.json", "open_clip_config.json"):
                os.makedirs(dest_dir, exist_ok=True)
                open(missing, "w").close()
            return None
        if e.code in (401, 403):
            fail(f"{repo_id}: {filename}: HTTP {e.code} from {endpoint}; the repository is private or gated: "
                 "accept its terms on the Hub and set HF_TOKEN to an access token")
        fail(f"{repo_id}: {filename}: HTTP {e.code} {e.reason} from {url}")
    except urllib.error.URLError as e:
        fail(f"{repo_id}: cannot reach {endpoint} ({e.reason}); check the network, or set HF_ENDPOINT to a mirror")
    os.makedirs(dest_dir, exist_ok=True)
    total = int(resp.headers.get("Content-Length") or 0)
    part = dest + ".part"
    done = 0
    with resp, open(part, "wb") as out:
        while True:
            chunk = resp.read(1 << 20)
            if not chunk:
                break
            out.write(chunk)
            done += len(chunk)
            if not quiet:
                if total:
                    sys.stderr.write(f"\r  {filename}: {done / 1e6:.1f} / {total / 1e6:.1f} MB ({100 * done // total}%)")
                else:
                    sys.stderr.write(f"\r  {filename}: {done / 1e6:.1f} MB")
                sys.stderr.flush()
    if not quiet:
        sys.stderr.write("\n")
    if total and done != total:
        os.unlink(part)
        fail(f"{repo_id}: {filename}: download cut short ({done} of {total} bytes); run the export again")
    os.replace(part, dest)
    return dest


def fetch_hub_repo(repo_id, quiet=False):
    """Download what an export needs from a Hub repository; return the folder."""
    revision = "main"
    if "@" in repo_id:
        repo_id, revision = repo_id.split("@", 1)
    if not quiet:
        print(f"downloading {repo_id} ({revision}) from {os.environ.get('HF_ENDPOINT', 'https://huggingface.co')}",
              file=sys.stderr)
    get = lambda f: hub_download(repo_id, f, revision, quiet)
    cfg = get("config.json")
    if cfg is None:
        if get("open_clip_config.json") is None:
            fail(f"{repo_id}: no config.json or open_clip_config.json in the repository; is it a CLIP model?")
        if get("open_clip_model.safetensors") is None and get("open_clip_pytorch_model.bin") is None:
            fail(f"{repo_id}: no open_clip_model.safetensors or open_clip_pytorch_model.bin")
    elif get("model.safetensors") is None:
        index = get("model.safetensors.index.json")
        if index is not None:
            with open(index) as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
            for s in shards:
                if get(s) is None:
                    fail(f"{repo_id}: shard {s} listed in model.safetensors.index.json is missing")
        elif get("pytorch_model.bin") is None:
            fail(f"{repo_id}: no model.safetensors, model.safetensors.index.json or pytorch_model.bin")
    if get("tokenizer.json") is None:
        get("merges.txt")
        get("vocab.json")
    if get("preprocessor_config.json") is None:
        get("processor_config.json")
    return os.path.dirname(get("config.json") or get("open_clip_config.json"))


# ---------------------------------------------------------------------------
# Tokenizer: the BPE merges, and a check that the vocabulary is CLIP's

def bytes_to_unicode():
    """GPT-2's map from the 256 byte values to printable characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def clip_vocab(merges):
    base = list(bytes_to_unicode().values())
    vocab = base + [v + "</w>" for v in base] + ["".join(m) for m in merges]
    return vocab + ["<|startoftext|>", "<|endoftext|>"]


def read_merges_txt(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    if path.endswith(".gz"):
        # OpenAI's bpe_simple_vocab_16e6.txt: a header line, then more merges
        # than CLIP uses; CLIP keeps lines 1 .. 49152 - 256 - 2.
        lines = lines[1:49152 - 256 - 2 + 1]
    elif lines and lines[0].startswith("#version"):
        lines = lines[1:]
    merges = [tuple(l.split(" ")) for l in lines if l.strip() != ""]
    return merges


def read_tokenizer(folder, override):
    """Return (merges, vocab-or-None) from a tokenizer.json, merges.txt or
    bpe_simple_vocab_16e6.txt.gz."""
    candidates = [override] if override else [os.path.join(folder, "tokenizer.json"), os.path.join(folder, "merges.txt")]
    for path in candidates:
        if path and os.path.isdir(path):
            for name in ("tokenizer.json", "merges.txt", "bpe_simple_vocab_16e6.txt.gz"):
                if os.path.exists(os.path.join(path, name)):
                    path = os.path.join(path, name)
                    break
        if not path or not os.path.exists(path):
            if override:
                fail(f"{override}: no such tokenizer file")
            continue
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as f:
                tj = json.load(f)
            model = tj.get("model", {})
            if model.get("type") != "BPE" or "merges" not in model:
                fail(f"{path}: not a BPE tokenizer.json (model.type {model.get('type')!r}); CLIP uses byte-level BPE")
            merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
            vocab = dict(model.get("vocab", {}))
            for t in tj.get("added_tokens", []):
                vocab[t["content"]] = t["id"]
            return merges, vocab, path
        merges = read_merges_txt(path)
        vocab = None
        vpath = os.path.join(os.path.dirname(path), "vocab.json")
        if not path.endswith(".gz") and os.path.exists(vpath):
            with open(vpath, encoding="utf-8") as f:
                vocab = json.load(f)
        return merges, vocab, path
    return None, None, None


def check_tokenizer(merges, vocab, path, vocab_size):
    for i, m in enumerate(merges):
        if len(m) != 2 or not m[0] or not m[1] or any(" " in s or "\n" in s for s in m):
            fail(f"{path}: merge {i} is {m!r}, not two symbols")
    built = clip_vocab(merges)
    if len(built) != vocab_size:
        fail(f"{path}: {len(merges)} merges make a vocabulary of {len(built)} tokens, but the model has "
             f"{vocab_size} token embeddings; the tokenizer does not belong to this model")
    if vocab is not None:
        for i, tok in enumerate(built):
            if vocab.get(tok) != i:
                fail(f"{path}: token {tok!r} has id {vocab.get(tok)} in the vocabulary, CLIP's construction gives {i}; "
                     "this is not CLIP's byte-level BPE vocabulary")


# ---------------------------------------------------------------------------
# Configuration

def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_preprocess(folder, image_size):
    """Image preprocessing from preprocessor_config.json or processor_config.json."""
    cfg = None
    for name in ("preprocessor_config.json", "processor_config.json"):
        p = os.path.join(folder, name)
        if os.path.exists(p):
            cfg = load_json(p)
            if "image_processor" in cfg:
                cfg = cfg["image_processor"]
            break
    pp = dict(resize_mode=0, resize_h=image_size, resize_w=image_size, crop_h=image_size, crop_w=image_size,
              resample=3, mean=OPENAI_MEAN, std=OPENAI_STD, center_crop=1)
    if cfg is None:
        return pp, "defaults (no preprocessor_config.json)"
    size = cfg.get("size", {"shortest_edge": 224})
    if isinstance(size, (int, float)):
        pp["resize_h"] = pp["resize_w"] = int(size)
    elif "shortest_edge" in size:
        pp["resize_h"] = pp["resize_w"] = int(size["shortest_edge"])
    elif "height" in size and "width" in size:
        pp.update(resize_mode=1, resize_h=int(size["height"]), resize_w=int(size["width"]))
    else:
        fail(f"{folder}: image processor size {size!r} is not understood (expected shortest_edge or height/width)")
    if cfg.get("do_resize", True) is False:
        fail(f"{folder}: do_resize is false; only resizing image processors are supported")
    crop = cfg.get("crop_size", {"height": 224, "width": 224})
    if isinstance(crop, (int, float)):
        crop = {"height": int(crop), "width": int(crop)}
    pp["crop_h"], pp["crop_w"] = int(crop["height"]), int(crop["width"])
    pp["center_crop"] = 1 if cfg.get("do_center_crop", True) else 0
    if not pp["center_crop"]:
        pp["crop_h"], pp["crop_w"] = pp["resize_h"], pp["resize_w"]
        if pp["resize_mode"] == 0:
            fail(f"{folder}: do_center_crop false with a shortest_edge resize gives images of varying size; not supported")
    pp["resample"] = int(cfg.get("resample", 3))
    if pp["resample"] not in (2, 3):
        fail(f"{folder}: resample {pp['resample']} is not supported (2 = bilinear and 3 = bicubic are)")
    for k in ("do_rescale", "do_normalize", "do_convert_rgb"):
        if cfg.get(k, True) is False:
            fail(f"{folder}: {k} is false; only the standard CLIP preprocessing is supported")
    rf = cfg.get("rescale_factor", 1 / 255)
    if abs(rf - 1 / 255) > 1e-12:
        fail(f"{folder}: rescale_factor {rf} is not 1/255; not supported")
    pp["mean"] = [float(x) for x in cfg.get("image_mean", OPENAI_MEAN)]
    pp["std"] = [float(x) for x in cfg.get("image_std", OPENAI_STD)]
    if len(pp["mean"]) != 3 or len(pp["std"]) != 3 or min(pp["std"]) <= 0:
        fail(f"{folder}: image_mean/image_std must be three numbers (std > 0)")
    return pp, name


def hf_config(folder):
    cfg = load_json(os.path.join(folder, "config.json"))
    mt = cfg.get("model_type", "clip")
    if mt != "clip":
        fail(f"{folder}: model_type {mt!r} is not supported; only CLIP (model_type 'clip') runs in clip.c "
             f"(SigLIP and other variants use different pooling, losses or layers)")
    t = dict(TEXT_DEFAULTS)
    t.update({k: v for k, v in (cfg.get("text_config") or {}).items() if v is not None})
    v = dict(VISION_DEFAULTS)
    v.update({k: v_ for k, v_ in (cfg.get("vision_config") or {}).items() if v_ is not None})
    top = dict(CLIP_DEFAULTS)
    top.update({k: cfg[k] for k in CLIP_DEFAULTS if cfg.get(k) is not None})
    return t, v, top


# ---------------------------------------------------------------------------
# Canonical tensors. Both checkpoint layouts are mapped to one set of names
# (Hugging Face's), with PyTorch's (out, in) linear layout.

def hf_tensor(src, name):
    return src.get(name)


class OpenClipView:
    """Presents an open_clip state dict under Hugging Face names."""

    def __init__(self, src):
        self.src = src

    def has(self, name):
        try:
            return self.src.has(self._map(name)[0])
        except KeyError:
            return False

    def _map(self, name):
        p = name.split(".")
        if name == "logit_scale":
            return ("logit_scale", None)
        tower = "visual.transformer" if p[0] == "vision_model" else "transformer"
        if "layers" in p:
            i = p[p.index("layers") + 1]
            rest = ".".join(p[p.index("layers") + 2:])
            base = f"{tower}.resblocks.{i}."
            table = {"layer_norm1.weight": "ln_1.weight", "layer_norm1.bias": "ln_1.bias",
                     "layer_norm2.weight": "ln_2.weight", "layer_norm2.bias": "ln_2.bias",
                     "mlp.fc1.weight": "mlp.c_fc.weight", "mlp.fc1.bias": "mlp.c_fc.bias",
                     "mlp.fc2.weight": "mlp.c_proj.weight", "mlp.fc2.bias": "mlp.c_proj.bias",
                     "self_attn.out_proj.weight": "attn.out_proj.weight",
                     "self_attn.out_proj.bias": "attn.out_proj.bias"}
            if rest in table:
                return (base + table[rest], None)
            for j, q in enumerate(("q_proj", "k_proj", "v_proj")):
                if rest == f"self_attn.{q}.weight":
                    return (base + "attn.in_proj_weight", j)
                if rest == f"self_attn.{q}.bias":
                    return (base + "attn.in_proj_bias", j)
            raise KeyError(name)
        table = {"vision_model.embeddings.class_embedding": "visual.class_embedding",
                 "vision_model.embeddings.patch_embedding.weight": "visual.conv1.weight",
                 "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
                 "vision_model.pre_layrnorm.weight": "visual.ln_pre.weight",
                 "vision_model.pre_layrnorm.bias": "visual.ln_pre.bias",
                 "vision_model.post_layernorm.weight": "visual.ln_post.weight",
                 "vision_model.post_layernorm.bias": "visual.ln_post.bias",
                 "visual_projection.weight": "visual.proj",
                 "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
                 "text_model.embeddings.position_embedding.weight": "positional_embedding",
                 "text_model.final_layer_norm.weight": "ln_final.weight",
                 "text_model.final_layer_norm.bias": "ln_final.bias",
                 "text_projection.weight": "text_projection"}
        return (table[name], None)

    def get(self, name):
        src_name, part = self._map(name)
        a = self.src.get(src_name)
        if name in ("visual_projection.weight", "text_projection.weight"):
            a = a.T  # open_clip stores x @ proj; Hugging Face stores Linear (out, in)
        if part is not None:
            n = a.shape[0] // 3
            a = a[part * n:(part + 1) * n]
        return a


def openclip_config(folder):
    cfg = load_json(os.path.join(folder, "open_clip_config.json"))
    mc = cfg.get("model_cfg", cfg)
    vc, tc = mc.get("vision_cfg", {}), mc.get("text_cfg", {})
    for key, what in (("attentional_pool", "attentional pooling (CoCa)"), ("timm_model_name", "a timm vision tower"),
                      ("hf_model_name", "a Hugging Face text tower"), ("no_ln_pre", "a vision tower without ln_pre"),
                      ("final_ln_after_pool", "final_ln_after_pool"), ("pool_type", "a non-default pooling"),
                      ("output_tokens", "token outputs"), ("norm_kwargs", "custom norm arguments"),
                      ("act_kwargs", "custom activation arguments"), ("embed_cls", "a text class token"),
                      ("pad_id", "a custom pad id"), ("no_causal_mask", "a non-causal text tower"),
                      ("proj_bias", "projection biases"), ("ls_init_value", "layer scale"),
                      ("patch_dropout", None), ("input_patchnorm", "patch norm"), ("global_average_pool", "average pooling")):
        for sub in (vc, tc):
            val = sub.get(key)
            if what and val not in (None, False, 0, 0.0, "", "argmax", "tok", "first") :
                fail(f"{folder}: open_clip {key}={val!r}: {what} is not plain CLIP and is not supported")
    if "custom_text" in mc and mc["custom_text"] is not False and tc.get("hf_model_name"):
        fail(f"{folder}: custom text towers are not supported")
    act = "quick_gelu" if mc.get("quick_gelu", False) else "gelu"
    vwidth = vc.get("width", 768)
    v = dict(VISION_DEFAULTS, hidden_size=vwidth, num_hidden_layers=vc.get("layers", 12),
             num_attention_heads=vwidth // vc.get("head_width", 64),
             intermediate_size=int(vwidth * vc.get("mlp_ratio", 4.0)),
             image_size=vc.get("image_size", 224), patch_size=vc.get("patch_size", 16), hidden_act=act)
    if isinstance(v["image_size"], (list, tuple)):
        if v["image_size"][0] != v["image_size"][1]:
            fail(f"{folder}: non-square image_size {v['image_size']} is not supported")
        v["image_size"] = v["image_size"][0]
    twidth = tc.get("width", 512)
    t = dict(TEXT_DEFAULTS, hidden_size=twidth, num_hidden_layers=tc.get("layers", 12),
             num_attention_heads=tc.get("heads", 8), intermediate_size=int(twidth * tc.get("mlp_ratio", 4.0)),
             max_position_embeddings=tc.get("context_length", 77), vocab_size=tc.get("vocab_size", 49408),
             hidden_act=act)
    top = dict(CLIP_DEFAULTS, projection_dim=mc.get("embed_dim", 512))
    pc = cfg.get("preprocess_cfg", {})
    pp = dict(resize_mode=0, resize_h=v["image_size"], resize_w=v["image_size"], crop_h=v["image_size"],
              crop_w=v["image_size"], resample=3, mean=pc.get("mean", OPENAI_MEAN), std=pc.get("std", OPENAI_STD),
              center_crop=1)
    if pc.get("interpolation", "bicubic") != "bicubic" or pc.get("resize_mode", "shortest") != "shortest":
        fail(f"{folder}: open_clip preprocessing {pc} is not supported (bicubic shortest-edge resize + center crop is)")
    return t, v, top, pp


# ---------------------------------------------------------------------------
# The blob

def check_shape(name, arr, shape):
    if tuple(arr.shape) != tuple(shape):
        fail(f"tensor {name} has shape {tuple(arr.shape)}, the configuration implies {tuple(shape)}; "
             "config.json does not describe these weights")


def panels(w):
    """A PyTorch Linear weight (out, in) in the matmul's layout: transposed to
    (in, out), cut into panels of PANEL output columns, each panel (in, PANEL)
    contiguous, the last zero-padded."""
    o, k = w.shape
    n = -(-o // PANEL)
    buf = np.zeros((n * PANEL, k), dtype=np.float32)
    buf[:o] = w
    return buf.reshape(n, PANEL, k).transpose(0, 2, 1)


# Reduced precision. f16 and bf16 round each weight to nearest (even); q8
# cuts each row of a weight (a Linear's output, or a token's embedding) into
# blocks of Q8_BLOCK values, keeps each block's scale d = max|w| / 127 as a
# float16 rounded up (so no value needs more than 127 steps), and the values
# as round(w / d) in int8. clip.c computes with exactly the values
# dequantize() returns.

def to_f16(a):
    h = np.asarray(a, dtype=np.float32).astype("<f2")
    if not np.isfinite(h).all():
        fail("a weight is beyond float16's range (65504); export with --dtype bf16 or f32")
    return h


def to_bf16(a):
    u = np.ascontiguousarray(a, dtype="<f4").view(np.uint32)
    h = ((u + np.uint32(0x7FFF) + ((u >> 16) & 1)) >> 16).astype("<u2")
    if ((h & 0x7F80) == 0x7F80).any():
        fail("a weight rounds to infinity in bfloat16; export with --dtype f32")
    return h


def q8_rows(a):
    """(rows, cols) float32 -> scales float16 (rows, blocks), int8 (rows, blocks * Q8_BLOCK), zero-padded."""
    rows, cols = a.shape
    nb = -(-cols // Q8_BLOCK)
    x = np.zeros((rows, nb * Q8_BLOCK), dtype=np.float32)
    x[:, :cols] = a
    x = x.reshape(rows, nb, Q8_BLOCK)
    d = np.abs(x).max(-1) / np.float32(127)
    d16 = d.astype("<f2")
    low = d16.astype(np.float32) < d
    d16[low] = np.nextafter(d16[low], np.float16(np.inf))
    if not np.isfinite(d16).all():
        fail("a weight is too large for q8's float16 scales; export with --dtype bf16 or f32")
    df = d16.astype(np.float32)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(df > 0, np.rint(x / np.where(df > 0, df, 1)), 0)
    return d16, np.clip(q, -127, 127).astype(np.int8).reshape(rows, nb * Q8_BLOCK)


def dequantize(a, dtype):
    """The float32 values clip.c computes with for the (rows, cols) weight a stored as dtype."""
    a = np.asarray(a, dtype=np.float32)
    if dtype == "f16":
        return to_f16(a).astype(np.float32)
    if dtype == "bf16":
        return (to_bf16(a).astype(np.uint32) << 16).view(np.float32).reshape(a.shape)
    if dtype == "q8":
        flat = a.reshape(a.shape[0], -1)
        d16, q = q8_rows(flat)
        nb = d16.shape[1]
        x = q.reshape(flat.shape[0], nb, Q8_BLOCK).astype(np.float32) * d16.astype(np.float32)[..., None]
        return x.reshape(flat.shape[0], -1)[:, :flat.shape[1]].reshape(a.shape)
    return a


def linear_bytes(w, dtype):
    """A Linear weight (out, in) as the file stores it: panels (see panels()),
    their values as dtype; q8 panels hold, per block of Q8_BLOCK rows, the 64
    columns' scales and then the (Q8_BLOCK, 64) int8s."""
    if dtype == "f32":
        return np.ascontiguousarray(panels(w), dtype="<f4")
    if dtype == "f16":
        return to_f16(panels(w))
    if dtype == "bf16":
        return to_bf16(panels(w))
    o, k = w.shape
    n = -(-o // PANEL)
    d16, q = q8_rows(np.asarray(w, dtype=np.float32))
    nb = d16.shape[1]
    d = np.zeros((n * PANEL, nb), dtype="<f2")
    d[:o] = d16
    qq = np.zeros((n * PANEL, nb * Q8_BLOCK), dtype=np.int8)
    qq[:o] = q
    d = d.reshape(n, PANEL, nb).transpose(0, 2, 1)                          # (panel, block, column)
    qq = qq.reshape(n, PANEL, nb, Q8_BLOCK).transpose(0, 2, 3, 1)            # (panel, block, row, column)
    return np.concatenate([np.ascontiguousarray(d).view(np.uint8).reshape(n, nb, PANEL * 2),
                           np.ascontiguousarray(qq).view(np.uint8).reshape(n, nb, Q8_BLOCK * PANEL)], axis=2)


def rows_bytes(a, dtype):
    """An embedding table (rows, cols) as the file stores it; q8 rows are
    blocks of a scale and Q8_BLOCK int8s."""
    if dtype == "f32":
        return np.ascontiguousarray(a, dtype="<f4")
    if dtype == "f16":
        return to_f16(a)
    if dtype == "bf16":
        return to_bf16(a)
    d16, q = q8_rows(np.asarray(a, dtype=np.float32))
    rows, nb = d16.shape
    return np.concatenate([np.ascontiguousarray(d16).view(np.uint8).reshape(rows, nb, 2),
                           q.view(np.uint8).reshape(rows, nb, Q8_BLOCK)], axis=2)


def write_tensors(out, src, t, v, top, dtype="f32"):
    """Write every tensor in the blob's order (clip.c: weight_layout()), each
    padded to a multiple of ALIGN bytes. Linear weights go in panels (see
    panels()); they and the token embedding are stored as dtype, the rest
    as float32. Returns (parameters, bytes written)."""
    D, M, L, C, P = v["hidden_size"], v["intermediate_size"], v["num_hidden_layers"], v["num_channels"], v["patch_size"]
    T = (v["image_size"] // P) ** 2 + 1
    Dt, Mt, Lt, V, N = t["hidden_size"], t["intermediate_size"], t["num_hidden_layers"], t["vocab_size"], t["max_position_embeddings"]
    E = top["projection_dim"]
    count = 0
    size = 0

    def write(a):
        nonlocal size
        a = np.ascontiguousarray(a)
        out.write(a.data if a.ndim else a.tobytes())
        size += a.nbytes

    def finite(a):
        # one pass, no temporary: the float64 sum of finite float32 values cannot overflow
        if not math.isfinite(float(np.asarray(a).sum(dtype=np.float64))):
            fail("the checkpoint holds NaN or infinite weights")

    def pad():
        nonlocal size
        out.write(b"\0" * (-size % ALIGN))
        size += -size % ALIGN

    def put(arr):
        nonlocal count
        a = np.ascontiguousarray(arr, dtype="<f4")
        finite(a)
        write(a)
        count += a.size

    def put_tensor(arr):     # one tensor of float32s
        put(arr)
        pad()

    def put_linear(ws):      # a Linear weight (out, in), or a list of them stacked over layers
        nonlocal count
        for w in ws if isinstance(ws, list) else [ws]:
            w = np.asarray(w, dtype=np.float32)
            finite(w)
            write(linear_bytes(w, dtype))
            count += w.size
        pad()

    def put_rows(a):         # an embedding table (rows, cols), stored as dtype row by row
        nonlocal count
        finite(a)
        write(rows_bytes(a, dtype))
        count += np.asarray(a).size
        pad()

    def get(name, shape):
        a = src.get(name)
        check_shape(name, a, shape)
        return a

    def tower(prefix, D, M, L):
        lay = lambda i, s: f"{prefix}.encoder.layers.{i}.{s}"
        for s in ("layer_norm1.weight", "layer_norm1.bias"):
            for i in range(L):
                put(get(lay(i, s), (D,)))
            pad()
        # wqkv (L, D, 3D): q, k, v side by side, transposed
        put_linear([np.concatenate([get(lay(i, f"self_attn.{q}.weight"), (D, D)) for q in ("q_proj", "k_proj", "v_proj")])
                    for i in range(L)])
        for i in range(L):
            put(np.concatenate([get(lay(i, f"self_attn.{q}.bias"), (D,)) for q in ("q_proj", "k_proj", "v_proj")]))
        pad()
        put_linear([get(lay(i, "self_attn.out_proj.weight"), (D, D)) for i in range(L)])
        for i in range(L):
            put(get(lay(i, "self_attn.out_proj.bias"), (D,)))
        pad()
        for s in ("layer_norm2.weight", "layer_norm2.bias"):
            for i in range(L):
                put(get(lay(i, s), (D,)))
            pad()
        put_linear([get(lay(i, "mlp.fc1.weight"), (M, D)) for i in range(L)])
        for i in range(L):
            put(get(lay(i, "mlp.fc1.bias"), (M,)))
        pad()
        put_linear([get(lay(i, "mlp.fc2.weight"), (D, M)) for i in range(L)])
        for i in range(L):
            put(get(lay(i, "mlp.fc2.bias"), (D,)))
        pad()

    # vision tower
    put_linear(get("vision_model.embeddings.patch_embedding.weight", (D, C, P, P)).reshape(D, C * P * P))
    put_tensor(get("vision_model.embeddings.class_embedding", (D,)))
    put_tensor(get("vision_model.embeddings.position_embedding.weight", (T, D)))
    put_tensor(get("vision_model.pre_layrnorm.weight", (D,)))
    put_tensor(get("vision_model.pre_layrnorm.bias", (D,)))
    tower("vision_model", D, M, L)
    put_tensor(get("vision_model.post_layernorm.weight", (D,)))
    put_tensor(get("vision_model.post_layernorm.bias", (D,)))
    put_linear(get("visual_projection.weight", (E, D)))
    # text tower
    put_rows(get("text_model.embeddings.token_embedding.weight", (V, Dt)))
    put_tensor(get("text_model.embeddings.position_embedding.weight", (N, Dt)))
    tower("text_model", Dt, Mt, Lt)
    put_tensor(get("text_model.final_layer_norm.weight", (Dt,)))
    put_tensor(get("text_model.final_layer_norm.bias", (Dt,)))
    put_linear(get("text_projection.weight", (E, Dt)))
    return count, size


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def build_header(t, v, top, pp, logit_scale, bos, eos, weights_off, weights_size, merges_off, merges_size,
                 n_merges, file_size, dtype="f32"):
    w = [0] * HEADER_WORDS
    w[0] = struct.unpack("<I", MAGIC)[0]
    w[1] = VERSION
    w[2] = HEADER_SIZE
    w[3:12] = [v["image_size"], v["patch_size"], v["num_channels"], v["hidden_size"], v["num_hidden_layers"],
               v["num_attention_heads"], v["intermediate_size"], ACT_IDS[v["hidden_act"]], f32_bits(v["layer_norm_eps"])]
    w[12:22] = [t["vocab_size"], t["max_position_embeddings"], t["hidden_size"], t["num_hidden_layers"],
                t["num_attention_heads"], t["intermediate_size"], ACT_IDS[t["hidden_act"]], f32_bits(t["layer_norm_eps"]),
                bos, eos]
    w[22] = top["projection_dim"]
    w[23] = f32_bits(logit_scale)
    w[24:30] = [pp["resize_mode"], pp["resize_h"], pp["resize_w"], pp["crop_h"], pp["crop_w"], pp["resample"]]
    w[30:33] = [f32_bits(x) for x in pp["mean"]]
    w[33:36] = [f32_bits(x) for x in pp["std"]]
    w[36] = pp["center_crop"]
    w[37] = DTYPES[dtype]
    for i, val in ((40, weights_off), (42, weights_size), (44, merges_off), (46, merges_size), (49, file_size)):
        w[i], w[i + 1] = val & 0xFFFFFFFF, val >> 32
    w[48] = n_merges
    return struct.pack("<64I", *w)


def align(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


def export(src_arg, out_path, tokenizer=None, quiet=False, dtype="f32"):
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr))
    folder = src_arg
    if not os.path.isdir(src_arg):
        if os.path.exists(src_arg):
            fail(f"{src_arg}: expected a model directory or a Hub model id")
        if src_arg.count("/") != 1 or src_arg.startswith((".", "/")):
            fail(f"{src_arg}: no such directory (and not a Hub model id of the form org/name)")
        folder = fetch_hub_repo(src_arg, quiet)

    src = TensorSource()
    if os.path.exists(os.path.join(folder, "config.json")):
        layout = "Hugging Face"
        t, v, top = hf_config(folder)
        pp, pp_from = read_preprocess(folder, v["image_size"])
        st = os.path.join(folder, "model.safetensors")
        idx = os.path.join(folder, "model.safetensors.index.json")
        binf = os.path.join(folder, "pytorch_model.bin")
        if os.path.exists(st):
            src.add_safetensors(st)
        elif os.path.exists(idx):
            for shard in sorted(set(load_json(idx)["weight_map"].values())):
                src.add_safetensors(os.path.join(folder, shard))
        elif os.path.exists(binf):
            src.add_torch(binf)
        else:
            fail(f"{folder}: no model.safetensors, model.safetensors.index.json or pytorch_model.bin")
        view = src
    elif os.path.exists(os.path.join(folder, "open_clip_config.json")):
        layout = "open_clip"
        t, v, top, pp = openclip_config(folder)
        pp_from = "open_clip_config.json"
        st = os.path.join(folder, "open_clip_model.safetensors")
        binf = os.path.join(folder, "open_clip_pytorch_model.bin")
        if os.path.exists(st):
            src.add_safetensors(st)
        elif os.path.exists(binf):
            src.add_torch(binf)
        else:
            fail(f"{folder}: no open_clip_model.safetensors or open_clip_pytorch_model.bin")
        view = OpenClipView(src)
        if src.has("text.transformer.resblocks.0.ln_1.weight") or not src.has("token_embedding.weight"):
            fail(f"{folder}: this open_clip model has a custom text tower; only plain CLIP is supported")
        if src.has("visual.attn_pool.query") or src.has("visual.trunk.patch_embed.proj.weight"):
            fail(f"{folder}: this open_clip model uses attentional pooling or a timm tower; not plain CLIP")
    else:
        fail(f"{folder}: no config.json (Hugging Face) or open_clip_config.json (open_clip)")

    for tower, c in (("text", t), ("vision", v)):
        if c["hidden_act"] not in ACT_IDS:
            fail(f"{folder}: {tower} hidden_act {c['hidden_act']!r} is not supported (quick_gelu and gelu are)")
        if c["hidden_size"] % c["num_attention_heads"]:
            fail(f"{folder}: {tower} hidden_size {c['hidden_size']} is not divisible by {c['num_attention_heads']} heads")
    if v["image_size"] % v["patch_size"]:
        fail(f"{folder}: image_size {v['image_size']} is not a multiple of patch_size {v['patch_size']}")
    if (pp["crop_h"], pp["crop_w"]) != (v["image_size"], v["image_size"]):
        fail(f"{folder}: the image processor crops {pp['crop_h']}x{pp['crop_w']}, the vision tower takes "
             f"{v['image_size']}x{v['image_size']}")

    merges, vocab, tok_path = read_tokenizer(folder, tokenizer)
    if merges is None:
        fail(f"{folder}: no tokenizer (tokenizer.json or merges.txt). open_clip repositories carry none: "
             "pass --tokenizer PATH with a tokenizer.json, merges.txt or OpenAI's bpe_simple_vocab_16e6.txt.gz")
    check_tokenizer(merges, vocab, tok_path, t["vocab_size"])
    bos, eos = t["vocab_size"] - 2, t["vocab_size"] - 1   # <|startoftext|>, <|endoftext|> by construction
    merges_blob = "".join(f"{a} {b}\n" for a, b in merges).encode("utf-8")

    ls = view.get("logit_scale")
    logit_scale = float(np.asarray(ls, dtype=np.float32).reshape(-1)[0])

    weights_off = align(HEADER_SIZE)
    tmp = out_path + ".tmp"
    with open(tmp, "wb") as out:
        out.write(b"\0" * weights_off)
        count, weights_size = write_tensors(out, view, t, v, top, dtype)
        merges_off = align(weights_off + weights_size)
        out.write(b"\0" * (merges_off - weights_off - weights_size))
        out.write(merges_blob)
        file_size = merges_off + len(merges_blob)
        out.seek(0)
        out.write(build_header(t, v, top, pp, logit_scale, bos, eos, weights_off, weights_size, merges_off,
                               len(merges_blob), len(merges), file_size, dtype))
    os.replace(tmp, out_path)
    say(f"{src_arg}: {layout} CLIP, weights {'/'.join(sorted(src.dtypes))}; tokenizer {os.path.basename(tok_path)}; "
        f"preprocessing from {pp_from}")
    say(f"  vision: ViT {v['image_size']}px patch {v['patch_size']}, width {v['hidden_size']}, {v['num_hidden_layers']} layers, "
        f"{v['num_attention_heads']} heads, mlp {v['intermediate_size']}, {v['hidden_act']}")
    say(f"  text:   width {t['hidden_size']}, {t['num_hidden_layers']} layers, {t['num_attention_heads']} heads, "
        f"mlp {t['intermediate_size']}, {t['hidden_act']}, context {t['max_position_embeddings']}, vocab {t['vocab_size']}")
    say(f"  projection {top['projection_dim']}, logit scale {np.exp(logit_scale):.4g}; "
        f"{count / 1e6:.2f} M parameters; wrote {out_path} ({file_size / 2**20:.1f} MiB, {dtype})")


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="Export a CLIP checkpoint (Hugging Face or open_clip; local folder or "
                                             "Hub id) to clip.c's weights file.")
    ap.add_argument("src", help="model directory, or Hub model id such as openai/clip-vit-base-patch32[@revision]")
    ap.add_argument("out", help="output file, e.g. weights.bin")
    ap.add_argument("--tokenizer", help="tokenizer.json, merges.txt or bpe_simple_vocab_16e6.txt.gz "
                                        "(for repositories without one, such as open_clip's)")
    ap.add_argument("--dtype", choices=list(DTYPES), default="f32",
                    help="how to store the linear weights and the token embedding: f32 (default), f16 or bf16 "
                         "(half the size), q8 (8-bit with a float16 scale per 32 weights: 0.27x); the rest stays "
                         "float32 and clip computes in float32")
    ap.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    args = ap.parse_args(argv)
    try:
        export(args.src, args.out, args.tokenizer, args.quiet, args.dtype)
    except ExportError as e:
        print(f"export_weights.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
