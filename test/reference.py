"""A float64 numpy CLIP forward pass: the oracle for checkpoints that have no
Hugging Face reference outputs (full-size random models made by the tests).

It reads a Hugging Face model directory directly (not the exported blob), so
it checks export_weights.py and clip.c together. test_reference.py proves it
against the transformers fixtures first.
"""

import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import export_weights as ew  # noqa: E402  (config defaults and safetensors reader)


class Reference:
    def __init__(self, folder):
        self.t, self.v, self.top = ew.hf_config(folder)
        self.pp, _ = ew.read_preprocess(folder, self.v["image_size"])
        self.src = ew.TensorSource()
        self.src.add_safetensors(os.path.join(folder, "model.safetensors"))

    def w(self, name):
        return self.src.get(name).astype(np.float64)

    @staticmethod
    def layernorm(x, w, b, eps):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w + b

    @staticmethod
    def act(x, kind):
        if kind == "quick_gelu":
            return x / (1.0 + np.exp(-1.702 * x))
        erf = np.vectorize(math.erf)
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))

    def encoder(self, prefix, x, cfg, causal, layers=None):
        """The encoder layers on x (n, d); layers, when a list, gets each
        layer's output."""
        n, d = x.shape
        h = cfg["num_attention_heads"]
        hd = d // h
        eps = cfg["layer_norm_eps"]
        for i in range(cfg["num_hidden_layers"]):
            p = f"{prefix}.encoder.layers.{i}."
            lin = lambda z, name: z @ self.w(p + name + ".weight").T + self.w(p + name + ".bias")
            y = self.layernorm(x, self.w(p + "layer_norm1.weight"), self.w(p + "layer_norm1.bias"), eps)
            q = lin(y, "self_attn.q_proj").reshape(n, h, hd).transpose(1, 0, 2) * hd ** -0.5
            k = lin(y, "self_attn.k_proj").reshape(n, h, hd).transpose(1, 0, 2)
            v = lin(y, "self_attn.v_proj").reshape(n, h, hd).transpose(1, 0, 2)
            s = q @ k.transpose(0, 2, 1)
            if causal:
                s = s + np.triu(np.full((n, n), -np.inf), 1)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            a = (s @ v).transpose(1, 0, 2).reshape(n, d)
            x = x + lin(a, "self_attn.out_proj")
            y = self.layernorm(x, self.w(p + "layer_norm2.weight"), self.w(p + "layer_norm2.bias"), eps)
            x = x + lin(self.act(lin(y, "mlp.fc1"), cfg["hidden_act"]), "mlp.fc2")
            if layers is not None:
                layers.append(x)
        return x

    def pixels(self, rgb):
        """uint8 (S, S, 3) crop -> normalized float32 (3, S, S), as the processor does."""
        x = (rgb.astype(np.float64) * (1 / 255)).astype(np.float32)
        mean = np.array(self.pp["mean"], dtype=np.float32)
        std = np.array(self.pp["std"], dtype=np.float32)
        return ((x - mean) / std).transpose(2, 0, 1)

    def image_stages(self, rgb):
        """Every stage of the vision tower on a uint8 (S, S, 3) crop, in
        forward order, as clip.c's probe names them: a list of (stage, layer,
        float64 array of rows x cols)."""
        v = self.v
        x = self.pixels(rgb).astype(np.float64)
        P, D = v["patch_size"], v["hidden_size"]
        g = v["image_size"] // P
        patches = x.reshape(3, g, P, g, P).transpose(1, 3, 0, 2, 4).reshape(g * g, 3 * P * P)
        emb = patches @ self.w("vision_model.embeddings.patch_embedding.weight").reshape(D, -1).T
        x = np.concatenate([self.w("vision_model.embeddings.class_embedding")[None], emb])
        x = x + self.w("vision_model.embeddings.position_embedding.weight")
        eps = v["layer_norm_eps"]
        x = self.layernorm(x, self.w("vision_model.pre_layrnorm.weight"), self.w("vision_model.pre_layrnorm.bias"), eps)
        stages = [("vision.embeddings", -1, x)]
        layers = []
        x = self.encoder("vision_model", x, v, False, layers)
        stages += [("vision.layer", i, y) for i, y in enumerate(layers)]
        self.last_hidden = x
        pooled = self.layernorm(x[0], self.w("vision_model.post_layernorm.weight"),
                                self.w("vision_model.post_layernorm.bias"), eps)
        stages.append(("vision.pooled", -1, pooled[None]))
        stages.append(("vision.features", -1, (pooled @ self.w("visual_projection.weight").T)[None]))
        return stages

    def image_features(self, rgb):
        return self.image_stages(rgb)[-1][2][0]

    def text_stages(self, ids):
        """Every stage of the text tower on one id sequence, as image_stages.
        The sequence runs up to its first <|endoftext|> (the rest cannot reach
        the pooled row through causal attention), as clip.c runs it."""
        t = self.t
        ids = np.asarray(ids)
        eot = int(np.argmax(ids == t["vocab_size"] - 1)) if (ids == t["vocab_size"] - 1).any() else len(ids) - 1
        ids = ids[:eot + 1]
        x = self.w("text_model.embeddings.token_embedding.weight")[ids]
        x = x + self.w("text_model.embeddings.position_embedding.weight")[:len(ids)]
        stages = [("text.embeddings", -1, x)]
        layers = []
        x = self.encoder("text_model", x, t, True, layers)
        stages += [("text.layer", i, y) for i, y in enumerate(layers)]
        pooled = self.layernorm(x[eot], self.w("text_model.final_layer_norm.weight"),
                                self.w("text_model.final_layer_norm.bias"), t["layer_norm_eps"])
        stages.append(("text.pooled", -1, pooled[None]))
        stages.append(("text.features", -1, (pooled @ self.w("text_projection.weight").T)[None]))
        return stages

    def text_features(self, ids):
        return self.text_stages(ids)[-1][2][0]

    def text_batch_stages(self, id_lists):
        """The stages of a clip_encode_text batch: each stage of every text,
        rows stacked in text order (the packed layout clip.c's probe sees)."""
        per = [self.text_stages(ids) for ids in id_lists]
        return [(name, layer, np.concatenate([p[k][2] for p in per])) for k, (name, layer, _) in enumerate(per[0])]

    def zero_shot_logits(self, image_features, text_features):
        """logit_scale.exp() * cosine(image, each text)."""
        a = np.asarray(image_features, dtype=np.float64)
        b = np.asarray(text_features, dtype=np.float64)
        a = a / np.linalg.norm(a)
        b = b / np.linalg.norm(b, axis=-1, keepdims=True)
        return self.logit_scale() * (b @ a)

    def logit_scale(self):
        return float(np.exp(self.w("logit_scale").reshape(-1)[0]))


def read_ppm(path):
    """Binary P6 with maxval 255 (the fixture crops and clip's own output)."""
    with open(path, "rb") as f:
        data = f.read()
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    assert fields[0] == b"P6" and fields[3] == b"255", path
    w, h = int(fields[1]), int(fields[2])
    return np.frombuffer(data[pos + 1:pos + 1 + w * h * 3], dtype=np.uint8).reshape(h, w, 3)


def rel_err(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))
