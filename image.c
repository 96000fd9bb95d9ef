/* image.c - image input for clip.c: PPM/PGM and JPEG decoding (the JPEG
   decoder gives libjpeg-turbo's bytes), and the resize and center crop of
   Hugging Face's CLIPImageProcessor, bit-exact with Pillow.

   Every size a file controls is checked before anything is allocated. */
#include "clip.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#define OMP(directive) _Pragma(directive)
#else
#define OMP(directive)
#endif

/* Pillow refuses images above twice Image.MAX_IMAGE_PIXELS as decompression
   bombs; so do we, before allocating. (The fuzzers build with a lower one.) */
#ifndef CLIP_MAX_PIXELS
#define CLIP_MAX_PIXELS 178956970LL
#endif

static int fail(char *err, const char *fmt, ...)
{
    va_list ap;
    if (err) {
        va_start(ap, fmt);
        vsnprintf(err, CLIP_ERR_SIZE, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void clip_image_free(clip_image *img)
{
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}

/* Allocate a w x h RGB image, refusing sizes past the pixel limit. */
static int image_alloc(clip_image *img, long long w, long long h, char *err)
{
    img->rgb = NULL;
    img->width = img->height = 0;
    if (w <= 0 || h <= 0) return fail(err, "clip: image has no pixels (%lldx%lld)", w, h);
    if (w > INT_MAX || h > INT_MAX || w * h > CLIP_MAX_PIXELS)
        return fail(err, "clip: image of %lldx%lld pixels is over the limit of %lld pixels (a decompression bomb?)", w,
                    h, CLIP_MAX_PIXELS);
    if ((unsigned long long)(w * h) > (SIZE_MAX - 1) / 3)
        return fail(err, "clip: image of %lldx%lld pixels does not fit this platform's memory", w, h);
    img->rgb = (unsigned char *)malloc((size_t)(w * h) * 3);
    if (!img->rgb) return fail(err, "clip: out of memory for a %lldx%lld image", w, h);
    img->width = (int)w;
    img->height = (int)h;
    return 0;
}

/* ------------------------------------------------------------------------
   PPM / PGM (netpbm): P6 and P5 binary, P3 and P2 ASCII. Values are scaled
   to 8 bits as Pillow's PpmImagePlugin does: round(v / maxval * 255), with
   Python's round-half-even; 16-bit gray goes through Pillow's mode "I" and
   its clipping conversion to 8 bits. */

typedef struct {
    const unsigned char *p, *end;
} cursor;

/* Next header token: an unsigned decimal number after whitespace and
   comments. Returns -1 on a missing or malformed number. */
static long long ppm_number(cursor *c)
{
    long long v = 0;
    int digits = 0;
    for (;;) {
        while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r' || *c->p == '\v' ||
                                 *c->p == '\f'))
            c->p++;
        if (c->p < c->end && *c->p == '#') {
            while (c->p < c->end && *c->p != '\n' && *c->p != '\r') c->p++;
            continue;
        }
        break;
    }
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (v > 100000000000LL) return -1; /* absurdly long: refuse rather than overflow */
        v = v * 10 + (*c->p - '0');
        c->p++;
        digits++;
    }
    if (!digits) return -1;
    if (c->p < c->end && !(*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r' || *c->p == '\v' ||
                           *c->p == '\f' || *c->p == '#'))
        return -1;
    return v;
}

static unsigned char scale_to_8bit(long v, long maxval, int gray16)
{
    double r;
    if (gray16) {
        /* mode "I": round(v / maxval * 65535), then convert("L") clips at 255 */
        r = rint((double)v / (double)maxval * 65535.0);
        return r >= 255.0 ? 255 : (unsigned char)r;
    }
    r = rint((double)v / (double)maxval * 255.0);
    return r >= 255.0 ? 255 : (unsigned char)r;
}

