#!/usr/bin/env python3
"""The command line: every row of the interface, exit codes, the labels
file rules, options anywhere, JSON that parses."""
import json
import os

import numpy as np

from common import OUT, arrays, check, crop as crop_of, finish, image, run, tiny_model

blob = tiny_model("tiny-gelu")[1]  # 64 px, projection 24
img = image("chelsea.ppm")
crop = crop_of("chelsea.ppm", 64)


def labels_file(name, data):
    p = os.path.join(OUT, name)
    with open(p, "wb") as f:
        f.write(data)
    return p


# usage and errors
rc, out, err = run([])
check(rc == 2 and "usage" in err, "no arguments: usage on stderr, exit 2")
rc, out, err = run(["-h"])
check(rc == 0 and b"usage" in out, "-h: usage on stdout, exit 0")
rc, out, err = run(["embed", "--bogus", blob, img])
check(rc == 2 and err.startswith("clip: unknown option --bogus"), "unknown option: exit 2")
rc, out, err = run(["embed", blob, img, "-t"])
check(rc == 2 and "-t needs a value" in err, "-t without a value: exit 2")
rc, out, err = run(["embed", blob, img, "-t", "0"])
check(rc == 2, "-t 0: exit 2")
rc, out, err = run([os.path.join(OUT, "missing.bin"), img, labels_file("l1.txt", b"cat\n")])
check(rc == 1 and err.startswith("clip: ") and "No such file" in err, f"missing model: exit 1, {err.strip()}")
rc, out, err = run([blob, os.path.join(OUT, "missing.jpg"), labels_file("l1.txt", b"cat\n")])
check(rc == 1 and err.startswith("clip: "), f"missing image: exit 1, {err.strip()}")
rc, out, err = run([blob, img, os.path.join(OUT, "missing.txt")])
check(rc == 1 and err.startswith("clip: "), f"missing labels: exit 1, {err.strip()}")
rc, out, err = run([img, img, labels_file("l1.txt", b"cat\n")])
check(rc == 1 and "not a clip.c weights file" in err, f"an image as the model: {err.strip()}")
rc, out, err = run([blob, blob, labels_file("l1.txt", b"cat\n")])
check(rc == 1 and "unknown image format" in err, f"a model as the image: {err.strip()}")

# labels file rules: BOM, CRLF, surrounding whitespace, blank lines
lab = labels_file("labels-rules.txt", b"\xef\xbb\xbf  a cat \r\n\r\n\t\na dog\r\n   \nbird")
rc, out, err = run([blob, img, lab, "--json"])
res = json.loads(out) if rc == 0 else {}
names = sorted(d["label"] for d in res.get("labels", []))
check(names == ["a cat", "a dog", "bird"], f"labels: BOM, CRLF, whitespace and blank lines handled: {names}")
check(rc == 0 and abs(sum(d["prob"] for d in res["labels"]) - 1) < 1e-5 and res["image"] == img,
      "--json: probabilities sum to 1, image named")
for empty in (b"", b"\n\n  \r\n\t", b"\xef\xbb\xbf"):
    rc, out, err = run([blob, img, labels_file("empty.txt", empty)])
    check(rc == 1 and "no labels" in err, f"labels file {empty!r}: exit 1, {err.strip()}")
weird = labels_file("weird.txt", b'quote " and \\ back\nctrl \x01 tab\tin\nbad \xff\xfe utf8\nnul \x00 byte\n' +
                    "ünïcödé 猫".encode())
rc, out, err = run([blob, img, weird, "--json"])
try:
    res = json.loads(out)
    ok = rc == 0 and len(res["labels"]) == 5
except ValueError:
    ok = False
check(ok, "--json output parses with quotes, backslashes, controls, invalid UTF-8 and NUL in labels")
long_label = labels_file("long.txt", ("word " * 500 + "\n").encode())
rc, out, err = run([blob, img, long_label])
check(rc == 0, "a label longer than the context is truncated, not refused")

# human-readable output, --top, --template
lab = labels_file("labels3.txt", b"cat\ndog\ncar\n")
rc, out, err = run([blob, img, lab])
lines = out.decode().splitlines()
check(rc == 0 and len(lines) == 3 and all("%" in l for l in lines), f"readable output: {lines}")
rc, out, err = run([blob, img, lab, "--top", "2"])
check(rc == 0 and len(out.decode().splitlines()) == 2, "--top 2 prints two labels")
rc, out, err = run([blob, img, lab, "--json", "--template", "a photo of a {}."])
tmpl = {d["label"]: d["logit"] for d in json.loads(out)["labels"]}
lab2 = labels_file("labels3b.txt", b"a photo of a cat.\na photo of a dog.\na photo of a car.\n")
rc, out, err = run([blob, img, lab2, "--json"])
direct = {d["label"]: d["logit"] for d in json.loads(out)["labels"]}
check(all(abs(tmpl[k] - direct[f"a photo of a {k}."]) < 1e-6 for k in ("cat", "dog", "car")),
      "--template: labels are reported bare, scored as the filled template")
rc, out, err = run([blob, img, lab, "--template", "no placeholder"])
check(rc == 2, "--template without {}: exit 2")

# options anywhere after the command word; -t gives the same numbers
a = run(["embed", "-t", "2", blob, crop])[1]
b = run(["embed", blob, crop, "-t", "1"])[1]
check(a == b and len(a) > 10, "embed: -t before or after, 1 or 2 threads: identical output")
c = run(["embed", "--no-mmap", blob, crop])[1]
d = run(["--no-mmap", "--json", blob, img, lab])[1]
check(c == a and d == run(["--json", blob, img, lab])[1],
      "--no-mmap (the weights read, not mapped): identical output for embed and classification")
a = run(["--json", blob, img, lab])[1]
b = run([blob, "--json", img, lab])[1]
check(a == b and a, "classification: --json anywhere")

# embed image vs preprocess+embed of the crop: same numbers
pre = os.path.join(OUT, "cli-pre.ppm")
rc, _, err = run(["preprocess", blob, img, pre])
with open(pre, "rb") as f:
    head = f.read(15)
check(rc == 0 and head.startswith(b"P6\n64 64\n255\n"), "preprocess writes a 64x64 binary PPM")
e1 = arrays(run(["embed", blob, img])[1])
e2 = arrays(run(["embed", blob, pre])[1])
check(e1.shape == (1, 24) and np.array_equal(e1, e2), "embed IMAGE == embed of its preprocessed crop")
rc, out, err = run(["embed", blob, img, crop])
check(rc == 0 and arrays(out).shape == (2, 24), "embed: one array per image")
rc, out, err = run(["embed", blob, "--text", "", "a cat", "<|endoftext|>"])
check(rc == 0 and arrays(out).shape == (3, 24), "embed --text: one array per text (empty text included)")
dec = os.path.join(OUT, "cli-dec.ppm")
rc, _, err = run(["decode", img, dec])
with open(img, "rb") as f1, open(dec, "rb") as f2:
    check(rc == 0 and f1.read() == f2.read(), "decode of a binary PPM reproduces it")
rc, out, err = run(["tokenize", blob, "Hello world"])
check(rc == 0 and json.loads(out) == [49406, 3306, 1002, 49407], f"tokenize TEXT: {out.strip()}")
rc, out, err = run(["tokenize", blob], input="Hello world".encode())
check(rc == 0 and json.loads(out) == [49406, 3306, 1002, 49407], "tokenize from stdin")

finish("test_cli")
