/* tokenizer.c - CLIP's byte-level BPE, id for id what Hugging Face's
   CLIPTokenizer (tokenizers backend) produces:

     1. the literal special tokens <|startoftext|> / <|endoftext|> are cut out
        of the raw text first;
     2. every other stretch is decoded from UTF-8 (invalid bytes become U+FFFD
        as Rust's String::from_utf8_lossy does), normalized to NFC, each run of
        White_Space becomes one space, and every code point is lowercased
        with its full mapping (no context rules);
     3. it is split into pieces by CLIP's pattern
          <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+
        (and GPT-2's byte-level pattern inside each piece, which only ever
        splits the two special strings into "<|", the word, "|>");
     4. each piece's UTF-8 bytes are BPE-merged, lowest merge rank first,
        with </w> on the last byte.

   Vocabulary ids follow CLIP's construction: 256 byte symbols in GPT-2's
   byte-to-unicode order, the same with </w>, one token per merge, then
   <|startoftext|> and <|endoftext|>. */
#include "clip.h"
#include "platform/platform.h"

#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------------
   The tokenizer: the vocabulary (ids as above) and the merges */

struct clip_tokenizer {
    int n_merges;          /* merge i makes token 512 + i */
    int vocab_size;        /* 512 + n_merges + 2 */
    int32_t byte_id[256];  /* token id of each byte as a symbol (add 256 for </w>) */
    uint64_t *pair_key;    /* open-addressing table: (left << 32 | right) + 1, 0 = empty */
    int32_t *pair_rank;    /* merge rank of that pair */
    size_t pair_mask;      /* table size - 1 */
};

/* The special tokens in id order: specials[k] is token vocab_size - 2 + k. */
static const char *const specials[] = {"<|startoftext|>", "<|endoftext|>"};

/* ------------------------------------------------------------------------
   Encoding, stage 1: the special tokens are cut out of the raw text; each
   stretch between them goes through stages 2-4 (encode_stretch, below) */

/* The output ids: n so far, room for `room` more (the rest is truncated) */
typedef struct {
    int32_t *ids;
    int n, room;
} emitter;

static void emit(emitter *e, int32_t id)
{
    if (e->room > 0) {
        e->ids[e->n++] = id;
        e->room--;
    }
}

static int encode_stretch(const clip_tokenizer *t, const unsigned char *s, size_t len, emitter *e);

/* Find the next literal special token in s[from, len); returns its start
   (len if none) and sets *which. */
static size_t find_special(const unsigned char *s, size_t from, size_t len, int *which)
{
    size_t i;
    int k;
    for (i = from; i < len; i++) {
        if (s[i] != '<') continue;
        for (k = 0; k < (int)COUNT(specials); k++) {
            size_t n = strlen(specials[k]);
            if (len - i >= n && memcmp(s + i, specials[k], n) == 0) {
                *which = k;
                return i;
            }
        }
    }
    return len;
}

int clip_tokenizer_encode(const clip_tokenizer *t, const char *text, size_t len, int32_t *ids, int max_ids)
{
    const unsigned char *s = (const unsigned char *)text;
    int32_t bos = t->vocab_size - 2, eos = t->vocab_size - 1;
    emitter e;
    size_t pos = 0;
    if (max_ids < 2) return -1;
    e.ids = ids;
    e.n = 0;
    e.room = max_ids - 1; /* the final <|endoftext|> always fits */
    emit(&e, bos);
    while (pos < len && e.room > 0) {
        int which = 0;
        size_t at = find_special(s, pos, len, &which);
        if (at > pos && encode_stretch(t, s + pos, at - pos, &e)) return -1;
        if (at == len) break;
        emit(&e, bos + which);
        pos = at + strlen(specials[which]);
    }
    ids[e.n++] = eos;
    return e.n;
}

/* ------------------------------------------------------------------------
   Stages 2 and 3 on one stretch: UTF-8 decoding, NFC, whitespace and
   lowercasing, then the split pattern; each piece is BPE-merged (stage 4) */

/* A growable array of code points */
typedef struct {
    uint32_t *v;
    size_t n, cap;
} cpbuf;

