/* jpeg.c - the JPEG decoder: baseline, extended and progressive, Huffman-
   or arithmetic-coded, 8-bit, gray, three components (YCbCr, or RGB by
   Adobe marker / component ids) or four (CMYK or YCCK, converted to RGB as
   Pillow's convert("RGB") does), any integral sampling factors. The output
   is what libjpeg-turbo 2.1.5's default decompression gives (djpeg,
   Pillow): the same "islow" integer IDCT (as its x86-64 SIMD code computes
   it), the same upsamplers (triangle-filter "fancy" ones for 2x1, 1x2 and
   2x2 with libjpeg-turbo's conditions, replication otherwise, with its edge
   handling), the same fixed-point YCbCr->RGB tables, the same inter-block
   smoothing of progressive files whose scans stop early. Damaged files
   read as libjpeg reads them with a warning (junk between segments, bad
   codes and markers inside a scan, lost restart markers, missing Huffman
   tables); where Pillow's libjpeg waits for data that never comes (a
   truncated file), they are refused.

   Reading order: the headers, the Huffman decoder, the arithmetic decoder,
   the IDCT, then the output stage (see there) that turns rows of MCUs into
   pixels, overlapped with the entropy decoding where the file allows, and
   last the entry points (clip_decode_jpeg_rows streams the rows to a sink,
   clip_decode_jpeg collects them into an image). */
#include "../platform/platform.h"
#include "decoders.h"

#include <stdint.h>
#include <string.h>

#define JPEG_MAX_COMPONENTS 4
/* Each scan is a pass over the coefficients, so their number bounds the work
   a file can ask for; encoders write a dozen or so, a few dozen at most. */
#define JPEG_MAX_SCANS 1000

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
    /* what the scans so far sent of the first ten coefficients (zigzag
       order), as libjpeg's coef_bits: -1 nothing, else the Al of the last
       scan (0: exact); and the same before the component's latest scan */
    int bits[10], prev_bits[10];
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
    int ycck;                  /* 4 components that are YCCK, not CMYK (decided at the first scan) */
    /* the current scan */
    int ns, ss, se, ah, al;
    jpeg_comp *sc[JPEG_MAX_COMPONENTS];
    int mcus, per_row;         /* MCUs in the scan; blocks per row of a one-component scan */
    int todo, rst;             /* MCUs left in the restart interval; the next RSTn */
    int failed_at;             /* MCU row whose entropy decoding failed, or -1 */
    int scan_no;               /* scans begun, the current one included */
    int last_good;             /* libjpeg's last_good_iMCU_row: where the last MCU began with data */
    int smooth;                /* inter-block smoothing of the progressive output (see there) */
    long tail;                 /* data bits after the last scan's last code (64 if a marker ends it) */
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
    int insufficient;          /* bits past a marker were used: the rest of the interval is skipped */
    int eobrun;
    char *err;
} jpeg_dec;

/* The decoder's errors: "clip: JPEG: " and the message, into d->err; -1.
   (A macro, so that the prefix joins the format string, which the compiler
   then checks.) */
#define jfail(d, ...) clip_error((d)->err, "clip: JPEG: " __VA_ARGS__)

