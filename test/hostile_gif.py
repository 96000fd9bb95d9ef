"""Hostile GIFs, named one by one: CASES = [(name, data, [words the message
must contain])]. Each must be refused with exit 1 and a message starting
"clip: " (Pillow 9.4 refuses every one of them too). test_hostile.py runs
them."""
import struct


def header(w=4, h=4, pal_bits=1, version=b"GIF89a"):
    """Logical screen with a global palette of 2 << (pal_bits - 1) entries (none for pal_bits 0)."""
    if not pal_bits:
        return version + struct.pack("<HHBBB", w, h, 0, 0, 0)
    n = 1 << pal_bits
    colors = bytes((255 - i * 7) & 255 for i in range(3 * n))
    return version + struct.pack("<HHBBB", w, h, 0x80 | (pal_bits - 1), 0, 0) + colors


def descriptor(x=0, y=0, w=4, h=4, flags=0):
    return b"," + struct.pack("<HHHHB", x, y, w, h, flags)


def codes(values, size):
    """Pack LZW codes of a fixed size (enough for these short streams) into sub-blocks."""
    acc = n = 0
    out = bytearray()
    for v in values:
        acc |= v << n
        n += size
        while n >= 8:
            out.append(acc & 255)
            acc >>= 8
            n -= 8
    if n:
        out.append(acc & 255)
    return bytes([len(out)]) + bytes(out) + b"\0"


GOOD = header() + descriptor() + b"\x02" + codes([4, 1] * 16 + [5], 3) + b";"

CASES = [
    ("header-truncated.gif", b"GIF89a\x04\x00\x04", ["header", "truncated"]),
    ("global-palette-truncated.gif", header(pal_bits=8)[:100], ["global palette", "truncated"]),
    ("trailer-only.gif", header() + b";", ["no image"]),
    ("no-image-no-trailer.gif", header() + b"!\xfe\x03abc\x00", ["first image", "truncated"]),
    ("extension-truncated.gif", header() + b"!", ["extension", "truncated"]),
    ("gce-too-short.gif", header() + b"!\xf9\x02\x01\x00\x00" + GOOD[len(header()):], ["graphic control"]),
    ("gce-empty.gif", header() + b"!\xf9\x00" + GOOD[len(header()):], ["graphic control"]),
    ("app-extension-empty.gif", header() + b"!\xff\x00" + GOOD[len(header()):], ["application extension"]),
    ("netscape-no-loop-block.gif", header() + b"!\xff\x0bNETSCAPE2.0\x00" + GOOD[len(header()):], ["NETSCAPE2.0"]),
    ("descriptor-truncated.gif", header() + b",\x00\x00\x00", ["descriptor", "truncated"]),
    ("local-palette-truncated.gif", header() + descriptor(flags=0x87) + bytes(30), ["local palette", "truncated"]),
    ("code-size-missing.gif", header() + descriptor(), ["code size", "truncated"]),
    ("code-size-13.gif", header() + descriptor() + b"\x0d" + codes([8192, 1, 8193], 14) + b";", ["code size 13"]),
    ("code-size-255.gif", header() + descriptor() + b"\xff\x01\x00\x00;", ["code size 255"]),
    ("zero-width-frame.gif", header() + descriptor(x=2, w=0) + GOOD[len(header()) + 10:], ["empty"]),
    ("zero-height-frame.gif", header() + descriptor(h=0) + GOOD[len(header()) + 10:], ["empty"]),
    ("zero-screen-zero-frame.gif", header(0, 0) + descriptor(w=0, h=0) + GOOD[len(header()) + 10:], ["empty"]),
    ("huge-screen.gif", header(65535, 65535) + GOOD[len(header()):], ["over the limit"]),
    ("huge-frame-outside.gif", header() + descriptor(65535, 65535, 65535, 65535) + GOOD[len(header()) + 10:],
     ["over the limit"]),
    ("data-truncated.gif", GOOD[:-6], ["image data", "truncated"]),
    ("block-past-end.gif", header() + descriptor() + b"\x02\xff\x04\x01\x01", ["image data", "truncated"]),
    ("no-data.gif", header() + descriptor() + b"\x02", ["image data", "truncated"]),
    ("first-code-past-clear.gif", header() + descriptor() + b"\x02" + codes([4, 7, 1, 1], 3) + b";",
     ["broken LZW"]),
    ("code-past-table.gif", header() + descriptor() + b"\x02" + codes([4, 1, 7, 1], 3) + b";", ["broken LZW"]),
    ("end-code-early.gif", header() + descriptor() + b"\x02" + codes([4, 1, 1, 5], 3) + b";",
     ["frame is complete"]),
    ("terminators-only.gif", header() + descriptor() + b"\x02" + b"\0" * 40, ["image data", "truncated"]),
]