static int cp_push(cpbuf *b, uint32_t cp)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        uint32_t *nv;
        if (cap > SIZE_MAX / sizeof(uint32_t)) return -1;
        nv = (uint32_t *)clip_realloc(b->v, cap * sizeof(uint32_t));
        if (!nv) return -1;
        b->v = nv;
        b->cap = cap;
    }
    b->v[b->n++] = cp;
    return 0;
}

/* What the split pattern (and the whitespace rule) tell apart */
enum { CLASS_OTHER = 0, CLASS_LETTER = 1, CLASS_NUMBER = 2, CLASS_SPACE = 3 };

/* The stages' steps, defined below in this order */
static int utf8_decode(cpbuf *out, const unsigned char *s, size_t n);
static int nfc(cpbuf *b, const uint32_t *in, size_t n);
static int char_class(uint32_t cp);
static int to_lower(uint32_t cp, uint32_t *out);
static size_t utf8_encode(unsigned char *buf, const uint32_t *v, size_t a, size_t b);
static int bpe_piece(const clip_tokenizer *t, const unsigned char *s, size_t n, emitter *e);

/* BPE on code points [a, b) of v; buf has room for their UTF-8. */
static int piece(const clip_tokenizer *t, const uint32_t *v, size_t a, size_t b, unsigned char *buf, emitter *e)
{
    return bpe_piece(t, buf, utf8_encode(buf, v, a, b), e);
}

static int matches_ascii(const uint32_t *v, size_t i, size_t n, const char *s)
{
    size_t k;
    for (k = 0; s[k]; k++)
        if (i + k >= n || v[i + k] != (unsigned char)s[k]) return 0;
    return 1;
}

static int encode_stretch(const clip_tokenizer *t, const unsigned char *s, size_t len, emitter *e)
{
    static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    cpbuf raw = {NULL, 0, 0}, norm = {NULL, 0, 0}, low = {NULL, 0, 0};
    unsigned char *buf = NULL; /* UTF-8 of the current piece */
    size_t i, k;
    int rc = -1, fast = 1;
    if (utf8_decode(&raw, s, len)) goto done;
    for (i = 0; i < raw.n; i++)
        if (raw.v[i] >= 0x300) fast = 0;
    /* NFC (nothing below U+0300 changes under it) */
    if (fast) {
        norm = raw;
        raw.v = NULL;
    } else if (nfc(&norm, raw.v, raw.n))
        goto done;
    /* \s+ -> " ", then full lowercase */
    for (i = 0; i < norm.n;) {
        if (char_class(norm.v[i]) == CLASS_SPACE) {
            while (i < norm.n && char_class(norm.v[i]) == CLASS_SPACE) i++;
            if (cp_push(&low, ' ')) goto done;
        } else {
            uint32_t l[2];
            int m = to_lower(norm.v[i++], l), j;
            for (j = 0; j < m; j++)
                if (cp_push(&low, l[j])) goto done;
        }
    }
    if (low.n > SIZE_MAX / 4 || !(buf = (unsigned char *)clip_malloc(low.n * 4 + 1))) goto done;
    /* the pre-tokenizer's pattern, leftmost match first, alternatives in order */
    for (i = 0; i < low.n && e->room > 0;) {
        size_t end = i;
        int cls = char_class(low.v[i]), hit = 0;
        for (k = 0; k < COUNT(specials) && !hit; k++)
            if (matches_ascii(low.v, i, low.n, specials[k])) {
                size_t word = strlen(specials[k]) - 2;
                /* GPT-2's byte-level pattern splits it: "<|", the word, "|>" */
                if (piece(t, low.v, i, i + 2, buf, e) || piece(t, low.v, i + 2, i + word, buf, e) ||
                    piece(t, low.v, i + word, i + word + 2, buf, e))
                    goto done;
                i += word + 2;
                hit = 1;
            }
        for (k = 0; k < COUNT(contractions) && !hit; k++)
            if (matches_ascii(low.v, i, low.n, contractions[k])) {
                end = i + strlen(contractions[k]);
                if (piece(t, low.v, i, end, buf, e)) goto done;
                i = end;
                hit = 1;
            }
        if (hit) continue;
        if (cls == CLASS_SPACE) {
            i++;
            continue;
        }
        if (cls == CLASS_NUMBER)
            end = i + 1;
        else
            while (end < low.n && char_class(low.v[end]) == cls) end++;
        if (piece(t, low.v, i, end, buf, e)) goto done;
        i = end;
    }
    rc = 0;
done:
    clip_free(buf);
    clip_free(raw.v);
    clip_free(norm.v);
    clip_free(low.v);
    return rc;
}

