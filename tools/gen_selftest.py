#!/usr/bin/env python3
"""Generate generated/selftest_data.h: the built-in data of `clip selftest`.

    tools/gen_selftest.py [OUT.h]        (default generated/selftest_data.h)

A developer's tool (needs numpy, Pillow and cjpeg; the photo, OpenAI's BPE
merges and Hugging Face's tokenizer cases are the project's own copies in
test/data and data/). It writes, deterministically:

- a tiny random CLIP (both activations, odd widths, several 64-column panels,
  more than one head) exported with export_weights.py, its tokenizer the
  first N_MERGES of OpenAI's merges;
- a small 4:2:0 JPEG (a crop of scikit-image's public-domain "chelsea",
  made with cjpeg) and the crop Pillow + CLIPImageProcessor make of it;
- test strings and their ids from test/tokenizer_model.py (itself checked
  against Hugging Face's ids, test/data/tokenizer_cases.json);
- every stage of both towers and the zero-shot logits from test/reference.py
  (float64, stored as float32).

The bytes go into the header as text, 4 bytes to 5 characters (see
encode_b85), so the model can be a useful size while the source stays small.
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, os.path.join(ROOT, "test"))
sys.path.insert(0, ROOT)
from make_checkpoint import write_safetensors  # noqa: E402
from reference import Reference  # noqa: E402
from tokenizer_model import Tokenizer, read_merges, write_merges_txt  # noqa: E402

VOCAB = os.path.join(ROOT, "data", "bpe_simple_vocab_16e6.txt.gz")
CASES = os.path.join(ROOT, "test", "data", "tokenizer_cases.json")
PHOTO = os.path.join(ROOT, "test", "data", "images", "chelsea.ppm")

N_MERGES = 300
# vision: 17 tokens (tiles of 6 rows, 4 for the 16 patches and the pooled row),
# qkv and MLP outputs over two 64-column panels, head size 12 (the 8-wide dot
# product and its tail); text: gelu, head size 8, context 16
MODEL = dict(
    vision=dict(image_size=32, patch_size=8, hidden_size=24, num_hidden_layers=3, num_attention_heads=2,
                intermediate_size=68, hidden_act="quick_gelu"),
    text=dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=44,
              max_position_embeddings=16, hidden_act="gelu"),
    projection_dim=28)

TEXTS = [
    "a photo of a cat.",
    "It's 12:30, isn't it?!",            # contractions, digits one by one, punctuation runs
    "Cafe\u0301 \u0130STANBUL",          # NFC composition; U+0130 lowercases to i + U+0307
    "\u4e2d\u6587 \U0001f431!",          # CJK, an emoji (byte-level fallback)
    "a <|endoftext|> b",                 # a literal special token: pooling stops at the first
    "the quick brown fox jumps over the lazy dog, again and again",  # longer than the context
    "",
    "\t  DOGS\n and   cats ",            # whitespace runs, uppercase
]

JPEG_BOX = (110, 10, 340, 200)  # the cat's face in chelsea (451 x 300)
JPEG_SIZE = (45, 37)            # not square, not a multiple of the 16-pixel MCU, not the model size

# digits of the text encoding: '#'..'y' without '?' (trigraphs) and '\' (escapes);
# 'z' + digit d is a run of d + 1 zero words
B85 = [c for c in range(35, 122) if c not in (63, 92)]
assert len(B85) == 85


def write_checkpoint(folder, spec, seed=0, keep_tokens=None):
    """A random Hugging Face CLIP checkpoint (config.json + model.safetensors)
    of the shape spec (as MODEL). keep_tokens: token ids whose embedding rows
    are random; the other rows are zero (texts that never use them cannot
    tell, and zeros cost nothing in the header)."""
    v, t, E = dict(spec["vision"]), dict(spec["text"]), spec["projection_dim"]
    t["vocab_size"] = spec["vocab_size"]
    os.makedirs(folder, exist_ok=True)
    import json
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": E,
                   "text_config": t, "vision_config": v}, f, indent=1)
    rng = np.random.default_rng(seed)
    normal = lambda shape, std: (lambda: rng.standard_normal(shape, dtype=np.float32) * np.float32(std))
    ln_w = lambda d: (lambda: 1 + rng.standard_normal(d, dtype=np.float32) * np.float32(0.1))

    def tokens():
        a = rng.standard_normal((t["vocab_size"], t["hidden_size"]), dtype=np.float32) * np.float32(0.5)
        if keep_tokens is not None:
            mask = np.zeros(t["vocab_size"], bool)
            mask[list(keep_tokens)] = True
            a[~mask] = 0
        return a

    P, S = v["patch_size"], v["image_size"]
    tensors = [("logit_scale", (), lambda: np.array(2.6592, dtype=np.float32))]
    for prefix, c in (("vision_model", v), ("text_model", t)):
        d, m, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
        if prefix == "vision_model":
            n = (S // P) ** 2 + 1
            tensors += [(f"{prefix}.embeddings.class_embedding", (d,), normal((d,), 1.0)),
                        (f"{prefix}.embeddings.patch_embedding.weight", (d, 3, P, P), normal((d, 3, P, P), (3 * P * P) ** -0.5)),
                        (f"{prefix}.embeddings.position_embedding.weight", (n, d), normal((n, d), 0.5)),
                        (f"{prefix}.pre_layrnorm.weight", (d,), ln_w(d)),
                        (f"{prefix}.pre_layrnorm.bias", (d,), normal((d,), 0.1))]
        else:
            ctx = c["max_position_embeddings"]
            tensors += [(f"{prefix}.embeddings.token_embedding.weight", (t["vocab_size"], d), tokens),
                        (f"{prefix}.embeddings.position_embedding.weight", (ctx, d), normal((ctx, d), 0.3))]
        for i in range(L):
            p = f"{prefix}.encoder.layers.{i}."
            for q in ("q_proj", "k_proj", "v_proj", "out_proj"):
                # q and k large enough that attention is far from uniform (a broken softmax shows)
                std = 2 * d ** -0.5 if q in ("q_proj", "k_proj") else d ** -0.5
                tensors += [(p + f"self_attn.{q}.weight", (d, d), normal((d, d), std)),
                            (p + f"self_attn.{q}.bias", (d,), normal((d,), 0.1))]
            tensors += [(p + "layer_norm1.weight", (d,), ln_w(d)), (p + "layer_norm1.bias", (d,), normal((d,), 0.1)),
                        (p + "layer_norm2.weight", (d,), ln_w(d)), (p + "layer_norm2.bias", (d,), normal((d,), 0.1)),
                        (p + "mlp.fc1.weight", (m, d), normal((m, d), d ** -0.5)),
                        (p + "mlp.fc1.bias", (m,), normal((m,), 0.1)),
                        (p + "mlp.fc2.weight", (d, m), normal((d, m), m ** -0.5)),
                        (p + "mlp.fc2.bias", (d,), normal((d,), 0.1))]
        if prefix == "vision_model":
            tensors += [(f"{prefix}.post_layernorm.weight", (d,), ln_w(d)),
                        (f"{prefix}.post_layernorm.bias", (d,), normal((d,), 0.1)),
                        ("visual_projection.weight", (E, d), normal((E, d), d ** -0.5))]
        else:
            tensors += [(f"{prefix}.final_layer_norm.weight", (d,), ln_w(d)),
                        (f"{prefix}.final_layer_norm.bias", (d,), normal((d,), 0.1)),
                        ("text_projection.weight", (E, d), normal((E, d), d ** -0.5))]
    write_safetensors(os.path.join(folder, "model.safetensors"), tensors)
    return folder


def export(folder, out, merges_txt):
    subprocess.run([sys.executable, os.path.join(ROOT, "export_weights.py"), "-q", folder, out,
                    "--tokenizer", merges_txt], check=True)
    with open(out, "rb") as f:
        return f.read()


def check_tokenizer_model(full_merges):
    """The Python tokenizer must give Hugging Face's ids before its ids on
    the truncated merges are trusted."""
    import json
    with open(CASES, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    tok = Tokenizer(full_merges)
    bad = [c["text"] for c in cases if tok.encode(c["text"]) != c["ids"] or tok.encode(c["text"], 77) != c["ids_truncated_77"]]
    if bad:
        sys.exit(f"gen_selftest.py: test/tokenizer_model.py disagrees with Hugging Face on {len(bad)} strings, "
                 f"e.g. {bad[0]!r}")


def make_jpeg(tmp):
    """The built-in JPEG and the crop Hugging Face's processor makes of it."""
    from PIL import Image
    from common import hf_crop
    small = Image.open(PHOTO).convert("RGB").crop(JPEG_BOX).resize(JPEG_SIZE, resample=Image.LANCZOS)
    ppm = os.path.join(tmp, "small.ppm")
    small.save(ppm)
    jpeg = subprocess.run(["cjpeg", "-quality", "85", "-sample", "2x2,1x1,1x1", ppm], check=True,
                          stdout=subprocess.PIPE).stdout
    path = os.path.join(tmp, "small.jpg")
    with open(path, "wb") as f:
        f.write(jpeg)
    with Image.open(path) as im:
        assert im.size == JPEG_SIZE and im.layer[0][1:3] == (2, 2), "expected a 4:2:0 JPEG"
        crop = hf_crop(im.convert("RGB"), MODEL["vision"]["image_size"])
    return jpeg, np.ascontiguousarray(crop, dtype=np.uint8)


