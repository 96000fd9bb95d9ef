"""Hostile BMPs, named one by one: CASES = [(name, data, [words the message
must contain])]. Each must be refused with exit 1 and a message starting
"clip: " (Pillow 9.4 refuses every one of them too). test_hostile.py runs
them."""
import struct


def bmp(w=4, h=4, bits=24, compression=0, colors=0, hsize=40, tail=None, offset=None, data=None, palette=b""):
    """A BMP with a header of hsize bytes; tail: bytes right after the header
    (masks, palette); data: the pixel data (zeros of the right size when None)."""
    if hsize == 12:
        info = struct.pack("<IHHHH", 12, w & 0xFFFF, h & 0xFFFF, 1, bits)
    else:
        info = struct.pack("<IIIHHIIiiII", hsize, w & 0xFFFFFFFF, h & 0xFFFFFFFF, 1, bits, compression, 0, 0, 0,
                           colors, 0)
        info += bytes(max(0, hsize - 40))
    tail = palette if tail is None else tail
    if data is None:
        stride = ((min(w, 64) * bits + 31) >> 3) & ~3
        data = bytes(stride * min(abs(h), 64))
    off = 14 + len(info) + len(tail) if offset is None else offset
    return b"BM" + struct.pack("<IHHI", (off + len(data)) & 0xFFFFFFFF, 0, 0, off) + info + tail + data


GRAYISH = b"".join(bytes([i, 0, 255 - i, 0]) for i in range(256))  # not a gray ramp: mode P
GOOD = bmp(bits=8, palette=GRAYISH)

CASES = [
    ("file-header-truncated.bmp", b"BM\x00\x00\x00\x00\x00\x00\x00\x00\x36", ["file header", "truncated"]),
    ("header-size-0.bmp", bmp(hsize=0)[:18] + bytes(60), ["header size 0"]),
    ("header-size-16.bmp", bmp()[:14] + struct.pack("<I", 16) + bytes(60), ["header size 16"]),
    ("header-size-huge.bmp", bmp()[:14] + struct.pack("<I", 0x7FFFFFF0) + bytes(60), ["header size"]),
    ("header-truncated.bmp", bmp()[:40], ["header", "truncated"]),
    ("bits-0.bmp", bmp(bits=0), ["bit depth 0"]),
    ("bits-2.bmp", bmp(bits=2), ["bit depth 2"]),
    ("bits-64.bmp", bmp(bits=64), ["bit depth 64"]),
    ("os2-bits-48.bmp", bmp(hsize=12, bits=48), ["bit depth 48"]),
    ("jpeg-compressed.bmp", bmp(bits=0, compression=4, data=b"\xff\xd8\xff\xd9"), ["JPEG"]),
    ("png-compressed.bmp", bmp(bits=0, compression=5, data=b"\x89PNG\r\n\x1a\n"), ["PNG"]),
    ("alpha-bitfields.bmp", bmp(bits=32, compression=6, tail=struct.pack("<IIII", 0xFF0000, 0xFF00, 0xFF, 0)),
     ["alpha bit fields"]),
    ("compression-7.bmp", bmp(compression=7), ["compression 7"]),
    ("compression-huge.bmp", bmp(compression=0xFFFFFFFF), ["compression 4294967295"]),
    ("bitfields-overlap.bmp", bmp(bits=16, compression=3, tail=struct.pack("<III", 0xFF00, 0xFF00, 0xFF)),
     ["bit-field layout"]),
    ("bitfields-zero-16.bmp", bmp(bits=16, compression=3, tail=struct.pack("<III", 0, 0, 0)), ["bit-field layout"]),
    ("bitfields-10bit-32.bmp", bmp(bits=32, compression=3, tail=struct.pack("<III", 0x3FF00000, 0xFFC00, 0x3FF)),
     ["bit-field layout"]),
    ("bitfields-8bit.bmp", bmp(bits=8, compression=3, tail=struct.pack("<III", 0xE0, 0x1C, 0x3)),
     ["bit-field layout"]),
    ("bitfields-masks-truncated.bmp", bmp(bits=16, compression=3, tail=b"", data=b"")[:60], ["masks", "truncated"]),
    ("width-0.bmp", bmp(w=0), ["no pixels"]),
    ("height-0.bmp", bmp(h=0), ["no pixels"]),
    ("width-2^31.bmp", bmp(w=0x80000000), ["over the limit"]),
    ("width-negative.bmp", bmp(w=-1), ["over the limit"]),
    ("height-2^31.bmp", bmp(h=0x80000000), ["over the limit"]),
    ("top-down-huge.bmp", bmp(w=64, h=-0x1000000), ["over the limit"]),
    ("wxh-over-limit.bmp", bmp(w=65536, h=65536), ["over the limit"]),
    ("palette-size-huge.bmp", bmp(bits=8, colors=0x7FFFFFFF, palette=GRAYISH), ["palette size"]),
    ("palette-over-256.bmp", bmp(bits=8, colors=300, palette=GRAYISH + GRAYISH[:44 * 4], offset=None),
     ["more than 256"]),
    ("pixels-truncated.bmp", GOOD[:-3], ["pixel data", "truncated"]),
    ("offset-past-end.bmp", bmp(offset=0x7FFFFFFF), ["pixel data", "truncated"]),
    ("offset-2^32-1.bmp", bmp(offset=0xFFFFFFFF), ["pixel data", "truncated"]),
    ("rle8-early-end.bmp", bmp(bits=8, compression=1, palette=GRAYISH, data=b"\x02\x05\x00\x00\x00\x01"),
     ["RLE", "before the image is full"]),
    ("rle8-no-data.bmp", bmp(bits=8, compression=1, palette=GRAYISH, data=b""), ["RLE", "before the image is full"]),
    ("rle4-literal-past-end.bmp", bmp(bits=4, compression=2, palette=GRAYISH[:64], data=b"\x00\xff\x12\x34"),
     ["RLE", "before the image is full"]),
    ("rle8-delta-truncated.bmp", bmp(bits=8, compression=1, palette=GRAYISH, data=b"\x00\x02\x01\x01\x00"),
     ["delta", "truncated"]),
    ("rle8-24-bits.bmp", bmp(bits=24, compression=1, data=b"\x10\x01" * 8), ["RLE", "24 bits"]),
    ("rle8-black-and-white.bmp",
     bmp(bits=8, compression=1, colors=2, palette=b"\0\0\0\0\xff\xff\xff\0", data=b"\x04\x01" * 4 + b"\0\1"),
     ["RLE", "mode 1"]),
]
