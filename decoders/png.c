/* png.c - PNG: every colour type and bit depth, palettes, Adam7 interlacing,
   APNG (its default image). Reproduces exactly what Pillow 9.4 gives for
   Image.open(f).convert("RGB"): alpha is dropped (not composited), 16-bit
   grayscale is mode "I" clamped to 255, other 16-bit samples keep their high
   byte, 1/2/4-bit gray is scaled to 0..255, palette indices past the PLTE
   entries take Pillow's default palette (gray i). It refuses what Pillow
   refuses: CRC errors in the chunks before the image data (IDAT CRCs are
   not checked), malformed chunks that Pillow's chunk handlers reject
   (before the image data and after it), and image data that is truncated
   or corrupt before the image is complete (inflate.c: zlib as Pillow
   drives it).

   Reading order: the decoder's main path (chunks up to IDAT, the image
   data, unfiltering into RGB, the chunks Pillow reads after the image),
   then the chunk checks and the machinery (CRC, filters, samples). */
#include "../platform/platform.h"
#include "decoders.h"
#include "inflate.h"

#include <stdint.h>
#include <string.h>

/* Pillow reads the image data 64 KB at a time (ImageFile's decodermaxblock). */
#define PIL_BLOCK 65536
/* Pillow's limits on text chunks: 1 MB inflated per chunk, 64 MB in all */
#define PIL_TEXT_CHUNK ((size_t)1 << 20)
#define PIL_TEXT_MEMORY (64LL << 20)

typedef struct {
    long long width;            /* IHDR's size */
    long long height;           /* (both as read: clip_image_alloc checks them) */
    int depth;                  /* bits per sample (a combination Pillow knows) */
    int ctype;                  /* colour type 0, 2, 3, 4, 6 */
    int have_mode;              /* an IHDR with a known depth / colour type was read */
    int have_size;              /* an IHDR was read */
    int interlaced;             /* any nonzero interlace method (Pillow: Adam7) */
    const unsigned char *plte;  /* the last PLTE of a palette image, or NULL */
    size_t plte_len;            /* its bytes */
    int has_bbox;               /* an fcTL before IDAT gave the default image's region */
    long long bx;               /* that region: left, */
    long long by;               /* top, */
    long long bw;               /* width */
    long long bh;               /* and height */
    long long seq;              /* APNG sequence number so far, -1: none */
    long long text_memory;      /* text kept from text chunks so far (Pillow's text_memory) */
    long long n_frames;         /* acTL's frames (+1 for a default image that is not one), 0: no animation */
    uint32_t crc_table[256];    /* CRC-32 table, built per decode */
} png_state;

static int check_chunk(png_state *s, const unsigned char *cid, const unsigned char *d, size_t len, int before_idat,
                       char *err);
static int add_text(png_state *s, long long count, char *err);
static int text_chunk(png_state *s, const unsigned char *d, size_t len, size_t at, int count, const char *what,
                      char *err);
static long long utf8_chars(const unsigned char *p, size_t n);
static uint32_t crc32_of(const png_state *s, const unsigned char *cid, const unsigned char *d, size_t len);
static int is_cid(const unsigned char *c);
static uint32_t be32(const unsigned char *p);
static int decode_image(png_state *s, clip_image *img, const unsigned char *idat, size_t idat_len,
                        const size_t *ends, size_t nchunks, size_t *stop, char *err);
static int after_image(png_state *s, const unsigned char *data, size_t size, size_t pos, char *err);
static size_t idat_chunks(const unsigned char *data, size_t size, size_t pos, size_t len, long long *seq,
                          size_t *starts, size_t *ends, size_t *total);

int clip_is_png(const unsigned char *data, size_t size)
{
    static const unsigned char sig[8] = {137, 'P', 'N', 'G', '\r', '\n', 26, '\n'};
    return size >= 8 && memcmp(data, sig, 8) == 0;
}

