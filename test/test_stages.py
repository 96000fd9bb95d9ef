#!/usr/bin/env python3
"""Every stage of both towers (embeddings, each encoder layer, pooled,
features) against the float64 reference (test/reference.py), through the
probe API: small random checkpoints covering quick_gelu, gelu, several head
sizes and 64-column panels, a 64 px model, truncation at the context and an
<|endoftext|> inside a text. The first stage that diverges is named.

Self-contained: the tokenizer is a small merge list learned here
(test/tokenizer_model.py), so neither OpenAI's vocabulary nor ../shared is
needed. Runs test/stages (make test/stages; or CLIP_STAGES) and ./clip."""
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from common import OUT, ROOT, TEST, check, export, finish, hf_crop, rel_err, run

sys.path.insert(0, os.path.join(ROOT, "tools"))
from gen_selftest import write_checkpoint  # noqa: E402
from reference import Reference  # noqa: E402
from tokenizer_model import Tokenizer, train_merges, write_merges_txt  # noqa: E402

STAGES = os.environ.get("CLIP_STAGES", os.path.join(TEST, "stages"))
TOL = 1e-5  # float32 against float64 on these small models: about 1e-6

CORPUS = """A photo of a cat sitting on the table. Two dogs are playing in the park,
and the children watch them. This is a picture of the city at night, with lights
in every window. It's a beautiful day; isn't it? The quick brown fox jumps over
the lazy dog again and again, and nobody minds at all."""
N_MERGES = 250

TEXTS = [
    "a photo of a cat",
    "It's 12:30, isn't it?!",
    "Cafe\u0301 \u0130STANBUL \u4e2d\u6587 \U0001f431",
    "a <|endoftext|> b",
    "the quick brown fox jumps over the lazy dog " * 12,  # past every context here
    "",
    "\t  DOGS\n and   cats ",
]

VARIANTS = {
    # name: vision, text, projection
    "quick_gelu-32px": (dict(image_size=32, patch_size=8, hidden_size=40, num_hidden_layers=2, num_attention_heads=4,
                             intermediate_size=100, hidden_act="quick_gelu"),
                        dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=72,
                             max_position_embeddings=24, hidden_act="quick_gelu"), 36),
    "gelu-48px": (dict(image_size=48, patch_size=16, hidden_size=70, num_hidden_layers=2, num_attention_heads=5,
                       intermediate_size=150, hidden_act="gelu"),
                  dict(hidden_size=48, num_hidden_layers=3, num_attention_heads=3, intermediate_size=130,
                       max_position_embeddings=77, hidden_act="gelu"), 80),
    "mixed-64px": (dict(image_size=64, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, hidden_act="gelu"),
                   dict(hidden_size=24, num_hidden_layers=1, num_attention_heads=3, intermediate_size=96,
                        max_position_embeddings=16, hidden_act="quick_gelu"), 24),
}


def name(stage, layer):
    return stage.replace(".", " ") + ("" if layer < 0 else f" {layer}")


if not os.path.exists(STAGES):
    check(False, f"{STAGES} is missing (make test/stages)")
    finish("test_stages")

merges = train_merges(CORPUS, N_MERGES)
tok = Tokenizer(merges)
merges_txt = os.path.join(OUT, "stages-merges.txt")
write_merges_txt(merges_txt, merges)
photo = Image.open(os.path.join(ROOT, "data", "cat.jpg")).convert("RGB")

for seed, (variant, (vision, text, proj)) in enumerate(VARIANTS.items()):
    folder = write_checkpoint(os.path.join(OUT, f"stages-{variant}"),
                              dict(vision=vision, text=text, projection_dim=proj, vocab_size=tok.vocab_size),
                              seed=100 + seed)
    blob = export(folder, os.path.join(OUT, f"stages-{variant}.bin"), "--tokenizer", merges_txt)
    S, ctx = vision["image_size"], text["max_position_embeddings"]
    crop = hf_crop(photo, S)
    ppm = os.path.join(OUT, f"stages-{variant}.ppm")
    Image.fromarray(crop).save(ppm)

    # the ids the reference runs on: clip tokenize's (checked against the Python model too)
    ids = []
    for t in TEXTS:
        rc, out, err = run(["tokenize", blob, t])
        ids.append(json.loads(out) if rc == 0 else None)
    check(all(i == tok.encode(t, ctx) for i, t in zip(ids, TEXTS)),
          f"{variant}: clip tokenize gives the Python model's ids (context {ctx})")

    p = subprocess.run([STAGES, blob, ppm] + TEXTS, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if not check(p.returncode == 0, f"{variant}: stages runs" + (f": {p.stderr.decode().strip()}" if p.returncode else "")):
        continue
    lines = [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]
    check(lines and lines[0].get("ids") == ids, f"{variant}: stages tokenizes as clip tokenize does")
    got = [l for l in lines[1:] if "unprobed" not in l]
    # without a probe the last layer runs on the pooled rows only: the same features, bit for bit
    for u in (l for l in lines[1:] if "unprobed" in l):
        probed = [g for g in got if g["stage"] == u["unprobed"]]
        check(len(probed) == 1 and probed[0]["x"] == u["x"],
              f"{variant}: {u['unprobed']} without the probe (last layer on the pooled rows) = with it, bit for bit")

    ref = Reference(folder)
    want = ref.image_stages(crop) + ref.text_batch_stages(ids)
    worst, first_bad = (0.0, None), None
    for k, (stage, layer, a) in enumerate(want):
        g = got[k] if k < len(got) else None
        if g is None or (g["stage"], g["layer"]) != (stage, layer):
            first_bad = (name(stage, layer), "not reported" if g is None else
                         f"got {name(g['stage'], g['layer'])} in its place")
            break
        x = np.array(g["x"], dtype=np.float64).reshape(g["rows"], g["cols"])
        if x.shape != a.shape:
            first_bad = (name(stage, layer), f"shape {x.shape}, reference {a.shape}")
            break
        e = rel_err(x, a) if np.isfinite(x).all() else float("inf")
        if e > worst[0]:
            worst = (e, name(stage, layer))
        if not e <= TOL:
            first_bad = (name(stage, layer), f"max rel err {e:.1e}")
            break
    if first_bad is None and len(got) > len(want):
        first_bad = (name(got[len(want)]["stage"], got[len(want)]["layer"]), "reported after the last stage")
    if first_bad:
        check(False, f"{variant}: {first_bad[0]}: {first_bad[1]} (first divergence; tol {TOL:.0e})")
    else:
        check(True, f"{variant}: all {len(want)} stages agree with reference.py (max rel err {worst[0]:.1e} "
                    f"at {worst[1]}; tol {TOL:.0e})")

finish("test_stages")