/* ------------------------------------------------------------------------
   UTF-8, in (stage 2) and out (stage 4: BPE works on bytes) */

/* UTF-8 -> code points; each maximal ill-formed subsequence (Unicode's
   "maximal subpart") becomes one U+FFFD, as String::from_utf8_lossy does. */
static int utf8_decode(cpbuf *out, const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        uint32_t cp;
        int need, k;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            if (cp_push(out, c)) return -1;
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            cp = c & 0x0F;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            cp = c & 0x07;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            if (cp_push(out, 0xFFFD)) return -1;
            i++;
            continue;
        }
        i++;
        for (k = 0; k < need; k++) {
            unsigned char cc;
            if (i >= n) break;
            cc = s[i];
            if (cc < lo || cc > hi) break;
            cp = cp << 6 | (cc & 0x3F);
            lo = 0x80;
            hi = 0xBF;
            i++;
        }
        if (cp_push(out, k == need ? cp : 0xFFFD)) return -1;
    }
    return 0;
}

/* UTF-8 of code points [a, b) of v into buf (4 bytes per code point room). */
static size_t utf8_encode(unsigned char *buf, const uint32_t *v, size_t a, size_t b)
{
    size_t n = 0, i;
    for (i = a; i < b; i++) {
        uint32_t c = v[i];
        if (c >= 0xD800 && c <= 0xDFFF) c = 0xFFFD;
        if (c < 0x80)
            buf[n++] = (unsigned char)c;
        else if (c < 0x800) {
            buf[n++] = (unsigned char)(0xC0 | c >> 6);
            buf[n++] = (unsigned char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            buf[n++] = (unsigned char)(0xE0 | c >> 12);
            buf[n++] = (unsigned char)(0x80 | (c >> 6 & 0x3F));
            buf[n++] = (unsigned char)(0x80 | (c & 0x3F));
        } else {
            buf[n++] = (unsigned char)(0xF0 | c >> 18);
            buf[n++] = (unsigned char)(0x80 | (c >> 12 & 0x3F));
            buf[n++] = (unsigned char)(0x80 | (c >> 6 & 0x3F));
            buf[n++] = (unsigned char)(0x80 | (c & 0x3F));
        }
    }
    return n;
}

/* ------------------------------------------------------------------------
   Unicode data for the stages below: letters, numbers, White_Space,
   lowercase and NFC tables, generated from the UCD by tools/gen_unicode.py
   (never edit the header; re-run the tool), and the range lookup over them */

#include "generated/unicode_tables.h"

/* Index of the range containing cp in a table of {first, last, ...} rows
   sorted by first, or -1. */
#define RANGE_FIND(table, cp, result)                                                                               \
    do {                                                                                                            \
        size_t lo_ = 0, hi_ = COUNT(table);                                                                         \
        (result) = -1;                                                                                              \
        while (lo_ < hi_) {                                                                                         \
            size_t mid_ = (lo_ + hi_) / 2;                                                                          \
            if ((uint32_t)(table)[mid_][1] < (cp))                                                                  \
                lo_ = mid_ + 1;                                                                                     \
            else if ((uint32_t)(table)[mid_][0] > (cp))                                                             \
                hi_ = mid_;                                                                                         \
            else {                                                                                                  \
                (result) = (long)mid_;                                                                              \
                break;                                                                                              \
            }                                                                                                       \
        }                                                                                                           \
    } while (0)

/* ------------------------------------------------------------------------
   NFC: full canonical decomposition, canonical ordering, composition. */

static int combining_class(uint32_t cp)
{
    long i;
    if (cp < 0x300) return 0;
    RANGE_FIND(uc_ccc, cp, i);
    return i >= 0 ? (int)uc_ccc[i][2] : 0;
}

#define SBASE 0xAC00
#define LBASE 0x1100
#define VBASE 0x1161
#define TBASE 0x11A7
#define LCOUNT 19
#define VCOUNT 21
#define TCOUNT 28
#define NCOUNT (VCOUNT * TCOUNT)
#define SCOUNT (LCOUNT * NCOUNT)

static int decompose(cpbuf *out, uint32_t cp, int depth)
{
    size_t lo = 0, hi = COUNT(uc_decomp);
    if (cp >= SBASE && cp < SBASE + SCOUNT) {
        uint32_t s = cp - SBASE, t = s % TCOUNT;
        if (cp_push(out, LBASE + s / NCOUNT) || cp_push(out, VBASE + (s % NCOUNT) / TCOUNT)) return -1;
        return t ? cp_push(out, TBASE + t) : 0;
    }
    if (cp >= 0xC0 && depth < 8) {
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (uc_decomp[mid][0] < cp)
                lo = mid + 1;
            else if (uc_decomp[mid][0] > cp)
                hi = mid;
            else {
                if (decompose(out, uc_decomp[mid][1], depth + 1)) return -1;
                return uc_decomp[mid][2] ? decompose(out, uc_decomp[mid][2], depth + 1) : 0;
            }
        }
    }
    return cp_push(out, cp);
}

