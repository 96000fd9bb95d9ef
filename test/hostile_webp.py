"""Hostile WebP files: each must be refused (exit 1) with a "clip: "
message holding the given words. Pillow 9.4 refuses every one of them
too. Built here from a few bytes: a small VP8L bit writer, and one 4x4
lossy frame made by cwebp (its 'VP8 ' payload below). test_hostile.py
runs them.

    CASES = [(name, data, [words in the message]), ...]
"""
import struct

# a 4x4 lossy key frame (cwebp -q 50 of a flat colour): the 'VP8 ' payload
VP8_4X4 = bytes.fromhex("3001009d012a0400040002c04c25a000037000feec25dffff9c4bffa05ff80bcc0000000")


def chunk(tag, payload, size=None):
    pad = b"\0" if len(payload) & 1 else b""
    return tag + struct.pack("<I", len(payload) if size is None else size) + payload + pad


def riff(body, size=None):
    return b"RIFF" + struct.pack("<I", 4 + len(body) if size is None else size) + b"WEBP" + body


def vp8x(flags, w, h):
    return chunk(b"VP8X", bytes([flags, 0, 0, 0]) + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little"))


def anmf(x, y, w, h, frame):
    head = (x // 2).to_bytes(3, "little") + (y // 2).to_bytes(3, "little") + (w - 1).to_bytes(3, "little") + \
        (h - 1).to_bytes(3, "little") + (100).to_bytes(3, "little") + b"\0"
    return chunk(b"ANMF", head + frame)


class Bits:
    """VP8L bits, least significant first."""

    def __init__(self):
        self.v, self.n = 0, 0

    def put(self, value, count):
        self.v |= (value & ((1 << count) - 1)) << self.n
        self.n += count
        return self

    def code(self, bits):
        """A Huffman code word, first bit first (as the decoder reads it)."""
        for b in bits:
            self.put(int(b), 1)
        return self

    def bytes(self):
        return self.v.to_bytes((self.n + 7) // 8, "little")


def vp8l_header(w, h, version=0, magic=0x2F):
    return Bits().put(magic, 8).put(w - 1, 14).put(h - 1, 14).put(0, 1).put(version, 3)


def one_symbol(b, symbol):
    """The simple code with a single 8-bit symbol: it costs no bits per pixel."""
    return b.put(1, 1).put(0, 1).put(1, 1).put(symbol, 8)


def solid(w, h, rgb=(10, 20, 30)):
    """A valid flat-colour VP8L image."""
    b = vp8l_header(w, h).put(0, 1).put(0, 1).put(0, 1)
    for s in (rgb[1], rgb[0], rgb[2], 255, 0):
        one_symbol(b, s)
    return b.bytes()


def green_literal_or_copy(b):
    """Green code over 280 symbols: literal 0 and length code 256, one bit each."""
    # code-length code: symbol 1 -> '0', symbol 0 -> '10', symbol 18 -> '11'
    b.put(0, 1).put(0, 4)  # normal code, 4 code-length lengths (order 17, 18, 0, 1)
    b.put(0, 3).put(2, 3).put(2, 3).put(1, 3)
    b.put(0, 1)  # lengths for every symbol
    b.code("0")  # symbol 0: length 1
    b.code("11").put(127, 7).code("11").put(106, 7)  # 138 + 117 zeros
    b.code("0")  # symbol 256: length 1
    b.code("11").put(12, 7)  # 23 zeros
    return b


def backref_before_start():
    b = vp8l_header(8, 8).put(0, 1).put(0, 1).put(0, 1)
    green_literal_or_copy(b)
    for s in (0, 0, 0):
        one_symbol(b, s)
    one_symbol(b, 1)  # distance symbol 1: one pixel back
    b.code("1")  # first pixel: a copy
    return b.bytes()


def literals_missing(w, h, header=True):
    """Codes for one bit per pixel, then no pixels: the data ends early."""
    b = (vp8l_header(w, h) if header else Bits()).put(0, 1).put(0, 1).put(0, 1)
    green_literal_or_copy(b)
    for s in (0, 0, 0, 0):
        one_symbol(b, s)
    return b.bytes()


def bad_code_length_code():
    b = vp8l_header(4, 4).put(0, 1).put(0, 1).put(0, 1)
    b.put(0, 1).put(0, 4).put(1, 3).put(1, 3).put(1, 3).put(0, 3)  # three 1-bit codes: over-subscribed
    return b.bytes() + b"\0" * 8


def cache_bits_12():
    return vp8l_header(4, 4).put(0, 1).put(1, 1).put(12, 4).bytes() + b"\0" * 8


def transform_twice():
    return vp8l_header(4, 4).put(1, 1).put(2, 2).put(1, 1).put(2, 2).bytes() + b"\0" * 8


def vp8l_file(data):
    return riff(chunk(b"VP8L", data))


def lossy_with_alpha(alph):
    return riff(vp8x(0x10, 4, 4) + chunk(b"ALPH", alph) + chunk(b"VP8 ", VP8_4X4))


GOOD = vp8l_file(solid(4, 4))
CASES = [
    ("too short", GOOD[:16], ["truncated"]),
    ("truncated in the chunk", GOOD[:-3], ["truncated"]),
    ("RIFF size past the end", riff(chunk(b"VP8L", solid(4, 4)), size=1000), ["truncated"]),
    ("RIFF size under 8", riff(chunk(b"VP8L", solid(4, 4)), size=4), ["RIFF size"]),
    ("chunk size past the RIFF end", riff(chunk(b"VP8L", solid(4, 4), size=500)), ["past the end"]),
    ("stray bytes inside the RIFF", riff(chunk(b"VP8L", solid(4, 4)) + b"abc"), ["stray"]),
    ("first chunk unknown", riff(chunk(b"JUNK", b"1234") + chunk(b"VP8L", solid(4, 4))), ["first chunk"]),
    ("VP8L signature", vp8l_file(vp8l_header(4, 4, magic=0x2E).bytes() + b"\0" * 8), ["signature"]),
    ("VP8L version", vp8l_file(vp8l_header(4, 4, version=1).bytes() + b"\0" * 8), ["version"]),
    ("VP8L data truncated", vp8l_file(literals_missing(64, 64)), ["truncated"]),
    ("VP8L chunk under 5 bytes", riff(chunk(b"VP8L", b"\x2f\0\0")), ["truncated"]),
    ("bad code-length code", vp8l_file(bad_code_length_code()), ["Huffman"]),
    ("colour cache bits 12", vp8l_file(cache_bits_12()), ["colour cache", "12"]),
    ("transform twice", vp8l_file(transform_twice()), ["twice"]),
    ("back-reference before the start", vp8l_file(backref_before_start()), ["back-reference"]),
    ("VP8X canvas vs image size", riff(vp8x(0, 5, 4) + chunk(b"VP8L", solid(4, 4))), ["canvas"]),
    ("VP8X canvas area 2^32", riff(vp8x(0, 1 << 16, 1 << 16) + chunk(b"VP8L", solid(4, 4))), ["too large"]),
    ("VP8X canvas over the pixel limit", riff(vp8x(0x02, 16384, 16384) + chunk(b"ANIM", b"\0" * 6) +
                                               anmf(0, 0, 4, 4, chunk(b"VP8L", solid(4, 4)))), ["limit"]),
    ("VP8X reserved flags", riff(vp8x(0x01, 4, 4) + chunk(b"VP8L", solid(4, 4))), ["reserved"]),
    ("VP8X chunk too small", riff(chunk(b"VP8X", b"\0" * 8) + chunk(b"VP8L", solid(4, 4))), ["VP8X"]),
    ("two VP8X chunks", riff(vp8x(0, 4, 4) + vp8x(0, 4, 4) + chunk(b"VP8L", solid(4, 4))), ["second VP8X"]),
    ("VP8X without an image", riff(vp8x(0, 4, 4) + chunk(b"EXIF", b"1234")), ["no image"]),
    ("ANMF before ANIM", riff(vp8x(0x02, 4, 4) + anmf(0, 0, 4, 4, chunk(b"VP8L", solid(4, 4)))), ["ANMF"]),
    ("animation frame past the canvas", riff(vp8x(0x02, 4, 4) + chunk(b"ANIM", b"\0" * 6) +
                                              anmf(2, 0, 4, 4, chunk(b"VP8L", solid(4, 4)))), ["does not fit"]),
    ("image outside ANMF in an animation", riff(vp8x(0x02, 4, 4) + chunk(b"ANIM", b"\0" * 6) +
                                                 chunk(b"VP8L", solid(4, 4))), ["outside ANMF"]),
    ("ALPH before VP8L", riff(vp8x(0x10, 4, 4) + chunk(b"ALPH", b"\0" * 17) + chunk(b"VP8L", solid(4, 4))),
     ["ALPH"]),
    ("ALPH reserved bits", lossy_with_alpha(b"\xc0" + b"\xff" * 16), ["ALPH", "invalid"]),
    ("ALPH raw data short", lossy_with_alpha(b"\x00" + b"\xff" * 15), ["ALPH", "truncated"]),
    ("ALPH lossless stream truncated", lossy_with_alpha(b"\x01" + literals_missing(4, 4, False)), ["truncated"]),
    ("ALPH after the image", riff(vp8x(0x10, 4, 4) + chunk(b"VP8 ", VP8_4X4) + chunk(b"ALPH", b"\0" * 17)),
     ["ALPH"]),
]
