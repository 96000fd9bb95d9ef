"""Hostile JPEGs that libjpeg-turbo 2.1.5 (djpeg, and Pillow 9.4 on top of
it) refuses, built from the committed test images by editing segments:
each must be refused the same way (exit 1, a message starting "clip: " that
names the problem). CASES = [(name, data, [words the message must hold])].

Also a few damaged files that libjpeg reads with a warning (junk between
segments, a corrupt scan, a marker inside a scan, a DHT-less Motion-JPEG
frame, a DNL segment, a progressive file cut after a scan): ACCEPT =
[(name, data)], which must decode (test_jpeg.py compares such files with
djpeg; valgrind.sh runs these under memcheck). test_hostile.py runs CASES.

    python3 common.py hostile jpeg DIR   # write them as DIR/bad-*.jpg, DIR/ok-*.jpg
"""
import os
import struct

TEST = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.join(TEST, "data", "images")


def read(name):
    with open(os.path.join(IMAGES, name), "rb") as f:
        return f.read()


def segments(data):
    """[(offset, marker, length)] of every segment up to EOI; a scan's length
    covers its entropy-coded data too (up to the next marker not RSTn)."""
    out, i = [], 2
    while i + 4 <= len(data) and data[i + 1] != 0xD9:
        m = data[i + 1]
        n = struct.unpack(">H", data[i + 2:i + 4])[0]
        if m == 0xDA:
            j = i + 2 + n
            while not (data[j] == 0xFF and data[j + 1] != 0x00 and not 0xD0 <= data[j + 1] <= 0xD7):
                j += 1
            n = j - i - 2
        out.append((i, m, n))
        i += 2 + n
    return out


def first(data, marker):
    return next((o, n) for o, m, n in segments(data) if m == marker)


def scans(data):
    return [(o, n) for o, m, n in segments(data) if m == 0xDA]


def put(data, at, new):
    return data[:at] + new + data[at + len(new):]


base = read("odd_17x9.jpg")          # baseline, 3 components, 2x2 sampling
prog = read("chelsea_prog.jpg")      # progressive
sof, _ = first(base, 0xC0)
sos, sos_len = first(base, 0xDA)
eoi = base.rfind(b"\xff\xd9")
psof = next(o for o, m, n in segments(prog) if m in (0xC0, 0xC1, 0xC2))
pscans = scans(prog)
# a progressive AC scan (one component, Ss > 0): its Ah/Al byte
ac = next(o for o, n in pscans if prog[o + 6 + 2 * prog[o + 4]] > 0)
ac_ahal = ac + 4 + 2 * prog[ac + 4] + 3
ns = base[sos + 4]
ids = [base[sos + 5 + 2 * i] for i in range(ns)]

