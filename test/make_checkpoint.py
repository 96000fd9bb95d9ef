"""Write CLIP checkpoints for the tests: random weights of any shape
(full-size ViT-B/32, ViT-L/14@336, the two tiny test models, ...) as a
Hugging Face config.json + model.safetensors, written tensor by tensor; and,
for the tests of every repository layout users download, the same weights
with the files that go beside them (tokenizer.json and processor_config.json
as transformers writes them today; the older merges.txt + vocab.json +
preprocessor_config.json layout; an open_clip checkpoint)."""
import json
import os
import struct

import numpy as np

from tokenizer_model import Tokenizer, read_merges

SHAPES = {
    # name: (vision width, layers, heads, patch, image[, mlp]), (text width, layers, heads[, mlp]), projection
    # (the MLP is 4 x width unless given)
    "ViT-B-32": ((768, 12, 12, 32, 224), (512, 12, 8), 512),
    "ViT-B-16": ((768, 12, 12, 16, 224), (512, 12, 8), 512),
    "ViT-L-14": ((1024, 24, 16, 14, 224), (768, 12, 12), 768),
    "ViT-L-14-336": ((1024, 24, 16, 14, 336), (768, 12, 12), 768),
    # a small model whose preprocessing is the 336 px one (the fixture crops in pixels/336)
    "tiny-336": ((32, 1, 2, 56, 336), (32, 1, 2), 32),
    # the shapes of ../shared's Hugging Face fixture models (test/common.py tiny_model):
    # 224 px, patch 32, widths 64 / 32, 4 heads, 2 layers (quick_gelu) ...
    "tiny-quickgelu": ((64, 2, 4, 32, 224), (32, 2, 4), 48),
    # ... and 64 px, patch 16, odd widths 48 / 40, 3 / 5 heads, 3 layers, MLP 3 x and 2.5 x (exact gelu)
    "tiny-gelu": ((48, 3, 3, 16, 64, 144), (40, 3, 5, 100), 24),
}
OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]


NP_DTYPES = {"F32": "<f4", "F16": "<f2", "I64": "<i8"}


def write_safetensors(path, tensors, dtype="F32"):
    """tensors: list of (name, shape, producer[, dtype]) where producer()
    gives the array; dtype (F32, F16 or I64) defaults to the argument."""
    header, off = {}, 0
    for name, shape, *rest in tensors:
        dt = rest[1] if len(rest) > 1 else dtype
        n = int(np.prod(shape, dtype=np.int64)) * np.dtype(NP_DTYPES[dt]).itemsize
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name, shape, make, *rest in tensors:
            a = np.asarray(make(), dtype=NP_DTYPES[rest[0] if rest else dtype])
            assert a.shape == tuple(shape), name
            f.write(a.tobytes())


