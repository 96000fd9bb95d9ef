"""Write Hugging Face CLIP checkpoints for the tests: random weights of any
shape (full-size ViT-B/32, ViT-L/14@336, ...) as config.json +
model.safetensors, written tensor by tensor."""
import json
import os
import struct

import numpy as np

SHAPES = {
    # name: (vision width, layers, heads, patch, image), (text width, layers, heads), projection
    "ViT-B-32": ((768, 12, 12, 32, 224), (512, 12, 8), 512),
    "ViT-B-16": ((768, 12, 12, 16, 224), (512, 12, 8), 512),
    "ViT-L-14": ((1024, 24, 16, 14, 224), (768, 12, 12), 768),
    "ViT-L-14-336": ((1024, 24, 16, 14, 336), (768, 12, 12), 768),
    # a small model whose preprocessing is the 336 px one (the fixture crops in pixels/336)
    "tiny-336": ((32, 1, 2, 56, 336), (32, 1, 2), 32),
}


def write_safetensors(path, tensors, dtype="F32"):
    """tensors: list of (name, shape, producer) where producer() gives the array."""
    np_dt = {"F32": "<f4", "F16": "<f2"}[dtype]
    header, off = {}, 0
    for name, shape, _ in tensors:
        n = int(np.prod(shape, dtype=np.int64)) * np.dtype(np_dt).itemsize
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name, shape, make in tensors:
            a = np.asarray(make(), dtype=np_dt)
            assert a.shape == tuple(shape), name
            f.write(a.tobytes())


def random_clip(folder, name, seed=0, act="quick_gelu"):
    (vw, vl, vh, patch, image), (tw, tl, th), proj = SHAPES[name]
    os.makedirs(folder, exist_ok=True)
    config = {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": proj,
              "text_config": {"hidden_size": tw, "intermediate_size": 4 * tw, "num_attention_heads": th,
                              "num_hidden_layers": tl, "hidden_act": act},
              "vision_config": {"hidden_size": vw, "intermediate_size": 4 * vw, "num_attention_heads": vh,
                                "num_hidden_layers": vl, "patch_size": patch, "image_size": image, "hidden_act": act}}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    rng = np.random.default_rng(seed)
    normal = lambda shape, std: (lambda: rng.standard_normal(shape, dtype=np.float32) * np.float32(std))
    ln_w = lambda d: (lambda: 1 + rng.standard_normal(d, dtype=np.float32) * np.float32(0.1))
    tensors = [("logit_scale", (), lambda: np.array(2.6592, dtype=np.float32))]
    tokens = (image // patch) ** 2 + 1
    for prefix, d, layers, extra in (("vision_model", vw, vl, None), ("text_model", tw, tl, None)):
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
                        (p + "mlp.fc1.weight", (4 * d, d), normal((4 * d, d), (2 * d) ** -0.5)),
                        (p + "mlp.fc1.bias", (4 * d,), normal((4 * d,), 0.02)),
                        (p + "mlp.fc2.weight", (d, 4 * d), normal((d, 4 * d), attn_std)),
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
