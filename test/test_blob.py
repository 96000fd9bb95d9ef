#!/usr/bin/env python3
"""Hostile weights files: truncated at every section boundary, wrong magic
and version, every header word flipped, sizes that overflow, damaged merges.
Each must be refused with a 'clip:' message and exit 1, never crash."""
import os
import random
import struct

from common import OUT, check, crop, finish, run, tiny_model

good = tiny_model("tiny-gelu")[1]
with open(good, "rb") as f:
    data = f.read()
words = list(struct.unpack("<64I", data[:256]))
img = crop("chelsea.ppm", 64)
path = os.path.join(OUT, "blob-bad.bin")


def try_blob(blob):
    with open(path, "wb") as f:
        f.write(blob)
    return run(["embed", path, img])


rc, out, err = try_blob(data)
check(rc == 0, "the unmodified file loads")

woff, wsize, moff = words[40] | words[41] << 32, words[42] | words[43] << 32, words[44] | words[45] << 32
bad = []
for cut in sorted({0, 3, 4, 8, 255, 256, woff - 1, woff, woff + 1, woff + wsize - 1, woff + wsize, moff - 1, moff,
                   moff + 1, len(data) - 1}):
    rc, out, err = try_blob(data[:cut])
    if rc != 1 or not err.startswith("clip: "):
        bad.append((cut, rc, err))
check(not bad, f"truncated at every section boundary: refused {bad[:2]}")
rc, out, err = try_blob(data + b"\0")
check(rc == 1 and "truncated or damaged" in err, f"one extra byte: {err.strip()}")

rc, out, err = try_blob(b"GGUF" + data[4:])
check(rc == 1 and "wrong magic" in err and "export_weights.py" in err, f"wrong magic: {err.strip()}")
v = words[1]
check(v == 3, f"export_weights.py writes version 3 ({v})")
rc, out, err = try_blob(data[:4] + struct.pack("<I", 1) + data[8:])
check(rc == 1 and "version 1, this build reads versions 2 and 3; re-run export_weights.py" in err,
      f"an older version: {err.strip()}")
rc, out, err = try_blob(data[:4] + struct.pack("<I", v + 1) + data[8:])
check(rc == 1 and f"version {v + 1}, this build reads versions 2 and 3" in err, f"a newer version: {err.strip()}")
# version 2 lays the tensors back to back: a version 3 file relabelled is refused by its size
rc, out, err = try_blob(data[:4] + struct.pack("<I", 2) + data[8:])
check(rc == 1 and "the weights section has" in err, f"a version 3 layout labelled version 2: {err.strip()}")

# every header word, set to hostile values
crashes, accepted = [], []
for i in range(2, 64):
    for v in (0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, words[i] + 1, words[i] * 2 + 7, 0x7F800000, 0x7FC00000):
        w = list(words)
        w[i] = v & 0xFFFFFFFF
        if w == words:
            continue
        rc, out, err = try_blob(struct.pack("<64I", *w) + data[256:])
        if rc not in (0, 1) or (rc == 1 and not err.startswith("clip: ")):
            crashes.append((i, v, rc, err[:80]))
        elif rc == 0:
            accepted.append(i)
check(not crashes, f"every header word flipped: no crash, every refusal says why {crashes[:3]}")
# only fields that cannot break memory safety may take other in-range values
# (22, the projection size, may move within its 64-column weight panel)
check(set(accepted) <= {8, 10, 11, 16, 18, 19, 22, 23, 24, 25, 26, 29, 30, 31, 32, 33, 34, 35, 36},
      f"only value fields (heads, activation, eps, logit scale, resize, mean/std) accept other values: {sorted(set(accepted))}")

# sizes that overflow: huge dims with a matching (wrapped) weights size
w = list(words)
w[6] = 65536          # vision width
w[9] = 1 << 20        # mlp
w[8] = 1              # heads
rc, out, err = try_blob(struct.pack("<64I", *w) + data[256:])
check(rc == 1 and "weights section" in err, f"dimensions whose product overflows: {err.strip()}")

# damaged merges: random byte flips in the merges section
rng = random.Random(7)
crashes = []
for k in range(40):
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        b[rng.randrange(moff, len(b))] = rng.choice([0x20, 0x0A, 0x00, 0xFF, rng.randrange(256)])
    rc, out, err = try_blob(bytes(b))
    if rc not in (0, 1) or (rc == 1 and not err.startswith("clip: ")):
        crashes.append((k, rc, err[:80]))
check(not crashes, f"40 damaged merges sections: loaded or refused cleanly {crashes[:2]}")
rc, out, err = try_blob(data[:moff] + data[moff:].replace(b"\n", b" ", 1))
check(rc == 1 and "merges, line 1" in err, f"a merge line without a newline: {err.strip()}")

finish("test_blob")
