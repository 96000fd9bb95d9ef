/* inflate.c - zlib's inflate: the RFC 1950 wrapper (header, Adler-32) around
   RFC 1951 deflate data (stored, fixed and dynamic Huffman blocks), for
   png.c. It reproduces which streams zlib 1.2.13's inflate() refuses and
   which it accepts, as Pillow's PNG decoder drives it: the stream is handed
   over in pieces and decoding stops once the image's bytes are all out
   (inflate.h says exactly what is checked after that).

   Speed: Huffman codes are decoded with a table indexed by the next 10
   (literal/length) or 8 (distance) bits, longer codes through a second-level
   table; bits come from a 64-bit buffer refilled 8 bytes at a time; the
   main loop runs while the input and output have room for a whole
   length/distance pair, so it checks neither per bit. The output can never
   grow past out_size: a zlib bomb costs time proportional to the image, not
   memory. */
#include "../platform/platform.h"
#include "inflate.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A decoding table entry: bits 0-7 the bits it uses, 8-11 its kind, 12-15
   its extra bits (lengths, distances) or a second-level table's index bits,
   16-31 its value (literal byte, base length or distance, table offset). */
#define E_BITS(e) ((e)&0xffu)
#define E_KIND(e) (((e) >> 8) & 0xfu)
#define E_EXTRA(e) (((e) >> 12) & 0xfu)
#define E_VAL(e) ((e) >> 16)
#define ENTRY(kind, extra, val) ((uint32_t)(kind) << 8 | (uint32_t)(extra) << 12 | (uint32_t)(val) << 16)

enum { K_LIT, K_LEN, K_EOB, K_SUB, K_BAD };

#define LIT_ROOT 10
#define DIST_ROOT 8
#define CL_ROOT 7
/* Room for any set of code lengths: the first level plus, per symbol, at
   most one second-level table of at most 2^(15 - root) entries. */
#define LIT_SIZE ((1u << LIT_ROOT) + 288u * (1u << (15 - LIT_ROOT)))
#define DIST_SIZE ((1u << DIST_ROOT) + 32u * (1u << (15 - DIST_ROOT)))

/* How decoding stopped. */
enum {
    R_BLOCK_END = 0, /* end of a block (internal) */
    R_FULL = 1,      /* the output is full and there is nothing more to look at */
    R_SHORT = 2,     /* the input (up to the current limit) ran out */
    R_ERROR = 3      /* the stream is invalid; err says why */
};

typedef struct {
    const unsigned char *in; /* the stream */
    size_t size;             /* its bytes */
    size_t pos;              /* next byte to load into the bit buffer */
    size_t phantom;          /* zero bytes loaded past the end of the input */
    uint64_t bits;           /* bit buffer, next bit lowest */
    unsigned nbits;          /* bits in it (phantom ones included) */
    uint64_t limit;          /* bits available: all of them, then the piece end once full */
    unsigned char *out0;     /* the output */
    unsigned char *out;      /* next byte to write */
    unsigned char *end;      /* end of the output */
    int full;                /* the output has been filled: looking on to the piece end */
    int done;                /* the stream ended, Adler-32 checked */
    const size_t *chunk_ends; /* the pieces, as clip_inflate_zlib takes them */
    size_t nchunks;           /* entries in chunk_ends */
    size_t piece;             /* largest piece */
    const char *what;         /* error message prefix */
    char *err;                /* where the message goes */
    int fixed_built;          /* lit/dist hold the fixed codes */
    uint32_t lit[LIT_SIZE];   /* literal/length decoding table */
    uint32_t dist[DIST_SIZE]; /* distance decoding table */
} inflater;

static int blocks(inflater *z);
static void mark_full(inflater *z);
static uint64_t consumed(const inflater *z);