/* The primary composite of a + b, or 0. */
static uint32_t compose_pair(uint32_t a, uint32_t b)
{
    size_t lo = 0, hi = COUNT(uc_comp);
    if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
        return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
    if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE && b < TBASE + TCOUNT)
        return a + (b - TBASE);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (uc_comp[mid][0] < a || (uc_comp[mid][0] == a && uc_comp[mid][1] < b))
            lo = mid + 1;
        else if (uc_comp[mid][0] == a && uc_comp[mid][1] == b)
            return uc_comp[mid][2];
        else
            hi = mid;
    }
    return 0;
}

/* Stable sort of a run of non-starters by combining class: insertion sort
   for short runs, counting sort for long ones (hostile input stays linear). */
static int sort_marks(uint32_t *v, unsigned char *cls, size_t n)
{
    size_t i, j;
    if (n < 32) {
        for (i = 1; i < n; i++) {
            uint32_t cv = v[i];
            unsigned char cc = cls[i];
            for (j = i; j > 0 && cls[j - 1] > cc; j--) {
                v[j] = v[j - 1];
                cls[j] = cls[j - 1];
            }
            v[j] = cv;
            cls[j] = cc;
        }
        return 0;
    } else {
        size_t start[257] = {0};
        uint32_t *tmp = (uint32_t *)clip_malloc(n * sizeof(uint32_t));
        if (!tmp) return -1;
        for (i = 0; i < n; i++) start[cls[i] + 1]++;
        for (i = 1; i < 257; i++) start[i] += start[i - 1];
        for (i = 0; i < n; i++) tmp[start[cls[i]]++] = v[i];
        memcpy(v, tmp, n * sizeof(uint32_t));
        clip_free(tmp);
        for (i = 0; i < n; i++) cls[i] = (unsigned char)combining_class(v[i]);
        return 0;
    }
}

/* in -> NFC(in), written over b (in is not b). */
static int nfc(cpbuf *b, const uint32_t *in, size_t n)
{
    size_t i, run, out, starter;
    unsigned char *cls;
    int last;
    b->n = 0;
    for (i = 0; i < n; i++)
        if (decompose(b, in[i], 0)) return -1;
    if (b->n == 0) return 0;
    cls = (unsigned char *)clip_malloc(b->n);
    if (!cls) return -1;
    for (i = 0; i < b->n; i++) cls[i] = (unsigned char)combining_class(b->v[i]);
    for (i = 0; i < b->n;) {
        if (cls[i] == 0) {
            i++;
            continue;
        }
        for (run = i; run < b->n && cls[run] != 0; run++) {
        }
        if (run - i > 1 && sort_marks(b->v + i, cls + i, run - i)) {
            clip_free(cls);
            return -1;
        }
        i = run;
    }
    /* canonical composition: each character joins the last starter unless
       a character in between blocks it. last is the class of the last kept
       character (0: it is the starter itself; 256: no starter yet). */
    starter = 0;
    last = cls[0] ? 256 : 0;
    out = 1;
    for (i = 1; i < b->n; i++) {
        uint32_t c = b->v[i], comp;
        int cc = cls[i];
        if ((last < cc || last == 0) && (comp = compose_pair(b->v[starter], c)) != 0) {
            b->v[starter] = comp;
            continue;
        }
        if (cc == 0) starter = out;
        last = cc;
        b->v[out++] = c;
    }
    b->n = out;
    clip_free(cls);
    return 0;
}

