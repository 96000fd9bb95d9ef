#!/usr/bin/env python3
"""Generate generated/unicode_tables.h, the Unicode tables of tokenizer.c,
from the Unicode Character Database (Debian package unicode-data,
/usr/share/unicode).

    tools/gen_unicode.py [UCD_DIR]            rewrite generated/unicode_tables.h
    tools/gen_unicode.py --check [UCD_DIR]    exit 1 if it is stale

The tables: letters (\\p{L}) and numbers (\\p{N}), White_Space, the full
lowercase mapping (UnicodeData plus SpecialCasing's unconditional entries),
and what NFC needs (canonical combining classes, canonical decompositions,
compositions minus the full composition exclusions). Ranges wherever ranges
serve. The whole file is generated; tokenizer.c includes it once.
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.join(HERE, "..", "generated", "unicode_tables.h")
TARGET_NAME = "generated/unicode_tables.h"


def read_ucd(ucd):
    """UnicodeData.txt -> {cp: fields}, with First/Last ranges expanded."""
    data = {}
    first = None
    with open(os.path.join(ucd, "UnicodeData.txt"), encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split(";")
            cp = int(fields[0], 16)
            if fields[1].endswith(", First>"):
                first = cp
                continue
            if fields[1].endswith(", Last>"):
                for c in range(first, cp + 1):
                    data[c] = fields
                continue
            data[cp] = fields
    return data


def read_prop(path, wanted):
    """PropList-style file -> set of code points with property `wanted`."""
    out = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#")[0].strip()
            if not line:
                continue
            parts = [p.strip() for p in line.split(";")]
            if parts[1] != wanted:
                continue
            if ".." in parts[0]:
                a, b = parts[0].split("..")
                out.update(range(int(a, 16), int(b, 16) + 1))
            else:
                out.add(int(parts[0], 16))
    return out


def ranges(cps):
    """sorted code points -> [(first, last)]"""
    out = []
    for c in sorted(cps):
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out


def version(ucd):
    """The UCD's version as its DerivedAge.txt names itself: "DerivedAge-15.0.0.txt"."""
    with open(os.path.join(ucd, "DerivedAge.txt"), encoding="utf-8") as f:
        first = f.readline().strip("# \n")
    return first


