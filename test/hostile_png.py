"""Hostile PNGs, named one by one: CASES = [(name, data, words)], each
refused by `clip decode` with exit 1 and a message starting "clip: " that
contains every word in words (words None: the file must decode, quickly and
within a memory limit: zlib bombs that Pillow reads too). test_hostile.py
runs them."""
import struct
import zlib


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


SIG = b"\x89PNG\r\n\x1a\n"


def ihdr(w, h, depth=8, ctype=0, interlace=0, compression=0, filt=0):
    return chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, compression, filt, interlace))


def png(z, w=8, h=8, depth=8, ctype=0, before=b"", after=b""):
    return SIG + ihdr(w, h, depth, ctype) + before + chunk(b"IDAT", z) + after + chunk(b"IEND", b"")


GRAY8 = b"".join(b"\0" + bytes(range(y * 8, y * 8 + 8)) for y in range(8))  # 8x8 gray, filter 0
GOOD = png(zlib.compress(GRAY8))


class Bits:
    """A deflate bit stream: fields LSB first, Huffman codes MSB first."""

    def __init__(self):
        self.v = 0
        self.n = 0

    def put(self, value, nbits):
        self.v |= value << self.n
        self.n += nbits
        return self

    def code(self, code, length):
        for i in range(length - 1, -1, -1):
            self.put((code >> i) & 1, 1)
        return self

    def lit(self, sym):  # the fixed literal/length code
        if sym < 144:
            return self.code(0x30 + sym, 8)
        if sym < 256:
            return self.code(0x190 + sym - 144, 9)
        if sym < 280:
            return self.code(sym - 256, 7)
        return self.code(0xC0 + sym - 280, 8)

    def data(self):
        return self.v.to_bytes((self.n + 7) // 8, "little")


def zwrap(deflate, payload=GRAY8):
    return b"\x78\x9c" + deflate + struct.pack(">I", zlib.adler32(payload))


def dynamic_header(hlit=257, hdist=1, cl_lens=None):
    b = Bits().put(1, 1).put(2, 2).put(hlit - 257, 5).put(hdist - 1, 5)
    cl_lens = cl_lens or [0] * 19
    order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
    b.put(19 - 4, 4)
    for s in order:
        b.put(cl_lens[s], 3)
    return b


def cl_code(lens):
    """canonical codes for the code length code lengths"""
    codes, code = {}, 0
    for length in range(1, 8):
        for s in range(19):
            if lens[s] == length:
                codes[s] = (code, length)
                code += 1
        code <<= 1
    return codes


CASES = []


def case(name, data, words):
    CASES.append((name, data, words))


# ---- chunks and headers ----
chunks = [8, 33, 33 + 12 + len(zlib.compress(GRAY8))]  # IHDR, IDAT, IEND starts
case("signature-only.png", SIG, ["truncated"])
case("truncated-in-ihdr-header.png", GOOD[:12], ["truncated"])
case("truncated-in-ihdr-data.png", GOOD[:20], ["truncated", "IHDR"])
case("truncated-in-ihdr-crc.png", GOOD[:31], ["checksum", "IHDR"])
case("truncated-before-idat.png", GOOD[:33], ["truncated"])
case("truncated-in-idat-header.png", GOOD[:37], ["truncated"])
case("truncated-in-idat-data.png", GOOD[:50], ["truncated"])
case("truncated-before-adler-short-stream.png", png(zlib.compress(GRAY8)[:-8]), ["truncated"])
case("bad-crc-ihdr.png", GOOD[:29] + b"\0\0\0\0" + GOOD[33:], ["CRC", "IHDR"])
case("bad-crc-gama-before-idat.png", SIG + ihdr(8, 8) + chunk(b"gAMA", b"\0\0\xb1\x8f")[:-4] + b"1234" + GOOD[33:],
     ["CRC", "gAMA"])
case("huge-dimensions.png", png(zlib.compress(b""), 100000, 100000), ["over the limit"])
case("huge-width-2^31.png", png(zlib.compress(b""), 0x80000000, 1), ["over the limit"])
case("max-dimensions.png", png(zlib.compress(b""), 0xFFFFFFFF, 0xFFFFFFFF), ["over the limit"])
case("zero-width.png", png(zlib.compress(b""), 0, 8), ["no pixels"])
case("zero-height.png", png(zlib.compress(b""), 8, 0), ["no pixels"])
for depth, ctype in [(3, 0), (16, 3), (8, 5), (1, 2), (4, 6), (32, 0), (8, 1)]:
    case(f"bad-depth-{depth}-colour-type-{ctype}.png", png(zlib.compress(GRAY8), depth=depth, ctype=ctype),
         ["bit depth", "colour type"])
case("filter-method-1.png", SIG + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 1, 0)) + GOOD[33:],
     ["filter method"])