int clip_inflate_zlib(const unsigned char *in, size_t size, const size_t *chunk_ends, size_t nchunks, size_t piece,
                      unsigned char *out, size_t out_size, size_t *stop, const char *what, char *err)
{
    inflater *z;
    int r;
    if (size > (SIZE_MAX >> 4)) return clip_error(err, "clip: %s: compressed data is too large", what);
    z = (inflater *)clip_malloc(sizeof(inflater));
    if (!z) return clip_error(err, "clip: %s: out of memory for the inflate tables", what);
    memset(z, 0, offsetof(inflater, lit));
    z->in = in;
    z->size = size;
    z->limit = (uint64_t)size * 8;
    z->out0 = z->out = out;
    z->end = out + out_size;
    z->chunk_ends = chunk_ends;
    z->nchunks = nchunks;
    z->piece = piece ? piece : 1;
    z->what = what;
    z->err = err;
    r = blocks(z);
    if (r == R_ERROR) {
        clip_free(z);
        return -1;
    }
    if (z->out != z->end) {
        size_t have = (size_t)(z->out - z->out0);
        clip_free(z);
        if (r == R_SHORT)
            return clip_error(err, "clip: %s: image data is truncated (%llu of %llu bytes decompressed)", what,
                              (unsigned long long)have, (unsigned long long)out_size);
        return clip_error(err, "clip: %s: compressed stream ends before the image is complete (%llu of %llu bytes)",
                          what, (unsigned long long)have, (unsigned long long)out_size);
    }
    if (!z->full) mark_full(z); /* filled by a match or stored block that went on */
    *stop = (size_t)(z->limit / 8);
    clip_free(z);
    return 0;
}

int clip_inflate_text(const unsigned char *in, size_t size, unsigned char *out, size_t max_out, size_t *produced,
                      int *state, const char *what, char *err)
{
    inflater *z;
    char scratch[CLIP_ERR_SIZE];
    size_t one = size;
    int r;
    *produced = 0;
    *state = 0;
    if (!size) return 0;
    if (size > (SIZE_MAX >> 4)) return clip_error(err, "clip: %s: compressed data is too large", what);
    z = (inflater *)clip_malloc(sizeof(inflater));
    if (!z) return clip_error(err, "clip: %s: out of memory", what);
    memset(z, 0, offsetof(inflater, lit));
    z->in = in;
    z->size = size;
    z->limit = (uint64_t)size * 8;
    z->out0 = z->out = out;
    z->end = out + max_out;
    z->chunk_ends = &one;
    z->nchunks = 1;
    z->piece = size; /* Python hands zlib all of it at once */
    z->what = what;
    z->err = scratch;
    r = blocks(z);
    *produced = (size_t)(z->out - z->out0);
    if (r == R_ERROR)
        *state = 2;
    else if (z->out == z->end && !z->done && r != R_SHORT)
        *state = (consumed(z) + 7) / 8 < size; /* zlib stopped for want of room with input left */
    clip_free(z);
    return 0;
}

/* ------------------------------------------------------------------------
   Bits */