static int32_t wrap32(uint32_t v)
{
    return v >= 0x80000000u ? (int32_t)(v - 0x80000000u) - 0x7FFFFFFF - 1 : (int32_t)v;
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

/* An APPn, COM or DNL segment, read as libjpeg does: a length under 2
   stands for no payload (it skips nothing after the length field), and a
   payload past the end of the data is a truncated file. */
static int variable_segment(jpeg_dec *d, const unsigned char **seg, int *len, const char *what)
{
    int n;
    *seg = d->p;
    *len = 0;
    if (read_u16(d, &n)) return jfail(d, "%s segment is truncated", what);
    n = n < 2 ? 0 : n - 2;
    if (n > d->end - d->p) return jfail(d, "%s segment length %d runs past the end of the data", what, n + 2);
    *seg = d->p;
    *len = n;
    d->p += n;
    return 0;
}

/* libjpeg's search for the next marker between segments: anything up to an
   0xFF is skipped (libjpeg warns of "extraneous bytes" and goes on), and so
   are fill 0xFFs and stuffed 0xFF00 pairs. The marker's code, or -1 at the
   end of the data. */
static int next_marker(jpeg_dec *d)
{
    for (;;) {
        while (d->p < d->end && *d->p != 0xFF) d->p++;
        while (d->p < d->end && *d->p == 0xFF) d->p++;
        if (d->p >= d->end) return -1;
        if (*d->p++ != 0) return d->p[-1];
    }
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

/* The tables of T.81 annex K.3 (K.3.3.1 and K.3.3.2: DC luminance,
   DC chrominance, AC luminance, AC chrominance) as code-length counts and
   values. Motion-JPEG frames leave them out; libjpeg puts them in Huffman
   slots 0 and 1 when the file has not defined those by the first scan. */
static const unsigned char jpeg_std_counts[4][16] = {
    {0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0},
    {0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},
    {0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 125},
    {0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 119},
};
static const unsigned char jpeg_std_values[4][162] = {
    {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b},
    {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b},
    {0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
     0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
     0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
     0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
     0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
     0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
     0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
     0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
     0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
     0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
     0xf9, 0xfa},
    {0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
     0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
     0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
     0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
     0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
     0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
     0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
     0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
     0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
     0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
     0xf9, 0xfa},
};

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
    if (d->h == 0) return jfail(d, "height 0 in the frame header (set later by a DNL marker) is not supported");
    if (d->w == 0) return jfail(d, "image width is 0");
    if (d->ncomp != 1 && d->ncomp != 3 && d->ncomp != 4)
        return jfail(d, "%d components are not supported (1, 3 or 4 are)", d->ncomp);
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
        for (j = 0; j < 10; j++) c->bits[j] = -1;
        if (c->h < 1 || c->h > 4 || c->v < 1 || c->v > 4 || c->tq > 3)
            return jfail(d, "component %d: sampling %dx%d or quant table %d is invalid", i, c->h, c->v, c->tq);
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

/* Next Huffman symbol. A code that is in no table is corrupt data: libjpeg
   warns, takes 17 bits (reading one more bit after the longest length) and
   gives the symbol 0 (a zero DC difference, or end of block), and so do we. */
static int huff_decode(jpeg_dec *d, const huff_table *t)
{
    int l;
    int32_t code;
    if (d->nbits < 17) fill_bits(d);
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
    d->bits <<= 17;
    d->nbits -= 17;
    return 0;
}

/* After each MCU: has the decoding used bits past the data? At a marker
   inside the scan libjpeg warns ("premature end of data segment"), gives
   zeros for the rest of that MCU (as fill_bits does) and leaves every later
   MCU of the restart interval untouched (zero, or earlier scans' values);
   at the end of the file Pillow's libjpeg waits for more data and Pillow
   fails ("image file is truncated"), and so do we. */
static int check_overrun(jpeg_dec *d)
{
    if (d->ar_truncated) return jfail(d, "the data ends inside a scan (truncated file)");
    if (d->fill_bits <= d->nbits) return 0;
    if (d->marker == 0x100) return jfail(d, "the data ends inside a scan (truncated file)");
    d->insufficient = 1;
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
        if (sz) diff = extend(get_bits(d, sz), sz);
        bits = d->bits;
        nbits = d->nbits;
    }
    /* libjpeg's sequential decoder lets the prediction wrap (the stored
       coefficient is its low 16 bits either way) */
    c->dc_pred = wrap32((uint32_t)c->dc_pred + (uint32_t)diff);
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
    if (s) diff = extend(get_bits(d, s), s);
    /* libjpeg's progressive decoder refuses a prediction past int's range */
    if ((c->dc_pred >= 0 && diff > INT32_MAX - c->dc_pred) || (c->dc_pred < 0 && diff < INT32_MIN - c->dc_pred))
        return jfail(d, "corrupt data: DC coefficient out of range (bogus DCT coefficient)");
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
   are fed from there on. A bad code (a magnitude or a run past its limit)
   is corrupt data: libjpeg warns, drops the rest of the MCU and does
   nothing more until the next restart, and so do we (it sets the same
   "insufficient" flag as Huffman data that runs into a marker). */

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

/* A DC difference (F.1.4.4.1, figures F.19 - F.24), added to the
   prediction; a bad code sets d->insufficient and leaves it. */
static void arith_dc(jpeg_dec *d, jpeg_comp *c)
{
    unsigned char *stats = d->dc_stats[c->dc_tbl], *st = stats + c->dc_context;
    int sign, m, v, L = d->dc_L[c->dc_tbl], U = d->dc_U[c->dc_tbl];
    if (!arith_bit(d, st)) {
        c->dc_context = 0;
        return;
    }
    sign = arith_bit(d, st + 1);
    st += 2 + sign;
    if ((m = arith_bit(d, st)) != 0) { /* the magnitude category */
        st = stats + 20;
        if (arith_category(d, &st, &m)) {
            d->insufficient = 1;
            return;
        }
    }
    /* the conditioning of the next difference: zero, small or large */
    if (m < (1 << L) >> 1)
        c->dc_context = 0;
    else if (m > (1 << U) >> 1)
        c->dc_context = 12 + 4 * sign;
    else
        c->dc_context = 4 + 4 * sign;
    v = arith_value(d, st, m, sign);
    c->dc_pred = (c->dc_pred + v) & 0xFFFF; /* libjpeg keeps 16 bits */
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
            if (++k > se) {
                d->insufficient = 1;
                return 0;
            }
        }
        sign = arith_bit(d, &d->fixed_bin);
        st += 2;
        if ((m = arith_bit(d, st)) != 0 && arith_bit(d, st)) {
            m <<= 1;
            st = stats + (k <= d->ac_K[c->ac_tbl] ? 189 : 217);
            if (arith_category(d, &st, &m)) {
                d->insufficient = 1;
                return 0;
            }
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
            if (++k > se) {
                d->insufficient = 1;
                return 0;
            }
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
        int m = next_marker(d);
        d->marker = m < 0 ? 0x100 : m;
    }
    /* libjpeg's resynchronization when the marker is not RSTn: a marker
       below SOF0 or an RST one or two behind is skipped (on to the next
       marker); any other non-RST marker, or an RST one or two ahead, stays
       pending, so that the intervals up to it decode as empty; an RST
       further off is taken for the expected one */
    d->eobrun = 0;
    for (;;) {
        int m = d->marker, rst = m >= 0xD0 && m <= 0xD7, n = (m - 0xD0 - expected) & 7;
        if (m == 0x100) return jfail(d, "the data ends before restart marker %d (truncated file)", expected);
        if ((m >= 0xC0 && !rst) || (rst && (n == 1 || n == 2))) { /* stays pending */
            if (d->arith) d->insufficient = 0; /* its decoder restarts regardless */
            return 0;
        }
        if (rst && n != 6 && n != 7) break;                                 /* taken */
        m = next_marker(d);
        d->marker = m < 0 ? 0x100 : m;
    }
    d->marker = 0;
    d->insufficient = 0;
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
    /* libjpeg 2.1.5 matches the i-th id of the scan against the frame's
       components from index i on only (it tests the scan's slot of the
       frame index, filled for the indices below i), so a scan must list its
       components in frame order, and a duplicated id names the later one */
    for (i = 0; i < ns; i++) {
        int id = s[1 + 2 * i], td = s[2 + 2 * i] >> 4, ta = s[2 + 2 * i] & 15;
        jpeg_comp *c = NULL;
        for (j = i; j < d->ncomp && !c; j++)
            if (d->comp[j].id == id) c = &d->comp[j];
        if (!c)
            return jfail(d, "scan names component id %d, which the frame does not have at or after position %d "
                            "(components out of frame order: invalid component ID)", id, i);
        for (j = 0; j < i; j++)
            if (d->sc[j] == c) return jfail(d, "scan names component id %d twice (invalid component ID)", id);
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
        /* libjpeg's checks: a DC scan is Ss = Se = 0, an AC scan one component
           within the block; a refinement lowers Al by exactly one bit */
        if (d->ss > 63 || d->se > 63 || d->ss > d->se || (d->ss == 0 && d->se != 0) || (d->ss > 0 && ns != 1) ||
            (d->ah != 0 && d->al != d->ah - 1) || d->al > 13)
            return jfail(d, "progressive scan parameters Ss=%d Se=%d Ah=%d Al=%d are invalid", d->ss, d->se, d->ah,
                         d->al);
    } else {
        d->ss = 0;
        d->se = 63;
        d->ah = d->al = 0;
    }
    d->scan_no++;
    for (i = 0; i < ns; i++) {
        jpeg_comp *c = d->sc[i];
        int need_dc = !d->progressive || (d->ss == 0 && d->ah == 0), need_ac = !d->progressive || d->ss > 0;
        if (!d->arith && need_dc && (c->dc_tbl > 3 || !d->dc[c->dc_tbl].defined))
            return jfail(d, "scan uses DC Huffman table %d, never defined", c->dc_tbl);
        if (!d->arith && need_ac && (c->ac_tbl > 3 || !d->ac[c->ac_tbl].defined))
            return jfail(d, "scan uses AC Huffman table %d, never defined", c->ac_tbl);
        if (d->progressive) { /* as libjpeg's progressive decoders keep it */
            for (j = d->ss < 1 ? d->ss : 1; j < 10; j++)
                c->prev_bits[j] = d->scan_no > 1 ? c->bits[j] : 0;
            for (j = d->ss; j <= d->se && j < 10; j++) c->bits[j] = d->al;
        }
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
    d->insufficient = 0;
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
        arith_dc(d, c);
        if (d->insufficient) return 0;
        blk[0] = wrap16(c->dc_pred);
        return arith_ac(d, c, blk, 1, 63, 0);
    }
    if (d->ss == 0 && d->ah == 0) {
        arith_dc(d, c);
        if (!d->insufficient) blk[0] = wrap16((int32_t)((uint32_t)c->dc_pred << d->al));
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
        /* the MCU's place: a block (one-component scan) or an MCU of the grid */
        one = d->ns == 1;
        mrow = mcu / (one ? d->per_row : d->mcux);
        mcol = mcu - mrow * (one ? d->per_row : d->mcux);
        /* (libjpeg's arithmetic decoder never reports missing data) */
        if (!d->insufficient || d->arith) d->last_good = one ? mrow / d->sc[0]->v : mrow;
        if (d->restart_interval && d->todo == 0) {
            if (restart(d, d->rst)) return -1;
            d->rst = (d->rst + 1) & 7;
            d->todo = d->restart_interval;
            for (i = 0; i < d->ns; i++) d->sc[i]->dc_pred = 0;
            if (d->arith) arith_reset(d);
        }
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
                    if (d->insufficient)
                        rc = 0;
                    else if (d->arith)
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
        if (check_overrun(d)) return -1;
    }
    return 0;
}

/* After the last MCU: the data must not have run out, and parsing goes on
   at the marker the bit reader stopped on, or at the next one. */
static int end_scan(jpeg_dec *d)
{
    if (check_overrun(d)) return -1;
    /* the data bits after the last one used (fill 0xFFs at the very end
       are none); past a marker, as many as a fill could want */
    if (d->marker && d->marker != 0x100) {
        d->tail = 64;
    } else {
        const unsigned char *e = d->end;
        while (e > d->p && e[-1] == 0xFF) e--;
        d->tail = (long)(e - d->p) * 8 + d->nbits - d->fill_bits;
    }
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

/* ---- the islow IDCT (libjpeg-turbo's, as its x86-64 SIMD code computes it) ----

   djpeg and Pillow run libjpeg-turbo's AVX2 "islow" IDCT, jidctint.c's
   butterfly on 16-bit lanes: the dequantized coefficients, the sums
   in0 + in4, in0 - in4, in7 + in3 and in5 + in1, and each pass's output are
   16-bit (wrapping, wrapping, and saturating), the products and the rest
   32-bit; the samples saturate. On the coefficients of a real encoder that
   is jidctint.c's result exactly; only corrupt data tells them apart. A
   block whose rows 1..7 are zero takes the shortcut the SIMD code takes
   (the first pass is the DC term shifted, in 16 bits). Values are held in
   uint32_t (two's complement), so nothing overflows; each pass runs on
   eight lanes (the columns, then the rows) for the vectorizer. */

#define IDCT_CONST_BITS 13
#define IDCT_PASS1_BITS 2
#define IDCT_BIAS 0x80000000u
/* arithmetic shift right of a two's-complement value held in a uint32_t */
#define SAR32(x, n) ((((uint32_t)(x) ^ IDCT_BIAS) >> (n)) - (IDCT_BIAS >> (n)))
#define DESCALE32(x, n) SAR32((uint32_t)(x) + (1u << ((n)-1)), n)
/* the low 16 bits, sign-extended */
#define WRAP16(x) ((((uint32_t)(x) + 0x8000u) & 0xFFFFu) - 0x8000u)

/* x saturated to [-m - 1, m] (signed compare through the bias) */
static uint32_t idct_sat(uint32_t x, uint32_t m)
{
    uint32_t b = x ^ IDCT_BIAS, lo = IDCT_BIAS - m - 1, hi = IDCT_BIAS + m;
    b = b < lo ? lo : b;
    b = b > hi ? hi : b;
    return b ^ IDCT_BIAS;
}

/* the output sample of a second-pass value: descaled, saturated to a
   signed byte, plus 128 */
static unsigned char idct_sample(uint32_t y)
{
    return (unsigned char)((idct_sat(DESCALE32(y, IDCT_CONST_BITS + IDCT_PASS1_BITS + 3), 127) + 128u) & 255u);
}

/* The 8-point butterfly on eight lanes: x[k][lane] in (16-bit values),
   y[k][lane] out (undescaled) */
static void idct_pass(uint32_t y[8][8], uint32_t x[8][8])
{
    int i;
    for (i = 0; i < 8; i++) {
        uint32_t z1, z3, z4, z5, t0, t1, t2, t3, t10, t11, t12, t13;
        /* even part: the rotator is sqrt(2) * c(-6) */
        z1 = (x[2][i] + x[6][i]) * 4433u;             /* FIX(0.541196100) */
        t2 = z1 - x[6][i] * 15137u;                   /* FIX(1.847759065) */
        t3 = z1 + x[2][i] * 6270u;                    /* FIX(0.765366865) */
        t0 = WRAP16(x[0][i] + x[4][i]) << IDCT_CONST_BITS;
        t1 = WRAP16(x[0][i] - x[4][i]) << IDCT_CONST_BITS;
        t10 = t0 + t3;
        t13 = t0 - t3;
        t11 = t1 + t2;
        t12 = t1 - t2;
        /* odd part */
        t0 = x[7][i];
        t1 = x[5][i];
        t2 = x[3][i];
        t3 = x[1][i];
        z3 = WRAP16(t0 + t2);
        z4 = WRAP16(t1 + t3);
        z5 = (z3 + z4) * 9633u;                       /* FIX(1.175875602) */
        z1 = (t0 + t3) * (0u - 7373u);                /* -FIX(0.899976223) */
        z3 = z5 - z3 * 16069u;                        /* FIX(1.961570560) */
        z4 = z5 - z4 * 3196u;                         /* FIX(0.390180644) */
        t0 = t0 * 2446u + z1 + z3;                    /* FIX(0.298631336) */
        t3 = t3 * 12299u + z1 + z4;                   /* FIX(1.501321110) */
        z1 = (t1 + t2) * (0u - 20995u);               /* -FIX(2.562915447) */
        t1 = t1 * 16819u + z1 + z4;                   /* FIX(2.053119869) */
        t2 = t2 * 25172u + z1 + z3;                   /* FIX(3.072711026) */
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
    unsigned rows = 0;
    for (k = 8; k < 64; k++) rows |= (uint16_t)in[k];
    if (!rows) {
        /* rows 1..7 zero: the first pass is the DC row shifted, the same in
           every row, so the second pass runs once and its row repeats */
        uint32_t v[8];
        unsigned ac = 0;
        for (i = 0; i < 8; i++) v[i] = WRAP16(WRAP16((uint32_t)(int32_t)in[i] * q[i]) << IDCT_PASS1_BITS);
        for (i = 1; i < 8; i++) ac |= v[i];
        if (!ac) { /* one value: (v + 16) >> 5, saturated */
            unsigned char c = idct_sample(v[0] << IDCT_CONST_BITS);
            for (k = 0; k < 8; k++) memset(out + (size_t)k * stride, c, 8);
            return;
        }
        memset(x, 0, sizeof x);
        for (i = 0; i < 8; i++) x[i][0] = v[i];
        idct_pass(y, x);
        for (i = 0; i < 8; i++) out[i] = idct_sample(y[i][0]);
        for (k = 1; k < 8; k++) memcpy(out + (size_t)k * stride, out, 8);
        return;
    }
    for (k = 0; k < 8; k++) /* columns: lane i is column i, dequantized */
        for (i = 0; i < 8; i++) x[k][i] = WRAP16((uint32_t)(int32_t)in[8 * k + i] * q[8 * k + i]);
    idct_pass(y, x);
    for (k = 0; k < 8; k++) /* row k of the workspace becomes lane k */
        for (i = 0; i < 8; i++) x[i][k] = idct_sat(DESCALE32(y[k][i], IDCT_CONST_BITS - IDCT_PASS1_BITS), 32767);
    idct_pass(y, x);
    for (k = 0; k < 8; k++) /* back to rows, so each output row is one vector */
        for (i = 0; i < 8; i++) x[i][k] = y[k][i];
    for (i = 0; i < 8; i++) {
        unsigned char *o = out + (size_t)i * stride;
        for (k = 0; k < 8; k++) o[k] = idct_sample(x[i][k]);
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

/* The pixels go to a clip_row_sink (decoders.h): its rows and columns
   only, from several threads at once. */

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

/* Four components, as Hugging Face sees them: libjpeg hands Pillow CMYK
   (YCCK turned into CMYK by 255 minus the YCbCr->RGB result), Pillow reads
   it as Adobe's inverted CMYK (ink = 255 - sample) whatever the markers say,
   and its convert("RGB") is not colour-managed: each channel is
   (255 - K) - ink * (255 - K) / 255 with its rounded division by 255.
   r, g, b hold the inks on entry (for YCCK that is the YCbCr->RGB result
   itself), the RGB on return; k is the fourth component as decoded. */
static void inks_to_rgb(unsigned char *restrict r, unsigned char *restrict g, unsigned char *restrict b,
                        const unsigned char *restrict k, int n)
{
    int i;
    for (i = 0; i < n; i++) {
        int32_t nk = k[i], t; /* 255 - (255 - k): the inverted K's complement */
        t = r[i] * nk + 128;
        r[i] = (unsigned char)(nk - (((t >> 8) + t) >> 8));
        t = g[i] * nk + 128;
        g[i] = (unsigned char)(nk - (((t >> 8) + t) >> 8));
        t = b[i] * nk + 128;
        b[i] = (unsigned char)(nk - (((t >> 8) + t) >> 8));
    }
}

typedef struct {
    jpeg_dec *d;
    jpeg_slot *ring;
    const clip_row_sink *sink;
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

/* ---- inter-block smoothing (libjpeg-turbo 2.1.5's decompress_smooth_data) ----

   A progressive file whose scans left some of the first nine AC
   coefficients inexact (or unsent) is shown by libjpeg with estimates of
   those from the DC values of the 5x5 blocks around: where the coefficient
   is still zero and not known exactly, it becomes the (rounded, and below
   the unsent bits' range) value of a fixed kernel over those DC values.
   When no AC coefficient was sent at all the kernels are wider and the DC
   value itself is re-estimated. Pillow and djpeg do this by default. */

/* The kernels, for zigzag coefficients 0..9 (0: the DC re-estimate), over
   the DC values of block rows r-2..r+2 and columns b-2..b+2: [0] with DC
   re-estimation, [1] without (only 1..5 have one). */
static const int16_t smooth_kernel[10][2][5][5] = {
    {{{-2, -6, -8, -6, -2}, {-6, 6, 42, 6, -6}, {-8, 42, 152, 42, -8}, {-6, 6, 42, 6, -6}, {-2, -6, -8, -6, -2}},
     {{0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}}},
    {{{-1, -1, 0, 1, 1}, {-3, 13, 0, -13, 3}, {-3, 38, 0, -38, 3}, {-3, 13, 0, -13, 3}, {-1, -1, 0, 1, 1}},
     {{0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {-7, 50, 0, -50, 7}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}}},
    {{{-1, -3, -3, -3, -1}, {-1, 13, 38, 13, -1}, {0, 0, 0, 0, 0}, {1, -13, -38, -13, 1}, {1, 3, 3, 3, 1}},
     {{0, 0, -7, 0, 0}, {0, 0, 50, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, -50, 0, 0}, {0, 0, 7, 0, 0}}},
    {{{0, 0, 1, 0, 0}, {0, 2, 7, 2, 0}, {0, -5, -14, -5, 0}, {0, 2, 7, 2, 0}, {0, 0, 1, 0, 0}},
     {{0, 0, -1, 0, 0}, {0, 0, 13, 0, 0}, {0, 0, -24, 0, 0}, {0, 0, 13, 0, 0}, {0, 0, -1, 0, 0}}},
    {{{-1, 0, 0, 0, 1}, {0, 9, 0, -9, 0}, {0, 0, 0, 0, 0}, {0, -9, 0, 9, 0}, {1, 0, 0, 0, -1}},
     {{0, -1, 0, 1, 0}, {-1, 10, 0, -10, 1}, {0, 0, 0, 0, 0}, {1, -10, 0, 10, -1}, {0, 1, 0, -1, 0}}},
    {{{0, 0, 0, 0, 0}, {0, 2, -5, 2, 0}, {1, 7, -14, 7, 1}, {0, 2, -5, 2, 0}, {0, 0, 0, 0, 0}},
     {{0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {-1, 13, -24, 13, -1}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}}},
    {{{0, 0, 0, 0, 0}, {0, 1, 0, -1, 0}, {0, 2, 0, -2, 0}, {0, 1, 0, -1, 0}, {0, 0, 0, 0, 0}},
     {{0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}}},
    {{{0, 0, 0, 0, 0}, {0, 1, -3, 1, 0}, {0, 0, 0, 0, 0}, {0, -1, 3, -1, 0}, {0, 0, 0, 0, 0}},
     {{0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}}},
    {{{0, 0, 0, 0, 0}, {0, 1, 0, -1, 0}, {0, -3, 0, 3, 0}, {0, 1, 0, -1, 0}, {0, 0, 0, 0, 0}},
     {{0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}}},
    {{{0, 0, 0, 0, 0}, {0, 1, 2, 1, 0}, {0, 0, 0, 0, 0}, {0, -1, -2, -1, 0}, {0, 0, 0, 0, 0}},
     {{0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}}}};

/* Is smoothing on? libjpeg's smoothing_ok at the start of output: a
   progressive file, every component with a DC scan and nonzero quantizers
   where the kernels divide, and some coefficient 1..9 inexact somewhere. */
static int smoothing_wanted(const jpeg_dec *d)
{
    int i, k, useful = 0;
    if (!d->progressive) return 0;
    for (i = 0; i < d->ncomp; i++) {
        const jpeg_comp *c = &d->comp[i];
        if (!c->latched || c->bits[0] < 0) return 0;
        for (k = 0; k < 10; k++)
            if (c->q[jpeg_natural[k]] == 0) return 0;
        for (k = 1; k < 10; k++)
            if (c->bits[k] != 0) useful = 1;
    }
    return useful;
}

/* The block rows of component c that libjpeg takes as rows r-2..r+2 around
   block row r: its clamps at the image's top and bottom, with its quirks
   next to the iMCU rows at the edges (where a row two away can stand in
   for the one next to it). */
static void smooth_rows(const jpeg_dec *d, const jpeg_comp *c, int r, int *rows)
{
    int m = r / c->v, br = r % c->v, last = d->mcuy - 1, hb = (c->dh + 7) / 8;
    int n = m < last ? c->v : hb % c->v ? hb % c->v : c->v; /* real block rows of iMCU row m */
    rows[2] = r;
    rows[1] = br > 0 || m > 0 ? r - 1 : r;
    rows[0] = br > 1 || m > 1 ? r - 2 : rows[1];
    rows[3] = br < n - 1 || m < last ? r + 1 : r;
    rows[4] = br < n - 2 || m + 1 < last ? r + 2 : rows[3];
}

/* Estimate the coefficients of the block in ws (a copy) from the DC values
   around it, dc[row][col], with coefficient bits cb and quantizers q. */
static void smooth_block(int16_t *ws, int32_t dc[5][5], const int *cb, int change_dc, const uint16_t *q)
{
    int k, i, j;
    for (k = change_dc ? 0 : 1; k < (change_dc ? 10 : 6); k++) {
        int pos = jpeg_natural[k], al = cb[k];
        int64_t num = 0, qk = q[pos];
        uint32_t pred;
        int32_t p;
        if (k > 0 && (al == 0 || ws[pos] != 0)) continue; /* exact, or sent: kept */
        for (i = 0; i < 5; i++)
            for (j = 0; j < 5; j++) num += (int64_t)smooth_kernel[k][!change_dc][i][j] * dc[i][j];
        num *= q[0];
        /* the rounded quotient as libjpeg's int holds it, then capped below
           the bits the scans did not send */
        pred = (uint32_t)(((qk << 7) + (num >= 0 ? num : -num)) / (qk << 8));
        p = wrap32(pred);
        if (k > 0 && al > 0 && p >= (1 << al)) p = (1 << al) - 1;
        if (num < 0) p = wrap32(0u - (uint32_t)p);
        ws[pos] = wrap16(p);
    }
}

/* The IDCT of block row r of component c with smoothing, block columns
   [c->bx0, c->bx1), into out. The DC values come from a window that slides
   along the row as libjpeg's registers do (from column 0, for its edge
   cases). */
static void smooth_idct_row(const jpeg_dec *d, const jpeg_comp *c, int r, unsigned char *out, size_t stride)
{
    const int16_t *row[5];
    int rows[5], col[5] = {0, 0, 0, 0, 0}, last = (c->dw + 7) / 8 - 1, b, i, j, change_dc = 1;
    const int *cb = r / c->v > d->last_good ? c->prev_bits : c->bits;
    int prev_latch[10];
    int16_t ws[64];
    int32_t dc[5][5];
    if (cb == c->prev_bits) { /* libjpeg's latch of the bits before the last scan */
        for (i = 0; i < 10; i++) prev_latch[i] = d->scan_no > 1 ? c->prev_bits[i] : -1;
        cb = prev_latch;
    }
    for (i = 1; i < 10; i++)
        if (cb[i] != -1) change_dc = 0;
    smooth_rows(d, c, r, rows);
    for (i = 0; i < 5; i++) row[i] = c->coef + (size_t)rows[i] * c->bw * 64;
    for (b = 0; b < c->bx1; b++) {
        if (b == 0 && b < last) col[3] = 1;
        if (b + 1 < last) col[4] = b + 2;
        if (b >= c->bx0) {
            for (i = 0; i < 5; i++)
                for (j = 0; j < 5; j++) dc[i][j] = row[i][(size_t)col[j] * 64];
            memcpy(ws, row[2] + (size_t)b * 64, sizeof ws);
            smooth_block(ws, dc, cb, change_dc, c->q);
            idct_islow(out + (size_t)b * 8, stride, ws, c->q);
        }
        for (j = 0; j < 4; j++) col[j] = col[j + 1];
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
        /* the block rows with samples only: a one-component scan codes no
           others (a streaming slot holds stale values there), and no
           output row reads them */
        int rows = (c->dh + 7) / 8 - r * c->v;
        if (rows > c->v) rows = c->v;
        if (d->smooth) {
            for (by = 0; by < rows; by++)
                smooth_idct_row(d, c, r * c->v + by, s->plane[i] + (size_t)by * 8 * stride, stride);
            continue;
        }
        for (by = 0; by < rows; by++)
            for (bx = c->bx0; bx < c->bx1; bx++)
                idct_islow(s->plane[i] + (size_t)by * 8 * stride + (size_t)bx * 8, stride,
                           coef + ((size_t)by * c->bw + bx) * 64, c->q);
    }
}

/* Step 3: the output rows of MCU row r, upsampled and converted. */
static void step_color(jpeg_pipe *p, int r)
{
    jpeg_dec *d = p->d;
    const clip_row_sink *k = p->sink;
    jpeg_slot *s = &p->ring[r % JPEG_RING];
    size_t w = p->wcols, row = jpeg_work_row(p);
    int *tw = (int *)(void *)s->work; /* the ints first, where the allocator aligned them */
    unsigned char *R = s->work + (w / 2 + 8) * sizeof(int), *G = R + row, *B = G + row;
    unsigned char *u0 = B + row, *u1 = u0 + row, *u2 = u1 + row, *u3 = u2 + row;
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
            if (d->ncomp == 4 && !d->ycck) {
                size_t x;
                for (x = 0; x < w; x++) {
                    R[x] = (unsigned char)(255 - c0[x]);
                    G[x] = (unsigned char)(255 - c1[x]);
                    B[x] = (unsigned char)(255 - c2[x]);
                }
            } else if (d->rgb) {
                memcpy(R, c0, w);
                memcpy(G, c1, w);
                memcpy(B, c2, w);
            } else {
                ycc_to_rgb(R, G, B, c0, c1, c2, (int)w);
            }
            if (d->ncomp == 4) inks_to_rgb(R, G, B, upsample(d, p->ring, 3, y, k->x0, k->x1, u3, tw), (int)w);
            k->row(k->ctx, y, R, G, B);
        }
    }
}

/* Run the pixel steps (and, streaming, the entropy decoding) for the
   whole image. */
static int jpeg_run(jpeg_dec *d, const clip_row_sink *sink, int streaming)
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
    work = 7 * jpeg_work_row(&p) + (p.wcols / 2 + 8) * sizeof(int);
    for (r = 0; r < JPEG_RING; r++) {
        jpeg_slot *s = &ring[r];
        for (i = 0; i < d->ncomp; i++) {
            jpeg_comp *c = &d->comp[i];
            s->plane[i] = (unsigned char *)clip_calloc((size_t)c->v * 8, (size_t)c->bw * 8);
            if (streaming) s->coef[i] = (int16_t *)clip_malloc((size_t)c->v * c->bw * 64 * sizeof(int16_t));
            if (!s->plane[i] || (streaming && !s->coef[i])) goto out;
        }
        s->work = (unsigned char *)clip_calloc(work, 1);
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
            clip_free(ring[r].plane[i]);
            clip_free(ring[r].coef[i]);
        }
        clip_free(ring[r].work);
    }
    return rc;
}

/* ---- the entry points ---- */

int clip_is_jpeg(const unsigned char *data, size_t size)
{
    return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

/* Decode a JPEG into the sink that prepare() sets up once the frame size
   is known (at the first scan; prepare reports its own errors). */
int clip_decode_jpeg_rows(const unsigned char *data, size_t size, clip_sink_prepare prepare, void *ctx, char *err)
{
    jpeg_dec *d = (jpeg_dec *)clip_calloc(1, sizeof(jpeg_dec));
    clip_row_sink sink;
    int rc = -1, i, done = 0, scans = 0, streaming = 0;
    if (!d) return clip_error(err, "clip: out of memory");
    d->p = data + 2;
    d->end = data + size;
    d->err = err;
    memset(d->dc_U, 1, sizeof d->dc_U); /* T.81's default conditioning: L = 0, U = 1, K = 5 */
    memset(d->ac_K, 5, sizeof d->ac_K);
    while (!done) {
        int m = next_marker(d);
        if (m < 0) break;
        /* after the image data, a segment that libjpeg skips (APPn, COM,
           DNL) running past the end is the end of the data, as if the EOI
           were missing: Pillow has its rows by then. (Tables and headers
           libjpeg parses as it reads, and may refuse first.) */
        if (scans && ((m >= 0xE0 && m <= 0xEF) || m == 0xFE || m == 0xDC) &&
            (d->end - d->p < 2 || (d->p[0] << 8 | d->p[1]) > d->end - d->p))
            break;
        /* likewise a frame header cut before the fields libjpeg reads ahead
           of its "two SOF markers" error, and a scan header cut after a
           valid count (libjpeg would refuse a second scan only once it has
           the whole header) */
        if (scans && (m == 0xC0 || m == 0xC1 || m == 0xC2 || m == 0xC9 || m == 0xCA) && d->end - d->p < 8) break;
        if (scans && m == 0xDA &&
            (d->end - d->p < 3 ||
             ((d->p[0] << 8 | d->p[1]) == 2 * d->p[2] + 6 && d->p[2] >= 1 && d->p[2] <= 4 &&
              (d->p[0] << 8 | d->p[1]) > d->end - d->p)))
            break;
        switch (m) {
        case 0xD8: jfail(d, "a second start-of-image marker"); goto out;
        case 0xD9: done = 1; break;
        case 0xC0: case 0xC1: case 0xC2: case 0xC9: case 0xCA:
            if (parse_sof(d, m)) goto out;
            break;
        case 0xC3: case 0xC7: case 0xCB: case 0xCF:
            jfail(d, "lossless JPEG is not supported"); goto out;
        case 0xC5: case 0xC6: case 0xCD: case 0xCE: case 0xDE: case 0xDF:
            jfail(d, "hierarchical JPEG (marker 0xFF%02X) is not supported", m); goto out;
        case 0xC8:
            jfail(d, "the JPG extension marker 0xFFC8 is not supported"); goto out;
        case 0xF7: case 0xF8:
            jfail(d, "JPEG-LS (marker 0xFF%02X) is not supported", m); goto out;
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
            if (!scans && d->seen_sof && !d->arith)
                for (i = 0; i < 4; i++) {
                    huff_table *t = i < 2 ? &d->dc[i] : &d->ac[i - 2];
                    if (!t->defined && build_huff(d, t, jpeg_std_counts[i], jpeg_std_values[i],
                                                  i < 2 ? 12 : 162, i < 2))
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
                /* four: CMYK unless an Adobe marker says otherwise; any
                   transform but 0 is taken for YCCK, as libjpeg does */
                if (d->ncomp == 4) d->ycck = d->saw_adobe && d->adobe_transform != 0;
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
                    c->coef = (int16_t *)clip_calloc((size_t)c->bw * c->bh, 64 * sizeof(int16_t));
                    if (!c->coef) {
                        jfail(d, "out of memory for a %dx%d image", d->w, d->h);
                        goto out;
                    }
                }
            }
            if (decode_mcus(d, 0, d->mcus, NULL, NULL) || end_scan(d)) goto out;
            scans++;
            break;
        default:
            if ((m >= 0xE0 && m <= 0xEF) || m == 0xFE || m == 0xDC) {
                /* DNL after a scan is skipped too: libjpeg takes the
                   height from the frame header only */
                const unsigned char *s;
                int len;
                if (variable_segment(d, &s, &len, m == 0xDC ? "DNL" : m == 0xFE ? "COM" : "APP")) goto out;
                /* libjpeg reads the first 14 bytes of APP0 and APP14 */
                if (m == 0xE0 && len >= 14 && memcmp(s, "JFIF\0", 5) == 0) d->saw_jfif = 1;
                if (m == 0xEE && len >= 12 && memcmp(s, "Adobe", 5) == 0) {
                    d->saw_adobe = 1;
                    d->adobe_transform = s[11];
                }
            } else if ((m >= 0xD0 && m <= 0xD7) || m == 0x01) {
                /* a stray restart marker or TEM between segments: nothing to do */
            } else {
                jfail(d, "unknown marker 0xFF%02X", m);
                goto out;
            }
        }
    }
    if (!d->seen_sof || !scans) {
        if (!d->seen_sof)
            jfail(d, "no frame header (SOF)");
        else
            jfail(d, "no image data (SOS)");
        goto out;
    }
    /* No EOI. Pillow's libjpeg waits for more data where djpeg's inserts
       an EOI: after all scans of a buffered (progressive or multi-scan)
       file, and where a refill of the entropy decoder's bit buffer (to 57
       bits) runs into the end before the last rows are out; Pillow then
       fails with "image file is truncated", and so do we. Whether a refill
       came that late depends on libjpeg's buffer level, which we do not
       follow: a file that ends within the last code's byte is refused,
       one with more data after its last code (the usual trailing junk) is
       decoded. */
    if (!done && (!streaming || d->tail < 8)) {
        jfail(d, "the data ends before the EOI marker (truncated file)");
        goto out;
    }
    if (!streaming) {
        d->smooth = smoothing_wanted(d);
        if (jpeg_run(d, &sink, 0)) goto out;
    }
    rc = 0;
out:
    for (i = 0; i < JPEG_MAX_COMPONENTS; i++) clip_free(d->comp[i].coef);
    clip_free(d);
    return rc;
}

/* The whole image: each row interleaved into the image's RGB buffer. */
static void image_row(void *ctx, int y, const unsigned char *r, const unsigned char *g, const unsigned char *b)
{
    const clip_image *img = (const clip_image *)ctx;
    unsigned char *o = img->rgb + (size_t)y * img->width * 3;
    int x, n = img->width;
    for (x = 0; x < n; x++) {
        o[3 * x] = r[x];
        o[3 * x + 1] = g[x];
        o[3 * x + 2] = b[x];
    }
}

static int image_prepare(void *ctx, int w, int h, clip_row_sink *sink, char *err)
{
    clip_image *img = (clip_image *)ctx;
    if (clip_image_alloc(img, w, h, err)) return -1;
    sink->y0 = 0;
    sink->y1 = h;
    sink->x0 = 0;
    sink->x1 = w;
    sink->pad = 0;
    sink->row = image_row;
    sink->ctx = img;
    return 0;
}

int clip_decode_jpeg(clip_image *img, const unsigned char *data, size_t size, char *err)
{
    int rc;
    img->rgb = NULL;
    img->width = img->height = 0;
    rc = clip_decode_jpeg_rows(data, size, image_prepare, img, err);
    if (rc) clip_image_free(img);
    return rc;
}
