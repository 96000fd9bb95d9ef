"""An independent Python model of CLIP's tokenizer, written from the rules
(Hugging Face's CLIPTokenizer: literal special tokens, NFC, whitespace runs to
one space, full lowercasing, the split pattern, byte-level BPE), for any list
of merges. It derives expected ids without looking at the C code; the tests
and tools/gen_selftest.py check it against Hugging Face's ids first.

    tok = Tokenizer(merges)          # merges: [(left, right), ...] in rank order
    tok.encode("a photo of a cat")   # [bos, ..., eos]
"""
import gzip
import unicodedata

SPECIAL = ("<|startoftext|>", "<|endoftext|>")
CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")
N_CLIP_MERGES = 49152 - 256 - 2  # CLIP keeps this many lines of bpe_simple_vocab_16e6.txt


def bytes_to_unicode():
    """GPT-2's byte -> printable character table, in CLIP's order."""
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


B2U = bytes_to_unicode()


def read_merges(path, limit=None):
    """Merges from OpenAI's bpe_simple_vocab_16e6.txt.gz (CLIP's first
    N_CLIP_MERGES) or a merges.txt (an optional "#version" first line)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    if path.endswith(".gz"):
        lines = lines[1:N_CLIP_MERGES + 1]
    elif lines and lines[0].startswith("#version"):
        lines = lines[1:]
    merges = [tuple(l.split(" ")) for l in lines if l.strip()]
    return merges[:limit] if limit is not None else merges


def cat(ch):
    """The character classes the split pattern uses: L letters, N numbers,
    S White_Space (U+001C..001F are Python-only whitespace), O the rest."""
    c = unicodedata.category(ch)
    return "L" if c[0] == "L" else "N" if c[0] == "N" else "S" if ch.isspace() and ch not in "\x1c\x1d\x1e\x1f" else "O"


class Tokenizer:
    def __init__(self, merges):
        self.merges = [tuple(m) for m in merges]
        vocab = list(B2U.values())
        vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in self.merges] + list(SPECIAL)
        self.ids = {t: i for i, t in enumerate(vocab)}
        self.rank = {m: i for i, m in enumerate(self.merges)}
        self.vocab_size = len(vocab)
        self.bos, self.eos = len(vocab) - 2, len(vocab) - 1

    def bpe(self, piece):
        """One pre-token: bytes to symbols, then the lowest-ranked pair merges first."""
        word = [B2U[b] for b in piece.encode("utf-8")]
        word[-1] += "</w>"
        while len(word) > 1:
            r, i = min((self.rank.get(p, 1 << 30), i) for i, p in enumerate(zip(word, word[1:])))
            if r == 1 << 30:
                break
            word[i:i + 2] = [word[i] + word[i + 1]]
        return [self.ids[w] for w in word]

    def text_ids(self, text):
        """Ids of text that holds no literal special token (no bos/eos)."""
        t = unicodedata.normalize("NFC", text)
        s, i = "", 0
        while i < len(t):  # each whitespace run becomes one space
            if cat(t[i]) == "S":
                while i < len(t) and cat(t[i]) == "S":
                    i += 1
                s += " "
            else:
                s += t[i]
                i += 1
        # full lowercasing: U+0130 is the one character whose lower() is two
        s = "".join(ch.lower() if ch != "\u0130" else "i\u0307" for ch in s)
        out, i = [], 0
        while i < len(s):
            # special-token strings produced by normalization are ordinary text
            sp = next((sp for sp in SPECIAL if s.startswith(sp, i)), None)
            if sp:
                out += self.bpe("<|") + self.bpe(sp[2:-2]) + self.bpe("|>")
                i += len(sp)
                continue
            c = next((c for c in CONTRACTIONS if s.startswith(c, i)), None)
            if c:
                out += self.bpe(c)
                i += len(c)
                continue
            k = cat(s[i])
            if k == "S":
                i += 1
                continue
            j = i + 1
            if k != "N":  # letter runs and other-symbol runs stay together; digits go one by one
                while j < len(s) and cat(s[j]) == k:
                    j += 1
            out += self.bpe(s[i:j])
            i = j
        return out

    def encode(self, text, context=None):
        """[bos] + ids + [eos]; literal special tokens in the raw text (before
        normalization) are their ids. context: truncate keeping the final eos."""
        out, i, seg = [self.bos], 0, 0
        while i < len(text):
            sp = next((k for k, sp in enumerate(SPECIAL) if text.startswith(sp, i)), None)
            if sp is None:
                i += 1
                continue
            out += self.text_ids(text[seg:i]) + [self.bos if sp == 0 else self.eos]
            i += len(SPECIAL[sp])
            seg = i
        out += self.text_ids(text[seg:]) + [self.eos]
        if context is not None and len(out) > context:
            out = out[:context - 1] + [self.eos]
        return out


def train_merges(text, n):
    """A small CLIP-style merge list learned from text (most frequent adjacent
    pair first, ties by the pair itself): for tests that need a vocabulary
    but not OpenAI's file."""
    words = {}
    for w in text.lower().split():
        sym = tuple(B2U[b] for b in w.encode("utf-8"))
        sym = sym[:-1] + (sym[-1] + "</w>",)
        words[sym] = words.get(sym, 0) + 1
    merges, made = [], set()
    while len(merges) < n:
        pairs = {}
        for w, c in words.items():
            for p in zip(w, w[1:]):
                if p[0] + p[1] not in made:  # each token string once in the vocabulary
                    pairs[p] = pairs.get(p, 0) + c
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        made.add(best[0] + best[1])
        new = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + c
        words = new
    return merges


def write_merges_txt(path, merges):
    with open(path, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