def encode_b85(data):
    """4 bytes (a little-endian word) to 5 digits, most significant first; a
    run of k zero words (k <= 85) to 'z' and the digit k - 1."""
    assert len(data) % 4 == 0
    words = struct.unpack(f"<{len(data) // 4}I", data)
    out, i = [], 0
    while i < len(words):
        if words[i] == 0:
            k = 1
            while i + k < len(words) and words[i + k] == 0 and k < 85:
                k += 1
            out.append("z" + chr(B85[k - 1]))
            i += k
            continue
        w, d = words[i], []
        for _ in range(5):
            d.append(chr(B85[w % 85]))
            w //= 85
        out.append("".join(reversed(d)))
        i += 1
    return "".join(out)


def fnv1a(data):
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def c_string(b):
    """A C string literal of bytes: printable ASCII as is, the rest as octal
    escapes (never greedy, unlike \\x)."""
    out = []
    for ch in b:
        if ch in (34, 92):
            out.append("\\" + chr(ch))
        elif 32 <= ch < 127 and ch != 63:
            out.append(chr(ch))
        else:
            out.append(f"\\{ch:03o}")
    return '"' + "".join(out) + '"'


def pad4(b):
    return b + b"\0" * (-len(b) % 4)


def main(argv):
    out_path = argv[0] if argv else os.path.join(ROOT, "generated", "selftest_data.h")
    vocab = VOCAB
    full = read_merges(vocab)
    check_tokenizer_model(full)
    merges = full[:N_MERGES]
    tok = Tokenizer(merges)
    ctx = MODEL["text"]["max_position_embeddings"]
    ids = [tok.encode(t, ctx) for t in TEXTS]
    assert len(tok.encode(TEXTS[5])) > ctx, "one text must be longer than the context"

    tmp = tempfile.mkdtemp(prefix="gen_selftest.")
    try:
        merges_txt = os.path.join(tmp, "merges.txt")
        write_merges_txt(merges_txt, merges)
        spec = dict(MODEL, vocab_size=tok.vocab_size)
        folder = write_checkpoint(os.path.join(tmp, "ckpt"), spec, seed=2024,
                                  keep_tokens={i for seq in ids for i in seq})
        blob = export(folder, os.path.join(tmp, "selftest.bin"), merges_txt)
        jpeg, crop = make_jpeg(tmp)

        ref = Reference(folder)
        vis, txt = ref.image_stages(crop), ref.text_batch_stages(ids)
        logits = ref.zero_shot_logits(vis[-1][2][0], txt[-1][2])
        stages = vis + txt + [("logits", -1, logits[None])]
    finally:
        shutil.rmtree(tmp)

    # one stream: blob | jpeg | crop | reference floats (float32, little-endian)
    parts, offs, pos = [pad4(blob), pad4(jpeg), pad4(crop.tobytes())], [], 0
    for p in parts:
        offs.append(pos)
        pos += len(p)
    ref_off = pos
    table, floats = [], []
    for name, layer, a in stages:
        a = np.asarray(a, dtype=np.float64)
        table.append((name, layer, a.shape[0], a.shape[1], sum(f.size for f in floats)))
        floats.append(a.astype("<f4").reshape(-1))
    data = b"".join(parts) + np.concatenate(floats).tobytes()
    text = encode_b85(data)
    width = 120
    lines = [text[i:i + width] for i in range(0, len(text), width)]

    flat_ids = [i for seq in ids for i in seq]
    v, t = MODEL["vision"], MODEL["text"]
    o = []
    o.append("/* generated/selftest_data.h - GENERATED by tools/gen_selftest.py; do not edit, re-run the tool.\n\n"
             "   The built-in data of clip_selftest (selftest/selftest.c): a tiny random CLIP\n"
             f"   (vision {v['image_size']}px patch {v['patch_size']}, width {v['hidden_size']}, "
             f"{v['num_hidden_layers']} layers, {v['num_attention_heads']} heads, mlp {v['intermediate_size']}, "
             f"{v['hidden_act']};\n"
             f"   text width {t['hidden_size']}, {t['num_hidden_layers']} layers, {t['num_attention_heads']} heads, "
             f"mlp {t['intermediate_size']}, {t['hidden_act']}, context {ctx};\n"
             f"   projection {MODEL['projection_dim']}; the first {N_MERGES} of OpenAI's BPE merges), a JPEG, "
             "test strings,\n"
             "   and the expected token ids, crop and stage values from the project's\n"
             "   Python models (test/tokenizer_model.py, Pillow, test/reference.py).\n\n"
             "   selftest_data holds one byte stream as text: each 4 bytes (a little-endian\n"
             "   word) are 5 digits base 85, most significant first, a digit being one of\n"
             "   '#'..'y' without '?' and '\\' in ASCII order; 'z' and a digit d stand for\n"
             "   d + 1 zero words. The lines are concatenated. */\n")
    o.append("#ifndef CLIP_SELFTEST_DATA_H\n#define CLIP_SELFTEST_DATA_H\n\n#include <stdint.h>\n")
    o.append(f"#define SELFTEST_DATA_SIZE {len(data)}L\n"
             f"#define SELFTEST_DATA_FNV1A 0x{fnv1a(data):08X}UL /* FNV-1a 32 of the decoded bytes */\n"
             f"#define SELFTEST_BLOB_OFF {offs[0]}L /* the weights file */\n#define SELFTEST_BLOB_SIZE {len(blob)}L\n"
             f"#define SELFTEST_JPEG_OFF {offs[1]}L\n#define SELFTEST_JPEG_SIZE {len(jpeg)}L\n"
             f"#define SELFTEST_JPEG_W {JPEG_SIZE[0]}\n#define SELFTEST_JPEG_H {JPEG_SIZE[1]} /* 4:2:0 */\n"
             f"#define SELFTEST_CROP_OFF {offs[2]}L /* the expected crop, RGB */\n"
             f"#define SELFTEST_CROP_SIZE {crop.shape[0]}\n"
             f"#define SELFTEST_REF_OFF {ref_off}L /* float32 values of selftest_stages */\n"
             f"#define SELFTEST_REF_COUNT {sum(f.size for f in floats)}L\n\n")
    o.append(f"static const char *const selftest_data[{len(lines)}] = {{\n")
    o.append("".join(f'"{l}",\n' for l in lines))
    o.append("};\n\n")
    o.append(f"#define SELFTEST_N_TEXTS {len(TEXTS)}\n#define SELFTEST_CONTEXT {ctx}\n")
    o.append(f"/* UTF-8; each text's ids (<|startoftext|> .. <|endoftext|>, truncated to the\n"
             f"   context) follow the previous text's in selftest_ids */\n")
    o.append("static const char *const selftest_texts[SELFTEST_N_TEXTS] = {\n")
    o.append("".join(f"    {c_string(s.encode('utf-8'))},\n" for s in TEXTS))
    o.append("};\n")
    o.append("static const int selftest_n_ids[SELFTEST_N_TEXTS] = {" + ", ".join(str(len(s)) for s in ids) + "};\n")
    o.append(f"static const int32_t selftest_ids[{len(flat_ids)}] = {{\n")
    for i in range(0, len(flat_ids), 16):
        o.append("    " + ", ".join(str(x) for x in flat_ids[i:i + 16]) + ",\n")
    o.append("};\n\n")
    o.append("/* the stages in the order they are computed: name as the probe gives it\n"
             "   (\"logits\": clip_zero_shot of the image against the texts), layer, shape,\n"
             "   and the first value's index in the reference floats */\n")
    o.append("typedef struct {\n    const char *stage;\n    int layer, rows, cols;\n    long off;\n} selftest_stage;\n")
    o.append(f"#define SELFTEST_N_STAGES {len(table)}\n")
    o.append("static const selftest_stage selftest_stages[SELFTEST_N_STAGES] = {\n")
    o.append("".join(f'    {{"{n}", {l}, {r}, {c}, {off}L}},\n' for n, l, r, c, off in table))
    o.append("};\n\n#endif\n")
    src = "".join(o)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w", encoding="ascii", newline="\n") as f:
        f.write(src)
    print(f"gen_selftest.py: wrote {out_path} ({len(src)} bytes): weights {len(blob)} bytes, JPEG {len(jpeg)} bytes, "
          f"{sum(f.size for f in floats)} reference values in {len(table)} stages, {len(TEXTS)} texts")


if __name__ == "__main__":
    main(sys.argv[1:])