/* ------------------------------------------------------------------------
   Whitespace and lowercasing (stage 2), and the classes the split pattern
   tells apart (stage 3): White_Space, \p{L}, \p{N}; the full lowercase
   mapping */

static int char_class(uint32_t cp)
{
    long i;
    if (cp < 128) {
        if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return CLASS_LETTER;
        if (cp >= '0' && cp <= '9') return CLASS_NUMBER;
        if (cp == ' ' || (cp >= 9 && cp <= 13)) return CLASS_SPACE;
        return CLASS_OTHER;
    }
    RANGE_FIND(uc_space, cp, i);
    if (i >= 0) return CLASS_SPACE;
    RANGE_FIND(uc_class, cp, i);
    return i >= 0 ? (int)uc_class[i][2] : CLASS_OTHER;
}

/* Full lowercase mapping; returns the number of code points written (1-2). */
static int to_lower(uint32_t cp, uint32_t *out)
{
    long i;
    if (cp < 128) {
        out[0] = cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
        return 1;
    }
    for (i = 0; i < (long)COUNT(uc_lower2); i++)
        if (uc_lower2[i][0] == cp) {
            out[0] = uc_lower2[i][1];
            out[1] = uc_lower2[i][2];
            return 2;
        }
    RANGE_FIND(uc_lower, cp, i);
    if (i >= 0 && (cp - (uint32_t)uc_lower[i][0]) % (uint32_t)uc_lower[i][2] == 0) {
        out[0] = (uint32_t)((int32_t)cp + uc_lower[i][3]);
        return 1;
    }
    out[0] = cp;
    return 1;
}

/* ------------------------------------------------------------------------
   Stage 4: BPE on one piece, as the tokenizers crate merges a word: a
   priority queue of adjacent pairs by (rank, position); a popped pair is
   applied if both symbols are still there and still form it. */

typedef struct {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
    int alive;
} symbol;

typedef struct {
    int32_t rank, pos;
} pair_item;