def read_safetensors(path):
    """{name: array} of a safetensors file (F32, F16, I64)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        head.pop("__metadata__", None)
        out = {}
        for k, v in head.items():
            f.seek(8 + n + v["data_offsets"][0])
            raw = f.read(v["data_offsets"][1] - v["data_offsets"][0])
            out[k] = np.frombuffer(raw, dtype=NP_DTYPES[v["dtype"]]).reshape(v["shape"])
        return out


def random_clip(folder, name, seed=0, act="quick_gelu"):
    """A random checkpoint of SHAPES[name] in folder (config.json +
    model.safetensors). act: one activation for both towers, or a
    (vision, text) pair."""
    (vw, vl, vh, patch, image, *vm), (tw, tl, th, *tm), proj = SHAPES[name]
    vm, tm = (vm or [4 * vw])[0], (tm or [4 * tw])[0]
    vact, tact = (act, act) if isinstance(act, str) else act
    os.makedirs(folder, exist_ok=True)
    config = {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": proj,
              "text_config": {"hidden_size": tw, "intermediate_size": tm, "num_attention_heads": th,
                              "num_hidden_layers": tl, "hidden_act": tact},
              "vision_config": {"hidden_size": vw, "intermediate_size": vm, "num_attention_heads": vh,
                                "num_hidden_layers": vl, "patch_size": patch, "image_size": image, "hidden_act": vact}}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    rng = np.random.default_rng(seed)
    normal = lambda shape, std: (lambda: rng.standard_normal(shape, dtype=np.float32) * np.float32(std))
    ln_w = lambda d: (lambda: 1 + rng.standard_normal(d, dtype=np.float32) * np.float32(0.1))
    tensors = [("logit_scale", (), lambda: np.array(2.6592, dtype=np.float32))]
    tokens = (image // patch) ** 2 + 1
    for prefix, d, layers, m in (("vision_model", vw, vl, vm), ("text_model", tw, tl, tm)):
        if prefix == "vision_model":
            tensors += [(f"{prefix}.embeddings.class_embedding", (d,), normal((d,), d ** -0.5)),
                        (f"{prefix}.embeddings.patch_embedding.weight", (d, 3, patch, patch), normal((d, 3, patch, patch), 0.02)),
                        (f"{prefix}.embeddings.position_embedding.weight", (tokens, d), normal((tokens, d), 0.02)),
                        (f"{prefix}.pre_layrnorm.weight", (d,), ln_w(d)),
                        (f"{prefix}.pre_layrnorm.bias", (d,), normal((d,), 0.02))]
        else:
            tensors += [(f"{prefix}.embeddings.token_embedding.weight", (49408, d), normal((49408, d), 0.02)),
                        (f"{prefix}.embeddings.position_embedding.weight", (77, d), normal((77, d), 0.01))]
        attn_std = d ** -0.5 * (2 * layers) ** -0.5
        for i in range(layers):
            p = f"{prefix}.encoder.layers.{i}."
            for q in ("q_proj", "k_proj", "v_proj", "out_proj"):
                tensors += [(p + f"self_attn.{q}.weight", (d, d), normal((d, d), attn_std)),
                            (p + f"self_attn.{q}.bias", (d,), normal((d,), 0.02))]
            tensors += [(p + "layer_norm1.weight", (d,), ln_w(d)), (p + "layer_norm1.bias", (d,), normal((d,), 0.02)),
                        (p + "layer_norm2.weight", (d,), ln_w(d)), (p + "layer_norm2.bias", (d,), normal((d,), 0.02)),
                        (p + "mlp.fc1.weight", (m, d), normal((m, d), (2 * d) ** -0.5)),
                        (p + "mlp.fc1.bias", (m,), normal((m,), 0.02)),
                        (p + "mlp.fc2.weight", (d, m), normal((d, m), attn_std)),
                        (p + "mlp.fc2.bias", (d,), normal((d,), 0.02))]
        if prefix == "vision_model":
            tensors += [(f"{prefix}.post_layernorm.weight", (d,), ln_w(d)),
                        (f"{prefix}.post_layernorm.bias", (d,), normal((d,), 0.02)),
                        ("visual_projection.weight", (proj, d), normal((proj, d), d ** -0.5))]
        else:
            tensors += [(f"{prefix}.final_layer_norm.weight", (d,), ln_w(d)),
                        (f"{prefix}.final_layer_norm.bias", (d,), normal((d,), 0.02)),
                        ("text_projection.weight", (proj, d), normal((proj, d), d ** -0.5))]
    write_safetensors(os.path.join(folder, "model.safetensors"), tensors)
    return folder


# ---------------------------------------------------------------------------
# The files beside the weights, for each repository layout

def clip_tokenizer(vocab_gz):
    """(merges, {token: id}) of CLIP's tokenizer from OpenAI's
    bpe_simple_vocab_16e6.txt.gz: a header line, then the merges, of which
    CLIP keeps the first 49152 - 256 - 2."""
    merges = read_merges(vocab_gz)
    return merges, Tokenizer(merges).ids


SPLIT = r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"


def add_hf_files(folder, vocab_gz):
    """tokenizer.json, tokenizer_config.json and processor_config.json as
    transformers 5 writes them for a CLIP model (config.json gives the image
    size)."""
    merges, vocab = clip_tokenizer(vocab_gz)
    special = [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": True} for t in ("<|startoftext|>", "<|endoftext|>")]
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": special,
           "normalizer": {"type": "Sequence", "normalizers": [
               {"type": "NFC"}, {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": " "},
               {"type": "Lowercase"}]},
           "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
               {"type": "Split", "pattern": {"Regex": SPLIT}, "behavior": "Removed", "invert": True},
               {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
           "post_processor": {"type": "RobertaProcessing", "sep": ["<|endoftext|>", 49407],
                              "cls": ["<|startoftext|>", 49406], "trim_offsets": False, "add_prefix_space": False},
           "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
           "model": {"type": "BPE", "dropout": None, "unk_token": "<|endoftext|>", "continuing_subword_prefix": "",
                     "end_of_word_suffix": "</w>", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                     "vocab": vocab, "merges": [list(m) for m in merges]}}
    with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"backend": "tokenizers", "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
                   "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "do_lower_case": True,
                   "model_max_length": 77, "processor_class": "CLIPProcessor", "tokenizer_class": "CLIPTokenizer"}, f,
                  indent=2)
    with open(os.path.join(folder, "config.json")) as f:
        size = json.load(f)["vision_config"].get("image_size", 224)
    with open(os.path.join(folder, "processor_config.json"), "w") as f:
        json.dump({"image_processor": {"crop_size": {"height": size, "width": size}, "do_center_crop": True,
                                       "do_convert_rgb": True, "do_normalize": True, "do_rescale": True,
                                       "do_resize": True, "image_mean": OPENAI_MEAN,
                                       "image_processor_type": "CLIPImageProcessor", "image_std": OPENAI_STD,
                                       "resample": 3, "rescale_factor": 1 / 255, "size": {"shortest_edge": size}},
                   "processor_class": "CLIPProcessor"}, f, indent=2)
    return folder


def legacy_layout(src, folder, vocab_gz):
    """src's weights in the older layout most published checkpoints still
    use: merges.txt + vocab.json + preprocessor_config.json, int64
    position_ids buffers inside model.safetensors, bos/eos 0 and 2 in
    config.json's text_config."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    cfg["text_config"].update(bos_token_id=0, eos_token_id=2, pad_token_id=1)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    t = read_safetensors(os.path.join(src, "model.safetensors"))
    npos = {"text_model": t["text_model.embeddings.position_embedding.weight"].shape[0],
            "vision_model": t["vision_model.embeddings.position_embedding.weight"].shape[0]}
    tensors = [(k, v.shape, (lambda v=v: v)) for k, v in sorted(t.items())]
    tensors += [(f"{p}.embeddings.position_ids", (1, n), (lambda n=n: np.arange(n)[None]), "I64")
                for p, n in npos.items()]
    write_safetensors(os.path.join(folder, "model.safetensors"), sorted(tensors))
    merges, vocab = clip_tokenizer(vocab_gz)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
               "pad_token": "<|endoftext|>"}
    with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
        json.dump(special, f)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(dict(special, model_max_length=77, do_lower_case=True, tokenizer_class="CLIPTokenizer"), f)
    size = cfg["vision_config"].get("image_size", 224)
    with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:
        json.dump({"crop_size": size, "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True,
                   "do_rescale": True, "do_resize": True, "image_mean": OPENAI_MEAN,
                   "image_processor_type": "CLIPImageProcessor", "image_std": OPENAI_STD, "resample": 3,
                   "rescale_factor": 1 / 255, "size": size, "feature_extractor_type": "CLIPFeatureExtractor"}, f,
                  indent=2)
    return folder