case("short-ihdr.png", SIG + chunk(b"IHDR", b"\0\0\0\x08\0\0\0\x08\x08\0\0\0") + GOOD[33:], ["IHDR"])
case("idat-before-ihdr.png", SIG + chunk(b"IDAT", zlib.compress(GRAY8)) + chunk(b"IEND", b""), ["IHDR"])
case("iend-before-idat.png", SIG + ihdr(8, 8) + chunk(b"IEND", b""), ["IEND"])
case("chunk-type-not-a-name.png", SIG + ihdr(8, 8) + chunk(b"gA\x00A", b"1234") + GOOD[33:], ["chunk type"])
case("chunk-length-past-end.png", SIG + ihdr(8, 8) + struct.pack(">I", 0x7FFFFFFF) + b"tEXtab", ["truncated", "tEXt"])
case("palette-257-entries.png", png(zlib.compress(GRAY8), ctype=3, before=chunk(b"PLTE", bytes(771))), ["257"])
case("short-trns-rgb.png", SIG + ihdr(8, 8, 8, 2) + chunk(b"tRNS", b"\0\1") + GOOD[33:], ["tRNS"])
case("short-phys.png", SIG + ihdr(8, 8) + chunk(b"pHYs", b"\0\1") + GOOD[33:], ["pHYs"])
case("apng-bad-sequence.png", SIG + ihdr(8, 8) + chunk(b"acTL", struct.pack(">II", 1, 0)) +
     chunk(b"fcTL", struct.pack(">IIIIIHHBB", 5, 8, 8, 0, 0, 1, 1, 0, 0)) + GOOD[33:], ["APNG", "sequence"])
case("apng-frame-outside.png", SIG + ihdr(8, 8) + chunk(b"acTL", struct.pack(">II", 1, 0)) +
     chunk(b"fcTL", struct.pack(">IIIIIHHBB", 0, 8, 8, 4, 0, 1, 1, 0, 0)) + GOOD[33:], ["APNG", "invalid frames"])
case("unknown-filter-type-5.png", png(zlib.compress(b"\5" + GRAY8[1:])), ["filter type 5"])