int clip_decode_png(clip_image *img, const unsigned char *data, size_t size, char *err)
{
    png_state s;
    size_t pos = 8, len = 0, nchunks, total, stop, i;
    unsigned char *idat = NULL;
    size_t *ends = NULL, *starts = NULL;
    int fdat_first = 0;
    uint32_t k;
    img->rgb = NULL;
    img->width = img->height = 0;
    if (!clip_is_png(data, size)) return clip_error(err, "clip: PNG: no PNG signature");
    memset(&s, 0, sizeof s);
    s.seq = -1;
    for (k = 0; k < 256; k++) {
        uint32_t c = k;
        int b;
        for (b = 0; b < 8; b++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        s.crc_table[k] = c;
    }

    /* ---- chunks up to the first IDAT (or an fdAT, which Pillow takes as one) ---- */
    for (;;) {
        const unsigned char *cid;
        if (size - pos < 8) return clip_error(err, "clip: PNG: file is truncated before the image data");
        len = be32(data + pos);
        cid = data + pos + 4;
        pos += 8;
        if (!is_cid(cid)) return clip_error(err, "clip: PNG: broken file (chunk type is not a name) at byte %llu",
                                                  (unsigned long long)(pos - 4));
        if (!memcmp(cid, "IDAT", 4)) break;
        if (!memcmp(cid, "fdAT", 4)) {
            if (len < 4) return clip_error(err, "clip: PNG: APNG contains a truncated fdAT chunk");
            if (size - pos < 4) return clip_error(err, "clip: PNG: file is truncated in an fdAT chunk");
            if ((long long)be32(data + pos) != s.seq + 1 || s.seq < 0)
                return clip_error(err, "clip: PNG: APNG contains frame sequence errors");
            s.seq++;
            fdat_first = 1;
            break;
        }
        if (!memcmp(cid, "IEND", 4)) return clip_error(err, "clip: PNG: no image data (IEND before any IDAT)");
        if (len > size - pos) return clip_error(err, "clip: PNG: file is truncated in chunk %.4s", (const char *)cid);
        if (check_chunk(&s, cid, data + pos, len, 1, err)) return -1;
        if (size - pos - len < 4)
            return clip_error(err, "clip: PNG: broken file (incomplete checksum in chunk %.4s)", (const char *)cid);
        if (crc32_of(&s, cid, data + pos, len) != be32(data + pos + len))
            return clip_error(err, "clip: PNG: broken file (bad CRC in chunk %.4s)", (const char *)cid);
        pos += len + 4;
    }
    if (!s.have_size || !s.have_mode)
        return clip_error(err, s.have_size ? "clip: PNG: unsupported bit depth / colour type combination"
                                           : "clip: PNG: image data before the IHDR header");
    if (s.n_frames && !s.has_bbox) s.n_frames++; /* the default image is not an animation frame */

    /* ---- the image data: consecutive IDAT (and DDAT, fdAT) chunks, as Pillow reads them ---- */
    if (clip_image_alloc(img, s.width, s.height, err)) return -1;
    if (fdat_first) {
        pos += 4;
        len -= 4;
    }
    nchunks = idat_chunks(data, size, pos, len, &s.seq, NULL, NULL, &total);
    if (nchunks > ((size_t)-1) / 2 / sizeof(size_t)) goto oom;
    ends = (size_t *)clip_malloc(nchunks * 2 * sizeof(size_t));
    if (!ends) goto oom;
    starts = ends + nchunks;
    idat_chunks(data, size, pos, len, &s.seq, starts, ends, &total);
    /* inflate reads one contiguous stream: the chunks' data put together
       (a single chunk is read where it is) */
    if (nchunks > 1) {
        idat = (unsigned char *)clip_malloc(total ? total : 1);
        if (!idat) goto oom;
        for (i = 0; i < nchunks; i++) {
            size_t a = i ? ends[i - 1] : 0;
            memcpy(idat + a, data + starts[i], ends[i] - a);
        }
    }
    if (decode_image(&s, img, idat ? idat : data + starts[0], total, ends, nchunks, &stop, err)) goto fail;

    /* ---- what Pillow reads after the image: from where its reading stopped ---- */
    for (i = 0; i < nchunks; i++)
        if (ends[i] >= stop) break;
    if (i == nchunks) i = nchunks - 1;
    pos = starts[i] + (stop - (i ? ends[i - 1] : 0));
    clip_free(idat);
    clip_free(ends);
    idat = NULL;
    ends = NULL;
    if (after_image(&s, data, size, pos, err)) goto fail;
    return 0;

oom:
    clip_error(err, "clip: PNG: out of memory");
fail:
    clip_free(idat);
    clip_free(ends);
    clip_image_free(img);
    return -1;
}

/* The image data as Pillow's load_read gathers it: the IDAT chunk whose
   data starts at pos (len bytes), then every IDAT, DDAT or fdAT (with the
   next sequence number) right after it, each cut at the end of the file;
   their CRCs are not read. Fills starts (file offsets) and ends (running
   totals) unless they are NULL; *seq advances only when they are not.
   Returns the number of chunks, *total the bytes. */
static size_t idat_chunks(const unsigned char *data, size_t size, size_t pos, size_t len, long long *seq,
                          size_t *starts, size_t *ends, size_t *total)
{
    size_t n = 0;
    long long sq = *seq;
    *total = 0;
    for (;;) {
        size_t avail = len < size - pos ? len : size - pos;
        if (starts) {
            starts[n] = pos;
            ends[n] = *total + avail;
        }
        *total += avail;
        n++;
        if (avail < len) break;
        pos += len;
        if (size - pos < 12) break; /* CRC, then a chunk header */
        pos += 4;
        len = be32(data + pos);
        if (!memcmp(data + pos + 4, "IDAT", 4) || !memcmp(data + pos + 4, "DDAT", 4)) {
            pos += 8;
        } else if (!memcmp(data + pos + 4, "fdAT", 4)) {
            if (len < 4 || size - pos < 12 || sq < 0 || (long long)be32(data + pos + 8) != sq + 1) break;
            sq++;
            pos += 12;
            len -= 4;
        } else {
            break;
        }
    }
    if (starts) *seq = sq;
    return n;
}

/* Pillow's load_end: after the image it reads the chunks that follow (from
   wherever its reading stopped, 4 bytes of CRC first, unchecked) until IEND,
   anything that is not a chunk, or the next APNG frame; their handlers can
   still refuse the file. */
static int after_image(png_state *s, const unsigned char *data, size_t size, size_t pos, char *err)
{
    for (;;) {
        const unsigned char *cid;
        size_t len;
        if (size - pos < 4) return 0;
        pos += 4;
        if (size - pos < 8) return 0;
        len = be32(data + pos);
        cid = data + pos + 4;
        pos += 8;
        if (!is_cid(cid) || !memcmp(cid, "IEND", 4)) return 0;
        if (!memcmp(cid, "fcTL", 4) && s->n_frames > 1) return 0;
        if (!memcmp(cid, "IDAT", 4)) {
            /* skipped */
        } else if (!memcmp(cid, "fdAT", 4)) {
            if (len < 4) return clip_error(err, "clip: PNG: APNG contains a truncated fdAT chunk");
            if (size - pos < 4) return clip_error(err, "clip: PNG: file is truncated in an fdAT chunk");
            if (s->seq < 0 || (long long)be32(data + pos) != s->seq + 1)
                return clip_error(err, "clip: PNG: APNG contains frame sequence errors");
            s->seq++;
        } else if (len <= size - pos) {
            if (check_chunk(s, cid, data + pos, len, 0, err)) return -1;
        }
        if (len > size - pos)
            return clip_error(err, "clip: PNG: file is truncated in chunk %.4s after the image data", (const char *)cid);
        pos += len;
    }
}

/* ------------------------------------------------------------------------
   Chunks: what Pillow's handlers accept (PngImagePlugin's chunk_XXXX) */

static int check_chunk(png_state *s, const unsigned char *cid, const unsigned char *d, size_t len, int before_idat,
                       char *err)
{
    /* Pillow's mode at this point: "1", "L", "I" (gray), "RGB", "P" */
    int gray = s->have_mode && s->ctype == 0, rgb = s->have_mode && s->ctype == 2;
    if (!memcmp(cid, "IHDR", 4)) {
        static const int ok[][2] = {{1, 0}, {2, 0}, {4, 0}, {8, 0}, {16, 0}, {8, 2}, {16, 2}, {1, 3},
                                    {2, 3}, {4, 3}, {8, 3}, {8, 4}, {16, 4}, {8, 6}, {16, 6}};
        unsigned i;
        if (len < 13) return clip_error(err, "clip: PNG: truncated IHDR chunk (%llu bytes)", (unsigned long long)len);
        if (!before_idat) {
            if (d[11]) return clip_error(err, "clip: PNG: unknown filter method %d", d[11]);
            return 0;
        }
        s->width = be32(d);
        s->height = be32(d + 4);
        s->have_size = 1;
        for (i = 0; i < sizeof ok / sizeof ok[0]; i++)
            if (ok[i][0] == d[8] && ok[i][1] == d[9]) {
                s->depth = d[8];
                s->ctype = d[9];
                s->have_mode = 1;
            }
        if (d[12]) s->interlaced = 1;
        if (d[11]) return clip_error(err, "clip: PNG: unknown filter method %d", d[11]);
        return 0;
    }
    if (!memcmp(cid, "PLTE", 4)) {
        if (before_idat && s->have_mode && s->ctype == 3) {
            s->plte = d;
            s->plte_len = len;
        }
        return 0;
    }
    if (!memcmp(cid, "tRNS", 4)) {
        if ((gray && len < 2) || (rgb && len < 6))
            return clip_error(err, "clip: PNG: truncated tRNS chunk (%llu bytes)", (unsigned long long)len);
        return 0;
    }
    if (!memcmp(cid, "gAMA", 4) && len < 4) return clip_error(err, "clip: PNG: truncated gAMA chunk");
    if (!memcmp(cid, "sRGB", 4) && len < 1) return clip_error(err, "clip: PNG: truncated sRGB chunk");
    if (!memcmp(cid, "pHYs", 4) && len < 9) return clip_error(err, "clip: PNG: truncated pHYs chunk");
    if (!memcmp(cid, "iCCP", 4)) {
        /* Pillow reads the byte at the name's NUL (the last byte when there is none) as the method */
        const unsigned char *nul = len ? (const unsigned char *)memchr(d, 0, len) : NULL;
        if (!len) return clip_error(err, "clip: PNG: empty iCCP chunk");
        if (!nul && d[len - 1])
            return clip_error(err, "clip: PNG: unknown compression method %d in iCCP chunk", d[len - 1]);
        /* the profile starts 2 bytes past the NUL (Pillow: s[i + 2:], i = -1 without one) */
        return text_chunk(s, d, len, nul ? (size_t)(nul - d) + 2 : 1, 0, "iCCP", err);
    }
    if (!memcmp(cid, "tEXt", 4)) {
        /* keyword NUL text: the text counts when the keyword is not empty */
        const unsigned char *nul = len ? (const unsigned char *)memchr(d, 0, len) : NULL;
        if (nul && nul > d) return add_text(s, (long long)(len - (size_t)(nul + 1 - d)), err);
        return 0;
    }
    if (!memcmp(cid, "zTXt", 4)) {
        /* keyword NUL method compressed-text */
        const unsigned char *nul = len ? (const unsigned char *)memchr(d, 0, len) : NULL;
        if (nul && nul + 1 < d + len && nul[1])
            return clip_error(err, "clip: PNG: unknown compression method %d in zTXt chunk", nul[1]);
        if (!nul) return 0; /* all keyword, no text */
        return text_chunk(s, d, len, (size_t)(nul - d) + 2, nul > d ? 1 : 0, "zTXt", err);
    }
    if (!memcmp(cid, "iTXt", 4)) {
        /* keyword NUL flag method language NUL translated-keyword NUL text */
        const unsigned char *nul = len ? (const unsigned char *)memchr(d, 0, len) : NULL, *q, *l, *t;
        int names;
        if (!nul || (size_t)(d + len - (nul + 1)) < 2) return 0;
        q = nul + 3;
        l = (const unsigned char *)memchr(q, 0, (size_t)(d + len - q));
        if (!l) return 0;
        t = (const unsigned char *)memchr(l + 1, 0, (size_t)(d + len - (l + 1)));
        if (!t) return 0;
        /* the text counts only when language, translated keyword and text are UTF-8 */
        names = utf8_chars(q, (size_t)(t - q)) >= 0;
        if (nul[1] == 0) return names ? add_text(s, utf8_chars(t + 1, (size_t)(d + len - (t + 1))), err) : 0;
        if (nul[2] != 0) return 0;
        return text_chunk(s, d, len, (size_t)(t + 1 - d), names ? 2 : 0, "iTXt", err);
    }
    if (!memcmp(cid, "acTL", 4)) {
        uint32_t nf;
        if (len < 8) return clip_error(err, "clip: PNG: APNG contains a truncated acTL chunk");
        if (!before_idat) return 0;
        if (s->n_frames) {
            s->n_frames = 0; /* a second acTL: Pillow uses the default image */
            return 0;
        }
        nf = be32(d);
        if (nf == 0 || nf > 0x80000000u) return 0;
        s->n_frames = nf;
        return 0;
    }
    if (!memcmp(cid, "fcTL", 4)) {
        long long seq, w, h, x, y;
        if (len < 26) return clip_error(err, "clip: PNG: APNG contains a truncated fcTL chunk");
        if (!s->have_size) return clip_error(err, "clip: PNG: fcTL chunk before the IHDR header");
        seq = be32(d);
        if ((s->seq < 0 && seq != 0) || (s->seq >= 0 && seq != s->seq + 1))
            return clip_error(err, "clip: PNG: APNG contains frame sequence errors");
        s->seq = seq;
        w = be32(d + 4);
        h = be32(d + 8);
        x = be32(d + 12);
        y = be32(d + 16);
        if (x + w > s->width || y + h > s->height)
            return clip_error(err, "clip: PNG: APNG contains invalid frames (%lldx%lld at %lld,%lld)", w, h, x, y);
        if (before_idat) {
            s->has_bbox = 1;
            s->bx = x;
            s->by = y;
            s->bw = w;
            s->bh = h;
        }
        return 0;
    }
    return 0;
}

/* Pillow keeps the text of tEXt, zTXt and iTXt chunks and refuses a file
   with more than 64 MB of it (MAX_TEXT_MEMORY; iTXt counted in characters).
   count < 0: nothing counts. */
static int add_text(png_state *s, long long count, char *err)
{
    if (count <= 0) return 0;
    s->text_memory += count;
    if (s->text_memory > PIL_TEXT_MEMORY)
        return clip_error(err, "clip: PNG: too much text in text chunks (%lld bytes, over 64 MB)", s->text_memory);
    return 0;
}

/* A compressed text chunk or ICC profile (d[at ..]): Pillow inflates up to
   1 MB (ImageFile.SAFEBLOCK) and refuses a chunk with more; a broken stream
   is ignored. count: 0 the result is not text (iCCP), 1 its bytes count
   (zTXt), 2 its UTF-8 characters count when it is valid UTF-8 (iTXt). */
static int text_chunk(png_state *s, const unsigned char *d, size_t len, size_t at, int count, const char *what,
                      char *err)
{
    unsigned char *out;
    size_t produced = 0;
    int state = 0;
    long long n = 0;
    if (at > len) at = len;
    out = (unsigned char *)clip_malloc(PIL_TEXT_CHUNK);
    if (!out) return clip_error(err, "clip: PNG: out of memory for a %s chunk", what);
    if (clip_inflate_text(d + at, len - at, out, PIL_TEXT_CHUNK, &produced, &state, "PNG", err)) {
        clip_free(out);
        return -1;
    }
    if (state == 1) {
        clip_free(out);
        return clip_error(err, "clip: PNG: decompressed data too large in %s chunk (over 1 MB)", what);
    }
    if (state == 0 && count == 1) n = (long long)produced;
    if (state == 0 && count == 2) n = utf8_chars(out, produced);
    clip_free(out);
    return add_text(s, n, err);
}

/* Characters in strict UTF-8 (as Python decodes it), or -1 when invalid. */
static long long utf8_chars(const unsigned char *p, size_t n)
{
    size_t i = 0, k, j;
    long long count = 0;
    while (i < n) {
        unsigned c = p[i], cp, min;
        if (c < 0x80) {
            i++;
            count++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
            min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
            min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return -1;
        }
        if (n - i - 1 < k) return -1;
        for (j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80) return -1;
            cp = cp << 6 | (p[i + j] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
        i += k + 1;
        count++;
    }
    return count;
}

static int is_cid(const unsigned char *c)
{
    int i;
    for (i = 0; i < 4; i++)
        if (!((c[i] >= 'a' && c[i] <= 'z') || (c[i] >= 'A' && c[i] <= 'Z') || (c[i] >= '0' && c[i] <= '9') ||
              c[i] == '_'))
            return 0;
    return 1;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t crc32_of(const png_state *s, const unsigned char *cid, const unsigned char *d, size_t len)
{
    uint32_t c = 0xffffffffu;
    size_t i;
    for (i = 0; i < 4; i++) c = s->crc_table[(c ^ cid[i]) & 255] ^ (c >> 8);
    for (i = 0; i < len; i++) c = s->crc_table[(c ^ d[i]) & 255] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

/* ------------------------------------------------------------------------
   The image: inflate, unfilter pass by pass, samples to RGB */

/* Adam7: start column/row and steps of the seven passes */
static const int adam7[7][4] = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
                                {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};

static void unfilter_row(unsigned char *row, const unsigned char *prev, size_t n, size_t bpp, int type);
static void row_to_rgb(const png_state *s, const unsigned char *row, long long count, const unsigned char *pal,
                       unsigned char *dst, size_t step);

static int decode_image(png_state *s, clip_image *img, const unsigned char *idat, size_t idat_len,
                        const size_t *ends, size_t nchunks, size_t *stop, char *err)
{
    long long rw = s->has_bbox ? s->bw : s->width, rh = s->has_bbox ? s->bh : s->height;
    /* Pillow's interlaced decoding ignores the region's offset: measured */
    long long ox = s->has_bbox && !s->interlaced ? s->bx : 0, oy = s->has_bbox && !s->interlaced ? s->by : 0;
    int channels = s->ctype == 0 || s->ctype == 3 ? 1 : s->ctype == 4 ? 2 : s->ctype == 2 ? 3 : 4;
    int bits = channels * s->depth, npass = s->interlaced ? 7 : 1, p;
    size_t bpp = bits >= 8 ? (size_t)bits / 8 : 1, total = 0, maxrow = 0, off;
    unsigned char pal[768], *buf, *zero, *keep;
    int r, in_place;
    if (rw <= 0 || rh <= 0)
        return clip_error(err, "clip: PNG: APNG default image region %lldx%lld is empty (not supported)", rw, rh);
    /* sizes: every row is at most width * 8 bytes plus its filter byte, and
       width * height is already within CLIP_MAX_PIXELS */
    for (p = 0; p < npass; p++) {
        long long pw = s->interlaced ? (rw - adam7[p][0] + adam7[p][2] - 1) / adam7[p][2] : rw;
        long long ph = s->interlaced ? (rh - adam7[p][1] + adam7[p][3] - 1) / adam7[p][3] : rh;
        size_t rowbytes;
        if (pw <= 0 || ph <= 0) continue;
        rowbytes = (size_t)(((unsigned long long)pw * (unsigned)bits + 7) / 8) + 1;
        if ((unsigned long long)rowbytes * (unsigned long long)ph > (SIZE_MAX - total) / 2)
            return clip_error(err, "clip: PNG: image of %lldx%lld does not fit this platform's memory", rw, rh);
        total += rowbytes * (size_t)ph;
        if (rowbytes > maxrow) maxrow = rowbytes;
    }
    /* the palette as Pillow holds it: PLTE's entries, then its default (gray i) */
    for (p = 0; p < 256; p++) pal[p * 3] = pal[p * 3 + 1] = pal[p * 3 + 2] = (unsigned char)p;
    if (s->ctype == 3 && s->plte) {
        if (s->plte_len / 3 > 256)
            return clip_error(err, "clip: PNG: palette has %llu entries (more than 256)",
                              (unsigned long long)(s->plte_len / 3));
        memcpy(pal, s->plte, s->plte_len / 3 * 3);
    }
    /* RGB and RGBA without interlacing are unfiltered and converted in
       place, each row to the start of the buffer (a row's 3 bytes a pixel
       never reach the next row's data), and the buffer becomes the image:
       no second image-sized buffer to touch. The rows go through `keep` (the
       last two unfiltered rows) since a converted row is no longer the
       unfiltered one the next row needs. */
    in_place = !s->interlaced && !s->has_bbox && (s->ctype == 2 || s->ctype == 6);
    buf = (unsigned char *)clip_malloc(total + maxrow * 3);
    if (!buf) return clip_error(err, "clip: PNG: out of memory for the image data");
    zero = buf + total;
    keep = zero + maxrow;
    memset(zero, 0, maxrow);
    r = clip_inflate_zlib(idat, idat_len, ends, nchunks, PIL_BLOCK, buf, total, stop, "PNG", err);
    if (r) {
        clip_free(buf);
        return -1;
    }
    if (s->has_bbox && (rw != s->width || rh != s->height)) {
        /* outside the default image's region: zero samples */
        unsigned char z[3];
        long long i, npx = s->width * s->height;
        memset(z, 0, 3);
        if (s->ctype == 3) memcpy(z, pal, 3);
        for (i = 0; i < npx; i++) memcpy(img->rgb + i * 3, z, 3);
    }
    off = 0;
    for (p = 0; p < npass; p++) {
        long long x0 = s->interlaced ? adam7[p][0] : 0, y0 = s->interlaced ? adam7[p][1] : 0;
        long long dx = s->interlaced ? adam7[p][2] : 1, dy = s->interlaced ? adam7[p][3] : 1;
        long long pw = (rw - x0 + dx - 1) / dx, ph = (rh - y0 + dy - 1) / dy, y;
        size_t rowbytes;
        const unsigned char *prev = zero;
        if (pw <= 0 || ph <= 0) continue;
        rowbytes = (size_t)(((unsigned long long)pw * (unsigned)bits + 7) / 8) + 1;
        for (y = 0; y < ph; y++) {
            unsigned char *row = buf + off;
            if (row[0] > 4) {
                int t = row[0];
                clip_free(buf);
                return clip_error(err, "clip: PNG: unknown filter type %d (row %lld)", t, y);
            }
            unfilter_row(row + 1, prev + (prev == zero ? 0 : 1), rowbytes - 1, bpp, row[0]);
            if (in_place) {
                unsigned char *k = keep + (size_t)(y & 1) * maxrow;
                memcpy(k, row, rowbytes);
                row_to_rgb(s, k + 1, pw, pal, buf + (size_t)y * (size_t)rw * 3, 3);
                prev = k;
            } else {
                row_to_rgb(s, row + 1, pw, pal,
                           img->rgb + (((size_t)(oy + y0 + y * dy) * (size_t)s->width) + (size_t)(ox + x0)) * 3,
                           (size_t)dx * 3);
                prev = row;
            }
            off += rowbytes;
        }
    }
    if (in_place) {
        /* the buffer (at least width * height * 3 bytes) becomes the image */
        unsigned char *shrunk = (unsigned char *)clip_realloc(buf, (size_t)rw * (size_t)rh * 3);
        clip_free(img->rgb);
        img->rgb = shrunk ? shrunk : buf;
        return 0;
    }
    clip_free(buf);
    return 0;
}

/* Undo a row's filter in place. prev: the previous row, unfiltered (zeros
   for a pass's first). */
static void unfilter_row(unsigned char *row, const unsigned char *prev, size_t n, size_t bpp, int type)
{
    size_t i;
    switch (type) {
    case 1:
        for (i = bpp; i < n; i++) row[i] = (unsigned char)(row[i] + row[i - bpp]);
        break;
    case 2:
        for (i = 0; i < n; i++) row[i] = (unsigned char)(row[i] + prev[i]);
        break;
    case 3:
        for (i = 0; i < bpp && i < n; i++) row[i] = (unsigned char)(row[i] + (prev[i] >> 1));
        for (; i < n; i++) row[i] = (unsigned char)(row[i] + ((row[i - bpp] + prev[i]) >> 1));
        break;
    case 4:
        for (i = 0; i < bpp && i < n; i++) row[i] = (unsigned char)(row[i] + prev[i]);
        for (; i < n; i++) {
            /* Paeth: the neighbour nearest a + b - c, ties to a then b; without branches */
            int a = row[i - bpp], b = prev[i], c = prev[i - bpp];
            int pa = b - c, pb = a - c, pc;
            pc = pa + pb;
            pa = pa < 0 ? -pa : pa;
            pb = pb < 0 ? -pb : pb;
            pc = pc < 0 ? -pc : pc;
            b = pb <= pc ? b : c;
            a = (pa <= pb && pa <= pc) ? a : b;
            row[i] = (unsigned char)(row[i] + a);
        }
        break;
    default:
        break;
    }
}

/* count pixels of an unfiltered row to RGB, as Pillow's unpackers and
   convert("RGB") give them, every step bytes in dst. */
static void row_to_rgb(const png_state *s, const unsigned char *row, long long count, const unsigned char *pal,
                       unsigned char *dst, size_t step)
{
    long long i;
    int d = s->depth;
    if (d < 8) {
        /* packed samples, first one highest */
        unsigned mask = (1u << d) - 1, scale = 255 / mask;
        for (i = 0; i < count; i++, dst += step) {
            size_t bit = (size_t)i * (size_t)d;
            unsigned v = (row[bit >> 3] >> (8 - d - (int)(bit & 7))) & mask;
            if (s->ctype == 3) {
                memcpy(dst, pal + v * 3, 3);
            } else {
                dst[0] = dst[1] = dst[2] = (unsigned char)(v * scale);
            }
        }
        return;
    }
    switch (s->ctype * 100 + d) {
    case 8: /* L */
        for (i = 0; i < count; i++, dst += step) dst[0] = dst[1] = dst[2] = row[i];
        break;
    case 16: /* I;16B, mode I: clamped */
        for (i = 0; i < count; i++, dst += step) dst[0] = dst[1] = dst[2] = row[2 * i] ? 255 : row[2 * i + 1];
        break;
    case 208:
        if (step == 3) {
            memcpy(dst, row, (size_t)count * 3);
            break;
        }
        for (i = 0; i < count; i++, dst += step) memcpy(dst, row + 3 * i, 3);
        break;
    case 216:
        for (i = 0; i < count; i++, dst += step) {
            dst[0] = row[6 * i];
            dst[1] = row[6 * i + 2];
            dst[2] = row[6 * i + 4];
        }
        break;
    case 308:
        for (i = 0; i < count; i++, dst += step) memcpy(dst, pal + row[i] * 3, 3);
        break;
    case 408:
        for (i = 0; i < count; i++, dst += step) dst[0] = dst[1] = dst[2] = row[2 * i];
        break;
    case 416:
        for (i = 0; i < count; i++, dst += step) dst[0] = dst[1] = dst[2] = row[4 * i];
        break;
    case 608:
        for (i = 0; i < count; i++, dst += step) memcpy(dst, row + 4 * i, 3);
        break;
    default: /* 616 */
        for (i = 0; i < count; i++, dst += step) {
            dst[0] = row[8 * i];
            dst[1] = row[8 * i + 2];
            dst[2] = row[8 * i + 4];
        }
        break;
    }
}