CASES = [
    # the scan names its components out of frame order: libjpeg matches the
    # i-th against the frame's components from i on ("Invalid component ID")
    ("component-order.jpg",
     put(base, sos + 5, bytes([ids[2], base[sos + 6], ids[1], base[sos + 8], ids[0], base[sos + 10]])),
     ["component", "order"]),
    ("component-twice.jpg", put(base, sos + 7, bytes([ids[0]])), ["component"]),
    # successive approximation: a refinement must lower Al by exactly one
    ("ah-al-refine-gap.jpg", put(prog, ac_ahal, b"\x31"), ["Ah=3", "Al=1", "invalid"]),
    ("al-14.jpg", put(prog, ac_ahal, b"\x0e"), ["Al=14", "invalid"]),
    ("ah-10-al-11.jpg", put(prog, ac_ahal, b"\xab"), ["Ah=10", "Al=11"]),
    # frame types libjpeg-turbo 2.1.5 does not decode
    ("jpeg-ls.jpg", put(base, sof + 1, b"\xf7"), ["JPEG-LS"]),
    ("jpeg-ls-lse.jpg", base[:sof] + b"\xff\xf8\x00\x04\x01\x00" + base[sof:], ["JPEG-LS"]),
    ("12-bit.jpg", put(base, sof + 4, b"\x0c"), ["12-bit"]),
    ("16-bit.jpg", put(base, sof + 4, b"\x10"), ["16-bit"]),
    ("lossless-sof3.jpg", put(base, sof + 1, b"\xc3"), ["lossless"]),
    ("lossless-arith-sof11.jpg", put(base, sof + 1, b"\xcb"), ["lossless"]),
    ("hierarchical-sof5.jpg", put(base, sof + 1, b"\xc5"), ["hierarchical"]),
    ("hierarchical-sof14.jpg", put(base, sof + 1, b"\xce"), ["hierarchical"]),
    ("hierarchical-dhp.jpg", base[:sof] + b"\xff\xde\x00\x02" + base[sof:], ["hierarchical"]),
    ("jpg-extension-sofc8.jpg", put(base, sof + 1, b"\xc8"), ["0xFFC8"]),
    # height 0 in the frame header, to be set by a DNL marker: libjpeg
    # refuses it ("Empty JPEG image (DNL not supported)")
    ("height-0-dnl.jpg",
     put(base, sof + 5, b"\x00\x00")[:sos + 2 + sos_len] + b"\xff\xdc\x00\x04\x00\x09" + base[sos + 2 + sos_len:],
     ["height 0", "DNL"]),
    # cut inside the scan: Pillow's libjpeg waits for more data, Pillow
    # fails ("image file is truncated")
    ("truncated-scan.jpg", base[:sos + 2 + sos_len // 2], ["truncated"]),
    # a progressive file without EOI: Pillow reads all scans before any
    # output, and fails at the end of the data
    ("progressive-no-eoi.jpg", prog[:prog.rfind(b"\xff\xd9")], ["EOI", "truncated"]),
    # an APP segment running past the end, before the image data
    ("app-past-end.jpg", base[:sof] + b"\xff\xe1\x7f\xff" + b"x" * 10, ["APP", "past the end"]),
    ("unknown-marker.jpg", base[:sof] + b"\xff\x9f" + base[sof:], ["unknown marker", "0xFF9F"]),
]

# damaged files that libjpeg reads with a warning, and so must we
dht, dht_len = first(base, 0xC4)
seg1 = segments(base)[1][0]
ACCEPT = [
    # (not straight after SOI: Pillow identifies a JPEG by FF D8 FF)
    ("junk-after-app0.jpg", base[:seg1] + b"junk\x00\x01" + base[seg1:]),
    ("junk-before-sof.jpg", base[:sof] + b"\x12\x34\xff\x00\x56" + base[sof:]),
    ("ff00-before-dht.jpg", base[:dht] + b"\xff\x00\xff\x00" + base[dht:]),
    ("com-length-0.jpg", base[:sof] + b"\xff\xfe\x00\x00hello" + base[sof:]),
    ("marker-in-scan.jpg", base[:sos + 2 + sos_len - 6] + b"\xff\xd9" + base[sos + 2 + sos_len - 4:]),
    # 24 one bits: a code longer than 16 bits, in no table
    ("bad-huffman-code.jpg", put(base, sos + 2 + sos_len // 2, b"\xff\x00\xff\x00\xff\x00")),
    ("dnl-after-scan.jpg", base[:eoi] + b"\xff\xdc\x00\x04\x00\x09" + base[eoi:]),
    ("rst-where-none.jpg", base[:sos + 2 + sos_len - 3] + b"\xff\xd3" + base[sos + 2 + sos_len - 3:]),
    ("progressive-first-scan.jpg", prog[:pscans[0][0] + 2 + pscans[0][1]] + b"\xff\xd9"),
    ("progressive-two-scans.jpg", prog[:pscans[1][0] + 2 + pscans[1][1]] + b"\xff\xd9"),
]
# a Motion-JPEG frame: no DHT, the T.81 K.3 tables implied (only when the
# file's tables are the standard ones, as cjpeg's without -optimize are)
mj = read("chelsea_q90_420.jpg")
mj_dht = [(o, n) for o, m, n in segments(mj) if m == 0xC4]
for o, n in reversed(mj_dht):
    mj = mj[:o] + mj[o + 2 + n:]
ACCEPT.append(("mjpeg-no-dht.jpg", mj))
# four components, when Pillow is here to write them: Adobe CMYK (2x2
# sampled first component) and the same data taken for YCCK (transform 2)
try:
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.open(os.path.join(IMAGES, "odd_17x9.jpg")).convert("CMYK").save(buf, "JPEG", quality=80, subsampling=2)
    cmyk = buf.getvalue()
    ACCEPT.append(("cmyk.jpg", cmyk))
    i = cmyk.find(b"\xff\xee")
    ACCEPT.append(("ycck.jpg", cmyk[:i + 15] + b"\x02" + cmyk[i + 16:]))
except ImportError:
    pass
