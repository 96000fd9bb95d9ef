#!/usr/bin/env python3
"""The C tokenizer against Hugging Face's ids on the 2,129 strings of
test/data/tokenizer_cases.json (full and truncated to 77), and on cases of
our own for each rule of the pipeline (NFC, whitespace, lowercasing, the
split pattern, special tokens, invalid UTF-8), whose expected ids are
derived here in Python from the rule itself and the merges (the committed
data/bpe_simple_vocab_16e6.txt.gz), independently of the C code. With
../shared: the committed cases are ../shared's, and a fixture model's
tokenizer.json gives the same ids."""
import filecmp
import json
import os
import struct
import subprocess

from common import CASES, CLIP, FIX, OUT, TEST, VOCAB, check, export, finish, fixtures_part, tiny_model

blob = tiny_model("tiny-quickgelu")[1]
BATCH = os.environ.get("CLIP_TOK_BATCH", os.path.join(TEST, "tok_batch"))


def tokenize_all(texts, model=None):
    data = b"".join(struct.pack("<I", len(t)) + t for t in texts)
    p = subprocess.run([BATCH, model or blob], input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.decode())
    out = []
    for line in p.stdout.decode().splitlines():
        a, b = line.split("|")
        out.append(([int(x) for x in a.split()], [int(x) for x in b.split()]))
    return out


def against_cases(cases, model, what):
    got = tokenize_all([c["text"].encode("utf-8") for c in cases], model)
    bad = [(c, g) for c, g in zip(cases, got) if g[0] != c["ids"] or g[1] != c["ids_truncated_77"]]
    for c, g in bad[:10]:
        print(f"     {c['text']!r}: got {g[0][:20]}, want {c['ids'][:20]}")
    check(not bad, f"tokenizer{what}: {len(cases) - len(bad)} of {len(cases)} strings give Hugging Face's ids "
                   f"(full and truncated to 77)")


with open(CASES, encoding="utf-8") as f:
    cases = json.load(f)["cases"]
against_cases(cases, blob, "")
if fixtures_part("test_tokenizer: the committed cases against ../shared's, a fixture model's tokenizer.json"):
    check(filecmp.cmp(CASES, os.path.join(FIX, "tokenizer", "cases.json"), shallow=False) and
          filecmp.cmp(VOCAB, os.path.join(FIX, "vocab", "bpe_simple_vocab_16e6.txt.gz"), shallow=False),
          "test/data/tokenizer_cases.json and data/bpe_simple_vocab_16e6.txt.gz are ../shared's files")
    fixture_blob = export(os.path.join(FIX, "models", "tiny-quickgelu"), os.path.join(OUT, "tok-fixture-model.bin"))
    against_cases(cases, fixture_blob, " (the fixture tiny-quickgelu's tokenizer.json, exported)")

# ---- the rules, one by one: an independent Python model of the pipeline ----
from tokenizer_model import Tokenizer, read_merges  # noqa: E402

TOK = Tokenizer(read_merges(VOCAB))


def model(text):
    """Expected ids for text without literal special tokens, by the rules."""
    return [TOK.bos] + TOK.text_ids(text) + [TOK.eos]


