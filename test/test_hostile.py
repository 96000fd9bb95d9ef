#!/usr/bin/env python3
"""Hostile inputs, named one by one: broken PPM/PGM headers and data, JPEGs
with bogus segments, each decoder's cases from test/hostile_<format>.py,
labels files at the edges. Each must end in exit 1 with
a message naming the file and the problem (or a clean decode), never a
crash, a hang or unbounded memory."""
import importlib
import os
import resource
import struct
import subprocess
import time

from common import CLIP, OUT, check, crop, finish, have_pillow, image, tiny_model

blob = tiny_model("tiny-gelu")[1]


def limited_run(args, input=None, timeout=60, mem_mb=1024):
    """./clip with an address-space limit and a timeout."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (mem_mb << 20, mem_mb << 20))
    t = time.time()
    try:
        p = subprocess.run([CLIP] + args, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, preexec_fn=limit if "ASAN_OPTIONS" not in os.environ else None)
    except subprocess.TimeoutExpired:
        return -999, b"", "TIMEOUT", timeout
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"), time.time() - t


def decode_case(name, data, want_words):
    path = os.path.join(OUT, "hostile-" + name)
    with open(path, "wb") as f:
        f.write(data)
    rc, out, err, secs = limited_run(["decode", path, os.path.join(OUT, "hostile-out.ppm")])
    ok = rc == 1 and err.startswith("clip: ") and path in err and all(w in err for w in want_words)
    check(ok, f"{name}: exit {rc}, {err.strip()[len('clip: ') + len(path) + 2:][:110]!r}")


def decode_ok_case(name, data, same_as_pillow=False):
    """A file the reference reads: it must decode within the same limits
    (and, with same_as_pillow, to Pillow's bytes)."""
    path = os.path.join(OUT, "hostile-" + name)
    out = os.path.join(OUT, "hostile-out.ppm")
    with open(path, "wb") as f:
        f.write(data)
    rc, _, err, secs = limited_run(["decode", path, out])
    same = ""
    if rc == 0 and same_as_pillow and have_pillow():
        from PIL import Image
        with Image.open(path) as a, Image.open(out) as b:
            same = ", Pillow's bytes" if a.convert("RGB").tobytes() == b.tobytes() else ", NOT Pillow's bytes"
    check(rc == 0 and "NOT" not in same, f"{name}: decodes (exit {rc}{same}) in {secs:.2f} s {err.strip()[:110]}")


# PPM / PGM
decode_case("zero-width.ppm", b"P6\n0 5\n255\n", ["no pixels"])
decode_case("zero-height.pgm", b"P5 5 0 255\n", ["no pixels"])
decode_case("negative.ppm", b"P6\n-5 5\n255\n" + b"\0" * 75, ["malformed"])
decode_case("huge-2^31.ppm", b"P6\n2147483648 1\n255\n\0\0\0", ["over the limit"])
decode_case("overflow.ppm", b"P6\n4294967296 4294967296\n255\n\0", ["over the limit"])
decode_case("wxh-over-limit.pgm", b"P5 65536 65536 255\n\0", ["over the limit"])
decode_case("maxval-0.ppm", b"P6 1 1 0\n\0\0\0", ["maxval 0"])
decode_case("maxval-65536.ppm", b"P6 1 1 65536\n\0\0\0\0\0\0", ["maxval 65536"])
decode_case("truncated.ppm", b"P6 4 4 255\n" + b"\x80" * 20, ["truncated"])
decode_case("truncated-16bit.pgm", b"P5 2 2 1000\n\0\1\0\2\0", ["truncated"])
decode_case("plain-above-maxval.pgm", b"P2 2 1 10 5 11", ["above maxval"])
decode_case("plain-garbage.ppm", b"P3 1 1 255 1 2 x", ["malformed"])
decode_case("header-only.ppm", b"P6", ["malformed"])
decode_case("pbm.pbm", b"P4 8 1\n\xff", ["PBM"])
decode_case("empty.jpg", b"", ["unknown image format"])
decode_case("text.jpg", b"hello", ["unknown image format"])

# JPEG, built from a valid file by editing segments
with open(image("odd_17x9.jpg"), "rb") as f:
    jpg = f.read()


def segments(data, through_scans=False):
    """[(offset, marker, length)] of the header segments before the first SOS's
    data; with through_scans, of every segment up to EOI, each SOS's length
    then covering its entropy-coded data too."""
    out, i = [], 2
    while i < len(data) - 4 and data[i + 1] != 0xD9:
        m = data[i + 1]
        n = struct.unpack(">H", data[i + 2:i + 4])[0]
        if m == 0xDA:
            if not through_scans:
                out.append((i, m, n))
                break
            j = i + 2 + n  # the data runs to the next marker that is not RSTn
            while not (data[j] == 0xFF and data[j + 1] != 0x00 and not 0xD0 <= data[j + 1] <= 0xD7):
                j += 1
            n = j - i - 2
        out.append((i, m, n))
        i += 2 + n
    return out


segs = segments(jpg)
first = {m: (o, n) for o, m, n in reversed(segs)}
eoi = jpg.rfind(b"\xff\xd9")
o, n = first[0xC4]
decode_case("bogus-length.jpg", jpg[:o + 2] + b"\xff\xf0" + jpg[o + 4:], ["length"])
decode_case("dht-257-codes.jpg", jpg[:o + 4] + bytes([0x00]) + bytes([0] * 15 + [255]) + jpg[o + 21:], ["DHT"])
decode_case("dht-table-id-7.jpg", jpg[:o + 4] + bytes([0x07]) + jpg[o + 5:], ["DHT", "id 7"])
q, qn = first[0xDB]
decode_case("dqt-table-id-5.jpg", jpg[:q + 4] + bytes([0x05]) + jpg[q + 5:], ["DQT"])
s, sn = first[0xC0]
decode_case("sof-zero-width.jpg", jpg[:s + 7] + b"\0\0" + jpg[s + 9:], ["width is 0"])
decode_case("sof-huge.jpg", jpg[:s + 5] + b"\xff\xff\xff\xff" + jpg[s + 9:], ["over the limit"])
decode_case("sof-12-bit.jpg", jpg[:s + 4] + b"\x0c" + jpg[s + 5:], ["12-bit"])
decode_case("sof-sampling-0.jpg", jpg[:s + 11] + b"\x00" + jpg[s + 12:], ["sampling"])
a, an = first[0xDA]
decode_case("sos-table-id-9.jpg", jpg[:a + 6] + b"\x99" + jpg[a + 7:], ["table"])
decode_case("sos-unknown-component.jpg", jpg[:a + 5] + b"\x77" + jpg[a + 6:], ["component"])
decode_case("sof3-lossless.jpg", jpg[:s + 1] + b"\xc3" + jpg[s + 2:], ["lossless"])
decode_case("sof11-lossless-arithmetic.jpg", jpg[:s + 1] + b"\xcb" + jpg[s + 2:], ["lossless"])
decode_case("sof13-hierarchical.jpg", jpg[:s + 1] + b"\xcd" + jpg[s + 2:], ["hierarchical"])
# arithmetic coding: conditioning tables out of range, a file cut short
with open(image("chelsea_arith.jpg"), "rb") as f:
    ajpg = f.read()
asos = ajpg.find(b"\xff\xda")
decode_case("dac-l-over-u.jpg", ajpg[:asos] + b"\xff\xcc\x00\x04\x00\x05" + ajpg[asos:], ["DAC", "L=5"])
decode_case("dac-class-2.jpg", ajpg[:asos] + b"\xff\xcc\x00\x04\x20\x05" + ajpg[asos:], ["DAC", "class 2"])
decode_case("dac-odd-length.jpg", ajpg[:asos] + b"\xff\xcc\x00\x05\x10\x05\x00" + ajpg[asos:], ["DAC"])
decode_case("arithmetic-truncated.jpg", ajpg[:len(ajpg) // 2], ["truncated"])


# a progressive file asking for more scans than the limit (each one a pass
# over the image): one AC first scan (repeatable: it reads no history), with
# the tables defined since the scan before it, repeated
with open(image("chelsea_prog.jpg"), "rb") as f:
    pjpg = f.read()
pscans, a0 = [], 2
for o, m, n in segments(pjpg, through_scans=True):
    if m == 0xDA:
        ns = pjpg[o + 4]
        pscans.append((a0, o + 2 + n, pjpg[o + 5 + 2 * ns], pjpg[o + 7 + 2 * ns] >> 4))  # (from, to, Ss, Ah)
        a0 = o + 2 + n
a0, a1, _, _ = [sc for sc in pscans if sc[2] > 0 and sc[3] == 0][0]
peoi = pjpg.rfind(b"\xff\xd9")
decode_case("1001-scans.jpg", pjpg[:peoi] + pjpg[a0:a1] * (1001 - len(pscans)) + pjpg[peoi:], ["more than 1000 scans"])
path = os.path.join(OUT, "hostile-1000-scans.jpg")
with open(path, "wb") as f:
    f.write(pjpg[:peoi] + pjpg[a0:a1] * (1000 - len(pscans)) + pjpg[peoi:])
rc, _, err, _ = limited_run(["decode", path, os.path.join(OUT, "hostile-out.ppm")])
check(rc == 0, f"1000-scans.jpg (the limit itself) decodes: exit {rc} {err.strip()[:80]}")
decode_case("truncated-header.jpg", jpg[:s + 6], ["truncated"])
decode_case("no-sos.jpg", jpg[:a] + b"\xff\xd9", ["no image data"])
# restart markers in the wrong place: a DRI that promises them, a stream
# that has none; a restart marker in the middle of the entropy data. libjpeg
# warns, resynchronizes and goes on, and Pillow returns its image: so do we.
dri = b"\xff\xdd\x00\x04\x00\x01"
decode_ok_case("restart-missing.jpg", jpg[:a] + dri + jpg[a:], same_as_pillow=True)
data_start = a + 2 + an
decode_ok_case("restart-in-scan.jpg", jpg[:data_start + 5] + b"\xff\xd0" + jpg[data_start + 5:], same_as_pillow=True)
# the last bytes of the entropy data and the EOI cut off: Pillow reports a truncated file
decode_case("noeoi.jpg", jpg[:eoi], ["truncated"])

# each decoder's own cases (test/hostile_<format>.py: CASES, a list of
# (name, file bytes, words the message must contain); words None: a file
# the reference reads, which must decode within the same limits)
for mod in sorted(f[:-3] for f in os.listdir(os.path.dirname(os.path.abspath(__file__)))
                  if f.startswith("hostile_") and f.endswith(".py")):
    cases = importlib.import_module(mod).CASES
    check(len(cases) >= 10, f"{mod}: {len(cases)} cases")
    for name, data, words in cases:
        if words is None:
            decode_ok_case(name, data)
        else:
            decode_case(name, data, words)

# labels files
img = crop("chelsea.ppm", 64)


def labels_case(name, data, want_rc, want_words=(), timeout=120):
    path = os.path.join(OUT, "hostile-" + name)
    with open(path, "wb") as f:
        f.write(data)
    rc, out, err, secs = limited_run([blob, img, path, "--top", "3"], timeout=timeout)
    ok = rc == want_rc and (rc == 0 or (err.startswith("clip: ") and path in err and all(w in err for w in want_words)))
    check(ok, f"labels {name}: exit {rc} in {secs:.1f} s {err.strip()[:100]}")


labels_case("empty.txt", b"", 1, ["no labels"])
labels_case("blank-lines.txt", b"\n \n\t\r\n\r\n", 1, ["no labels"])
labels_case("bom-only.txt", b"\xef\xbb\xbf\r\n", 1, ["no labels"])
labels_case("crlf.txt", b"cat\r\ndog\r\n", 0)
labels_case("nul-bytes.txt", b"c\x00at\ndog\x00\n", 0)
labels_case("invalid-utf8.txt", b"\xff\xfe\xfd\ncat\xc3\n\xed\xa0\x80\n", 0)
labels_case("100000-lines.txt", b"".join(b"label %d\n" % i for i in range(100000)), 0, timeout=300)
labels_case("1MB-line.txt", b"x" * (1 << 20) + b"\ncat\n", 0)
labels_case("1MB-no-spaces-unicode.txt", "é".encode() * (1 << 19) + b"\n", 0)

finish("test_hostile")