def generate(ucd):
    data = read_ucd(ucd)
    cat = {cp: f[2] for cp, f in data.items()}
    letters = [cp for cp, c in cat.items() if c[0] == "L"]
    numbers = [cp for cp, c in cat.items() if c[0] == "N"]
    classes = sorted([(a, b, 1) for a, b in ranges(letters)] + [(a, b, 2) for a, b in ranges(numbers)])
    space = ranges(read_prop(os.path.join(ucd, "PropList.txt"), "White_Space"))

    # lowercase: simple mappings, then SpecialCasing's unconditional multi-character ones
    lower = {cp: int(f[13], 16) for cp, f in data.items() if f[13]}
    multi = {}
    with open(os.path.join(ucd, "SpecialCasing.txt"), encoding="utf-8") as f:
        for line in f:
            body = line.split("#")[0].strip()
            if not body:
                continue
            parts = [p.strip() for p in body.split(";")]
            if len(parts) > 4 and parts[4]:
                continue  # conditional (final sigma, Lithuanian, Turkish...): not applied
            cp = int(parts[0], 16)
            low = [int(x, 16) for x in parts[1].split()]
            if len(low) > 1:
                multi[cp] = low
            elif low[0] != cp:
                lower[cp] = low[0]
    for cp in multi:
        lower.pop(cp, None)
    # runs {first, last, stride, delta}: every stride-th code point maps to itself + delta
    runs = []
    for cp in sorted(lower):
        d = lower[cp] - cp
        if runs:
            a, b, s, rd = runs[-1]
            if rd == d and ((a == b and cp - b in (1, 2)) or (a != b and cp - b == s)):
                runs[-1] = [a, cp, cp - b, d] if a == b else [a, cp, s, d]
                continue
        runs.append([cp, cp, 1, d])

    ccc = {cp: int(f[3]) for cp, f in data.items() if int(f[3])}
    ccc_runs = []
    for cp in sorted(ccc):
        if ccc_runs and ccc_runs[-1][1] == cp - 1 and ccc_runs[-1][2] == ccc[cp]:
            ccc_runs[-1][1] = cp
        else:
            ccc_runs.append([cp, cp, ccc[cp]])

    decomp = {}
    for cp, f in data.items():
        if f[5] and not f[5].startswith("<"):
            parts = [int(x, 16) for x in f[5].split()]
            decomp[cp] = parts + [0] * (2 - len(parts))
    excluded = read_prop(os.path.join(ucd, "DerivedNormalizationProps.txt"), "Full_Composition_Exclusion")
    comp = sorted((a, b, cp) for cp, (a, b) in decomp.items() if b and cp not in excluded)

    def rows(items, fmt, per_line):
        cells = [fmt(*it) for it in items]
        lines = ["    " + " ".join(cells[i:i + per_line]) for i in range(0, len(cells), per_line)]
        return "\n".join(lines)

    hx = lambda v: f"0x{v:X}"
    ver = version(ucd)
    m = re.search(r"\d+(\.\d+)+", ver)
    unicode_version = f"Unicode {m.group(0)} ({ver})" if m else ver
    out = [f"/* {TARGET_NAME} - the Unicode tables of tokenizer.c, {unicode_version}.",
           "",
           "   GENERATED by tools/gen_unicode.py from the Unicode Character Database",
           "   (Debian's unicode-data). Do not edit: change the generator and re-run",
           "   it; `tools/gen_unicode.py --check` fails while this file is stale.",
           "",
           "   Included once, by tokenizer.c, which defines the lookups over these",
           "   rows; every range table is sorted by its first column. */",
           "#ifndef CLIP_UNICODE_TABLES_H",
           "#define CLIP_UNICODE_TABLES_H",
           "",
           "#include <stdint.h>",
           "",
           "/* \\p{L} (class 1) and \\p{N} (class 2): sorted ranges {first, last, class} */",
           f"static const uint32_t uc_class[{len(classes)}][3] = {{",
           rows(classes, lambda a, b, c: f"{{{hx(a)}, {hx(b)}, {c}}},", 4), "};",
           "/* White_Space: {first, last} */",
           f"static const uint32_t uc_space[{len(space)}][2] = {{",
           rows(space, lambda a, b: f"{{{hx(a)}, {hx(b)}}},", 6), "};",
           "/* lowercase: every stride-th code point in [first, last] maps to itself + delta */",
           f"static const int32_t uc_lower[{len(runs)}][4] = {{",
           rows(runs, lambda a, b, s, d: f"{{{hx(a)}, {hx(b)}, {s}, {d}}},", 4), "};",
           "/* lowercase mappings to two code points {code point, first, second} */",
           f"static const uint32_t uc_lower2[{len(multi)}][3] = {{",
           rows([(cp, v[0], v[1]) for cp, v in sorted(multi.items())], lambda a, b, c: f"{{{hx(a)}, {hx(b)}, {hx(c)}}},", 4),
           "};",
           "/* canonical combining class, non-zero only: {first, last, class} */",
           f"static const uint32_t uc_ccc[{len(ccc_runs)}][3] = {{",
           rows(ccc_runs, lambda a, b, c: f"{{{hx(a)}, {hx(b)}, {c}}},", 4), "};",
           "/* canonical decompositions (one level): {code point, first, second or 0} */",
           f"static const uint32_t uc_decomp[{len(decomp)}][3] = {{",
           rows([(cp, v[0], v[1]) for cp, v in sorted(decomp.items())], lambda a, b, c: f"{{{hx(a)}, {hx(b)}, {hx(c)}}},", 4),
           "};",
           "/* canonical compositions, full composition exclusions removed: {first, second, composite} */",
           f"static const uint32_t uc_comp[{len(comp)}][3] = {{",
           rows(comp, lambda a, b, c: f"{{{hx(a)}, {hx(b)}, {hx(c)}}},", 4), "};",
           "",
           "#endif",
           ""]
    return "\n".join(out)


def main(argv):
    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    ucd = args[0] if args else "/usr/share/unicode"
    if not os.path.exists(os.path.join(ucd, "UnicodeData.txt")):
        print(f"gen_unicode.py: {ucd}/UnicodeData.txt not found (apt-get install unicode-data)", file=sys.stderr)
        return 2
    new = generate(ucd)
    if check:
        try:
            with open(TARGET, encoding="utf-8") as f:
                old = f.read()
        except FileNotFoundError:
            old = None
        if new != old:
            print(f"gen_unicode.py: {TARGET_NAME} differs from a fresh generation from {ucd}; "
                  "run tools/gen_unicode.py", file=sys.stderr)
            return 1
        print(f"ok   {TARGET_NAME} matches {ucd}")
        return 0
    os.makedirs(os.path.dirname(TARGET), exist_ok=True)
    with open(TARGET, "w", encoding="utf-8", newline="\n") as f:
        f.write(new)
    print(f"wrote {TARGET_NAME} ({len(new)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