# Python's unicodedata may be a different Unicode version than the C tables
# (15.0 from Debian's unicode-data); the cases stick to long-stable characters.
rules = {
    "NFC composes e + combining acute": "Cafe\u0301 de\u0301ja\u0300 vu",
    "NFC reorders marks by class": "a\u0301\u0323 o\u0323\u0301",
    "NFC: Hangul jamo compose to syllables": "\u1100\u1161\u11a8 \u1112\u1161\u11ab\u1100\u1173\u11af",
    "NFC: singleton decompositions (Angstrom, Ohm)": "\u212b \u2126 \u0344",
    "NFC: excluded compositions stay decomposed": "\u0915\u093c \u05d9\u05b4",
    "NFC leaves compatibility characters (ligatures, full-width)": "\ufb01ne \uff21\uff22\uff23 \u2460",
    "whitespace runs of every White_Space kind": "a\u00a0\u00a0b\u2003c\u3000d\u2028e\u0085f\t\r\n g\u1680h",
    "not White_Space: U+001C..001F, U+200B, U+FEFF": "a\x1cb\x1fc\u200bd\ufeffe",
    "lowercase: Greek final sigma always becomes U+03C3": "ΟΔΟΣ ΣΟΦΙΑ",
    "lowercase: U+0130 becomes i + U+0307": "İSTANBUL İ",
    "lowercase: Cyrillic, Armenian, Georgian, Deseret": "ПРИВЕТ ԱԲԳ ᲐᲑᲒ \U00010400\U00010401",
    "lowercase: title-case digraphs and Roman numerals": "\u01c5\u01c8 \u2160\u2161 \u24b6",
    "contractions": "I'm you're we've it's don't they'll he'd 'S 'LL",
    "contractions only with ASCII apostrophe": "it\u2019s it`s",
    "numbers split into single digits, other N too": "12345 \u0663\u0664 \u00bd\u2155 \u2167x",
    "punctuation runs stay together": "wow!!! ... ?!?! (a) [b] {c} --- ___",
    "letters of every script run together": "中文字 日本語かな 한국어 עברית العربية हिन्दी",
    "marks split letter runs (category M is not L)": "हिन्दी ক্ষ",
    "emoji and symbols": "🐱🐶 ♥ ★ € $ 🇫🇷 👍🏽",
    "uppercase special token strings are ordinary text": "<|ENDOFTEXT|> <|StartOfText|>",
    "special-token look-alikes": "<|endoftext| <endoftext|> <|end of text|>",
    "control characters and NUL": "a\x00b\x01c\x7fd",
    "long word": "a" * 300 + " supercalifragilisticexpialidocious",
    "empty": "",
    "only spaces": "   \t\n  ",
}
texts = list(rules.values())
got = tokenize_all([t.encode("utf-8") for t in texts])
for (name, text), (full, trunc) in zip(rules.items(), got):
    want = model(text)
    want77 = want if len(want) <= 77 else want[:76] + [49407]
    check(full == want and trunc == want77, f"tokenizer rule: {name}" + ("" if full == want else f": got {full[:16]}, want {want[:16]}"))

# literal special tokens in the raw text, before normalization
special = [(b"a <|endoftext|> b", [49406, 320, 49407, 321, 49407]),
           (b"<|startoftext|>x", [49406, 49406, 343, 49407]),
           (b"<|endoftext|><|endoftext|>", [49406, 49407, 49407, 49407])]
got = tokenize_all([t for t, _ in special])
for (t, want), (full, _) in zip(special, got):
    check(full == want, f"tokenizer: literal special tokens in {t!r}: {full}")

# invalid UTF-8: each maximal ill-formed subsequence is one U+FFFD (from_utf8_lossy)
inval = [b"a\xffb", b"\xe2\x82", b"\xe2\x82a", b"\xf0\x9f\x90", b"\xc0\xaf", b"\xed\xa0\x80",
         b"\xf4\x90\x80\x80", b"\x80\x80\x80", b"ok\xf5\xfe"]
got = tokenize_all(inval)
for raw, (full, _) in zip(inval, got):
    want = model(raw.decode("utf-8", "replace"))  # Python's "replace" is the same maximal-subpart rule
    check(full == want, f"tokenizer: invalid UTF-8 {raw!r} as from_utf8_lossy")

# truncation keeps <|endoftext|> at position 76
full, trunc = tokenize_all([("x " * 200).encode()])[0]
check(len(full) == 202 and len(trunc) == 77 and trunc[-1] == 49407 and trunc[:76] == full[:76],
      "tokenizer: truncation to 77 keeps the final <|endoftext|>")

# stdin, NUL bytes included, through the CLI
p = subprocess.run([CLIP, "tokenize", blob], input=b"a\x00b cat", stdout=subprocess.PIPE)
check(p.returncode == 0 and json.loads(p.stdout) == model("a\x00b cat"),
      "clip tokenize reads all of stdin, NUL bytes included")

finish("test_tokenizer")