static int decode_pnm(clip_image *img, const unsigned char *data, size_t size, char *err)
{
    cursor c;
    int kind = data[1] - '0', channels = (kind == 3 || kind == 6) ? 3 : 1, plain = kind == 2 || kind == 3;
    long long w, h, maxval;
    long long npix, i;
    int gray16, wide;
    c.p = data + 2;
    c.end = data + size;
    w = ppm_number(&c);
    h = ppm_number(&c);
    maxval = ppm_number(&c);
    if (w < 0 || h < 0 || maxval < 0) return fail(err, "clip: PNM header is malformed (width, height, maxval)");
    if (maxval < 1 || maxval > 65535) return fail(err, "clip: PNM maxval %lld is outside 1..65535", maxval);
    if (c.p >= c.end && !plain) return fail(err, "clip: PNM image data is missing");
    c.p++; /* the single whitespace byte that ends the header */
    if (image_alloc(img, w, h, err)) return -1;
    npix = w * h;
    gray16 = channels == 1 && maxval > 255;
    wide = maxval > 255;
    if (!plain) {
        size_t bytes_per = (size_t)channels * (wide ? 2 : 1);
        if ((size_t)(c.end - c.p) / bytes_per < (size_t)npix) {
            clip_image_free(img);
            return fail(err, "clip: PNM image data is truncated (%lldx%lld needs %llu bytes, %llu present)", w, h,
                        (unsigned long long)npix * bytes_per, (unsigned long long)(c.end - c.p));
        }
        for (i = 0; i < npix; i++) {
            unsigned char px[3];
            int k;
            for (k = 0; k < channels; k++) {
                long v;
                if (wide) {
                    v = (long)c.p[0] << 8 | c.p[1];
                    c.p += 2;
                } else {
                    v = *c.p++;
                }
                if (maxval == 255)
                    px[k] = (unsigned char)v;
                else if (gray16 && maxval == 65535)
                    px[k] = v > 255 ? 255 : (unsigned char)v; /* raw "I;16B", then clipped */
                else
                    px[k] = v > maxval ? (gray16 ? 255 : 255) : scale_to_8bit(v, (long)maxval, gray16);
            }
            if (channels == 1) px[1] = px[2] = px[0];
            memcpy(img->rgb + i * 3, px, 3);
        }
    } else {
        for (i = 0; i < npix; i++) {
            unsigned char px[3];
            int k;
            for (k = 0; k < channels; k++) {
                long long v = ppm_number(&c);
                if (v < 0) {
                    clip_image_free(img);
                    return fail(err, "clip: plain PNM data is truncated or malformed at pixel %lld", i);
                }
                if (v > maxval) {
                    clip_image_free(img);
                    return fail(err, "clip: plain PNM value %lld is above maxval %lld", v, maxval);
                }
                px[k] = maxval == 255 ? (unsigned char)v : scale_to_8bit((long)v, (long)maxval, gray16);
            }
            if (channels == 1) px[1] = px[2] = px[0];
            memcpy(img->rgb + i * 3, px, 3);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
   JPEG: baseline, extended and progressive, Huffman- or arithmetic-coded,
   8-bit, gray or three components (YCbCr, or RGB by Adobe marker /
   component ids), any integral sampling factors. The output is what
   libjpeg-turbo's default decompression gives (djpeg, Pillow): the same
   "islow" integer IDCT, the same upsamplers (triangle-filter "fancy" ones
   for 2x1, 1x2 and 2x2 with libjpeg-turbo's conditions, replication
   otherwise, with its edge handling), the same fixed-point YCbCr->RGB
   tables.

   Reading order: the headers, the Huffman decoder, the arithmetic decoder,
   the IDCT, then the output stage (see there) that turns rows of MCUs into
   pixels, overlapped with the entropy decoding where the file allows. */

#define JPEG_MAX_COMPONENTS 4
/* Each scan is a pass over the coefficients, so their number bounds the work
   a file can ask for; encoders write a dozen or so, a few dozen at most. */
#define JPEG_MAX_SCANS 1000

/* Whether the target has 32-bit vector multiplies: the horizontal resize
   pass takes the loop shape that vectorizes well there, and the plain one
   (faster on SSE2-only and scalar targets) elsewhere. */
#if defined(__SSE4_1__) || defined(__ARM_NEON) || defined(__aarch64__)
#define VECTOR_MUL32 1
#else
#define VECTOR_MUL32 0
#endif

/* zigzag position -> natural (row-major) position, padded with 63 so that a
   corrupt run length past the band stays inside the block */
static const unsigned char jpeg_natural[64 + 16] = {
    0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13,
    6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31,
    39, 46, 53, 60, 61, 54, 47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63};

#define HUFF_FAST_BITS 9
#define AC_FAST_BITS 10
#define AC_FAST_EOB 64

typedef struct {
    int defined;
    unsigned char vals[256];
    int32_t maxcode[18];   /* largest code of each length, -1 if none; [17] sentinel */
    int32_t valoffset[17]; /* vals index of a code of length l = code + valoffset[l] */
    uint16_t fast[1 << HUFF_FAST_BITS]; /* (length << 8 | value) for short codes, 0 if longer */
    /* AC symbols whose code and extra bits together fit AC_FAST_BITS, decoded
       in one lookup: (value + 32768) << 16 | run << 8 | bits used, with run
       AC_FAST_EOB for end-of-block; 0 sends the decoder the long way */
    uint32_t acfast[1 << AC_FAST_BITS];
} huff_table;

typedef struct {
    int id, h, v, tq;          /* component id, sampling factors, quant table */
    int bw, bh;                /* blocks stored (whole MCUs) */
    int dw, dh;                /* downsampled size in samples (libjpeg's downsampled_width/height) */
    int dc_tbl, ac_tbl;        /* tables of the current scan */
    int32_t dc_pred;
    int dc_context;            /* arithmetic DC: the conditioning bin of the last difference */
    int latched;               /* q holds the quant table (fixed at the component's first scan, as libjpeg) */
    uint16_t q[64];            /* natural order */
    int16_t *coef;             /* (bh, bw, 64), natural order; all scans buffered (progressive, multi-scan) */
    int bx0, bx1;              /* block columns the output needs */
} jpeg_comp;

typedef struct {
    const unsigned char *p, *end; /* the file */
    int w, h, ncomp, progressive, hmax, vmax, mcux, mcuy;
    int restart_interval;
    int saw_jfif, saw_adobe, adobe_transform;
    uint16_t quant[4][64];     /* natural order */
    int quant_defined[4];
    huff_table dc[4], ac[4];
    jpeg_comp comp[JPEG_MAX_COMPONENTS];
    int seen_sof;
    int rgb;                   /* 3 components that are RGB, not YCbCr (decided at the first scan) */
    /* the current scan */
    int ns, ss, se, ah, al;
    jpeg_comp *sc[JPEG_MAX_COMPONENTS];
    int mcus, per_row;         /* MCUs in the scan; blocks per row of a one-component scan */
    int todo, rst;             /* MCUs left in the restart interval; the next RSTn */
    int failed_at;             /* MCU row whose entropy decoding failed, or -1 */
    /* arithmetic coding (SOF9, SOF10) */
    int arith;
    unsigned char dc_L[16], dc_U[16], ac_K[16]; /* DAC conditioning, per table */
    unsigned char dc_stats[16][64], ac_stats[16][256]; /* probability states: MPS << 7 | state */
    unsigned char fixed_bin;   /* the fixed 0.5 estimate (state 113) */
    int64_t ar_c, ar_a;        /* the C and A registers */
    int ar_ct;                 /* bits left in C's input part; -16 before the first two bytes */
    int ar_truncated;          /* the data ended (not at a marker) while decoding */
    /* entropy decoder state */
    uint64_t bits;             /* bit buffer, next bit at the top */
    int nbits;
    int fill_bits;             /* zero bits inserted past a marker or the end of data */
    int marker;                /* the marker that stopped the bit reader, or 0 */
    int eobrun;
    char *err;
} jpeg_dec;

static int jfail(jpeg_dec *d, const char *fmt, ...)
{
    va_list ap;
    if (d->err) {
        char tmp[CLIP_ERR_SIZE - 16];
        va_start(ap, fmt);
        vsnprintf(tmp, sizeof tmp, fmt, ap);
        va_end(ap);
        snprintf(d->err, CLIP_ERR_SIZE, "clip: JPEG: %s", tmp);
    }
    return -1;
}

static int16_t wrap16(int32_t v)
{
    v &= 0xFFFF;
    return (int16_t)(v >= 0x8000 ? v - 0x10000 : v);
}

/* ---- markers ---- */

static int read_u16(jpeg_dec *d, int *v)
{
    if (d->end - d->p < 2) return -1;
    *v = d->p[0] << 8 | d->p[1];
    d->p += 2;
    return 0;
}

/* A marker segment's payload: [*seg, *seg + *len) */
static int segment(jpeg_dec *d, const unsigned char **seg, int *len, const char *what)
{
    int n;
    *seg = d->p;
    *len = 0;
    if (read_u16(d, &n) || n < 2 || n - 2 > d->end - d->p) return jfail(d, "%s segment length is wrong or truncated", what);
    *seg = d->p;
    *len = n - 2;
    d->p += n - 2;
    return 0;
}

static int parse_dqt(jpeg_dec *d)
{
    const unsigned char *s;
    int len, i;
    if (segment(d, &s, &len, "DQT")) return -1;
    while (len > 0) {
        int pq = s[0] >> 4, tq = s[0] & 15, size = pq ? 129 : 65;
        if (pq > 1 || tq > 3) return jfail(d, "DQT: table %d with precision %d is invalid", tq, pq);
        if (len < size) return jfail(d, "DQT: truncated table");
        for (i = 0; i < 64; i++)
            d->quant[tq][jpeg_natural[i]] = (uint16_t)(pq ? s[1 + 2 * i] << 8 | s[2 + 2 * i] : s[1 + i]);
        d->quant_defined[tq] = 1;
        s += size;
        len -= size;
    }
    return 0;
}

/* JPEG's EXTEND: an n-bit value v as a signed coefficient */
static int32_t extend(int32_t v, int n)
{
    return v < (1 << (n - 1)) ? v - (1 << n) + 1 : v;
}

static int build_huff(jpeg_dec *d, huff_table *t, const unsigned char *counts, const unsigned char *vals, int n,
                      int is_dc)
{
    int l, i, k = 0;
    int32_t code = 0;
    memset(t, 0, sizeof *t);
    memcpy(t->vals, vals, (size_t)n);
    for (l = 1; l <= 16; l++) {
        t->valoffset[l] = k - code;
        if (counts[l - 1]) {
            for (i = 0; i < counts[l - 1]; i++, k++, code++) {
                if (code >= (1 << l))
                    return jfail(d, "DHT: the code lengths overflow (more codes than fit in %d bits)", l);
                if (l <= HUFF_FAST_BITS) {
                    int shift = HUFF_FAST_BITS - l, j;
                    for (j = 0; j < 1 << shift; j++)
                        t->fast[(code << shift) | j] = (uint16_t)(l << 8 | vals[k]);
                }
            }
            t->maxcode[l] = code - 1;
        } else {
            t->maxcode[l] = -1;
        }
        code <<= 1;
    }
    t->maxcode[17] = 0x7FFFFFFF;
    /* the one-lookup AC table: every code of length l <= AC_FAST_BITS whose
       s extra bits also fit, for each value of those bits */
    for (l = 1, k = 0, code = 0; l <= AC_FAST_BITS; l++, code <<= 1)
        for (i = 0; i < counts[l - 1]; i++, k++, code++) {
            int rs = vals[k], r = rs >> 4, s = rs & 15, v, j, room = AC_FAST_BITS - l - s;
            if (s == 0 && rs == 0) { /* end of block */
                for (j = 0; j < 1 << (AC_FAST_BITS - l); j++)
                    t->acfast[(code << (AC_FAST_BITS - l)) | j] = (uint32_t)(AC_FAST_EOB << 8 | l);
                continue;
            }
            if (s == 0 || room < 0) continue;
            for (v = 0; v < 1 << s; v++)
                for (j = 0; j < 1 << room; j++)
                    t->acfast[(((code << s) | v) << room) | j] =
                        (uint32_t)(extend(v, s) + 32768) << 16 | (uint32_t)(r << 8 | (l + s));
        }
    if (is_dc)
        for (i = 0; i < n; i++)
            if (vals[i] > 15) return jfail(d, "DHT: DC table value %d is over 15", vals[i]);
    t->defined = 1;
    return 0;
}

static int parse_dht(jpeg_dec *d)
{
    const unsigned char *s;
    int len, i;
    if (segment(d, &s, &len, "DHT")) return -1;
    while (len > 0) {
        int tc = s[0] >> 4, th = s[0] & 15, n = 0;
        if (tc > 1 || th > 3) return jfail(d, "DHT: table class %d id %d is invalid", tc, th);
        if (len < 17) return jfail(d, "DHT: truncated table");
        for (i = 0; i < 16; i++) n += s[1 + i];
        if (n > 256 || len < 17 + n) return jfail(d, "DHT: %d codes (at most 256, and the segment must hold them)", n);
        if (build_huff(d, tc ? &d->ac[th] : &d->dc[th], s + 1, s + 17, n, tc == 0)) return -1;
        s += 17 + n;
        len -= 17 + n;
    }
    return 0;
}

/* Arithmetic conditioning (DAC): L and U for a DC table, K for an AC one. */
static int parse_dac(jpeg_dec *d)
{
    const unsigned char *s;
    int len;
    if (segment(d, &s, &len, "DAC")) return -1;
    for (; len >= 2; s += 2, len -= 2) {
        int tc = s[0] >> 4, tb = s[0] & 15;
        if (tc > 1) return jfail(d, "DAC: table class %d is invalid", tc);
        if (tc) {
            d->ac_K[tb] = s[1];
        } else {
            if ((s[1] & 15) > s[1] >> 4) return jfail(d, "DAC: DC conditioning L=%d over U=%d", s[1] & 15, s[1] >> 4);
            d->dc_L[tb] = (unsigned char)(s[1] & 15);
            d->dc_U[tb] = (unsigned char)(s[1] >> 4);
        }
    }
    if (len) return jfail(d, "DAC segment is malformed");
    return 0;
}

static int parse_sof(jpeg_dec *d, int marker)
{
    const unsigned char *s;
    int len, i, j;
    long long blocks = 0;
    if (segment(d, &s, &len, "SOF")) return -1;
    if (d->seen_sof) return jfail(d, "more than one frame header");
    d->seen_sof = 1;
    d->progressive = marker == 0xC2 || marker == 0xCA;
    d->arith = marker == 0xC9 || marker == 0xCA;
    if (len < 6) return jfail(d, "frame header too short");
    if (s[0] != 8) return jfail(d, "%d-bit samples are not supported (only 8-bit JPEG)", s[0]);
    d->h = s[1] << 8 | s[2];
    d->w = s[3] << 8 | s[4];
    d->ncomp = s[5];
    if (d->h == 0) return jfail(d, "height 0 (a DNL marker) is not supported");
    if (d->w == 0) return jfail(d, "image width is 0");
    if (d->ncomp == 4) return jfail(d, "CMYK/YCCK (4-component) JPEG is not supported; convert it to RGB first");
    if (d->ncomp != 1 && d->ncomp != 3) return jfail(d, "%d components are not supported (1 or 3 are)", d->ncomp);
    if (len < 6 + 3 * d->ncomp) return jfail(d, "frame header too short");
    if ((long long)d->w * d->h > CLIP_MAX_PIXELS)
        return jfail(d, "%dx%d pixels is over the limit of %lld pixels (a decompression bomb?)", d->w, d->h,
                     CLIP_MAX_PIXELS);
    d->hmax = d->vmax = 1;
    for (i = 0; i < d->ncomp; i++) {
        jpeg_comp *c = &d->comp[i];
        c->id = s[6 + 3 * i];
        c->h = s[7 + 3 * i] >> 4;
        c->v = s[7 + 3 * i] & 15;
        c->tq = s[8 + 3 * i];
        if (c->h < 1 || c->h > 4 || c->v < 1 || c->v > 4 || c->tq > 3)
            return jfail(d, "component %d: sampling %dx%d or quant table %d is invalid", i, c->h, c->v, c->tq);
        for (j = 0; j < i; j++)
            if (d->comp[j].id == c->id) return jfail(d, "two components share the id %d", c->id);
        if (c->h > d->hmax) d->hmax = c->h;
        if (c->v > d->vmax) d->vmax = c->v;
    }
    d->mcux = (d->w + 8 * d->hmax - 1) / (8 * d->hmax);
    d->mcuy = (d->h + 8 * d->vmax - 1) / (8 * d->vmax);
    for (i = 0; i < d->ncomp; i++) {
        jpeg_comp *c = &d->comp[i];
        if (d->hmax % c->h || d->vmax % c->v)
            return jfail(d, "fractional sampling (%dx%d against %dx%d) is not supported", c->h, c->v, d->hmax,
                         d->vmax);
        c->bw = d->mcux * c->h;
        c->bh = d->mcuy * c->v;
        c->dw = (int)(((long long)d->w * c->h + d->hmax - 1) / d->hmax);
        c->dh = (int)(((long long)d->h * c->v + d->vmax - 1) / d->vmax);
        blocks += (long long)c->bw * c->bh;
    }
    /* blocks is at most about 16 * pixels / 64 * ncomp: bounded by the pixel limit */
    if ((unsigned long long)blocks > SIZE_MAX / (64 * sizeof(int16_t) + 64))
        return jfail(d, "image too large for this platform");
    return 0;
}

/* ---- the entropy decoder ---- */

static uint64_t load_be64(const unsigned char *p)
{
    return (uint64_t)p[0] << 56 | (uint64_t)p[1] << 48 | (uint64_t)p[2] << 40 | (uint64_t)p[3] << 32 |
           (uint64_t)p[4] << 24 | (uint64_t)p[5] << 16 | (uint64_t)p[6] << 8 | (uint64_t)p[7];
}

/* Top up the bit buffer to at least 57 bits. Whole bytes go in at once while
   the next eight hold no 0xFF (the common case); otherwise byte by byte,
   dropping the stuffed zero after 0xFF and stopping at a marker. Past a
   marker or the end of the data it inserts zeros (as libjpeg does) and
   counts them. */
static void fill_bits(jpeg_dec *d)
{
    if (!d->marker && d->end - d->p >= 8) {
        uint64_t v = load_be64(d->p);
        /* a byte of v is 0xFF exactly when that byte of ~v is zero */
        if (!((~v - 0x0101010101010101u) & v & 0x8080808080808080u)) {
            int n = (64 - d->nbits) >> 3; /* whole bytes that fit: 1..8 */
            d->bits |= (v >> (64 - 8 * n)) << (64 - d->nbits - 8 * n);
            d->p += n;
            d->nbits += 8 * n;
            return;
        }
    }
    while (d->nbits <= 56) {
        unsigned b = 0;
        if (!d->marker && d->p < d->end) {
            b = *d->p;
            if (b == 0xFF) {
                const unsigned char *q = d->p + 1;
                while (q < d->end && *q == 0xFF) q++; /* fill bytes */
                if (q < d->end && *q == 0x00) {
                    d->p = q + 1;
                } else {
                    d->marker = q < d->end ? *q : 0x100; /* 0x100: the data ended */
                    d->p = q < d->end ? q + 1 : q;
                    b = 0;
                    d->fill_bits += 8;
                }
            } else {
                d->p++;
            }
        } else {
            if (!d->marker) d->marker = 0x100;
            d->fill_bits += 8;
        }
        d->bits |= (uint64_t)b << (56 - d->nbits);
        d->nbits += 8;
    }
}

static int get_bits(jpeg_dec *d, int n)
{
    int v;
    if (n == 0) return 0;
    if (d->nbits < n) fill_bits(d);
    v = (int)(d->bits >> (64 - n));
    d->bits <<= n;
    d->nbits -= n;
    return v;
}

/* Next Huffman symbol, or -1 for a code that is in no table. */
static int huff_decode(jpeg_dec *d, const huff_table *t)
{
    int l;
    int32_t code;
    if (d->nbits < 16) fill_bits(d);
    {
        uint16_t f = t->fast[d->bits >> (64 - HUFF_FAST_BITS)];
        if (f) {
            d->bits <<= f >> 8;
            d->nbits -= f >> 8;
            return f & 0xFF;
        }
    }
    /* every code of up to HUFF_FAST_BITS bits is in the fast table */
    for (l = HUFF_FAST_BITS + 1; l <= 16; l++) {
        code = (int32_t)(d->bits >> (64 - l));
        if (code <= t->maxcode[l]) {
            d->bits <<= l;
            d->nbits -= l;
            return t->vals[code + t->valoffset[l]];
        }
    }
    return -1;
}

/* Decoding past the data (a marker or the end of file) means the image is
   truncated or corrupt: Pillow refuses such files, and so do we. */
static int check_overrun(jpeg_dec *d)
{
    if (d->ar_truncated) return jfail(d, "the data ends inside a scan (truncated file)");
    if (d->fill_bits > d->nbits)
        return jfail(d, d->marker == 0x100 ? "the data ends inside a scan (truncated file)"
                                           : "corrupt data: marker 0x%02X inside a scan", d->marker);
    return 0;
}

/* The hot decoding loops keep the bit buffer in locals, so it stays in
   registers; these move it between the locals and the decoder around a
   call that uses it. */
static void bits_out(jpeg_dec *d, uint64_t bits, int nbits)
{
    d->bits = bits;
    d->nbits = nbits;
}

static void bits_refill(jpeg_dec *d, uint64_t *bits, int *nbits)
{
    bits_out(d, *bits, *nbits);
    fill_bits(d);
    *bits = d->bits;
    *nbits = d->nbits;
}

/* A sequential block: the hot loop of baseline decoding. The bit buffer
   lives in locals (written back around the refill and the long way) so it
   stays in registers; a table entry's low six bits are the shift, which is
   all a 64-bit shift reads of its count. */
static int decode_block_baseline(jpeg_dec *d, jpeg_comp *c, int16_t *blk)
{
    const uint32_t *dcf = d->dc[c->dc_tbl].acfast, *acf = d->ac[c->ac_tbl].acfast;
    const unsigned char *nat = jpeg_natural;
    uint64_t bits;
    int nbits, k, r, sz;
    int32_t diff = 0;
    uint32_t e;
    /* DC: a DC table has no runs, so the one-lookup table reads it too, its
       "end of block" entry being the difference 0 */
    if (d->nbits < AC_FAST_BITS) fill_bits(d);
    bits = d->bits;
    nbits = d->nbits;
    e = dcf[bits >> (64 - AC_FAST_BITS)];
    if (e) {
        bits <<= e & 63;
        nbits -= (int)(e & 63);
        if ((e >> 8 & 127) != AC_FAST_EOB) diff = (int32_t)(e >> 16) - 32768;
    } else {
        sz = huff_decode(d, &d->dc[c->dc_tbl]);
        if (sz < 0) return jfail(d, "corrupt data: bad Huffman code");
        if (sz) diff = extend(get_bits(d, sz), sz);
        bits = d->bits;
        nbits = d->nbits;
    }
    if ((diff > 0 && c->dc_pred > INT32_MAX / 2) || (diff < 0 && c->dc_pred < INT32_MIN / 2))
        return jfail(d, "corrupt data: DC coefficient out of range");
    c->dc_pred += diff;
    blk[0] = wrap16(c->dc_pred);
    /* AC: the buffer is topped up once per four lookups (the refill leaves
       at least 57 bits, four lookups take at most 40), which spares three
       hard-to-predict branches in four */
    k = 1;
    while (k < 64) {
        int u;
        if (nbits < 4 * AC_FAST_BITS) bits_refill(d, &bits, &nbits);
        for (u = 0; u < 4; u++) {
            e = acf[bits >> (64 - AC_FAST_BITS)];
            if (!e) break;
            bits <<= e & 63;
            nbits -= (int)(e & 63);
            r = (int)(e >> 8 & 127);
            if (r == AC_FAST_EOB) goto done;
            k += r;
            blk[nat[k]] = (int16_t)((int32_t)(e >> 16) - 32768);
            if (++k >= 64) goto done;
        }
        if (u == 4) continue;
        /* the long way: codes or values past AC_FAST_BITS, ZRL, bad codes */
        bits_out(d, bits, nbits);
        sz = huff_decode(d, &d->ac[c->ac_tbl]);
        if (sz < 0) return jfail(d, "corrupt data: bad Huffman code");
        r = sz >> 4;
        sz &= 15;
        if (sz) {
            k += r;
            blk[nat[k]] = wrap16(extend(get_bits(d, sz), sz));
        } else if (r == 15) {
            k += 15;
        } else {
            k = 64; /* end of block */
        }
        k++;
        bits = d->bits;
        nbits = d->nbits;
    }
done:
    bits_out(d, bits, nbits);
    return 0;
}

static int decode_dc_first(jpeg_dec *d, jpeg_comp *c, int16_t *blk, int al)
{
    int s = huff_decode(d, &d->dc[c->dc_tbl]);
    int32_t diff = 0;
    if (s < 0) return jfail(d, "corrupt data: bad Huffman code");
    if (s) diff = extend(get_bits(d, s), s);
    if ((diff > 0 && c->dc_pred > INT32_MAX / 2) || (diff < 0 && c->dc_pred < INT32_MIN / 2))
        return jfail(d, "corrupt data: DC coefficient out of range");
    c->dc_pred += diff;
    blk[0] = wrap16((int32_t)((uint32_t)c->dc_pred << al));
    return 0;
}

static int decode_ac_first(jpeg_dec *d, jpeg_comp *c, int16_t *blk, int ss, int se, int al)
{
    const huff_table *ac = &d->ac[c->ac_tbl];
    uint64_t bits;
    int k, nbits;
    if (d->eobrun > 0) {
        d->eobrun--;
        return 0;
    }
    bits = d->bits;
    nbits = d->nbits;
    for (k = ss; k <= se; k++) {
        int rs, r, s;
        uint32_t e;
        if (nbits < AC_FAST_BITS) bits_refill(d, &bits, &nbits);
        e = ac->acfast[bits >> (64 - AC_FAST_BITS)];
        if (e) { /* EOB is EOBRUN 1 here: this block ends */
            bits <<= e & 63;
            nbits -= (int)(e & 63);
            r = (int)(e >> 8 & 127);
            if (r == AC_FAST_EOB) break;
            k += r;
            blk[jpeg_natural[k]] = wrap16((int32_t)((uint32_t)((int32_t)(e >> 16) - 32768) << al));
            continue;
        }
        bits_out(d, bits, nbits);
        rs = huff_decode(d, ac);
        if (rs < 0) return jfail(d, "corrupt data: bad Huffman code");
        r = rs >> 4;
        s = rs & 15;
        if (s) {
            k += r;
            blk[jpeg_natural[k]] = wrap16((int32_t)((uint32_t)extend(get_bits(d, s), s) << al));
        } else if (r == 15) {
            k += 15;
        } else {
            d->eobrun = (1 << r) - 1;
            if (r) d->eobrun += get_bits(d, r);
            k = se + 1;
        }
        bits = d->bits;
        nbits = d->nbits;
    }
    bits_out(d, bits, nbits);
    return 0;
}

/* A correction bit for an already-nonzero coefficient: add p1 away from
   zero unless that bit is set already. */
static void refine_coef(int16_t *coef, int bit, int p1)
{
    if (bit && (*coef & p1) == 0) *coef = wrap16(*coef >= 0 ? *coef + p1 : *coef - p1);
}

static int decode_ac_refine(jpeg_dec *d, jpeg_comp *c, int16_t *blk, int ss, int se, int al)
{
    const huff_table *ac = &d->ac[c->ac_tbl];
    uint64_t bits = d->bits;
    int p1 = 1 << al, k = ss, nbits = d->nbits;
#define REFINE_BIT(coef)                                                                                    \
    do {                                                                                                    \
        if (nbits < 1) bits_refill(d, &bits, &nbits);                                                       \
        refine_coef(coef, (int)(bits >> 63), p1);                                                           \
        bits <<= 1;                                                                                         \
        nbits--;                                                                                            \
    } while (0)
    if (d->eobrun == 0) {
        for (; k <= se; k++) {
            int r, s = 0;
            uint32_t e;
            int32_t v;
            if (nbits < AC_FAST_BITS) bits_refill(d, &bits, &nbits);
            e = ac->acfast[bits >> (64 - AC_FAST_BITS)];
            v = (int32_t)(e >> 16) - 32768;
            if (e && ((e >> 8 & 127) == AC_FAST_EOB || v == 1 || v == -1)) {
                /* one lookup: end of band, or a run and a new +-1 (its sign bit) */
                bits <<= e & 63;
                nbits -= (int)(e & 63);
                r = (int)(e >> 8 & 127);
                if (r == AC_FAST_EOB) {
                    d->eobrun = 1;
                    break;
                }
                s = v > 0 ? p1 : -p1;
            } else {
                int rs;
                bits_out(d, bits, nbits);
                rs = huff_decode(d, ac);
                if (rs < 0) return jfail(d, "corrupt data: bad Huffman code");
                r = rs >> 4;
                if (rs & 15) {
                    s = get_bits(d, 1) ? p1 : -p1;
                } else if (r != 15) {
                    d->eobrun = 1 << r;
                    if (r) d->eobrun += get_bits(d, r);
                    bits = d->bits;
                    nbits = d->nbits;
                    break;
                }
                bits = d->bits;
                nbits = d->nbits;
            }
            /* skip r zero coefficients (refining the nonzero ones passed) */
            do {
                int16_t *coef = blk + jpeg_natural[k];
                if (*coef != 0)
                    REFINE_BIT(coef);
                else if (--r < 0)
                    break;
                k++;
            } while (k <= se);
            if (s) blk[jpeg_natural[k]] = (int16_t)s;
        }
    }
    if (d->eobrun > 0) {
        for (; k <= se; k++) {
            int16_t *coef = blk + jpeg_natural[k];
            if (*coef != 0) REFINE_BIT(coef);
        }
        d->eobrun--;
    }
#undef REFINE_BIT
    bits_out(d, bits, nbits);
    return 0;
}

/* ---- the arithmetic decoder (T.81 annex D; F.2.4 and G.2 for its use) ----

   The QM-coder as libjpeg implements it: C holds the code base and the
   unread input bits, with a floating cut-point CT; each statistics bin is a
   byte, MPS sense << 7 | state. A marker inside the data is legal: zeros
   are fed from there on. Bad codes (a magnitude or a run past its limit),
   which libjpeg turns into a warning and a zeroed rest of scan, are refused
   here, as corrupt Huffman data is. */

/* Table D.2: Qe, the next state after an LPS and after an MPS, and whether
   an LPS swaps the MPS sense. State 113 is a fixed 0.5 estimate. */
static const struct {
    uint16_t qe;
    unsigned char lps, mps, swap;
} arith_states[114] = {
    {0x5a1d, 1, 1, 1},     {0x2586, 14, 2, 0},    {0x1114, 16, 3, 0},    {0x080b, 18, 4, 0},
    {0x03d8, 20, 5, 0},    {0x01da, 23, 6, 0},    {0x00e5, 25, 7, 0},    {0x006f, 28, 8, 0},
    {0x0036, 30, 9, 0},    {0x001a, 33, 10, 0},   {0x000d, 35, 11, 0},   {0x0006, 9, 12, 0},
    {0x0003, 10, 13, 0},   {0x0001, 12, 13, 0},   {0x5a7f, 15, 15, 1},   {0x3f25, 36, 16, 0},
    {0x2cf2, 38, 17, 0},   {0x207c, 39, 18, 0},   {0x17b9, 40, 19, 0},   {0x1182, 42, 20, 0},
    {0x0cef, 43, 21, 0},   {0x09a1, 45, 22, 0},   {0x072f, 46, 23, 0},   {0x055c, 48, 24, 0},
    {0x0406, 49, 25, 0},   {0x0303, 51, 26, 0},   {0x0240, 52, 27, 0},   {0x01b1, 54, 28, 0},
    {0x0144, 56, 29, 0},   {0x00f5, 57, 30, 0},   {0x00b7, 59, 31, 0},   {0x008a, 60, 32, 0},
    {0x0068, 62, 33, 0},   {0x004e, 63, 34, 0},   {0x003b, 32, 35, 0},   {0x002c, 33, 9, 0},
    {0x5ae1, 37, 37, 1},   {0x484c, 64, 38, 0},   {0x3a0d, 65, 39, 0},   {0x2ef1, 67, 40, 0},
    {0x261f, 68, 41, 0},   {0x1f33, 69, 42, 0},   {0x19a8, 70, 43, 0},   {0x1518, 72, 44, 0},
    {0x1177, 73, 45, 0},   {0x0e74, 74, 46, 0},   {0x0bfb, 75, 47, 0},   {0x09f8, 77, 48, 0},
    {0x0861, 78, 49, 0},   {0x0706, 79, 50, 0},   {0x05cd, 48, 51, 0},   {0x04de, 50, 52, 0},
    {0x040f, 50, 53, 0},   {0x0363, 51, 54, 0},   {0x02d4, 52, 55, 0},   {0x025c, 53, 56, 0},
    {0x01f8, 54, 57, 0},   {0x01a4, 55, 58, 0},   {0x0160, 56, 59, 0},   {0x0125, 57, 60, 0},
    {0x00f6, 58, 61, 0},   {0x00cb, 59, 62, 0},   {0x00ab, 61, 63, 0},   {0x008f, 61, 32, 0},
    {0x5b12, 65, 65, 1},   {0x4d04, 80, 66, 0},   {0x412c, 81, 67, 0},   {0x37d8, 82, 68, 0},
    {0x2fe8, 83, 69, 0},   {0x293c, 84, 70, 0},   {0x2379, 86, 71, 0},   {0x1edf, 87, 72, 0},
    {0x1aa9, 87, 73, 0},   {0x174e, 72, 74, 0},   {0x1424, 72, 75, 0},   {0x119c, 74, 76, 0},
    {0x0f6b, 74, 77, 0},   {0x0d51, 75, 78, 0},   {0x0bb6, 77, 79, 0},   {0x0a40, 77, 48, 0},
    {0x5832, 80, 81, 1},   {0x4d1c, 88, 82, 0},   {0x438e, 89, 83, 0},   {0x3bdd, 90, 84, 0},
    {0x34ee, 91, 85, 0},   {0x2eae, 92, 86, 0},   {0x299a, 93, 87, 0},   {0x2516, 86, 71, 0},
    {0x5570, 88, 89, 1},   {0x4ca9, 95, 90, 0},   {0x44d9, 96, 91, 0},   {0x3e22, 97, 92, 0},
    {0x3824, 99, 93, 0},   {0x32b4, 99, 94, 0},   {0x2e17, 93, 86, 0},   {0x56a8, 95, 96, 1},
    {0x4f46, 101, 97, 0},  {0x47e5, 102, 98, 0},  {0x41cf, 103, 99, 0},  {0x3c3d, 104, 100, 0},
    {0x375e, 99, 93, 0},   {0x5231, 105, 102, 0}, {0x4c0f, 106, 103, 0}, {0x4639, 107, 104, 0},
    {0x415e, 103, 99, 0},  {0x5627, 105, 106, 1}, {0x50e7, 108, 107, 0}, {0x4b85, 109, 103, 0},
    {0x5597, 110, 109, 0}, {0x504f, 111, 107, 0}, {0x5a10, 110, 111, 1}, {0x5522, 112, 109, 0},
    {0x59eb, 112, 111, 1}, {0x5a1d, 113, 113, 0}};

/* The next input byte for C: a stuffed 0xFF00 is 0xFF; at a marker, and
   from then on, 0; past the end of the data, 0, and the file is truncated. */
static int arith_byte(jpeg_dec *d)
{
    int b;
    if (d->marker) return 0;
    if (d->p >= d->end) {
        d->marker = 0x100;
        d->ar_truncated = 1;
        return 0;
    }
    b = *d->p++;
    if (b != 0xFF) return b;
    while (d->p < d->end && *d->p == 0xFF) d->p++; /* fill bytes */
    if (d->p >= d->end) {
        d->marker = 0x100;
        d->ar_truncated = 1;
        return 0;
    }
    if (*d->p == 0) {
        d->p++;
        return 0xFF;
    }
    d->marker = *d->p++;
    return 0;
}

/* One binary decision with the statistics bin st (D.2.4 - D.2.6). */
static int arith_bit(jpeg_dec *d, unsigned char *st)
{
    int state = *st & 0x7F, mps = *st >> 7, lps;
    int64_t qe = arith_states[state].qe, t;
    while (d->ar_a < 0x8000) { /* renormalize, reading a byte whenever CT runs out */
        if (--d->ar_ct < 0) {
            d->ar_c = (d->ar_c << 8) | arith_byte(d);
            if ((d->ar_ct += 8) < 0 && ++d->ar_ct == 0) d->ar_a = 0x8000; /* the first two bytes are in */
        }
        d->ar_a <<= 1;
    }
    t = d->ar_a - qe;
    d->ar_a = t;
    t <<= d->ar_ct;
    if (d->ar_c >= t) { /* the Qe subinterval: the LPS, unless A fell below Qe (exchange) */
        d->ar_c -= t;
        lps = d->ar_a >= qe;
        d->ar_a = qe;
    } else if (d->ar_a < 0x8000) { /* the other one, renormalizing: the MPS, unless A < Qe */
        lps = d->ar_a < qe;
    } else {
        return mps;
    }
    if (lps) {
        *st = (unsigned char)((mps ^ arith_states[state].swap) << 7 | arith_states[state].lps);
        return !mps;
    }
    *st = (unsigned char)(mps << 7 | arith_states[state].mps);
    return mps;
}

/* Fresh statistics and registers: at a scan's start and at each restart. */
static void arith_reset(jpeg_dec *d)
{
    int i;
    for (i = 0; i < d->ns; i++) {
        jpeg_comp *c = d->sc[i];
        if (!d->progressive || (d->ss == 0 && d->ah == 0)) {
            memset(d->dc_stats[c->dc_tbl], 0, sizeof d->dc_stats[0]);
            c->dc_pred = 0;
            c->dc_context = 0;
        }
        if (!d->progressive || d->ss > 0) memset(d->ac_stats[c->ac_tbl], 0, sizeof d->ac_stats[0]);
    }
    d->fixed_bin = 113;
    d->ar_c = 0;
    d->ar_a = 0;
    d->ar_ct = -16;
}

/* Figure F.23's loop: the magnitude category m doubles while the bins from
   *st say so (moving *st along); -1 when it overflows 15 bits. */
static int arith_category(jpeg_dec *d, unsigned char **st, int *m)
{
    while (arith_bit(d, *st)) {
        if ((*m <<= 1) == 0x8000) return -1;
        (*st)++;
    }
    return 0;
}

/* Figure F.24: the bits under the category m from the bins at st + 14, as
   the signed value they code. */
static int arith_value(jpeg_dec *d, unsigned char *st, int m, int sign)
{
    int v = m;
    st += 14;
    while (m >>= 1)
        if (arith_bit(d, st)) v |= m;
    v += 1;
    return sign ? -v : v;
}

/* A DC difference (F.1.4.4.1, figures F.19 - F.24), added to the prediction. */
static int arith_dc(jpeg_dec *d, jpeg_comp *c)
{
    unsigned char *stats = d->dc_stats[c->dc_tbl], *st = stats + c->dc_context;
    int sign, m, v, L = d->dc_L[c->dc_tbl], U = d->dc_U[c->dc_tbl];
    if (!arith_bit(d, st)) {
        c->dc_context = 0;
        return 0;
    }
    sign = arith_bit(d, st + 1);
    st += 2 + sign;
    if ((m = arith_bit(d, st)) != 0) { /* the magnitude category */
        st = stats + 20;
        if (arith_category(d, &st, &m)) return jfail(d, "corrupt data: bad arithmetic code (DC magnitude)");
    }
    /* the conditioning of the next difference: zero, small or large */
    if (m < (1 << L) >> 1)
        c->dc_context = 0;
    else if (m > (1 << U) >> 1)
        c->dc_context = 12 + 4 * sign;
    else
        c->dc_context = 4 + 4 * sign;
    v = arith_value(d, st, m, sign);
    if ((v > 0 && c->dc_pred > INT32_MAX / 2) || (v < 0 && c->dc_pred < INT32_MIN / 2))
        return jfail(d, "corrupt data: DC coefficient out of range");
    c->dc_pred += v;
    return 0;
}

/* AC coefficients k = ss..se (F.1.4.4.2, figure F.20), shifted by al. */
static int arith_ac(jpeg_dec *d, jpeg_comp *c, int16_t *blk, int ss, int se, int al)
{
    unsigned char *stats = d->ac_stats[c->ac_tbl], *st;
    int k, sign, m;
    for (k = ss; k <= se; k++) {
        st = stats + 3 * (k - 1);
        if (arith_bit(d, st)) break; /* end of block */
        while (!arith_bit(d, st + 1)) { /* a zero coefficient */
            st += 3;
            if (++k > se) return jfail(d, "corrupt data: bad arithmetic code (run past the band)");
        }
        sign = arith_bit(d, &d->fixed_bin);
        st += 2;
        if ((m = arith_bit(d, st)) != 0 && arith_bit(d, st)) {
            m <<= 1;
            st = stats + (k <= d->ac_K[c->ac_tbl] ? 189 : 217);
            if (arith_category(d, &st, &m)) return jfail(d, "corrupt data: bad arithmetic code (AC magnitude)");
        }
        blk[jpeg_natural[k]] = wrap16((int32_t)((uint32_t)arith_value(d, st, m, sign) << al));
    }
    return 0;
}

/* A progressive AC refinement (G.1.3.3): correction bits for the nonzero
   coefficients, new ones of magnitude 1 << al. */
static int arith_ac_refine(jpeg_dec *d, jpeg_comp *c, int16_t *blk, int ss, int se, int al)
{
    unsigned char *stats = d->ac_stats[c->ac_tbl], *st;
    int k, kex, p1 = 1 << al;
    /* the previous stage's end of block */
    for (kex = se; kex > 0; kex--)
        if (blk[jpeg_natural[kex]]) break;
    for (k = ss; k <= se; k++) {
        st = stats + 3 * (k - 1);
        if (k > kex && arith_bit(d, st)) break; /* end of block */
        for (;;) {
            int16_t *coef = blk + jpeg_natural[k];
            if (*coef) { /* nonzero before: a correction bit */
                if (arith_bit(d, st + 2)) *coef = wrap16(*coef < 0 ? *coef - p1 : *coef + p1);
                break;
            }
            if (arith_bit(d, st + 1)) { /* newly nonzero */
                *coef = (int16_t)(arith_bit(d, &d->fixed_bin) ? -p1 : p1);
                break;
            }
            st += 3;
            if (++k > se) return jfail(d, "corrupt data: bad arithmetic code (run past the band)");
        }
    }
    return 0;
}

/* ---- scans: header, MCU loop (either coding), restarts ---- */

/* After a restart interval: drop the partial byte, expect RSTn, reset the
   predictions. */
static int restart(jpeg_dec *d, int expected)
{
    d->bits = 0;
    d->nbits = 0;
    d->fill_bits = 0;
    if (!d->marker) {
        /* find the marker: skip to the next 0xFF that is not stuffing */
        while (d->p < d->end) {
            if (d->p[0] == 0xFF && d->p + 1 < d->end && d->p[1] != 0x00 && d->p[1] != 0xFF) {
                d->marker = d->p[1];
                d->p += 2;
                break;
            }
            d->p++;
        }
    }
    if (d->marker != 0xD0 + expected) {
        if (d->marker == 0 || d->marker == 0x100) return jfail(d, "the data ends before restart marker %d", expected);
        return jfail(d, "expected restart marker %d, found marker 0x%02X", expected, d->marker);
    }
    d->marker = 0;
    d->eobrun = 0;
    return 0;
}

/* Read a scan header and make it the current scan. */
static int begin_scan(jpeg_dec *d)
{
    const unsigned char *s;
    int len, ns, i, j;
    if (segment(d, &s, &len, "SOS")) return -1;
    if (!d->seen_sof) return jfail(d, "scan before the frame header");
    ns = len > 0 ? s[0] : 0;
    if (ns < 1 || ns > d->ncomp || len != 4 + 2 * ns) return jfail(d, "scan header is malformed");
    for (i = 0; i < ns; i++) {
        int id = s[1 + 2 * i], td = s[2 + 2 * i] >> 4, ta = s[2 + 2 * i] & 15;
        jpeg_comp *c = NULL;
        for (j = 0; j < d->ncomp; j++)
            if (d->comp[j].id == id) c = &d->comp[j];
        if (!c) return jfail(d, "scan names component %d, which the frame does not have", id);
        for (j = 0; j < i; j++)
            if (d->sc[j] == c) return jfail(d, "scan names component %d twice", id);
        if (!d->arith && (td > 3 || ta > 3)) return jfail(d, "scan uses Huffman table %d/%d (0..3 exist)", td, ta);
        c->dc_tbl = td;
        c->ac_tbl = ta;
        d->sc[i] = c;
    }
    d->ns = ns;
    d->ss = s[1 + 2 * ns];
    d->se = s[2 + 2 * ns];
    d->ah = s[3 + 2 * ns] >> 4;
    d->al = s[3 + 2 * ns] & 15;
    if (d->progressive) {
        if (d->ss > 63 || d->se > 63 || d->ss > d->se || (d->ss == 0 && d->se != 0) || (d->ss > 0 && ns != 1) ||
            d->ah > 13 || d->al > 13)
            return jfail(d, "progressive scan parameters Ss=%d Se=%d Ah=%d Al=%d are invalid", d->ss, d->se, d->ah,
                         d->al);
    } else {
        d->ss = 0;
        d->se = 63;
        d->ah = d->al = 0;
    }
    for (i = 0; i < ns; i++) {
        jpeg_comp *c = d->sc[i];
        int need_dc = !d->progressive || (d->ss == 0 && d->ah == 0), need_ac = !d->progressive || d->ss > 0;
        if (!d->arith && need_dc && !d->dc[c->dc_tbl].defined)
            return jfail(d, "scan uses DC Huffman table %d, never defined", c->dc_tbl);
        if (!d->arith && need_ac && !d->ac[c->ac_tbl].defined)
            return jfail(d, "scan uses AC Huffman table %d, never defined", c->ac_tbl);
        if (!c->latched) { /* libjpeg fixes a component's table when its first scan starts */
            if (!d->quant_defined[c->tq]) return jfail(d, "quantization table %d is used but never defined", c->tq);
            memcpy(c->q, d->quant[c->tq], sizeof c->q);
            c->latched = 1;
        }
        c->dc_pred = 0;
    }
    d->bits = 0;
    d->nbits = 0;
    d->fill_bits = 0;
    d->marker = 0;
    d->eobrun = 0;
    d->todo = d->restart_interval;
    d->rst = 0;
    d->ar_truncated = 0;
    if (d->arith) arith_reset(d);
    /* a one-component scan codes that component's blocks one at a time, over
       its own (not MCU-padded) extent */
    if (ns == 1) {
        d->per_row = (d->sc[0]->dw + 7) / 8;
        d->mcus = d->per_row * ((d->sc[0]->dh + 7) / 8);
    } else {
        d->mcus = d->mcux * d->mcuy;
    }
    return 0;
}

/* One block of an arithmetic-coded scan, of whichever kind the scan is. */
static int arith_block(jpeg_dec *d, jpeg_comp *c, int16_t *blk)
{
    if (!d->progressive) {
        if (arith_dc(d, c)) return -1;
        blk[0] = wrap16(c->dc_pred);
        return arith_ac(d, c, blk, 1, 63, 0);
    }
    if (d->ss == 0 && d->ah == 0) {
        if (arith_dc(d, c)) return -1;
        blk[0] = wrap16((int32_t)((uint32_t)c->dc_pred << d->al));
        return 0;
    }
    if (d->ss == 0) {
        if (arith_bit(d, &d->fixed_bin)) blk[0] = wrap16(blk[0] | (1 << d->al));
        return 0;
    }
    if (d->ah == 0) return arith_ac(d, c, blk, d->ss, d->se, d->al);
    return arith_ac_refine(d, c, blk, d->ss, d->se, d->al);
}

/* Decode MCUs [m0, m1) of the current scan. Block row brow of the i-th
   component of the scan goes to row brow - brow0[i] of dest[i] (bw blocks
   a row), or, without dest, to the component's whole-image buffer. */
static int decode_mcus(jpeg_dec *d, int m0, int m1, int16_t *const *dest, const int *brow0)
{
    int mcu, i, one, mrow, mcol;
    for (mcu = m0; mcu < m1; mcu++) {
        if (d->restart_interval && d->todo == 0) {
            if (check_overrun(d) || restart(d, d->rst)) return -1;
            d->rst = (d->rst + 1) & 7;
            d->todo = d->restart_interval;
            for (i = 0; i < d->ns; i++) d->sc[i]->dc_pred = 0;
            if (d->arith) arith_reset(d);
        }
        /* the MCU's place: a block (one-component scan) or an MCU of the grid */
        one = d->ns == 1;
        mrow = mcu / (one ? d->per_row : d->mcux);
        mcol = mcu - mrow * (one ? d->per_row : d->mcux);
        for (i = 0; i < d->ns; i++) {
            jpeg_comp *c = d->sc[i];
            int bh = one ? 1 : c->v, bw = one ? 1 : c->h, y, x, rc;
            for (y = 0; y < bh; y++)
                for (x = 0; x < bw; x++) {
                    int brow = one ? mrow : mrow * c->v + y;
                    int bcol = one ? mcol : mcol * c->h + x;
                    int16_t *blk;
                    if (dest) { /* a reused row buffer: clear the block first */
                        blk = dest[i] + ((size_t)(brow - brow0[i]) * c->bw + (size_t)bcol) * 64;
                        memset(blk, 0, 64 * sizeof(int16_t));
                    } else {
                        blk = c->coef + ((size_t)brow * c->bw + (size_t)bcol) * 64;
                    }
                    if (d->arith)
                        rc = arith_block(d, c, blk);
                    else if (!d->progressive)
                        rc = decode_block_baseline(d, c, blk);
                    else if (d->ss == 0 && d->ah == 0)
                        rc = decode_dc_first(d, c, blk, d->al);
                    else if (d->ss == 0)
                        rc = (get_bits(d, 1) ? (blk[0] = wrap16(blk[0] | (1 << d->al))) : 0, 0);
                    else if (d->ah == 0)
                        rc = decode_ac_first(d, c, blk, d->ss, d->se, d->al);
                    else
                        rc = decode_ac_refine(d, c, blk, d->ss, d->se, d->al);
                    if (rc) return -1;
                }
        }
        d->todo--;
        if ((mcu & 63) == 0 && check_overrun(d)) return -1;
    }
    return 0;
}

/* After the last MCU: the data must not have run out, and parsing goes on
   at the marker the bit reader stopped on, or at the next one. */
static int end_scan(jpeg_dec *d)
{
    if (check_overrun(d)) return -1;
    if (d->marker == 0x100) {
        d->p = d->end;
    } else if (d->marker) {
        d->p -= 2;
    } else {
        while (d->p < d->end && !(d->p[0] == 0xFF && d->p + 1 < d->end && d->p[1] != 0x00 && d->p[1] != 0xFF &&
                                  !(d->p[1] >= 0xD0 && d->p[1] <= 0xD7)))
            d->p++;
    }
    return 0;
}

/* ---- the islow IDCT (jidctint.c's arithmetic) ----

   Within one pass the butterfly is integer multiplies and adds only, so it
   is computed in uint32_t: exact for every coefficient a real encoder
   writes, and wrapping without undefined behaviour on hostile ones. Each
   pass runs on eight lanes (the columns, then the rows) for the vectorizer. */

#define IDCT_CONST_BITS 13
#define IDCT_PASS1_BITS 2
/* arithmetic shift right of a two's-complement value held in a uint32_t */
#define SAR32(x, n) ((((uint32_t)(x) ^ 0x80000000u) >> (n)) - (0x80000000u >> (n)))
#define DESCALE32(x, n) SAR32((uint32_t)(x) + (1u << ((n)-1)), n)

/* libjpeg's post-IDCT range limit: the sample is (v + 128) clamped to 0..255
   for |v| < 512, and wraps modulo 1024 beyond (corrupt data only) */
static unsigned char idct_limit(uint32_t v)
{
    uint32_t s = (v + 128) & 1023, m = s < 255 ? s : 255; /* min/compare/select: vectorizes */
    return (unsigned char)(s < 640 ? m : 0);
}

/* jidctint.c's 8-point butterfly on eight lanes: x[k][lane] in, y[k][lane]
   out (undescaled) */
static void idct_pass(uint32_t y[8][8], uint32_t x[8][8])
{
    int i;
    for (i = 0; i < 8; i++) {
        uint32_t z1, z2, z3, z4, z5, t0, t1, t2, t3, t10, t11, t12, t13;
        /* even part: the rotator is sqrt(2) * c(-6) */
        z1 = (x[2][i] + x[6][i]) * 4433u;             /* FIX(0.541196100) */
        t2 = z1 - x[6][i] * 15137u;                   /* FIX(1.847759065) */
        t3 = z1 + x[2][i] * 6270u;                    /* FIX(0.765366865) */
        t0 = (x[0][i] + x[4][i]) << IDCT_CONST_BITS;
        t1 = (x[0][i] - x[4][i]) << IDCT_CONST_BITS;
        t10 = t0 + t3;
        t13 = t0 - t3;
        t11 = t1 + t2;
        t12 = t1 - t2;
        /* odd part */
        t0 = x[7][i];
        t1 = x[5][i];
        t2 = x[3][i];
        t3 = x[1][i];
        z1 = t0 + t3;
        z2 = t1 + t2;
        z3 = t0 + t2;
        z4 = t1 + t3;
        z5 = (z3 + z4) * 9633u;                       /* FIX(1.175875602) */
        t0 *= 2446u;                                  /* FIX(0.298631336) */
        t1 *= 16819u;                                 /* FIX(2.053119869) */
        t2 *= 25172u;                                 /* FIX(3.072711026) */
        t3 *= 12299u;                                 /* FIX(1.501321110) */
        z1 *= 0u - 7373u;                             /* -FIX(0.899976223) */
        z2 *= 0u - 20995u;                            /* -FIX(2.562915447) */
        z3 = z5 - z3 * 16069u;                        /* FIX(1.961570560) */
        z4 = z5 - z4 * 3196u;                         /* FIX(0.390180644) */
        t0 += z1 + z3;
        t1 += z2 + z4;
        t2 += z2 + z3;
        t3 += z1 + z4;
        y[0][i] = t10 + t3;
        y[7][i] = t10 - t3;
        y[1][i] = t11 + t2;
        y[6][i] = t11 - t2;
        y[2][i] = t12 + t1;
        y[5][i] = t12 - t1;
        y[3][i] = t13 + t0;
        y[4][i] = t13 - t0;
    }
}

static void idct_islow(unsigned char *out, size_t stride, const int16_t *in, const uint16_t *q)
{
    uint32_t x[8][8], y[8][8];
    int k, i;
    unsigned ac = 0;
    for (k = 1; k < 64; k++) ac |= (uint16_t)in[k];
    if (!ac) {
        /* only the DC term: both passes reduce to this exactly */
        uint32_t dc = (uint32_t)(int32_t)in[0] * q[0] << IDCT_PASS1_BITS;
        unsigned char v = idct_limit(DESCALE32(dc, IDCT_PASS1_BITS + 3));
        for (k = 0; k < 8; k++) memset(out + (size_t)k * stride, v, 8);
        return;
    }
    for (k = 0; k < 8; k++) /* columns: lane i is column i, dequantized */
        for (i = 0; i < 8; i++) x[k][i] = (uint32_t)(int32_t)in[8 * k + i] * q[8 * k + i];
    idct_pass(y, x);
    for (k = 0; k < 8; k++) /* row k of the workspace becomes lane k */
        for (i = 0; i < 8; i++) x[i][k] = DESCALE32(y[k][i], IDCT_CONST_BITS - IDCT_PASS1_BITS);
    idct_pass(y, x);
    for (k = 0; k < 8; k++) /* back to rows, so each output row is one vector */
        for (i = 0; i < 8; i++) x[i][k] = y[k][i];
    for (i = 0; i < 8; i++) {
        unsigned char *o = out + (size_t)i * stride;
        for (k = 0; k < 8; k++) o[k] = idct_limit(DESCALE32(x[i][k], IDCT_CONST_BITS + IDCT_PASS1_BITS + 3));
    }
}

/* ---- the output stage ----

   Rows of MCUs go through three steps: entropy decoding (in order, one row
   after another), the IDCT of the blocks the output needs, then upsampling
   and color conversion of the rows the output wants, handed to a sink. The
   steps are OpenMP tasks whose dependencies follow that order, over rings
   of JPEG_RING row buffers, so the entropy decoding of one row overlaps the
   pixel work of the rows before it; without OpenMP they run in creation
   order, which is a valid one. Progressive and multi-scan files decode all
   their scans first and then run the same two pixel steps. */

/* MCU rows in flight; at least 3, since a color step reads its row and both
   neighbours (more than 8 measured no faster on 2 threads) */
#define JPEG_RING 8

/* Where the decoded pixels go: rows [y0, y1) and columns [x0, x1), each
   row handed over as three planes (R, G, B; x1 - x0 samples each, followed
   by pad readable zero bytes). row() is called from several threads at
   once, for different y. */
typedef struct {
    int y0, y1, x0, x1, pad;
    void (*row)(void *ctx, int y, const unsigned char *r, const unsigned char *g, const unsigned char *b);
    void *ctx;
} jpeg_sink;

typedef struct {
    int16_t *coef[JPEG_MAX_COMPONENTS];  /* (v, bw, 64): one MCU row, when streaming */
    unsigned char *plane[JPEG_MAX_COMPONENTS]; /* (8 * v, 8 * bw) samples of one MCU row */
    unsigned char *work;                 /* rows for the color step */
    int failed;                          /* the entropy decoding of this row failed */
} jpeg_slot;

/* Sample row sy of component ci (clamped to the real rows, as libjpeg's
   context rows are), from the slot of the MCU row holding it. */
static const unsigned char *sample_row(const jpeg_dec *d, const jpeg_slot *ring, int ci, int sy)
{
    const jpeg_comp *c = &d->comp[ci];
    int rows = 8 * c->v, r;
    if (sy < 0) sy = 0;
    if (sy >= c->dh) sy = c->dh - 1;
    r = sy / rows;
    return ring[r % JPEG_RING].plane[ci] + (size_t)(sy - r * rows) * c->bw * 8;
}

/* Output row y, columns [x0, x1), of component ci at full resolution, with
   libjpeg-turbo's upsampler for its sampling factors: the triangle filters
   for 2x1 (when wider than 2 samples), 1x2 and 2x2, replication otherwise.
   Returns out, or the sample row itself when there is nothing to do. tw
   holds (x1 - x0) / 2 + 4 values. */
static const unsigned char *upsample(const jpeg_dec *d, const jpeg_slot *ring, int ci, int y, int x0, int x1,
                                     unsigned char *out, int *tw)
{
    const jpeg_comp *c = &d->comp[ci];
    int he = d->hmax / c->h, ve = d->vmax / c->v, n = c->dw, x, s, j;
    int fancy_h2 = he == 2 && n > 2;
    if (he == 1 && ve == 1) return sample_row(d, ring, ci, y) + x0;
    if (he == 1 && ve == 2) { /* h1v2 triangle filter (libjpeg-turbo always uses it here) */
        int below = y & 1;
        const unsigned char *near = sample_row(d, ring, ci, y / 2), *far = sample_row(d, ring, ci, y / 2 + (below ? 1 : -1));
        for (x = x0; x < x1; x++) out[x - x0] = (unsigned char)((near[x] * 3 + far[x] + 1 + below) >> 2);
        return out;
    }
    if (fancy_h2 && ve <= 2) {
        /* h2v1 and h2v2 triangle filters: output 2s and 2s+1 come from
           sample s and its left or right neighbour t (a vertical blend of
           two rows for h2v2); at the edges the missing neighbour equals the
           edge sample, which is what libjpeg's edge formulas compute */
        int s0 = x0 >> 1, s1 = (x1 - 1) >> 1, base = 2 * s0, e0, e1, sh;
        int *t = tw + 1; /* t[s - s0] for s in [s0 - 1, s1 + 1] */
        /* samples [lo, hi] are inside the row; t beyond them repeats the edge */
        int lo = s0 - 1 < 0 ? 0 : s0 - 1, hi = s1 + 1 > n - 1 ? n - 1 : s1 + 1;
        if (ve == 1) {
            const unsigned char *in = sample_row(d, ring, ci, y);
            for (s = lo; s <= hi; s++) t[s - s0] = in[s];
            e0 = 1; /* (3 t[s] + t[s-1] + 1) >> 2, (3 t[s] + t[s+1] + 2) >> 2 */
            e1 = 2;
            sh = 2;
        } else {
            int below = y & 1;
            const unsigned char *near = sample_row(d, ring, ci, y / 2);
            const unsigned char *far = sample_row(d, ring, ci, y / 2 + (below ? 1 : -1));
            for (s = lo; s <= hi; s++) t[s - s0] = near[s] * 3 + far[s];
            e0 = 8;
            e1 = 7;
            sh = 4;
        }
        for (j = s0 - 1; j < lo; j++) t[j - s0] = t[lo - s0];
        for (j = hi + 1; j <= s1 + 1; j++) t[j - s0] = t[hi - s0];
        for (s = 0; s <= s1 - s0; s++) {
            out[2 * s] = (unsigned char)((t[s] * 3 + t[s - 1] + e0) >> sh);
            out[2 * s + 1] = (unsigned char)((t[s] * 3 + t[s + 1] + e1) >> sh);
        }
        return out + (x0 - base);
    }
    { /* replication (h2v1/h2v2 when narrow, and every other integral factor) */
        const unsigned char *in = sample_row(d, ring, ci, y / ve);
        for (x = x0; x < x1; x++) out[x - x0] = in[x / he];
        return out;
    }
}

/* jdcolor.c's YCbCr -> RGB, its tables written out as arithmetic (the
   offsets keep every shifted value non-negative, so >> is a floor) */
static void ycc_to_rgb(unsigned char *restrict r, unsigned char *restrict g, unsigned char *restrict b,
                       const unsigned char *restrict yy, const unsigned char *restrict cb,
                       const unsigned char *restrict cr, int n)
{
    int i;
    for (i = 0; i < n; i++) {
        int32_t Y = yy[i], u = cb[i] - 128, v = cr[i] - 128;
        int32_t R = Y + ((91881 * v + 32768 + (512 << 16)) >> 16) - 512;             /* FIX(1.40200) */
        int32_t G = Y + ((-22554 * u - 46802 * v + 32768 + (512 << 16)) >> 16) - 512; /* FIX(0.34414), FIX(0.71414) */
        int32_t B = Y + ((116130 * u + 32768 + (512 << 16)) >> 16) - 512;            /* FIX(1.77200) */
        r[i] = (unsigned char)(R < 0 ? 0 : R > 255 ? 255 : R);
        g[i] = (unsigned char)(G < 0 ? 0 : G > 255 ? 255 : G);
        b[i] = (unsigned char)(B < 0 ? 0 : B > 255 ? 255 : B);
    }
}

typedef struct {
    jpeg_dec *d;
    jpeg_slot *ring;
    const jpeg_sink *sink;
    int rows;           /* output rows per MCU row: 8 * vmax */
    int streaming;      /* the entropy decoding runs in the pipeline */
    size_t wcols;       /* x1 - x0 */
} jpeg_pipe;

/* Bytes of one row in a slot's work area: the wanted columns, the sink's
   padding, and room for the upsamplers' last pair. */
static size_t jpeg_work_row(const jpeg_pipe *p)
{
    return (p->wcols + (size_t)p->sink->pad + 8 + 63) & ~(size_t)63;
}

/* Step 1 (streaming): entropy-decode MCU row r into its slot. */
static void step_entropy(jpeg_pipe *p, int r)
{
    jpeg_dec *d = p->d;
    jpeg_slot *s = &p->ring[r % JPEG_RING];
    int brow0[JPEG_MAX_COMPONENTS], i, m0, m1;
    s->failed = d->failed_at >= 0;
    if (s->failed) return;
    for (i = 0; i < d->ns; i++) brow0[i] = r * d->sc[i]->v;
    if (d->ns == 1) {
        int rows = (d->sc[0]->dh + 7) / 8, last = brow0[0] + d->sc[0]->v;
        m0 = brow0[0] * d->per_row;
        m1 = (last < rows ? last : rows) * d->per_row;
    } else {
        m0 = r * d->mcux;
        m1 = m0 + d->mcux;
    }
    if (decode_mcus(d, m0, m1, s->coef, brow0) || (r == d->mcuy - 1 && end_scan(d))) {
        d->failed_at = r;
        s->failed = 1;
    }
}

/* Step 2: the IDCT of the needed blocks of MCU row r. */
static void step_idct(jpeg_pipe *p, int r)
{
    jpeg_dec *d = p->d;
    jpeg_slot *s = &p->ring[r % JPEG_RING];
    int i, by, bx;
    if (s->failed) return;
    for (i = 0; i < d->ncomp; i++) {
        jpeg_comp *c = &d->comp[i];
        size_t stride = (size_t)c->bw * 8, n = (size_t)c->v * c->bw * 64;
        int16_t *coef = p->streaming ? s->coef[i] : c->coef + (size_t)r * n;
        for (by = 0; by < c->v; by++)
            for (bx = c->bx0; bx < c->bx1; bx++)
                idct_islow(s->plane[i] + (size_t)by * 8 * stride + (size_t)bx * 8, stride,
                           coef + ((size_t)by * c->bw + bx) * 64, c->q);
    }
}

/* Step 3: the output rows of MCU row r, upsampled and converted. */
static void step_color(jpeg_pipe *p, int r)
{
    jpeg_dec *d = p->d;
    const jpeg_sink *k = p->sink;
    jpeg_slot *s = &p->ring[r % JPEG_RING];
    size_t w = p->wcols, row = jpeg_work_row(p);
    int *tw = (int *)(void *)s->work; /* the ints first, where calloc aligned them */
    unsigned char *R = s->work + (w / 2 + 8) * sizeof(int), *G = R + row, *B = G + row;
    unsigned char *u0 = B + row, *u1 = u0 + row, *u2 = u1 + row;
    int y = r * p->rows, y1 = y + p->rows;
    if (y < k->y0) y = k->y0;
    if (y1 > k->y1) y1 = k->y1;
    if (p->ring[(r > 0 ? r - 1 : r) % JPEG_RING].failed || s->failed ||
        p->ring[(r + 1 < d->mcuy ? r + 1 : r) % JPEG_RING].failed)
        return;
    for (; y < y1; y++) {
        const unsigned char *c0 = upsample(d, p->ring, 0, y, k->x0, k->x1, u0, tw);
        if (d->ncomp == 1) {
            memcpy(R, c0, w);
            k->row(k->ctx, y, R, R, R);
        } else {
            const unsigned char *c1 = upsample(d, p->ring, 1, y, k->x0, k->x1, u1, tw);
            const unsigned char *c2 = upsample(d, p->ring, 2, y, k->x0, k->x1, u2, tw);
            if (d->rgb) {
                memcpy(R, c0, w);
                memcpy(G, c1, w);
                memcpy(B, c2, w);
            } else {
                ycc_to_rgb(R, G, B, c0, c1, c2, (int)w);
            }
            k->row(k->ctx, y, R, G, B);
        }
    }
}

/* Run the pixel steps (and, streaming, the entropy decoding) for the
   whole image. */
static int jpeg_run(jpeg_dec *d, const jpeg_sink *sink, int streaming)
{
    jpeg_slot ring[JPEG_RING];
    jpeg_pipe p;
    int i, r, R = d->mcuy, rc = -1;
    size_t work;
    memset(ring, 0, sizeof ring);
    p.d = d;
    p.ring = ring;
    p.sink = sink;
    p.rows = 8 * d->vmax;
    p.streaming = streaming;
    p.wcols = (size_t)(sink->x1 - sink->x0);
    d->failed_at = -1;
    /* the block columns each component needs: the samples under the output
       columns and the upsamplers' neighbours */
    for (i = 0; i < d->ncomp; i++) {
        jpeg_comp *c = &d->comp[i];
        int he = d->hmax / c->h, s0 = sink->x0 / he - 1, s1 = (sink->x1 - 1) / he + 1;
        if (s0 < 0) s0 = 0;
        if (s1 > c->dw - 1) s1 = c->dw - 1;
        c->bx0 = s0 / 8;
        c->bx1 = s1 / 8 + 1;
    }
    work = 6 * jpeg_work_row(&p) + (p.wcols / 2 + 8) * sizeof(int);
    for (r = 0; r < JPEG_RING; r++) {
        jpeg_slot *s = &ring[r];
        for (i = 0; i < d->ncomp; i++) {
            jpeg_comp *c = &d->comp[i];
            s->plane[i] = (unsigned char *)calloc((size_t)c->v * 8, (size_t)c->bw * 8);
            if (streaming) s->coef[i] = (int16_t *)malloc((size_t)c->v * c->bw * 64 * sizeof(int16_t));
            if (!s->plane[i] || (streaming && !s->coef[i])) goto out;
        }
        s->work = (unsigned char *)calloc(work, 1);
        if (!s->work) goto out;
    }
    OMP("omp parallel")
    OMP("omp single")
    for (r = 0; r <= R; r++) {
        if (r < R) {
            /* MCU row r is transformed when its output rows, or a
               neighbour's (the vertical upsamplers' context), are wanted */
            int lo = r > 0 ? r - 1 : 0, hi = r + 1 < R ? r + 1 : R - 1;
            if (streaming) {
                OMP("omp task firstprivate(r) shared(p) depend(inout: p) depend(inout: ring[r % JPEG_RING])")
                step_entropy(&p, r);
            }
            if (lo * p.rows < sink->y1 && (hi + 1) * p.rows > sink->y0) {
                OMP("omp task firstprivate(r) shared(p) depend(inout: ring[r % JPEG_RING])")
                step_idct(&p, r);
            }
        }
        /* the color step of row r - 1 reads rows r - 2, r - 1 and r */
        if (r > 0 && (r - 1) * p.rows < sink->y1 && r * p.rows > sink->y0) {
            int q = r - 1;
            OMP("omp task firstprivate(q) shared(p) depend(in: ring[(q + JPEG_RING - 1) % JPEG_RING], ring[q % JPEG_RING], ring[(q + 1) % JPEG_RING])")
            step_color(&p, q);
        }
    }
    rc = d->failed_at >= 0 ? -1 : 0;
out:
    if (rc && d->failed_at < 0) jfail(d, "out of memory");
    for (r = 0; r < JPEG_RING; r++) {
        for (i = 0; i < d->ncomp; i++) {
            free(ring[r].plane[i]);
            free(ring[r].coef[i]);
        }
        free(ring[r].work);
    }
    return rc;
}

/* Decode a JPEG into the sink that prepare() sets up once the frame size
   is known (at the first scan; prepare reports its own errors). */
typedef int (*jpeg_prepare)(void *ctx, int w, int h, jpeg_sink *sink, char *err);

static int decode_jpeg(const unsigned char *data, size_t size, jpeg_prepare prepare, void *ctx, char *err)
{
    jpeg_dec *d = (jpeg_dec *)calloc(1, sizeof(jpeg_dec));
    jpeg_sink sink;
    int rc = -1, i, done = 0, scans = 0, streaming = 0;
    if (!d) return fail(err, "clip: out of memory");
    d->p = data + 2;
    d->end = data + size;
    d->err = err;
    memset(d->dc_U, 1, sizeof d->dc_U); /* T.81's default conditioning: L = 0, U = 1, K = 5 */
    memset(d->ac_K, 5, sizeof d->ac_K);
    while (!done) {
        int m;
        /* markers may be preceded by fill bytes */
        if (d->p >= d->end || *d->p != 0xFF) {
            if (scans) break; /* data after the last scan without EOI: accept what we have */
            jfail(d, "expected a marker at byte %ld", (long)(d->p - data));
            goto out;
        }
        while (d->p < d->end && *d->p == 0xFF) d->p++;
        if (d->p >= d->end) break;
        m = *d->p++;
        switch (m) {
        case 0xD8: jfail(d, "a second start-of-image marker"); goto out;
        case 0xD9: done = 1; break;
        case 0xC0: case 0xC1: case 0xC2: case 0xC9: case 0xCA:
            if (parse_sof(d, m)) goto out;
            break;
        case 0xC3: case 0xC7: case 0xCB: case 0xCF:
            jfail(d, "lossless JPEG is not supported"); goto out;
        case 0xC5: case 0xC6: case 0xCD: case 0xCE:
            jfail(d, "hierarchical JPEG is not supported"); goto out;
        case 0xC4:
            if (parse_dht(d)) goto out;
            break;
        case 0xCC:
            if (parse_dac(d)) goto out;
            break;
        case 0xDB:
            if (parse_dqt(d)) goto out;
            break;
        case 0xDD: {
            int len, v;
            if (read_u16(d, &len) || len != 4 || read_u16(d, &v)) {
                jfail(d, "DRI segment is malformed");
                goto out;
            }
            d->restart_interval = v;
            break;
        }
        case 0xDA:
            if (streaming) { /* libjpeg: "Didn't expect more than one scan" */
                jfail(d, "a second scan after a sequential scan that held every component");
                goto out;
            }
            if (scans >= JPEG_MAX_SCANS) {
                jfail(d, "more than %d scans (each is a pass over the whole image; a crafted file?)",
                      JPEG_MAX_SCANS);
                goto out;
            }
            if (begin_scan(d)) goto out;
            if (!scans) {
                /* libjpeg settles the color space with the headers before
                   the first scan (default_decompress_parms) */
                if (d->ncomp == 3) {
                    if (d->saw_jfif)
                        d->rgb = 0;
                    else if (d->saw_adobe)
                        d->rgb = d->adobe_transform == 0;
                    else
                        d->rgb = d->comp[0].id == 'R' && d->comp[1].id == 'G' && d->comp[2].id == 'B';
                }
                if (prepare(ctx, d->w, d->h, &sink, err)) goto out;
                /* one sequential scan with every component: decode it as a
                   stream of MCU rows, overlapped with the pixel work */
                streaming = !d->progressive && d->ns == d->ncomp;
                if (streaming) {
                    if (jpeg_run(d, &sink, 1)) goto out;
                    scans = 1;
                    break; /* on to EOI: what follows must still parse */
                }
                for (i = 0; i < d->ncomp; i++) {
                    jpeg_comp *c = &d->comp[i];
                    c->coef = (int16_t *)calloc((size_t)c->bw * c->bh, 64 * sizeof(int16_t));
                    if (!c->coef) {
                        jfail(d, "out of memory for a %dx%d image", d->w, d->h);
                        goto out;
                    }
                }
            }
            if (decode_mcus(d, 0, d->mcus, NULL, NULL) || end_scan(d)) goto out;
            scans++;
            break;
        case 0xDC: jfail(d, "DNL markers are not supported"); goto out;
        default:
            if ((m >= 0xE0 && m <= 0xEF) || m == 0xFE) {
                const unsigned char *s;
                int len;
                if (segment(d, &s, &len, "APP/COM")) goto out;
                if (m == 0xE0 && len >= 5 && memcmp(s, "JFIF\0", 5) == 0) d->saw_jfif = 1;
                if (m == 0xEE && len >= 12 && memcmp(s, "Adobe", 5) == 0) {
                    d->saw_adobe = 1;
                    d->adobe_transform = s[11];
                }
            } else if (m >= 0xD0 && m <= 0xD7) {
                /* a stray restart marker between segments: nothing to do */
            } else {
                jfail(d, "unknown marker 0xFF%02X", m);
                goto out;
            }
        }
    }
    if (!d->seen_sof || !scans) {
        jfail(d, !d->seen_sof ? "no frame header (SOF)" : "no image data (SOS)");
        goto out;
    }
    if (!streaming && jpeg_run(d, &sink, 0)) goto out;
    rc = 0;
out:
    for (i = 0; i < JPEG_MAX_COMPONENTS; i++) free(d->comp[i].coef);
    free(d);
    return rc;
}

/* The whole image, rows interleaved into an RGB buffer. */
typedef struct {
    clip_image *img;
    unsigned char *rgb;  /* row y0 of the output */
    size_t stride;
    int y0, n;           /* first row, pixels per row */
} interleave_ctx;

static void interleave_row(void *ctx, int y, const unsigned char *r, const unsigned char *g, const unsigned char *b)
{
    const interleave_ctx *c = (const interleave_ctx *)ctx;
    unsigned char *o = c->rgb + (size_t)(y - c->y0) * c->stride;
    int x;
    for (x = 0; x < c->n; x++) {
        o[3 * x] = r[x];
        o[3 * x + 1] = g[x];
        o[3 * x + 2] = b[x];
    }
}

static int image_prepare(void *ctx, int w, int h, jpeg_sink *sink, char *err)
{
    interleave_ctx *c = (interleave_ctx *)ctx;
    if (image_alloc(c->img, w, h, err)) return -1;
    c->rgb = c->img->rgb;
    c->stride = (size_t)w * 3;
    c->y0 = 0;
    c->n = w;
    sink->y0 = 0;
    sink->y1 = h;
    sink->x0 = 0;
    sink->x1 = w;
    sink->pad = 0;
    sink->row = interleave_row;
    sink->ctx = c;
    return 0;
}

/* ------------------------------------------------------------------------
   Format dispatch */

static int is_jpeg(const unsigned char *data, size_t size)
{
    return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

int clip_image_decode(clip_image *img, const unsigned char *data, size_t size, char *err)
{
    img->rgb = NULL;
    img->width = img->height = 0;
    if (size >= 2 && data[0] == 'P' && data[1] >= '2' && data[1] <= '6' && data[1] != '4')
        return decode_pnm(img, data, size, err);
    if (size >= 2 && data[0] == 'P' && (data[1] == '1' || data[1] == '4'))
        return fail(err, "clip: 1-bit PBM images are not supported; convert to PGM or PPM");
    if (is_jpeg(data, size)) {
        interleave_ctx c;
        int rc;
        c.img = img;
        rc = decode_jpeg(data, size, image_prepare, &c, err);
        if (rc) clip_image_free(img);
        return rc;
    }
    return fail(err, "clip: unknown image format (JPEG, PPM and PGM are read)");
}

/* The whole file in memory. */
static int read_file(const char *path, unsigned char **data, size_t *size, char *err)
{
    FILE *f = clip_fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    *data = NULL;
    *size = 0;
    if (!f) return fail(err, "clip: %s: %s", path, strerror(errno));
    for (;;) {
        size_t got;
        if (len == cap) {
            unsigned char *nb;
            if (cap > SIZE_MAX / 2) {
                fclose(f);
                free(buf);
                return fail(err, "clip: %s: too large", path);
            }
            cap = cap ? cap * 2 : 1 << 16;
            nb = (unsigned char *)realloc(buf, cap);
            if (!nb) {
                fclose(f);
                free(buf);
                return fail(err, "clip: %s: out of memory", path);
            }
            buf = nb;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        fclose(f);
        free(buf);
        return fail(err, "clip: %s: read error", path);
    }
    fclose(f);
    *data = buf;
    *size = len;
    return 0;
}

/* Prefix a decoding error with the file's name. */
static int name_file(int rc, const char *path, char *err)
{
    if (rc && err) {
        char tmp[CLIP_ERR_SIZE];
        const char *msg = strncmp(err, "clip: ", 6) == 0 ? err + 6 : err;
        snprintf(tmp, sizeof tmp, "clip: %s: %s", path, msg);
        memcpy(err, tmp, CLIP_ERR_SIZE);
    }
    return rc;
}

int clip_image_load(clip_image *img, const char *path, char *err)
{
    unsigned char *buf;
    size_t len;
    int rc;
    img->rgb = NULL;
    img->width = img->height = 0;
    if (read_file(path, &buf, &len, err)) return -1;
    rc = clip_image_decode(img, buf, len, err);
    free(buf);
    return name_file(rc, path, err);
}

int clip_image_write_ppm(const clip_image *img, const char *path, char *err)
{
    FILE *f = clip_fopen(path, "wb");
    size_t n = (size_t)img->width * (size_t)img->height * 3;
    if (!f) return fail(err, "clip: %s: %s", path, strerror(errno));
    fprintf(f, "P6\n%d %d\n255\n", img->width, img->height);
    if (fwrite(img->rgb, 1, n, f) != n || fclose(f) != 0) {
        if (!ferror(f)) return fail(err, "clip: %s: write error", path);
        fclose(f);
        return fail(err, "clip: %s: write error", path);
    }
    return 0;
}

/* ------------------------------------------------------------------------
   Resampling, as Pillow's ImagingResample (libImaging/Resample.c) computes
   it for 8-bit images: separable, horizontal pass first; each output pixel
   is a window of input pixels weighted by the filter stretched by the
   downscale factor (antialiasing); weights normalized to sum 1, converted
   to fixed point with 22 fractional bits, rounded and clamped per pass. */

#define PRECISION_BITS (32 - 8 - 2)

static double bicubic_filter(double x)
{
    const double a = -0.5; /* Pillow's choice */
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

static double bilinear_filter(double x)
{
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* The input window and fixed-point weights of output pixels [o0, o1) when
   in_size pixels are resampled to out_size. */
typedef struct {
    int ksize;    /* weights per output pixel */
    int *bounds;  /* (count, 2): first input pixel, window length */
    int32_t *k;   /* (count, ksize) */
} coeffs;

static int coeffs_make(coeffs *c, int in_size, int out_size, int o0, int o1, int resample, char *err)
{
    double (*filter)(double) = resample == 2 ? bilinear_filter : bicubic_filter;
    double support = resample == 2 ? 1.0 : 2.0;
    double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double *w;
    int o, x, count = o1 - o0;
    support *= filterscale;
    /* rounded up to a multiple of 8 (zero weights) for the vectorized loops */
    c->ksize = ((int)ceil(support) * 2 + 1 + 7) & ~7;
    c->bounds = (int *)malloc((size_t)(count > 0 ? count : 1) * 2 * sizeof(int));
    c->k = (int32_t *)malloc((size_t)(count > 0 ? count : 1) * (size_t)c->ksize * sizeof(int32_t));
    w = (double *)malloc((size_t)c->ksize * sizeof(double));
    if (!c->bounds || !c->k || !w) {
        free(c->bounds);
        free(c->k);
        free(w);
        c->bounds = NULL;
        c->k = NULL;
        return fail(err, "clip: out of memory for resampling coefficients");
    }
    for (o = o0; o < o1; o++) {
        double center = (o + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        int32_t *kk = c->k + (size_t)(o - o0) * c->ksize;
        if (xmin < 0) xmin = 0;
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (x = 0; x < xmax; x++) {
            w[x] = filter((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        for (x = 0; x < c->ksize; x++) {
            double v = x < xmax ? (ww != 0.0 ? w[x] / ww : w[x]) : 0.0;
            kk[x] = (int32_t)(v < 0 ? -0.5 + v * (1 << PRECISION_BITS) : 0.5 + v * (1 << PRECISION_BITS));
        }
        c->bounds[(o - o0) * 2] = xmin;
        c->bounds[(o - o0) * 2 + 1] = xmax;
    }
    free(w);
    return 0;
}

static void coeffs_free(coeffs *c)
{
    free(c->bounds);
    free(c->k);
}

static unsigned char clip8(int32_t v)
{
    if (v <= 0) return 0;
    v >>= PRECISION_BITS;
    return v > 255 ? 255 : (unsigned char)v;
}

/* out (rows x ncols) from input rows [row0, row0+rows) of in (in_w wide):
   each output column o uses coefficients c for column o */
static void resample_horizontal(unsigned char *out, int ncols, const unsigned char *in, int in_w, int row0, int rows,
                                const coeffs *c)
{
    int y;
    OMP("omp parallel for schedule(static)")
    for (y = 0; y < rows; y++) {
        const unsigned char *src = in + (size_t)(row0 + y) * in_w * 3;
        unsigned char *dst = out + (size_t)y * ncols * 3;
        int o, x;
        for (o = 0; o < ncols; o++) {
            int xmax = c->bounds[o * 2 + 1];
            const unsigned char *p = src + (size_t)c->bounds[o * 2] * 3;
            const int32_t *k = c->k + (size_t)o * c->ksize;
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (x = 0; x < xmax; x++) {
                s0 += p[3 * x] * k[x];
                s1 += p[3 * x + 1] * k[x];
                s2 += p[3 * x + 2] * k[x];
            }
            dst[o * 3] = clip8(s0);
            dst[o * 3 + 1] = clip8(s1);
            dst[o * 3 + 2] = clip8(s2);
        }
    }
}

/* out rows o (nrows of them, width w) from in (w wide) rows, with the
   window of each output row shifted up by row0 (in holds rows from row0) */
static void resample_vertical(unsigned char *out, int nrows, const unsigned char *in, int w, int row0,
                              const coeffs *c)
{
    int o;
    /* each output row accumulates whole input rows into int32 sums (x
       innermost: contiguous, so it vectorizes), in strips that stay in L1 */
    OMP("omp parallel for schedule(static)")
    for (o = 0; o < nrows; o++) {
        enum { STRIP = 1024 };
        int32_t acc[STRIP];
        int ymin = c->bounds[o * 2] - row0, ymax = c->bounds[o * 2 + 1], x0, x, y, n = w * 3;
        const int32_t *k = c->k + (size_t)o * c->ksize;
        unsigned char *dst = out + (size_t)o * n;
        for (x0 = 0; x0 < n; x0 += STRIP) {
            int m = n - x0 < STRIP ? n - x0 : STRIP;
            for (x = 0; x < m; x++) acc[x] = 1 << (PRECISION_BITS - 1);
            for (y = 0; y < ymax; y++) {
                const unsigned char *row = in + (size_t)(y + ymin) * n + x0;
                int32_t ky = k[y];
                for (x = 0; x < m; x++) acc[x] += row[x] * ky;
            }
            for (x = 0; x < m; x++) dst[x0 + x] = clip8(acc[x]);
        }
    }
}

/* One channel of a row through the horizontal pass: dst[3 * o] for the
   ncols output columns, from src (input column x0 at src[0]). Every window
   is ksize (a multiple of 8) long, with zero weights past its end. The int32
   sums are exact (at most 255 * sum|k| < 2^31), so their order does not
   matter, and the loop takes the shape that vectorizes best where 32-bit
   vector multiplies exist (SSE4.1, NEON): tap groups of 8 over a block of
   outputs with eight partial sums each (a per-output reduction of unknown
   length the compilers handle poorly there); elsewhere (SSE2 has no such
   multiply, and scalar targets) the plain per-output sum is faster. */
static void hpass_channel(unsigned char *dst, const unsigned char *src, const coeffs *c, int x0, int ncols)
{
#if VECTOR_MUL32
    enum { BLOCK = 64 };
    int32_t acc[BLOCK][8];
    int o0, o, i, j, n = c->ksize;
    for (o0 = 0; o0 < ncols; o0 += BLOCK) {
        int m = ncols - o0 < BLOCK ? ncols - o0 : BLOCK;
        for (o = 0; o < m; o++)
            for (j = 0; j < 8; j++) acc[o][j] = 0;
        for (i = 0; i < n; i += 8)
            for (o = 0; o < m; o++) {
                const unsigned char *x = src + c->bounds[2 * (o0 + o)] - x0 + i;
                const int32_t *k = c->k + (size_t)(o0 + o) * n + i;
                for (j = 0; j < 8; j++) acc[o][j] += x[j] * k[j];
            }
        for (o = 0; o < m; o++) {
            int32_t s = 1 << (PRECISION_BITS - 1);
            for (j = 0; j < 8; j++) s += acc[o][j];
            dst[3 * (o0 + o)] = clip8(s);
        }
    }
#else
    int o, i, n = c->ksize;
    for (o = 0; o < ncols; o++) {
        const unsigned char *x = src + c->bounds[2 * o] - x0;
        const int32_t *k = c->k + (size_t)o * n;
        int32_t s = 1 << (PRECISION_BITS - 1);
        for (i = 0; i < n; i++) s += x[i] * k[i];
        dst[3 * o] = clip8(s);
    }
#endif
}

/* CLIPImageProcessor.resize + center_crop, planned for a W x H input. The
   resized image is never built whole: only the output rows and columns
   inside the crop are computed (each depends on its own coefficients alone,
   so the pixels are the same), which keeps 1 x 10000 inputs cheap. */
typedef struct {
    int W, H, crop_h, crop_w;
    long long top, left;       /* the crop's corner in the resized image (negative: padded) */
    int r0, r1, c0, c1;        /* the resized rows and columns inside the crop */
    int nrows, ncols;
    int need_h, need_v;        /* a pass is skipped when its size does not change */
    coeffs ch, cv;             /* weights of columns [c0, c1) and rows [r0, r1) */
    int x0, x1;                /* input columns the horizontal pass reads */
    int y0, y1;                /* input rows the vertical pass reads */
    unsigned char *tmp;        /* (y1 - y0, ncols, 3): input rows after the horizontal pass */
} resize_plan;

static void plan_free(resize_plan *p)
{
    coeffs_free(&p->ch);
    coeffs_free(&p->cv);
    free(p->tmp);
    p->tmp = NULL;
}

static int plan_make(resize_plan *p, int W, int H, int resize_mode, int resize_h, int resize_w, int crop_h,
                     int crop_w, int resample, char *err)
{
    long long rw, rh;
    memset(p, 0, sizeof *p);
    if (W < 1 || H < 1) return fail(err, "clip: empty input image");
    if (crop_h < 1 || crop_w < 1 || resize_h < 1 || resize_w < 1 || (resample != 2 && resample != 3))
        return fail(err, "clip: invalid preprocessing parameters");
    if (resize_mode == 0) {
        /* get_resize_output_image_size: short side -> size, long side int(size * long / short) */
        int shortside = W <= H ? W : H, longside = W <= H ? H : W;
        long long lng = (long long)((double)((long long)resize_h * longside) / (double)shortside);
        if (W <= H) {
            rw = resize_h;
            rh = lng;
        } else {
            rh = resize_h;
            rw = lng;
        }
    } else {
        rh = resize_h;
        rw = resize_w;
    }
    if (rw > INT_MAX / 4 || rh > INT_MAX / 4)
        return fail(err, "clip: a %dx%d image resizes to %lldx%lld, too large", W, H, rw, rh);
    p->W = W;
    p->H = H;
    p->crop_h = crop_h;
    p->crop_w = crop_w;
    /* center_crop: top = (h - crop_h) // 2 (floor), padding with zeros where the
       crop reaches outside the resized image */
    p->top = rh - crop_h >= 0 ? (rh - crop_h) / 2 : -((crop_h - rh + 1) / 2);
    p->left = rw - crop_w >= 0 ? (rw - crop_w) / 2 : -((crop_w - rw + 1) / 2);
    p->r0 = (int)(p->top > 0 ? p->top : 0);
    p->r1 = (int)(p->top + crop_h < rh ? p->top + crop_h : rh);
    p->c0 = (int)(p->left > 0 ? p->left : 0);
    p->c1 = (int)(p->left + crop_w < rw ? p->left + crop_w : rw);
    p->nrows = p->r1 - p->r0;
    p->ncols = p->c1 - p->c0;
    p->need_h = rw != W;
    p->need_v = rh != H;
    if (p->need_h && coeffs_make(&p->ch, W, (int)rw, p->c0, p->c1, resample, err)) return -1;
    if (p->need_v && coeffs_make(&p->cv, H, (int)rh, p->r0, p->r1, resample, err)) {
        plan_free(p);
        return -1;
    }
    if (p->need_h) {
        int last = (p->ncols - 1) * 2;
        p->x0 = p->ch.bounds[0];
        p->x1 = p->ch.bounds[last] + p->ch.bounds[last + 1];
    } else {
        p->x0 = p->c0;
        p->x1 = p->c1;
    }
    if (p->need_v) {
        int last = (p->nrows - 1) * 2;
        p->y0 = p->cv.bounds[0];
        p->y1 = p->cv.bounds[last] + p->cv.bounds[last + 1];
    } else {
        p->y0 = p->r0;
        p->y1 = p->r1;
    }
    p->tmp = (unsigned char *)malloc((size_t)(p->y1 - p->y0) * (size_t)p->ncols * 3 + 1);
    if (!p->tmp) {
        plan_free(p);
        return fail(err, "clip: out of memory resizing");
    }
    return 0;
}

/* The vertical pass over p->tmp, into the crop. */
static int plan_finish(resize_plan *p, clip_image *out, char *err)
{
    const unsigned char *src = p->tmp;
    unsigned char *region = NULL;
    int y;
    if (image_alloc(out, p->crop_w, p->crop_h, err)) return -1;
    memset(out->rgb, 0, (size_t)p->crop_w * p->crop_h * 3);
    if (p->need_v) {
        region = (unsigned char *)malloc((size_t)p->nrows * p->ncols * 3 + 1);
        if (!region) {
            clip_image_free(out);
            return fail(err, "clip: out of memory resizing");
        }
        resample_vertical(region, p->nrows, src, p->ncols, p->y0, &p->cv);
        src = region;
    }
    /* place the region in the crop (offset where the crop was padded) */
    for (y = 0; y < p->nrows; y++)
        memcpy(out->rgb + ((size_t)(p->r0 - p->top + y) * p->crop_w + (size_t)(p->c0 - p->left)) * 3,
               src + (size_t)y * p->ncols * 3, (size_t)p->ncols * 3);
    free(region);
    return 0;
}

int clip_resize_crop(const clip_image *in, clip_image *out, int resize_mode, int resize_h, int resize_w, int crop_h,
                     int crop_w, int resample, char *err)
{
    resize_plan p;
    int y, rc;
    out->rgb = NULL;
    out->width = out->height = 0;
    if (!in->rgb) return fail(err, "clip: empty input image");
    if (plan_make(&p, in->width, in->height, resize_mode, resize_h, resize_w, crop_h, crop_w, resample, err))
        return -1;
    if (p.need_h)
        resample_horizontal(p.tmp, p.ncols, in->rgb, p.W, p.y0, p.y1 - p.y0, &p.ch);
    else /* no horizontal pass: the needed columns straight from the input */
        for (y = p.y0; y < p.y1; y++)
            memcpy(p.tmp + (size_t)(y - p.y0) * p.ncols * 3, in->rgb + ((size_t)y * p.W + p.c0) * 3,
                   (size_t)p.ncols * 3);
    rc = plan_finish(&p, out, err);
    plan_free(&p);
    return rc;
}

/* The JPEG decoder's rows straight into the horizontal pass. */
typedef struct {
    resize_plan plan;
    int resize_mode, resize_h, resize_w, crop_h, crop_w, resample, ready;
    interleave_ctx copy;       /* without a horizontal pass: the columns, interleaved */
} fused_ctx;

static void fused_row(void *ctx, int y, const unsigned char *r, const unsigned char *g, const unsigned char *b)
{
    const resize_plan *p = &((const fused_ctx *)ctx)->plan;
    unsigned char *dst = p->tmp + (size_t)(y - p->y0) * p->ncols * 3;
    hpass_channel(dst, r, &p->ch, p->x0, p->ncols);
    hpass_channel(dst + 1, g, &p->ch, p->x0, p->ncols);
    hpass_channel(dst + 2, b, &p->ch, p->x0, p->ncols);
}

static int fused_prepare(void *ctx, int w, int h, jpeg_sink *sink, char *err)
{
    fused_ctx *f = (fused_ctx *)ctx;
    resize_plan *p = &f->plan;
    if (plan_make(p, w, h, f->resize_mode, f->resize_h, f->resize_w, f->crop_h, f->crop_w, f->resample, err))
        return -1;
    f->ready = 1;
    sink->y0 = p->y0;
    sink->y1 = p->y1;
    sink->x0 = p->x0;
    sink->x1 = p->x1;
    if (p->need_h) {
        sink->pad = p->ch.ksize;
        sink->row = fused_row;
        sink->ctx = f;
    } else {
        f->copy.rgb = p->tmp;
        f->copy.stride = (size_t)p->ncols * 3;
        f->copy.y0 = p->y0;
        f->copy.n = p->ncols;
        sink->pad = 0;
        sink->row = interleave_row;
        sink->ctx = &f->copy;
    }
    return 0;
}

int clip_decode_resize_crop(clip_image *out, const unsigned char *data, size_t size, int resize_mode, int resize_h,
                            int resize_w, int crop_h, int crop_w, int resample, char *err)
{
    fused_ctx f;
    int rc;
    out->rgb = NULL;
    out->width = out->height = 0;
    if (!is_jpeg(data, size)) {
        clip_image img;
        if (clip_image_decode(&img, data, size, err)) return -1;
        rc = clip_resize_crop(&img, out, resize_mode, resize_h, resize_w, crop_h, crop_w, resample, err);
        clip_image_free(&img);
        return rc;
    }
    memset(&f, 0, sizeof f);
    f.resize_mode = resize_mode;
    f.resize_h = resize_h;
    f.resize_w = resize_w;
    f.crop_h = crop_h;
    f.crop_w = crop_w;
    f.resample = resample;
    rc = decode_jpeg(data, size, fused_prepare, &f, err);
    if (!rc) rc = plan_finish(&f.plan, out, err);
    if (f.ready) plan_free(&f.plan);
    return rc;
}

int clip_load_resize_crop(clip_image *out, const char *path, int resize_mode, int resize_h, int resize_w, int crop_h,
                          int crop_w, int resample, char *err)
{
    unsigned char *buf;
    size_t len;
    int rc;
    out->rgb = NULL;
    out->width = out->height = 0;
    if (read_file(path, &buf, &len, err)) return -1;
    rc = clip_decode_resize_crop(out, buf, len, resize_mode, resize_h, resize_w, crop_h, crop_w, resample, err);
    free(buf);
    return name_file(rc, path, err);
}
