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
   JPEG: baseline, extended and progressive Huffman-coded, 8-bit, gray or
   three components (YCbCr, or RGB by Adobe marker / component ids), any
   integral sampling factors. The output is what libjpeg-turbo's default
   decompression gives (djpeg, Pillow): the same "islow" integer IDCT, the
   same upsamplers (triangle-filter "fancy" ones for 2x1, 1x2 and 2x2 with
   libjpeg-turbo's conditions, replication otherwise, with its edge
   handling), the same fixed-point YCbCr->RGB tables.

   All coefficients are decoded into one buffer per component first (the
   progressive scans need that anyway), then each component is
   inverse-transformed, upsampled and color-converted. */

#define JPEG_MAX_COMPONENTS 4

/* zigzag position -> natural (row-major) position, padded with 63 so that a
   corrupt run length past the band stays inside the block */
static const unsigned char jpeg_natural[64 + 16] = {
    0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13,
    6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31,
    39, 46, 53, 60, 61, 54, 47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63};

#define HUFF_FAST_BITS 9

typedef struct {
    int defined;
    unsigned char vals[256];
    int32_t maxcode[18];   /* largest code of each length, -1 if none; [17] sentinel */
    int32_t valoffset[17]; /* vals index of a code of length l = code + valoffset[l] */
    uint16_t fast[1 << HUFF_FAST_BITS]; /* (length << 8 | value) for short codes, 0 if longer */
} huff_table;