static int item_less(pair_item a, pair_item b)
{
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void heap_push(pair_item *h, size_t *n, pair_item it)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!item_less(it, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = it;
}

static pair_item heap_pop(pair_item *h, size_t *n)
{
    pair_item top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && item_less(h[c + 1], h[c])) c++;
        if (!item_less(h[c], last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* The pair table (struct clip_tokenizer): a merge rank, or -1 */
static uint64_t hash64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static int pair_lookup(const clip_tokenizer *t, int32_t a, int32_t b)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    size_t i = (size_t)hash64(key) & t->pair_mask;
    while (t->pair_key[i]) {
        if (t->pair_key[i] == key) return t->pair_rank[i];
        i = (i + 1) & t->pair_mask;
    }
    return -1;
}

/* The bytes s[0, n) of one piece as tokens, the last byte's symbol with </w> */
static int bpe_piece(const clip_tokenizer *t, const unsigned char *s, size_t n, emitter *e)
{
    symbol small_syms[64];
    pair_item small_heap[192];
    symbol *sym = small_syms;
    pair_item *heap = small_heap;
    size_t nh = 0, i;
    int32_t p;
    if (n == 0) return 0;
    if (n > 64) {
        if (n > (size_t)INT32_MAX / 4) return -1;
        sym = (symbol *)clip_malloc(n * sizeof(symbol));
        heap = (pair_item *)clip_malloc(n * 3 * sizeof(pair_item));
        if (!sym || !heap) {
            clip_free(sym);
            clip_free(heap);
            return -1;
        }
    }
    for (i = 0; i < n; i++) {
        sym[i].id = t->byte_id[s[i]] + (i == n - 1 ? 256 : 0);
        sym[i].prev = (int32_t)i - 1;
        sym[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
        sym[i].alive = 1;
    }
    for (i = 0; i + 1 < n; i++) {
        int r = pair_lookup(t, sym[i].id, sym[i + 1].id);
        if (r >= 0) {
            pair_item it;
            it.rank = r;
            it.pos = (int32_t)i;
            heap_push(heap, &nh, it);
        }
    }
    while (nh) {
        pair_item it = heap_pop(heap, &nh);
        int32_t a = it.pos, b = sym[a].next;
        if (!sym[a].alive || b < 0 || pair_lookup(t, sym[a].id, sym[b].id) != it.rank) continue;
        sym[a].id = 512 + it.rank;
        sym[a].next = sym[b].next;
        sym[b].alive = 0;
        if (sym[b].next >= 0) sym[sym[b].next].prev = a;
        if (sym[a].prev >= 0) {
            int r = pair_lookup(t, sym[sym[a].prev].id, sym[a].id);
            if (r >= 0) {
                pair_item ni;
                ni.rank = r;
                ni.pos = sym[a].prev;
                heap_push(heap, &nh, ni);
            }
        }
        if (sym[a].next >= 0) {
            int r = pair_lookup(t, sym[a].id, sym[sym[a].next].id);
            if (r >= 0) {
                pair_item ni;
                ni.rank = r;
                ni.pos = a;
                heap_push(heap, &nh, ni);
            }
        }
    }
    for (p = 0; p >= 0; p = sym[p].next) emit(e, sym[p].id);
    if (sym != small_syms) {
        clip_free(sym);
        clip_free(heap);
    }
    return 0;
}

/* ------------------------------------------------------------------------
   Building a tokenizer from the merges */

/* GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to
   256 + n in byte order; ids follow that dictionary's order. */
static void byte_symbols(uint32_t cps[256], int32_t ids[256])
{
    int b, n = 0, id = 0;
    for (b = 0; b < 256; b++)
        if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
            cps[b] = (uint32_t)b;
            ids[b] = id++;
        }
    for (b = 0; b < 256; b++)
        if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) {
            cps[b] = (uint32_t)(256 + n++);
            ids[b] = id++;
        }
}

/* A string -> id map, used only while the merges are parsed. */
typedef struct {
    const char **str; /* points into the merges text or the byte names */
    uint32_t *len;
    int32_t *id;
    size_t mask;
} strmap;

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    size_t i;
    for (i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static int32_t strmap_get(const strmap *m, const char *s, size_t n)
{
    size_t i = (size_t)hash_bytes(s, n) & m->mask;
    while (m->str[i]) {
        if (m->len[i] == n && memcmp(m->str[i], s, n) == 0) return m->id[i];
        i = (i + 1) & m->mask;
    }
    return -1;
}

/* 0 on insert, 1 if present already */
static int strmap_put(strmap *m, const char *s, size_t n, int32_t id)
{
    size_t i = (size_t)hash_bytes(s, n) & m->mask;
    while (m->str[i]) {
        if (m->len[i] == n && memcmp(m->str[i], s, n) == 0) return 1;
        i = (i + 1) & m->mask;
    }
    m->str[i] = s;
    m->len[i] = (uint32_t)n;
    m->id[i] = id;
    return 0;
}

/* A malformed merges section: the message names the line (i is 0-based). */
static int merges_error(char *err, const char *msg, long i)
{
    return clip_error(err, "clip: tokenizer merges, line %ld: %s; re-run export_weights.py", i + 1, msg);
}

clip_tokenizer *clip_tokenizer_create(const char *merges, size_t len, int n_merges, char *err)
{
    clip_tokenizer *t;
    strmap sm = {NULL, NULL, NULL, 0};
    char *names = NULL, *merged = NULL; /* byte symbol names; concatenated merge results */
    uint32_t cps[256];
    size_t pos = 0, size, names_len = 0, merged_len = 0, merged_cap;
    int b, i, ok = 0;
    if (n_merges < 0 || n_merges > (1 << 24)) {
        clip_error(err, "clip: tokenizer: merge count out of range");
        return NULL;
    }
    t = (clip_tokenizer *)clip_calloc(1, sizeof *t);
    if (!t) {
        clip_error(err, "clip: tokenizer: out of memory");
        return NULL;
    }
    t->n_merges = n_merges;
    t->vocab_size = 512 + n_merges + 2;
    byte_symbols(cps, t->byte_id);
    for (size = 1; size < (size_t)(512 + n_merges) * 2; size *= 2) {
    }
    sm.mask = size - 1;
    sm.str = (const char **)clip_calloc(size, sizeof(char *));
    sm.len = (uint32_t *)clip_calloc(size, sizeof(uint32_t));
    sm.id = (int32_t *)clip_calloc(size, sizeof(int32_t));
    for (size = 1; size < (size_t)(n_merges > 0 ? n_merges : 1) * 2; size *= 2) {
    }
    t->pair_mask = size - 1;
    t->pair_key = (uint64_t *)clip_calloc(size, sizeof(uint64_t));
    t->pair_rank = (int32_t *)clip_calloc(size, sizeof(int32_t));
    names = (char *)clip_malloc(256 * 2 * 8);
    merged_cap = len + 16;
    merged = (char *)clip_malloc(merged_cap);
    if (!sm.str || !sm.len || !sm.id || !t->pair_key || !t->pair_rank || !names || !merged) {
        clip_error(err, "clip: tokenizer: out of memory");
        goto done;
    }
    /* the 512 byte symbols: UTF-8 of the mapped code point, then with </w> */
    for (b = 0; b < 256; b++) {
        int k;
        for (k = 0; k < 2; k++) {
            char *s = names + names_len;
            size_t n = 0;
            uint32_t c = cps[b];
            if (c < 0x80)
                s[n++] = (char)c;
            else {
                s[n++] = (char)(0xC0 | c >> 6);
                s[n++] = (char)(0x80 | (c & 0x3F));
            }
            if (k) {
                memcpy(s + n, "</w>", 4);
                n += 4;
            }
            strmap_put(&sm, s, n, t->byte_id[b] + 256 * k);
            names_len += n;
        }
    }
    /* merges: "left right\n" per line; both sides must already be tokens */
    for (i = 0; i < n_merges; i++) {
        size_t l0 = pos, sp, end;
        int32_t a, c;
        uint64_t key;
        size_t slot;
        while (pos < len && merges[pos] != ' ' && merges[pos] != '\n') pos++;
        if (pos >= len || merges[pos] != ' ' || pos == l0) {
            merges_error(err, "expected two symbols separated by a space", i);
            goto done;
        }
        sp = pos++;
        while (pos < len && merges[pos] != '\n' && merges[pos] != ' ') pos++;
        if (pos >= len || merges[pos] != '\n' || pos == sp + 1) {
            merges_error(err, "expected two symbols and a newline", i);
            goto done;
        }
        end = pos++;
        a = strmap_get(&sm, merges + l0, sp - l0);
        c = strmap_get(&sm, merges + sp + 1, end - sp - 1);
        if (a < 0 || c < 0) {
            merges_error(err, "a symbol is not a token made by an earlier merge", i);
            goto done;
        }
        /* the merged token's name, kept in the merged arena */
        if (merged_len + (end - l0) > merged_cap) {
            merges_error(err, "merges section inconsistent", i);
            goto done;
        }
        memcpy(merged + merged_len, merges + l0, sp - l0);
        memcpy(merged + merged_len + (sp - l0), merges + sp + 1, end - sp - 1);
        if (strmap_put(&sm, merged + merged_len, end - l0 - 1, 512 + i)) {
            merges_error(err, "the merge repeats an existing token", i);
            goto done;
        }
        merged_len += end - l0 - 1;
        key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)c) + 1;
        slot = (size_t)hash64(key) & t->pair_mask;
        while (t->pair_key[slot] && t->pair_key[slot] != key) slot = (slot + 1) & t->pair_mask;
        if (t->pair_key[slot]) {
            merges_error(err, "the same pair is merged twice", i);
            goto done;
        }
        t->pair_key[slot] = key;
        t->pair_rank[slot] = i;
    }
    if (pos != len) {
        merges_error(err, "extra bytes after the last merge", n_merges);
        goto done;
    }
    ok = 1;
done:
    clip_free(sm.str);
    clip_free(sm.len);
    clip_free(sm.id);
    clip_free(names);
    clip_free(merged);
    if (!ok) {
        clip_tokenizer_free(t);
        return NULL;
    }
    return t;
}

void clip_tokenizer_free(clip_tokenizer *t)
{
    if (!t) return;
    clip_free(t->pair_key);
    clip_free(t->pair_rank);
    clip_free(t);
}

int clip_tokenizer_vocab_size(const clip_tokenizer *t)
{
    return t->vocab_size;
}