# ---- the zlib stream ----
z = zlib.compress(GRAY8)
case("zlib-header-check.png", png(b"\x78\x9d" + z[2:]), ["header check"])
case("zlib-method-7.png", png(bytes([0x77, (31 - (0x77 * 256) % 31) % 31]) + z[2:]), ["compression method"])
case("zlib-window-8.png", png(bytes([0x88, (31 - (0x88 * 256) % 31) % 31]) + z[2:]), ["window size"])
case("zlib-preset-dictionary.png", png(bytes([0x78, 0xBB]) + b"\0\0\0\0" + z[2:]), ["preset dictionary"])
case("bad-adler.png", png(z[:-4] + b"\0\0\0\0"), ["Adler-32"])
case("empty-idat.png", png(b""), ["truncated"])
case("invalid-block-type-3.png", png(zwrap(Bits().put(1, 1).put(3, 2).put(0, 13).data())), ["block type"])
case("stored-bad-nlen.png", png(b"\x78\x01" + b"\x01" + struct.pack("<HH", 72, 72) + GRAY8), ["stored block lengths"])
case("stored-short.png", png(b"\x78\x01" + b"\x01" + struct.pack("<HH", 72, 0xFFFF - 72) + GRAY8[:30]), ["truncated"])
case("ends-before-image.png", png(zlib.compress(GRAY8[:40])), ["ends before the image"])
b = Bits().put(1, 1).put(1, 2).lit(0).lit(0).lit(257).code(4, 5).put(0, 1)  # distance 5 after 2 bytes
case("distance-too-far-back.png", png(zwrap(b.put(0, 7).data())), ["too far back"])
b = Bits().put(1, 1).put(1, 2).lit(0).lit(1).lit(257).code(30, 5)
case("distance-code-30.png", png(zwrap(b.put(0, 7).data())), ["distance code"])
b = Bits().put(1, 1).put(1, 2).lit(0).lit(286)
case("length-code-286.png", png(zwrap(b.put(0, 8).data())), ["literal/length code"])
case("code-lengths-oversubscribed.png", png(zwrap(dynamic_header(cl_lens=[1] * 19).put(0, 32).data())),
     ["code lengths set"])
case("code-lengths-incomplete.png", png(zwrap(dynamic_header(cl_lens=[2] + [0] * 18).put(0, 32).data())),
     ["code lengths set"])
# code length code: symbols 0, 1, 16 (2 bits each) and 18 (2 bits): complete
cl = [0] * 19
cl[0] = cl[1] = cl[16] = cl[18] = 2
codes = cl_code(cl)
b = dynamic_header(cl_lens=cl)
b.code(*codes[16]).put(0, 2)  # a repeat with nothing to repeat
case("repeat-first.png", png(zwrap(b.put(0, 32).data())), ["bit length repeat"])
b = dynamic_header(cl_lens=cl)
for _ in range(3):
    b.code(*codes[18]).put(127, 7)  # 3 x 138 zeros: past 258 lengths
case("repeat-past-end.png", png(zwrap(b.put(0, 32).data())), ["bit length repeat"])
b = dynamic_header(cl_lens=cl)
b.code(*codes[18]).put(127, 7).code(*codes[18]).put(107, 7)  # 256 zeros, then 256 = 0, no end-of-block
b.code(*codes[0]).code(*codes[1]).code(*codes[1])
case("missing-end-of-block.png", png(zwrap(b.put(0, 32).data())), ["end-of-block"])
b = dynamic_header(cl_lens=cl)
for _ in range(3):
    b.code(*codes[1])  # literals 0, 1, 2 of length 1: over-subscribed
b.code(*codes[18]).put(127, 7).code(*codes[18]).put(104, 7).code(*codes[1]).code(*codes[1])
case("literal-lengths-oversubscribed.png", png(zwrap(b.put(0, 32).data())), ["literal/lengths set"])
b = dynamic_header(hdist=2, cl_lens=cl)
b.code(*codes[1]).code(*codes[18]).put(127, 7).code(*codes[18]).put(106, 7).code(*codes[1])  # lit 0, EOB
b.code(*codes[1]).code(*codes[1])  # then 2 distance codes of length 1: fine; make it 3 symbols of 1? use hdist=2
case("literal-lengths-fine-distances-fine-but-short.png", png(zwrap(b.data())), ["truncated"])
case("ztxt-bomb.png", SIG + ihdr(8, 8) + chunk(b"zTXt", b"k\0\0" + zlib.compress(b"\0" * 50_000_000, 9)) + GOOD[33:],
     ["too large", "zTXt"])
bomb = zlib.compress(b"\0" * 50_000_000, 9)  # ~50 KB inflating to 50 MB
case("zlib-bomb-5000x5000-runs-dry.png", png(zlib.compress(b"\0" * 1_000_000, 9), 5000, 5000), ["ends before"])
case("zlib-bomb-8x8.png", png(bomb), None)  # Pillow stops after the image's 72 bytes, so does clip
case("zlib-bomb-2000x2000-rgb.png", png(bomb, 2000, 2000, 8, 2), None)