def openclip_layout(src, folder):
    """src's weights as an open_clip checkpoint: open_clip_model.safetensors
    with OpenAI's tensor names (q, k, v fused into in_proj; visual.proj and
    text_projection stored transposed) and open_clip_config.json; no
    tokenizer files, as on most open_clip hub repositories. open_clip has one
    activation for both towers and head_width = width / heads."""
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    v, tc = cfg["vision_config"], cfg["text_config"]
    acts = {v.get("hidden_act", "quick_gelu"), tc.get("hidden_act", "quick_gelu")}
    assert len(acts) == 1 and acts <= {"quick_gelu", "gelu"}, "open_clip: one activation, quick_gelu or gelu"
    t = read_safetensors(os.path.join(src, "model.safetensors"))
    out = {"logit_scale": t["logit_scale"]}
    names = {"visual.class_embedding": "vision_model.embeddings.class_embedding",
             "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
             "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
             "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",
             "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
             "visual.ln_post.weight": "vision_model.post_layernorm.weight",
             "visual.ln_post.bias": "vision_model.post_layernorm.bias",
             "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
             "positional_embedding": "text_model.embeddings.position_embedding.weight",
             "ln_final.weight": "text_model.final_layer_norm.weight",
             "ln_final.bias": "text_model.final_layer_norm.bias"}
    out.update({k: t[h] for k, h in names.items()})
    out["visual.proj"] = t["visual_projection.weight"].T
    out["text_projection"] = t["text_projection.weight"].T
    for oc, hf, c in (("visual.transformer", "vision_model", v), ("transformer", "text_model", tc)):
        for i in range(c["num_hidden_layers"]):
            a, b = f"{oc}.resblocks.{i}.", f"{hf}.encoder.layers.{i}."
            for part in ("weight", "bias"):
                out[a + "attn.in_proj_" + part] = np.concatenate(
                    [t[b + f"self_attn.{q}_proj.{part}"] for q in "qkv"])
                for x, y in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                             ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
                    out[a + x + "." + part] = t[b + y + "." + part]
    os.makedirs(folder, exist_ok=True)
    write_safetensors(os.path.join(folder, "open_clip_model.safetensors"),
                      [(k, a.shape, (lambda a=a: a)) for k, a in sorted(out.items())])
    vw, tw = v["hidden_size"], tc["hidden_size"]
    vision_cfg = {"image_size": v.get("image_size", 224), "layers": v["num_hidden_layers"], "width": vw,
                  "patch_size": v.get("patch_size", 32), "head_width": vw // v["num_attention_heads"]}
    text_cfg = {"context_length": 77, "vocab_size": 49408, "width": tw, "heads": tc["num_attention_heads"],
                "layers": tc["num_hidden_layers"]}
    if v["intermediate_size"] != 4 * vw:
        vision_cfg["mlp_ratio"] = v["intermediate_size"] / vw
    if tc["intermediate_size"] != 4 * tw:
        text_cfg["mlp_ratio"] = tc["intermediate_size"] / tw
    with open(os.path.join(folder, "open_clip_config.json"), "w") as f:
        json.dump({"model_cfg": {"embed_dim": cfg["projection_dim"], "quick_gelu": acts == {"quick_gelu"},
                                 "vision_cfg": vision_cfg, "text_cfg": text_cfg},
                   "preprocess_cfg": {"mean": OPENAI_MEAN, "std": OPENAI_STD}}, f, indent=2)
    return folder