typedef struct {
    int id, h, v, tq;          /* component id, sampling factors, quant table */
    int bw, bh;                /* blocks stored (whole MCUs) */
    int dw, dh;                /* downsampled size in samples (libjpeg's downsampled_width/height) */
    int dc_tbl, ac_tbl;        /* tables of the current scan */
    int32_t dc_pred;
    int16_t *coef;             /* (bh, bw, 64), natural order */
    unsigned char *plane;      /* (bh*8, bw*8) after the IDCT */
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
    /* entropy decoder state */
    uint32_t bits;             /* bit buffer, next bit at the top */
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

static int parse_sof(jpeg_dec *d, int marker)
{
    const unsigned char *s;
    int len, i, j;
    long long blocks = 0;
    if (segment(d, &s, &len, "SOF")) return -1;
    if (d->seen_sof) return jfail(d, "more than one frame header");
    d->seen_sof = 1;
    d->progressive = marker == 0xC2;
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
    for (i = 0; i < d->ncomp; i++) {
        jpeg_comp *c = &d->comp[i];
        c->coef = (int16_t *)calloc((size_t)c->bw * c->bh, 64 * sizeof(int16_t));
        if (!c->coef) return jfail(d, "out of memory for a %dx%d image", d->w, d->h);
    }
    return 0;
}

/* ---- the entropy decoder ---- */

/* Top up the bit buffer to at least 25 bits. Past a marker or the end of
   the data it inserts zeros (as libjpeg does) and counts them. */
static void fill_bits(jpeg_dec *d)
{
    while (d->nbits <= 24) {
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
        d->bits |= (uint32_t)b << (24 - d->nbits);
        d->nbits += 8;
    }
}

static int get_bits(jpeg_dec *d, int n)
{
    int v;
    if (n == 0) return 0;
    if (d->nbits < n) fill_bits(d);
    v = (int)(d->bits >> (32 - n));
    d->bits <<= n;
    d->nbits -= n;
    return v;
}

/* JPEG's EXTEND: an n-bit value v as a signed coefficient */
static int32_t extend(int32_t v, int n)
{
    return v < (1 << (n - 1)) ? v - (1 << n) + 1 : v;
}

/* Next Huffman symbol, or -1 for a code that is in no table. */
static int huff_decode(jpeg_dec *d, const huff_table *t)
{
    int l;
    int32_t code;
    if (d->nbits < 16) fill_bits(d);
    {
        uint16_t f = t->fast[d->bits >> (32 - HUFF_FAST_BITS)];
        if (f) {
            d->bits <<= f >> 8;
            d->nbits -= f >> 8;
            return f & 0xFF;
        }
    }
    for (l = 1; l <= 16; l++) {
        code = (int32_t)(d->bits >> (32 - l));
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
    if (d->fill_bits > d->nbits)
        return jfail(d, d->marker == 0x100 ? "the data ends inside a scan (truncated file)"
                                           : "corrupt data: marker 0x%02X inside a scan", d->marker);
    return 0;
}

static int decode_block_baseline(jpeg_dec *d, jpeg_comp *c, int16_t *blk)
{
    const huff_table *dc = &d->dc[c->dc_tbl], *ac = &d->ac[c->ac_tbl];
    int s = huff_decode(d, dc), k;
    int32_t diff = 0;
    if (s < 0) return jfail(d, "corrupt data: bad Huffman code");
    if (s) diff = extend(get_bits(d, s), s);
    if ((diff > 0 && c->dc_pred > INT32_MAX / 2) || (diff < 0 && c->dc_pred < INT32_MIN / 2))
        return jfail(d, "corrupt data: DC coefficient out of range");
    c->dc_pred += diff;
    blk[0] = wrap16(c->dc_pred);
    for (k = 1; k < 64; k++) {
        int rs = huff_decode(d, ac), r, sz;
        if (rs < 0) return jfail(d, "corrupt data: bad Huffman code");
        r = rs >> 4;
        sz = rs & 15;
        if (sz) {
            k += r;
            blk[jpeg_natural[k]] = wrap16(extend(get_bits(d, sz), sz));
        } else {
            if (r != 15) break;
            k += 15;
        }
    }
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
    int k;
    if (d->eobrun > 0) {
        d->eobrun--;
        return 0;
    }
    for (k = ss; k <= se; k++) {
        int rs = huff_decode(d, &d->ac[c->ac_tbl]), r, s;
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
            break;
        }
    }
    return 0;
}

/* One refinement bit for an already-nonzero coefficient. */
static void refine_coef(jpeg_dec *d, int16_t *coef, int p1)
{
    if (get_bits(d, 1) && (*coef & p1) == 0) *coef = wrap16(*coef >= 0 ? *coef + p1 : *coef - p1);
}

static int decode_ac_refine(jpeg_dec *d, jpeg_comp *c, int16_t *blk, int ss, int se, int al)
{
    int p1 = 1 << al, k = ss;
    if (d->eobrun == 0) {
        for (; k <= se; k++) {
            int rs = huff_decode(d, &d->ac[c->ac_tbl]), r, s = 0;
            if (rs < 0) return jfail(d, "corrupt data: bad Huffman code");
            r = rs >> 4;
            if (rs & 15) {
                s = get_bits(d, 1) ? p1 : -p1;
            } else if (r != 15) {
                d->eobrun = 1 << r;
                if (r) d->eobrun += get_bits(d, r);
                break;
            }
            /* skip r zero coefficients (refining the nonzero ones passed) */
            do {
                int16_t *coef = blk + jpeg_natural[k];
                if (*coef != 0)
                    refine_coef(d, coef, p1);
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
            if (*coef != 0) refine_coef(d, coef, p1);
        }
        d->eobrun--;
    }
    return 0;
}

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

static int parse_sos(jpeg_dec *d)
{
    const unsigned char *s;
    int len, ns, i, j, ss, se, ah, al, mcus, mcu, rst = 0, todo;
    jpeg_comp *sc[JPEG_MAX_COMPONENTS];
    if (segment(d, &s, &len, "SOS")) return -1;
    if (!d->seen_sof) return jfail(d, "scan before the frame header");
    ns = len > 0 ? s[0] : 0;
    if (ns < 1 || ns > d->ncomp || len != 4 + 2 * ns) return jfail(d, "scan header is malformed");
    for (i = 0; i < ns; i++) {
        int id = s[1 + 2 * i], td = s[2 + 2 * i] >> 4, ta = s[2 + 2 * i] & 15;
        sc[i] = NULL;
        for (j = 0; j < d->ncomp; j++)
            if (d->comp[j].id == id) sc[i] = &d->comp[j];
        if (!sc[i]) return jfail(d, "scan names component %d, which the frame does not have", id);
        for (j = 0; j < i; j++)
            if (sc[j] == sc[i]) return jfail(d, "scan names component %d twice", id);
        if (td > 3 || ta > 3) return jfail(d, "scan uses Huffman table %d/%d (0..3 exist)", td, ta);
        sc[i]->dc_tbl = td;
        sc[i]->ac_tbl = ta;
    }
    ss = s[1 + 2 * ns];
    se = s[2 + 2 * ns];
    ah = s[3 + 2 * ns] >> 4;
    al = s[3 + 2 * ns] & 15;
    if (d->progressive) {
        if (ss > 63 || se > 63 || ss > se || (ss == 0 && se != 0) || (ss > 0 && ns != 1) || ah > 13 || al > 13)
            return jfail(d, "progressive scan parameters Ss=%d Se=%d Ah=%d Al=%d are invalid", ss, se, ah, al);
    } else {
        ss = 0;
        se = 63;
        ah = al = 0;
    }
    /* the tables this scan will use */
    for (i = 0; i < ns; i++) {
        int need_dc = !d->progressive || (ss == 0 && ah == 0), need_ac = !d->progressive || ss > 0;
        if (need_dc && !d->dc[sc[i]->dc_tbl].defined) return jfail(d, "scan uses DC Huffman table %d, never defined", sc[i]->dc_tbl);
        if (need_ac && !d->ac[sc[i]->ac_tbl].defined) return jfail(d, "scan uses AC Huffman table %d, never defined", sc[i]->ac_tbl);
        sc[i]->dc_pred = 0;
    }
    d->bits = 0;
    d->nbits = 0;
    d->fill_bits = 0;
    d->marker = 0;
    d->eobrun = 0;
    /* MCUs: a single-component scan codes that component's blocks one at a
       time, over its own (not MCU-padded) extent */
    if (ns == 1) {
        int bx = (sc[0]->dw + 7) / 8, by = (sc[0]->dh + 7) / 8;
        mcus = bx * by;
    } else {
        mcus = d->mcux * d->mcuy;
    }
    todo = d->restart_interval;
    for (mcu = 0; mcu < mcus; mcu++) {
        if (d->restart_interval && todo == 0) {
            if (check_overrun(d) || restart(d, rst)) return -1;
            rst = (rst + 1) & 7;
            todo = d->restart_interval;
            for (i = 0; i < ns; i++) sc[i]->dc_pred = 0;
        }
        for (i = 0; i < ns; i++) {
            jpeg_comp *c = sc[i];
            int bh = ns == 1 ? 1 : c->v, bw = ns == 1 ? 1 : c->h, y, x;
            for (y = 0; y < bh; y++)
                for (x = 0; x < bw; x++) {
                    int brow, bcol, rc;
                    int16_t *blk;
                    if (ns == 1) {
                        int per_row = (c->dw + 7) / 8;
                        brow = mcu / per_row;
                        bcol = mcu % per_row;
                    } else {
                        brow = (mcu / d->mcux) * c->v + y;
                        bcol = (mcu % d->mcux) * c->h + x;
                    }
                    blk = c->coef + ((size_t)brow * c->bw + (size_t)bcol) * 64;
                    if (!d->progressive)
                        rc = decode_block_baseline(d, c, blk);
                    else if (ss == 0 && ah == 0)
                        rc = decode_dc_first(d, c, blk, al);
                    else if (ss == 0)
                        rc = (get_bits(d, 1) ? (blk[0] = wrap16(blk[0] | (1 << al))) : 0, 0);
                    else if (ah == 0)
                        rc = decode_ac_first(d, c, blk, ss, se, al);
                    else
                        rc = decode_ac_refine(d, c, blk, ss, se, al);
                    if (rc) return -1;
                }
        }
        todo--;
        if ((mcu & 63) == 0 && check_overrun(d)) return -1;
    }
    if (check_overrun(d)) return -1;
    /* continue after the scan's data: at the marker the bit reader stopped on,
       or at the next one */
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

/* ---- the islow IDCT (jidctint.c's arithmetic) ---- */

#define IDCT_CONST_BITS 13
#define IDCT_PASS1_BITS 2
#define ASR(x, n) ((x) < 0 ? ~(~(x) >> (n)) : (x) >> (n))
#define DESCALE(x, n) ASR((x) + ((int64_t)1 << ((n)-1)), n)

/* libjpeg's post-IDCT range limit: the sample is (v + 128) clamped to 0..255
   for |v| < 512, and wraps modulo 1024 beyond (corrupt data only) */
static unsigned char idct_limit(int64_t v)
{
    int t = (int)(v & 1023);
    return (unsigned char)(t < 128 ? t + 128 : t < 512 ? 255 : t < 896 ? 0 : t - 896);
}

/* One 8-point pass of jidctint.c's butterfly (the same in both passes):
   x[0..7] in, the eight undescaled outputs in order 0..7 in y. */
static inline void idct_1d(int64_t *y, const int64_t *x)
{
    int64_t z1, z2, z3, z4, z5, t0, t1, t2, t3, t10, t11, t12, t13;
    /* even part: the rotator is sqrt(2) * c(-6) */
    z1 = (x[2] + x[6]) * 4433;                 /* FIX(0.541196100) */
    t2 = z1 + x[6] * -15137;                   /* FIX(1.847759065) */
    t3 = z1 + x[2] * 6270;                     /* FIX(0.765366865) */
    t0 = (x[0] + x[4]) * (1 << IDCT_CONST_BITS);
    t1 = (x[0] - x[4]) * (1 << IDCT_CONST_BITS);
    t10 = t0 + t3;
    t13 = t0 - t3;
    t11 = t1 + t2;
    t12 = t1 - t2;
    /* odd part */
    t0 = x[7];
    t1 = x[5];
    t2 = x[3];
    t3 = x[1];
    z1 = t0 + t3;
    z2 = t1 + t2;
    z3 = t0 + t2;
    z4 = t1 + t3;
    z5 = (z3 + z4) * 9633;                     /* FIX(1.175875602) */
    t0 *= 2446;                                /* FIX(0.298631336) */
    t1 *= 16819;                               /* FIX(2.053119869) */
    t2 *= 25172;                               /* FIX(3.072711026) */
    t3 *= 12299;                               /* FIX(1.501321110) */
    z1 *= -7373;                               /* FIX(0.899976223) */
    z2 *= -20995;                              /* FIX(2.562915447) */
    z3 = z3 * -16069 + z5;                     /* FIX(1.961570560) */
    z4 = z4 * -3196 + z5;                      /* FIX(0.390180644) */
    t0 += z1 + z3;
    t1 += z2 + z4;
    t2 += z2 + z3;
    t3 += z1 + z4;
    y[0] = t10 + t3;
    y[7] = t10 - t3;
    y[1] = t11 + t2;
    y[6] = t11 - t2;
    y[2] = t12 + t1;
    y[5] = t12 - t1;
    y[3] = t13 + t0;
    y[4] = t13 - t0;
}

static void idct_islow(unsigned char *out, size_t stride, const int16_t *in, const uint16_t *q)
{
    int64_t ws[64], x[8], y[8];
    int i, k;
    for (i = 0; i < 8; i++) { /* columns, dequantized */
        const int16_t *c = in + i;
        const uint16_t *qq = q + i;
        if (!(c[8] | c[16] | c[24] | c[32] | c[40] | c[48] | c[56])) {
            /* only the DC term: the full computation reduces to this exactly */
            int64_t dc = (int64_t)c[0] * qq[0] * (1 << IDCT_PASS1_BITS);
            for (k = 0; k < 8; k++) ws[8 * k + i] = (int32_t)dc;
            continue;
        }
        for (k = 0; k < 8; k++) x[k] = (int64_t)c[8 * k] * qq[8 * k];
        idct_1d(y, x);
        for (k = 0; k < 8; k++) /* libjpeg keeps the workspace in int */
            ws[8 * k + i] = (int32_t)DESCALE(y[k], IDCT_CONST_BITS - IDCT_PASS1_BITS);
    }
    for (i = 0; i < 8; i++) { /* rows */
        const int64_t *w = ws + 8 * i;
        unsigned char *o = out + (size_t)i * stride;
        if (!(w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7])) {
            /* a flat row: again exactly what the full computation gives */
            memset(o, idct_limit(DESCALE(w[0], IDCT_PASS1_BITS + 3)), 8);
            continue;
        }
        idct_1d(y, w);
        for (k = 0; k < 8; k++) o[k] = idct_limit(DESCALE(y[k], IDCT_CONST_BITS + IDCT_PASS1_BITS + 3));
    }
}

/* ---- upsampling (jdsample.c's methods) ---- */

/* Row y of a component plane, with libjpeg's context-row edges: above the
   first row is the first row, below the last real row is the last real row. */
static const unsigned char *comp_row(const jpeg_comp *c, int y)
{
    if (y < 0) y = 0;
    if (y >= c->dh) y = c->dh - 1;
    return c->plane + (size_t)y * c->bw * 8;
}

/* Full-resolution row y (0..h-1) of component c into out (w samples). */
static void upsample_row(const jpeg_dec *d, const jpeg_comp *c, int y, unsigned char *out, unsigned char *tmp)
{
    int he = d->hmax / c->h, ve = d->vmax / c->v, x;
    int fancy_h2 = he == 2 && c->dw > 2;
    if (he == 1 && ve == 1) {
        memcpy(out, comp_row(c, y), (size_t)d->w);
        return;
    }
    if (he == 2 && ve == 1 && fancy_h2) { /* h2v1 triangle filter */
        const unsigned char *in = comp_row(c, y);
        int n = c->dw;
        tmp[0] = in[0];
        tmp[1] = (unsigned char)((in[0] * 3 + in[1] + 2) >> 2);
        for (x = 1; x < n - 1; x++) {
            int v = in[x] * 3;
            tmp[2 * x] = (unsigned char)((v + in[x - 1] + 1) >> 2);
            tmp[2 * x + 1] = (unsigned char)((v + in[x + 1] + 2) >> 2);
        }
        tmp[2 * n - 2] = (unsigned char)((in[n - 1] * 3 + in[n - 2] + 1) >> 2);
        tmp[2 * n - 1] = in[n - 1];
        memcpy(out, tmp, (size_t)d->w);
        return;
    }
    if (he == 1 && ve == 2) { /* h1v2 triangle filter (libjpeg-turbo always uses it here) */
        int iy = y / 2, below = y & 1;
        const unsigned char *near = comp_row(c, iy), *far = comp_row(c, below ? iy + 1 : iy - 1);
        for (x = 0; x < d->w; x++) out[x] = (unsigned char)((near[x] * 3 + far[x] + 1 + below) >> 2);
        return;
    }
    if (he == 2 && ve == 2 && fancy_h2) { /* h2v2 triangle filter */
        int iy = y / 2, below = y & 1, n = c->dw, last, this_, next;
        const unsigned char *near = comp_row(c, iy), *far = comp_row(c, below ? iy + 1 : iy - 1);
        this_ = near[0] * 3 + far[0];
        next = near[1] * 3 + far[1];
        tmp[0] = (unsigned char)((this_ * 4 + 8) >> 4);
        tmp[1] = (unsigned char)((this_ * 3 + next + 7) >> 4);
        last = this_;
        this_ = next;
        for (x = 1; x < n - 1; x++) {
            next = near[x + 1] * 3 + far[x + 1];
            tmp[2 * x] = (unsigned char)((this_ * 3 + last + 8) >> 4);
            tmp[2 * x + 1] = (unsigned char)((this_ * 3 + next + 7) >> 4);
            last = this_;
            this_ = next;
        }
        tmp[2 * n - 2] = (unsigned char)((this_ * 3 + last + 8) >> 4);
        tmp[2 * n - 1] = (unsigned char)((this_ * 4 + 7) >> 4);
        memcpy(out, tmp, (size_t)d->w);
        return;
    }
    { /* replication (h2v1/h2v2 when narrow, and every other integral factor) */
        const unsigned char *in = comp_row(c, y / ve);
        for (x = 0; x < d->w; x++) out[x] = in[x / he];
    }
}

/* ---- YCbCr -> RGB (jdcolor.c's tables) ---- */

static unsigned char clamp255(int v)
{
    return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static int decode_jpeg(clip_image *img, const unsigned char *data, size_t size, char *err)
{
    jpeg_dec *d = (jpeg_dec *)calloc(1, sizeof(jpeg_dec));
    int rc = -1, i, y, x, done = 0, rgb = 0, scans = 0;
    unsigned char *rows = NULL;
    int cr_r[256], cb_b[256];
    int32_t cr_g[256], cb_g[256];
    if (!d) return fail(err, "clip: out of memory");
    d->p = data + 2;
    d->end = data + size;
    d->err = err;
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
        case 0xC0: case 0xC1: case 0xC2:
            if (parse_sof(d, m)) goto out;
            break;
        case 0xC3: case 0xC7: case 0xCB: case 0xCF:
            jfail(d, "lossless JPEG is not supported"); goto out;
        case 0xC5: case 0xC6: case 0xCD: case 0xCE:
            jfail(d, "hierarchical JPEG is not supported"); goto out;
        case 0xC9: case 0xCA:
            jfail(d, "arithmetic-coded JPEG is not supported; re-encode it with Huffman coding (jpegtran)"); goto out;
        case 0xC4:
            if (parse_dht(d)) goto out;
            break;
        case 0xCC: jfail(d, "arithmetic-coding tables (DAC) are not supported"); goto out;
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
            if (parse_sos(d)) goto out;
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
    for (i = 0; i < d->ncomp; i++)
        if (!d->quant_defined[d->comp[i].tq]) {
            jfail(d, "quantization table %d is used but never defined", d->comp[i].tq);
            goto out;
        }
    /* color space, as libjpeg's default_decompress_parms decides it */
    if (d->ncomp == 3) {
        if (d->saw_jfif)
            rgb = 0;
        else if (d->saw_adobe)
            rgb = d->adobe_transform == 0;
        else
            rgb = d->comp[0].id == 'R' && d->comp[1].id == 'G' && d->comp[2].id == 'B';
    }
    /* inverse DCT of every block */
    for (i = 0; i < d->ncomp; i++) {
        jpeg_comp *c = &d->comp[i];
        size_t stride = (size_t)c->bw * 8;
        int by, bx;
        c->plane = (unsigned char *)malloc(stride * (size_t)c->bh * 8);
        if (!c->plane) {
            jfail(d, "out of memory");
            goto out;
        }
        OMP("omp parallel for private(bx) schedule(static)")
        for (by = 0; by < c->bh; by++)
            for (bx = 0; bx < c->bw; bx++)
                idct_islow(c->plane + (size_t)by * 8 * stride + (size_t)bx * 8, stride,
                           c->coef + ((size_t)by * c->bw + bx) * 64, d->quant[c->tq]);
        free(c->coef);
        c->coef = NULL;
    }
    if (image_alloc(img, d->w, d->h, err)) goto out;
    for (i = 0; i < 256; i++) {
        int32_t xx = i - 128;
        cr_r[i] = (int)ASR(91881 * xx + 32768, 16);  /* FIX(1.40200) */
        cb_b[i] = (int)ASR(116130 * xx + 32768, 16); /* FIX(1.77200) */
        cr_g[i] = -46802 * xx;                       /* -FIX(0.71414) */
        cb_g[i] = -22554 * xx + 32768;               /* -FIX(0.34414), plus ONE_HALF */
    }
    /* upsample a row of each component, then convert; rows are independent */
    {
        int threads = 1;
        size_t row_buf = (size_t)(d->w + 16) * 8;
#ifdef _OPENMP
        threads = omp_get_max_threads();
#endif
        rows = (unsigned char *)malloc(row_buf * (size_t)threads);
        if (!rows) {
            jfail(d, "out of memory");
            goto out;
        }
        OMP("omp parallel for private(x) schedule(static)")
        for (y = 0; y < d->h; y++) {
            int tid = 0;
            unsigned char *o = img->rgb + (size_t)y * d->w * 3, *r0, *r1, *r2, *tmp;
#ifdef _OPENMP
            tid = omp_get_thread_num();
#endif
            r0 = rows + row_buf * (size_t)tid;
            r1 = r0 + (d->w + 16) * 2;
            r2 = r0 + (d->w + 16) * 4;
            tmp = r0 + (d->w + 16) * 6;
            upsample_row(d, &d->comp[0], y, r0, tmp);
            if (d->ncomp == 1) {
                for (x = 0; x < d->w; x++) o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = r0[x];
                continue;
            }
            upsample_row(d, &d->comp[1], y, r1, tmp);
            upsample_row(d, &d->comp[2], y, r2, tmp);
            if (rgb) {
                for (x = 0; x < d->w; x++) {
                    o[3 * x] = r0[x];
                    o[3 * x + 1] = r1[x];
                    o[3 * x + 2] = r2[x];
                }
            } else {
                for (x = 0; x < d->w; x++) {
                    int yy = r0[x], cb = r1[x], cr = r2[x];
                    o[3 * x] = clamp255(yy + cr_r[cr]);
                    o[3 * x + 1] = clamp255(yy + (int)ASR(cb_g[cb] + cr_g[cr], 16));
                    o[3 * x + 2] = clamp255(yy + cb_b[cb]);
                }
            }
        }
    }
    rc = 0;
out:
    if (rc) clip_image_free(img);
    free(rows);
    for (i = 0; i < JPEG_MAX_COMPONENTS; i++) {
        free(d->comp[i].coef);
        free(d->comp[i].plane);
    }
    free(d);
    return rc;
}

/* ------------------------------------------------------------------------
   Format dispatch */

int clip_image_decode(clip_image *img, const unsigned char *data, size_t size, char *err)
{
    img->rgb = NULL;
    img->width = img->height = 0;
    if (size >= 2 && data[0] == 'P' && data[1] >= '2' && data[1] <= '6' && data[1] != '4')
        return decode_pnm(img, data, size, err);
    if (size >= 2 && data[0] == 'P' && (data[1] == '1' || data[1] == '4'))
        return fail(err, "clip: 1-bit PBM images are not supported; convert to PGM or PPM");
    if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
        return decode_jpeg(img, data, size, err);
    return fail(err, "clip: unknown image format (JPEG, PPM and PGM are read)");
}

int clip_image_load(clip_image *img, const char *path, char *err)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc;
    img->rgb = NULL;
    img->width = img->height = 0;
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
    rc = clip_image_decode(img, buf, len, err);
    free(buf);
    if (rc && err) { /* name the file in the message */
        char tmp[CLIP_ERR_SIZE];
        const char *msg = strncmp(err, "clip: ", 6) == 0 ? err + 6 : err;
        snprintf(tmp, sizeof tmp, "clip: %s: %s", path, msg);
        memcpy(err, tmp, CLIP_ERR_SIZE);
    }
    return rc;
}

int clip_image_write_ppm(const clip_image *img, const char *path, char *err)
{
    FILE *f = fopen(path, "wb");
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
    c->ksize = (int)ceil(support) * 2 + 1;
    c->bounds = (int *)malloc((size_t)(count > 0 ? count : 1) * 2 * sizeof(int));
    c->k = (int32_t *)malloc((size_t)(count > 0 ? count : 1) * (size_t)c->ksize * sizeof(int32_t));
    w = (double *)malloc((size_t)c->ksize * sizeof(double));
    if (!c->bounds || !c->k || !w) {
        free(c->bounds);
        free(c->k);
        free(w);
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
    OMP("omp parallel for schedule(static)")
    for (o = 0; o < nrows; o++) {
        int ymin = c->bounds[o * 2] - row0, ymax = c->bounds[o * 2 + 1], x, y;
        const int32_t *k = c->k + (size_t)o * c->ksize;
        unsigned char *dst = out + (size_t)o * w * 3;
        for (x = 0; x < w * 3; x++) {
            int32_t ss = 1 << (PRECISION_BITS - 1);
            for (y = 0; y < ymax; y++) ss += in[(size_t)(y + ymin) * w * 3 + x] * k[y];
            dst[x] = clip8(ss);
        }
    }
}

/* CLIPImageProcessor.resize + center_crop. The resized image is never built
   whole: only the output rows and columns inside the crop are computed
   (each depends on its own coefficients alone, so the pixels are the same),
   which keeps 1 x 10000 inputs cheap. */
int clip_resize_crop(const clip_image *in, clip_image *out, int resize_mode, int resize_h, int resize_w, int crop_h,
                     int crop_w, int resample, char *err)
{
    long long rw, rh, top, left;
    int W = in->width, H = in->height, r0, r1, c0, c1, ncols, nrows, need_h, need_v, y;
    unsigned char *tmp = NULL, *region = NULL;
    const unsigned char *src;
    coeffs ch = {0, NULL, NULL}, cv = {0, NULL, NULL};
    int src_row0, src_rows;
    out->rgb = NULL;
    out->width = out->height = 0;
    if (!in->rgb || W < 1 || H < 1) return fail(err, "clip: empty input image");
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
    /* center_crop: top = (h - crop_h) // 2 (floor), padding with zeros where the
       crop reaches outside the resized image */
    top = rh - crop_h >= 0 ? (rh - crop_h) / 2 : -((crop_h - rh + 1) / 2);
    left = rw - crop_w >= 0 ? (rw - crop_w) / 2 : -((crop_w - rw + 1) / 2);
    r0 = (int)(top > 0 ? top : 0);
    r1 = (int)(top + crop_h < rh ? top + crop_h : rh);
    c0 = (int)(left > 0 ? left : 0);
    c1 = (int)(left + crop_w < rw ? left + crop_w : rw);
    nrows = r1 - r0;
    ncols = c1 - c0;
    if (image_alloc(out, crop_w, crop_h, err)) return -1;
    memset(out->rgb, 0, (size_t)crop_w * crop_h * 3);
    need_h = rw != W;
    need_v = rh != H;
    if (need_h && coeffs_make(&ch, W, (int)rw, c0, c1, resample, err)) goto fail;
    if (need_v && coeffs_make(&cv, H, (int)rh, r0, r1, resample, err)) goto fail;
    /* input rows the vertical pass reads */
    if (need_v) {
        src_row0 = cv.bounds[0];
        src_rows = cv.bounds[(nrows - 1) * 2] + cv.bounds[(nrows - 1) * 2 + 1] - src_row0;
    } else {
        src_row0 = r0;
        src_rows = nrows;
    }
    if (need_h) {
        tmp = (unsigned char *)malloc((size_t)src_rows * ncols * 3 + 1);
        if (!tmp) {
            fail(err, "clip: out of memory resizing");
            goto fail;
        }
        resample_horizontal(tmp, ncols, in->rgb, W, src_row0, src_rows, &ch);
        src = tmp;
    } else {
        /* no horizontal pass: the needed columns straight from the input */
        tmp = (unsigned char *)malloc((size_t)src_rows * ncols * 3 + 1);
        if (!tmp) {
            fail(err, "clip: out of memory resizing");
            goto fail;
        }
        for (y = 0; y < src_rows; y++)
            memcpy(tmp + (size_t)y * ncols * 3, in->rgb + ((size_t)(src_row0 + y) * W + c0) * 3, (size_t)ncols * 3);
        src = tmp;
    }
    if (need_v) {
        region = (unsigned char *)malloc((size_t)nrows * ncols * 3 + 1);
        if (!region) {
            fail(err, "clip: out of memory resizing");
            goto fail;
        }
        resample_vertical(region, nrows, src, ncols, src_row0, &cv);
        src = region;
    }
    /* place the region in the crop (offset where the crop was padded) */
    for (y = 0; y < nrows; y++)
        memcpy(out->rgb + ((size_t)(r0 - top + y) * crop_w + (size_t)(c0 - left)) * 3, src + (size_t)y * ncols * 3,
               (size_t)ncols * 3);
    free(tmp);
    free(region);
    coeffs_free(&ch);
    coeffs_free(&cv);
    return 0;
fail:
    free(tmp);
    free(region);
    coeffs_free(&ch);
    coeffs_free(&cv);
    clip_image_free(out);
    return -1;
}