static uint64_t load64le(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

/* At least 56 bits in the buffer; past the end of the input, zeros that
   are counted as phantom (consuming them means the input ran out). */
static void refill(inflater *z)
{
    if (z->size - z->pos >= 8) {
        z->bits |= load64le(z->in + z->pos) << z->nbits;
        z->pos += (63 - z->nbits) >> 3;
        z->nbits |= 56;
        return;
    }
    while (z->nbits < 56) {
        if (z->pos < z->size)
            z->bits |= (uint64_t)z->in[z->pos++] << z->nbits;
        else
            z->phantom++;
        z->nbits += 8;
    }
}

static void drop(inflater *z, unsigned n)
{
    z->bits >>= n;
    z->nbits -= n;
}

static unsigned take(inflater *z, unsigned n)
{
    unsigned v = (unsigned)(z->bits & ((1u << n) - 1));
    drop(z, n);
    return v;
}

static uint64_t consumed(const inflater *z)
{
    return ((uint64_t)z->pos + z->phantom) * 8 - z->nbits;
}

/* Consumed bits past what the input (up to the current limit) holds? */
static int overrun(const inflater *z)
{
    return consumed(z) > z->limit;
}

/* The output has just become full: from here on zlib would see only the
   rest of the piece it was reading when the last byte came out. */
static void mark_full(inflater *z)
{
    uint64_t c = consumed(z);
    size_t byte = c ? (size_t)((c - 1) / 8) : 0, start = 0, end = z->size, i;
    for (i = 0; i < z->nchunks; i++) {
        if (z->chunk_ends[i] > byte) {
            end = z->chunk_ends[i];
            break;
        }
        start = z->chunk_ends[i];
    }
    if (byte >= start && (byte - start) / z->piece < (end - start) / z->piece)
        end = start + ((byte - start) / z->piece + 1) * z->piece;
    if (end > z->size) end = z->size;
    z->limit = (uint64_t)end * 8;
    z->full = 1;
}

static int fail(inflater *z, const char *msg)
{
    if (overrun(z)) return R_SHORT; /* decided by bits that are not there */
    clip_error(z->err, "clip: %s: invalid compressed data (%s)", z->what, msg);
    return R_ERROR;
}

/* ------------------------------------------------------------------------
   Blocks */

static int codes(inflater *z);
static int fixed_tables(inflater *z);
static int dynamic_tables(inflater *z);
static int stored(inflater *z);
static int trailer(inflater *z);

static int blocks(inflater *z)
{
    unsigned cmf, flg;
    refill(z);
    cmf = take(z, 8);
    flg = take(z, 8);
    if (overrun(z)) return R_SHORT;
    if ((cmf * 256 + flg) % 31) return fail(z, "incorrect zlib header check");
    if ((cmf & 15) != 8) return fail(z, "unknown compression method");
    if ((cmf >> 4) > 7) return fail(z, "invalid window size");
    if (flg & 32) return fail(z, "needs a preset dictionary"); /* zlib waits for one that never comes */
    for (;;) {
        unsigned last, type;
        int r;
        if (z->out == z->end && !z->full) mark_full(z);
        refill(z);
        last = take(z, 1);
        type = take(z, 2);
        if (overrun(z)) return R_SHORT;
        if (type == 0)
            r = stored(z);
        else if (type == 1)
            r = fixed_tables(z);
        else if (type == 2)
            r = dynamic_tables(z);
        else
            return fail(z, "invalid block type");
        if (r == R_BLOCK_END && type) r = codes(z);
        if (r != R_BLOCK_END) return r;
        if (last) return trailer(z);
    }
}

/* The Adler-32 after the last block: zlib checks it when all four bytes
   are there. */
static uint32_t adler32(const unsigned char *p, size_t n)
{
    uint32_t a = 1, b = 0;
    while (n) {
        size_t k = n < 5552 ? n : 5552, i;
        for (i = 0; i < k; i++) {
            a += p[i];
            b += a;
        }
        a %= 65521;
        b %= 65521;
        p += k;
        n -= k;
    }
    return b << 16 | a;
}

static int trailer(inflater *z)
{
    uint32_t want;
    unsigned i;
    if (z->out == z->end && !z->full) mark_full(z);
    drop(z, z->nbits & 7);
    refill(z);
    want = 0;
    for (i = 0; i < 4; i++) want = want << 8 | take(z, 8);
    if (overrun(z)) return R_SHORT;
    if (want != adler32(z->out0, (size_t)(z->out - z->out0))) return fail(z, "incorrect Adler-32 data check");
    z->done = 1;
    return R_FULL; /* clip_inflate_zlib tells a stream that ended early */
}

static int stored(inflater *z)
{
    size_t buffered, len, nlen, need;
    drop(z, z->nbits & 7);
    /* hand the whole bytes still in the bit buffer back to the input */
    buffered = z->nbits / 8;
    if (z->phantom > buffered) return R_SHORT;
    z->pos -= buffered - z->phantom;
    z->bits = 0;
    z->nbits = 0;
    z->phantom = 0;
    if ((uint64_t)z->pos * 8 + 32 > z->limit) return R_SHORT;
    len = (size_t)z->in[z->pos] | (size_t)z->in[z->pos + 1] << 8;
    nlen = (size_t)z->in[z->pos + 2] | (size_t)z->in[z->pos + 3] << 8;
    if (len != (~nlen & 0xffff)) return fail(z, "invalid stored block lengths");
    z->pos += 4;
    if (!len) return R_BLOCK_END;
    if (z->out == z->end) return R_FULL;
    need = len < (size_t)(z->end - z->out) ? len : (size_t)(z->end - z->out);
    if ((uint64_t)(z->pos + need) * 8 > z->limit) {
        size_t have = (size_t)(z->limit / 8) > z->pos ? (size_t)(z->limit / 8) - z->pos : 0;
        memcpy(z->out, z->in + z->pos, have); /* what there is, for the message */
        z->out += have;
        z->pos += have;
        return R_SHORT;
    }
    memcpy(z->out, z->in + z->pos, need);
    z->out += need;
    z->pos += need;
    return need < len ? R_FULL : R_BLOCK_END;
}

/* ------------------------------------------------------------------------
   Huffman tables */

static const unsigned short len_base[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                            31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const unsigned char len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                            2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const unsigned short dist_base[30] = {1,   2,   3,   4,   5,   7,    9,    13,   17,   25,
                                             33,  49,  65,  97,  129, 193,  257,  385,  513,  769,
                                             1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const unsigned char dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                             6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
/* the order the code length code's lengths come in */
static const unsigned char cl_order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

static uint32_t lit_entry(unsigned s)
{
    if (s < 256) return ENTRY(K_LIT, 0, s);
    if (s == 256) return ENTRY(K_EOB, 0, 0);
    if (s < 286) return ENTRY(K_LEN, len_extra[s - 257], len_base[s - 257]);
    return ENTRY(K_BAD, 0, 0); /* 286, 287: fixed codes that mean nothing */
}

static uint32_t dist_entry(unsigned s)
{
    return s < 30 ? ENTRY(K_LEN, dist_extra[s], dist_base[s]) : ENTRY(K_BAD, 0, 0);
}

/* Build a two-level table for the code with lengths lens[0 .. n). As
   zlib: an over-subscribed set is refused, and so is an incomplete one,
   except a single code of one bit (the missing half decodes as invalid);
   no codes at all gives a table of invalid entries. Returns 0 or -1. */
static int build(uint32_t *t, size_t cap, unsigned root, const unsigned char *lens, unsigned n, int is_dist)
{
    unsigned count[16], next[16], s, len, max = 0, i;
    unsigned char maxlen[1u << LIT_ROOT];
    size_t used = (size_t)1 << root;
    int left = 1;
    memset(count, 0, sizeof count);
    for (s = 0; s < n; s++) count[lens[s]]++;
    for (len = 1; len <= 15; len++)
        if (count[len]) max = len;
    for (i = 0; i < (1u << root); i++) t[i] = ENTRY(K_BAD, 0, 0) | 1u;
    if (!max) return 0;
    for (len = 1; len <= 15; len++) {
        left = left * 2 - (int)count[len];
        if (left < 0) return -1;
    }
    if (left > 0 && max != 1) return -1;
    next[1] = 0;
    for (len = 2; len <= 15; len++) next[len] = (next[len - 1] + count[len - 1]) << 1;
    /* first pass: the longest code behind each first-level slot */
    memset(maxlen, 0, (size_t)1 << root);
    {
        unsigned nx[16];
        memcpy(nx, next, sizeof nx);
        for (s = 0; s < n; s++) {
            unsigned code, rev = 0, b;
            len = lens[s];
            if (!len) continue;
            code = nx[len]++;
            for (b = 0; b < len; b++) rev |= ((code >> b) & 1u) << (len - 1 - b);
            if (len > root && len > maxlen[rev & ((1u << root) - 1)]) maxlen[rev & ((1u << root) - 1)] = (unsigned char)len;
        }
    }
    for (i = 0; i < (1u << root); i++) {
        if (maxlen[i]) {
            size_t sz = (size_t)1 << (maxlen[i] - root), k;
            if (used + sz > cap) return -1;
            t[i] = ENTRY(K_SUB, maxlen[i] - root, used) | root;
            for (k = 0; k < sz; k++) t[used + k] = ENTRY(K_BAD, 0, 0) | 1u;
            used += sz;
        }
    }
    for (s = 0; s < n; s++) {
        unsigned code, rev = 0, b;
        uint32_t e;
        len = lens[s];
        if (!len) continue;
        code = next[len]++;
        for (b = 0; b < len; b++) rev |= ((code >> b) & 1u) << (len - 1 - b);
        e = is_dist ? dist_entry(s) : lit_entry(s);
        if (len <= root) {
            for (i = rev; i < (1u << root); i += 1u << len) t[i] = e | len;
        } else {
            uint32_t head = t[rev & ((1u << root) - 1)];
            uint32_t *sub = t + E_VAL(head);
            unsigned sbits = E_EXTRA(head);
            for (i = rev >> root; i < (1u << sbits); i += 1u << (len - root)) sub[i] = e | (len - root);
        }
    }
    return 0;
}

static int fixed_tables(inflater *z)
{
    unsigned char lens[288];
    unsigned i;
    if (z->fixed_built) return R_BLOCK_END;
    for (i = 0; i < 144; i++) lens[i] = 8;
    for (; i < 256; i++) lens[i] = 9;
    for (; i < 280; i++) lens[i] = 7;
    for (; i < 288; i++) lens[i] = 8;
    build(z->lit, LIT_SIZE, LIT_ROOT, lens, 288, 0);
    for (i = 0; i < 32; i++) lens[i] = 5;
    build(z->dist, DIST_SIZE, DIST_ROOT, lens, 32, 1);
    z->fixed_built = 1;
    return R_BLOCK_END;
}

static int dynamic_tables(inflater *z)
{
    unsigned char cl_lens[19], lens[286 + 30];
    uint16_t cl_table[1u << CL_ROOT]; /* symbol | bits << 8 */
    unsigned hlit, hdist, hclen, i, have, total;
    z->fixed_built = 0;
    refill(z);
    hlit = take(z, 5) + 257;
    hdist = take(z, 5) + 1;
    hclen = take(z, 4) + 4;
    if (overrun(z)) return R_SHORT;
    if (hlit > 286 || hdist > 30) return fail(z, "too many length or distance symbols");
    memset(cl_lens, 0, sizeof cl_lens);
    for (i = 0; i < hclen; i++) {
        refill(z);
        cl_lens[cl_order[i]] = (unsigned char)take(z, 3);
    }
    if (overrun(z)) return R_SHORT;
    {
        /* the code length code: at most 7 bits, one level */
        unsigned count[8] = {0, 0, 0, 0, 0, 0, 0, 0}, next[8], len, s, max = 0;
        int left = 1;
        for (s = 0; s < 19; s++) count[cl_lens[s]]++;
        for (len = 1; len <= 7; len++)
            if (count[len]) max = len;
        for (i = 0; i < (1u << CL_ROOT); i++) cl_table[i] = 1u << 8; /* no codes: zlib reads each as 0, one bit */
        if (max) {
            for (len = 1; len <= 7; len++) {
                left = left * 2 - (int)count[len];
                if (left < 0) break;
            }
            if (left != 0) return fail(z, "invalid code lengths set");
            next[1] = 0;
            for (len = 2; len <= 7; len++) next[len] = (next[len - 1] + count[len - 1]) << 1;
            for (s = 0; s < 19; s++) {
                unsigned code, rev = 0, b;
                len = cl_lens[s];
                if (!len) continue;
                code = next[len]++;
                for (b = 0; b < len; b++) rev |= ((code >> b) & 1u) << (len - 1 - b);
                for (i = rev; i < (1u << CL_ROOT); i += 1u << len) cl_table[i] = (uint16_t)(s | len << 8);
            }
        }
    }
    total = hlit + hdist;
    have = 0;
    while (have < total) {
        unsigned e, sym, rep = 0, val = 0;
        refill(z);
        e = cl_table[z->bits & ((1u << CL_ROOT) - 1)];
        drop(z, e >> 8);
        sym = e & 0xff;
        if (sym < 16) {
            if (overrun(z)) return R_SHORT;
            lens[have++] = (unsigned char)sym;
            continue;
        }
        if (sym == 16) {
            rep = 3 + take(z, 2);
            if (overrun(z)) return R_SHORT;
            if (have == 0) return fail(z, "invalid bit length repeat");
            val = lens[have - 1];
        } else if (sym == 17) {
            rep = 3 + take(z, 3);
        } else {
            rep = 11 + take(z, 7);
        }
        if (overrun(z)) return R_SHORT;
        if (have + rep > total) return fail(z, "invalid bit length repeat");
        while (rep--) lens[have++] = (unsigned char)val;
    }
    if (lens[256] == 0) return fail(z, "invalid code -- missing end-of-block");
    if (build(z->lit, LIT_SIZE, LIT_ROOT, lens, hlit, 0)) return fail(z, "invalid literal/lengths set");
    if (build(z->dist, DIST_SIZE, DIST_ROOT, lens + hlit, hdist, 1)) return fail(z, "invalid distances set");
    return R_BLOCK_END;
}

/* ------------------------------------------------------------------------
   Codes: the hot loop */

/* Copy a match of len bytes from dist back. The fast loop leaves room for
   the up to 7 bytes the 8-byte copies write past the end. */
static unsigned char *copy_match(unsigned char *out, size_t dist, size_t len, int slack)
{
    const unsigned char *src = out - dist;
    if (dist >= 8 && slack) {
        unsigned char *stop = out + len;
        do {
            memcpy(out, src, 8);
            out += 8;
            src += 8;
        } while (out < stop);
        return stop;
    }
    if (dist == 1) {
        memset(out, src[0], len);
        return out + len;
    }
    while (len--) *out++ = *src++;
    return out;
}

static int codes(inflater *z)
{
    const uint32_t *lt = z->lit, *dt = z->dist;
    unsigned char *out = z->out;
    for (;;) {
        uint32_t e;
        size_t len, dist;
        /* fast: room for the longest match plus slack, input for a whole
           length/distance pair, so nothing is checked per bit; the state
           lives in locals (the output bytes could alias the struct) */
        if (z->end - out >= 266 && z->size - z->pos >= 8) {
            uint64_t bits = z->bits;
            unsigned nbits = z->nbits;
            size_t pos = z->pos, last = z->size - 8;
            const unsigned char *in = z->in, *out0 = z->out0;
            const unsigned char *stop = z->end - 266;
            const char *bad = NULL;
            int eob = 0;
            while (out <= stop && pos <= last) {
                bits |= load64le(in + pos) << nbits;
                pos += (63 - nbits) >> 3;
                nbits |= 56;
                e = lt[bits & ((1u << LIT_ROOT) - 1)];
                if (E_KIND(e) == K_SUB) {
                    bits >>= LIT_ROOT;
                    nbits -= LIT_ROOT;
                    e = lt[E_VAL(e) + (bits & ((1u << E_EXTRA(e)) - 1))];
                }
                bits >>= E_BITS(e);
                nbits -= E_BITS(e);
                if (E_KIND(e) == K_LIT) {
                    *out++ = (unsigned char)E_VAL(e);
                    /* at least 41 bits left: a second literal needs no refill */
                    e = lt[bits & ((1u << LIT_ROOT) - 1)];
                    if (E_KIND(e) == K_LIT) {
                        bits >>= E_BITS(e);
                        nbits -= E_BITS(e);
                        *out++ = (unsigned char)E_VAL(e);
                    }
                    continue;
                }
                if (E_KIND(e) != K_LEN) {
                    if (E_KIND(e) == K_EOB)
                        eob = 1;
                    else
                        bad = "invalid literal/length code";
                    break;
                }
                len = E_VAL(e) + (size_t)(bits & ((1u << E_EXTRA(e)) - 1));
                bits >>= E_EXTRA(e);
                nbits -= E_EXTRA(e);
                e = dt[bits & ((1u << DIST_ROOT) - 1)];
                if (E_KIND(e) == K_SUB) {
                    bits >>= DIST_ROOT;
                    nbits -= DIST_ROOT;
                    e = dt[E_VAL(e) + (bits & ((1u << E_EXTRA(e)) - 1))];
                }
                bits >>= E_BITS(e);
                nbits -= E_BITS(e);
                if (E_KIND(e) != K_LEN) {
                    bad = "invalid distance code";
                    break;
                }
                dist = E_VAL(e) + (size_t)(bits & ((1u << E_EXTRA(e)) - 1));
                bits >>= E_EXTRA(e);
                nbits -= E_EXTRA(e);
                if (dist > (size_t)(out - out0)) {
                    bad = "invalid distance too far back";
                    break;
                }
                out = copy_match(out, dist, len, 1);
            }
            z->bits = bits;
            z->nbits = nbits;
            z->pos = pos;
            z->out = out;
            if (bad) return fail(z, bad);
            if (eob) return R_BLOCK_END;
        }
        /* careful: one symbol at a time, every step checked */
        if (out == z->end && !z->full) {
            z->out = out;
            mark_full(z);
        }
        refill(z);
        e = lt[z->bits & ((1u << LIT_ROOT) - 1)];
        if (E_KIND(e) == K_SUB) {
            drop(z, LIT_ROOT);
            e = lt[E_VAL(e) + (z->bits & ((1u << E_EXTRA(e)) - 1))];
        }
        drop(z, E_BITS(e));
        z->out = out;
        if (overrun(z)) return R_SHORT;
        if (E_KIND(e) == K_LIT) {
            if (out == z->end) return R_FULL;
            *out++ = (unsigned char)E_VAL(e);
            continue;
        }
        if (E_KIND(e) == K_EOB) return R_BLOCK_END;
        if (E_KIND(e) != K_LEN) return fail(z, "invalid literal/length code");
        len = E_VAL(e) + take(z, E_EXTRA(e));
        if (overrun(z)) return R_SHORT;
        e = dt[z->bits & ((1u << DIST_ROOT) - 1)];
        if (E_KIND(e) == K_SUB) {
            drop(z, DIST_ROOT);
            e = dt[E_VAL(e) + (z->bits & ((1u << E_EXTRA(e)) - 1))];
        }
        drop(z, E_BITS(e));
        if (E_KIND(e) != K_LEN) return fail(z, "invalid distance code");
        dist = E_VAL(e) + take(z, E_EXTRA(e));
        if (overrun(z)) return R_SHORT;
        if (out == z->end) return R_FULL;
        if (dist > (size_t)(out - z->out0)) return fail(z, "invalid distance too far back");
        if (len > (size_t)(z->end - out)) {
            z->out = copy_match(out, dist, (size_t)(z->end - out), 0);
            return R_FULL;
        }
        out = copy_match(out, dist, len, 0);
    }
}
