/* webp.c - WebP: the RIFF container (simple 'VP8 ' and 'VP8L' files, the
   extended 'VP8X' layout with its metadata, alpha and animation chunks),
   the lossless VP8L bitstream, and the ALPH chunk. The lossy VP8 bitstream
   is vp8.c's.

   What it reproduces exactly is Pillow 9.4's Image.open(f).convert("RGB")
   with libwebp 1.2.4: Pillow opens every WebP through libwebp's
   WebPAnimDecoder, so the file is first validated as libwebp's demuxer
   does (the same files are refused), then frame 0 is decoded onto a canvas
   cleared to transparent black, at its offset, never blended (frame 0 is a
   key frame). Alpha is dropped without compositing, so the RGB is the
   decoder's own RGB; an ALPH chunk is still decoded, because a broken one
   makes libwebp fail the whole frame.

   Reading order: detection and the entry point, the container (libwebp's
   demuxer rules), the frame decode, then the VP8L machinery (bit reader,
   Huffman codes, image streams, inverse transforms) and the ALPH chunk. */
#include "../platform/platform.h"
#include "decoders.h"

#include <stdint.h>
#include <string.h>

/* libwebp's limits: a chunk payload fits 32 bits minus a header and a pad
   byte; canvas and frame areas stay below 2^32. */
#define WEBP_MAX_CHUNK 0xFFFFFFF6u
#define WEBP_MAX_AREA 4294967296ULL

/* VP8X feature flags (the others are reserved and make the file invalid) */
#define WEBP_FLAG_ANIMATION 0x02
#define WEBP_FLAG_ALPHA 0x10
#define WEBP_FLAGS_VALID 0x3E

static uint32_t le16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le24(const unsigned char *p) { return le16(p) | (uint32_t)p[2] << 16; }
static uint32_t le32(const unsigned char *p) { return le24(p) | (uint32_t)p[3] << 24; }

/* One frame as the demuxer records it: where its chunks are and where it
   goes on the canvas. */
typedef struct {
    size_t image_off;   /* the 'VP8 '/'VP8L' chunk's payload (0: none) */
    size_t image_size;  /* its payload size including the pad byte, as libwebp hands it on */
    size_t image_chunk; /* offset of that chunk's header (ordering check) */
    size_t alpha_off;   /* the ALPH payload (0: none) */
    size_t alpha_size;  /* its size without the pad byte */
    size_t alpha_chunk; /* offset of the ALPH chunk header */
    int has_image;      /* an image chunk was found */
    int has_alpha_chunk; /* an ALPH chunk was found */
    int lossless;       /* the image chunk is 'VP8L' */
    int x, y;           /* offset on the canvas (ANMF only) */
    int w, h;           /* size, from the bitstream header */
} webp_frame;

/* The container as parsed: canvas, flags and frame 0. */
typedef struct {
    const unsigned char *d; /* the file */
    size_t end;             /* end of the RIFF chunk (bytes past it are ignored) */
    size_t pos;             /* parse position */
    int extended;           /* a VP8X file */
    unsigned flags;         /* VP8X feature flags */
    long long cw, ch;       /* canvas size */
    int frames;             /* frames kept so far */
    webp_frame first;       /* frame 0 */
    char *err;              /* where messages go */
} webp_file;

static int webp_parse(webp_file *f, size_t size);
static int webp_decode_frame(const webp_file *f, clip_image *img);

/* ------------------------------------------------------------------------
   Detection and entry point */

int clip_is_webp(const unsigned char *data, size_t size)
{
    return size >= 12 && memcmp(data, "RIFF", 4) == 0 && memcmp(data + 8, "WEBP", 4) == 0;
}

int clip_decode_webp(clip_image *img, const unsigned char *data, size_t size, char *err)
{
    webp_file f;
    img->rgb = NULL;
    img->width = img->height = 0;
    memset(&f, 0, sizeof f);
    f.d = data;
    f.err = err;
    if (webp_parse(&f, size)) return -1;
    if (clip_image_alloc(img, f.cw, f.ch, err)) return -1;
    /* the canvas starts transparent black; frame 0 lands at its offset */
    memset(img->rgb, 0, (size_t)img->width * (size_t)img->height * 3);
    if (webp_decode_frame(&f, img)) {
        clip_image_free(img);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
   The container, validated as libwebp 1.2.4's demuxer (WebPDemux, which
   WebPAnimDecoder uses) does: the RIFF size may not pass the end of the
   file (bytes after it are ignored), every chunk with its pad byte must fit
   in the RIFF chunk, the first chunk is 'VP8 ', 'VP8L' or 'VP8X', and the
   frames must fit the canvas. */

static size_t webp_left(const webp_file *f) { return f->end - f->pos; }

/* The chunk header at f->pos: a FourCC and a 32-bit little-endian payload
   size. The payload and its pad byte must fit in the RIFF data; fewer than
   8 bytes where a header should start are stray bytes. */
static int webp_chunk_header(webp_file *f, uint32_t *payload, size_t *padded)
{
    const unsigned char *p = f->d + f->pos;
    *payload = 0; /* set on every path: the compiler cannot tell that clip_error returns -1 */
    *padded = 0;
    if (webp_left(f) < 8)
        return clip_error(f->err, "clip: WebP: %llu stray bytes at the end of the RIFF data",
                          (unsigned long long)webp_left(f));
    *payload = le32(p + 4);
    if (*payload > WEBP_MAX_CHUNK)
        return clip_error(f->err, "clip: WebP: chunk size %u is too large", (unsigned)*payload);
    *padded = (size_t)*payload + (*payload & 1);
    if (*padded > webp_left(f) - 8)
        return clip_error(f->err, "clip: WebP: chunk '%.4s' (%u bytes) runs past the end of the RIFF data",
                          (const char *)p, (unsigned)*payload);
    return 0;
}

/* The bitstream header of an image chunk: its size, as WebPGetFeatures
   checks it. */
static int webp_image_header(webp_file *f, int lossless, size_t off, uint32_t payload, size_t padded, int *w,
                             int *h)
{
    const unsigned char *p = f->d + off;
    if (lossless) {
        if (padded < 5)
            return clip_error(f->err, "clip: WebP: VP8L chunk is truncated (%llu bytes)", (unsigned long long)padded);
        if (p[0] != 0x2f) return clip_error(f->err, "clip: WebP: VP8L signature byte is 0x%02x, not 0x2f", p[0]);
        if (p[4] >> 5) return clip_error(f->err, "clip: WebP: VP8L version %d is not 0", p[4] >> 5);
        *w = (int)(le32(p + 1) & 0x3fff) + 1;
        *h = (int)((le32(p + 1) >> 14) & 0x3fff) + 1;
        return 0;
    }
    if (padded < 10)
        return clip_error(f->err, "clip: WebP: VP8 chunk is truncated (%llu bytes)", (unsigned long long)padded);
    /* the first partition must end inside the chunk (VP8GetInfo) */
    if (p[3] == 0x9d && p[4] == 0x01 && p[5] == 0x2a && !(p[0] & 1) && (le24(p) >> 5) >= payload)
        return clip_error(f->err, "clip: WebP: VP8 first partition (%u bytes) does not fit its chunk",
                           (unsigned)(le24(p) >> 5));
    return clip_vp8_size(p, padded, w, h, f->err);
}

/* The image chunks of one frame, from f->pos: an optional ALPH, then
   'VP8 ' or 'VP8L'; the first other chunk ends the frame (libwebp's
   StoreFrame). fr->has_* say what was found. */
static int webp_store_frame(webp_file *f, size_t min_size, webp_frame *fr)
{
    int done = 0;
    if (webp_left(f) < 8 || webp_left(f) < min_size)
        return clip_error(f->err, "clip: WebP: frame data is truncated");
    do {
        size_t start = f->pos;
        const unsigned char *p = f->d + start;
        uint32_t payload;
        size_t padded;
        if (webp_chunk_header(f, &payload, &padded)) return -1;
        if (memcmp(p, "ALPH", 4) == 0 && !fr->has_alpha_chunk) {
            fr->has_alpha_chunk = 1;
            fr->alpha_chunk = start;
            fr->alpha_off = start + 8;
            fr->alpha_size = payload;
            f->pos = start + 8 + padded;
        } else if ((memcmp(p, "VP8L", 4) == 0 || memcmp(p, "VP8 ", 4) == 0) && !fr->has_image) {
            int lossless = p[3] == 'L';
            if (lossless && fr->has_alpha_chunk)
                return clip_error(f->err, "clip: WebP: an ALPH chunk before a lossless VP8L image");
            if (webp_image_header(f, lossless, start + 8, payload, padded, &fr->w, &fr->h)) return -1;
            fr->has_image = 1;
            fr->lossless = lossless;
            fr->image_chunk = start;
            fr->image_off = start + 8;
            fr->image_size = padded;
            f->pos = start + 8 + padded;
        } else {
            done = 1; /* not ours: the caller's level parses it */
        }
    } while (!done && f->pos != f->end);
    return 0;
}

/* A frame is kept: check it as the demuxer's validity pass does. */
static int webp_keep_frame(webp_file *f, const webp_frame *fr, int exact)
{
    if (!fr->has_image) return clip_error(f->err, "clip: WebP: frame %d has alpha but no image data", f->frames + 1);
    if (fr->has_alpha_chunk && fr->alpha_chunk > fr->image_chunk)
        return clip_error(f->err, "clip: WebP: ALPH chunk after the image data");
    if (exact && (fr->w != f->cw || fr->h != f->ch))
        return clip_error(f->err, "clip: WebP: image is %dx%d but the canvas is %lldx%lld", fr->w, fr->h, f->cw,
                          f->ch);
    if (!exact && ((long long)fr->x + fr->w > f->cw || (long long)fr->y + fr->h > f->ch))
        return clip_error(f->err, "clip: WebP: frame %d (%dx%d at %d,%d) does not fit the %lldx%lld canvas",
                          f->frames + 1, fr->w, fr->h, fr->x, fr->y, f->cw, f->ch);
    if (f->frames == 0) f->first = *fr;
    f->frames++;
    return 0;
}

/* A still image: a simple file's only chunk, or a VP8X file's image. */
static int webp_single_image(webp_file *f)
{
    webp_frame fr;
    if (f->frames) return clip_error(f->err, "clip: WebP: more than one image in a still file");
    if (webp_left(f) < 8) return clip_error(f->err, "clip: WebP: image chunk is truncated");
    memset(&fr, 0, sizeof fr);
    if (webp_store_frame(f, 0, &fr)) return -1;
    if (!(f->flags & WEBP_FLAG_ALPHA)) fr.has_alpha_chunk = 0; /* the demuxer forgets ALPH without the flag */
    if (!f->extended) {
        f->cw = fr.w;
        f->ch = fr.h;
    }
    return webp_keep_frame(f, &fr, 1);
}

/* An ANMF chunk of chunk_size bytes (padded) at f->pos (past its header).
   Its image chunks are read in place; what follows them is parsed at the
   top level, as libwebp does. */
static int webp_anmf(webp_file *f, size_t chunk_size)
{
    webp_frame fr;
    const unsigned char *p = f->d + f->pos;
    size_t start;
    if (webp_left(f) < 16 || chunk_size < 16) return clip_error(f->err, "clip: WebP: ANMF chunk is truncated");
    memset(&fr, 0, sizeof fr);
    fr.x = 2 * (int)le24(p);
    fr.y = 2 * (int)le24(p + 3);
    if ((unsigned long long)(le24(p + 6) + 1) * (le24(p + 9) + 1) >= WEBP_MAX_AREA)
        return clip_error(f->err, "clip: WebP: ANMF frame size %ux%u is too large", (unsigned)(le24(p + 6) + 1),
                          (unsigned)(le24(p + 9) + 1));
    f->pos += 16;
    start = f->pos;
    if (webp_store_frame(f, chunk_size - 16, &fr)) return -1;
    if (f->pos - start > chunk_size - 16)
        return clip_error(f->err, "clip: WebP: ANMF frame data runs past its chunk");
    if ((f->flags & WEBP_FLAG_ANIMATION) && (fr.has_image || fr.has_alpha_chunk)) return webp_keep_frame(f, &fr, 0);
    return 0;
}

/* The chunks after VP8X. */
static int webp_extended_chunks(webp_file *f)
{
    int animation = !!(f->flags & WEBP_FLAG_ANIMATION), anim_chunks = 0;
    for (;;) {
        size_t start = f->pos;
        const unsigned char *p = f->d + start;
        uint32_t size;
        size_t padded;
        if (webp_chunk_header(f, &size, &padded)) return -1;
        f->pos += 8;
        if (memcmp(p, "VP8X", 4) == 0) return clip_error(f->err, "clip: WebP: a second VP8X chunk");
        if (memcmp(p, "ALPH", 4) == 0 || memcmp(p, "VP8 ", 4) == 0 || memcmp(p, "VP8L", 4) == 0) {
            if (anim_chunks || animation)
                return clip_error(f->err, "clip: WebP: image chunk outside ANMF in an animation");
            f->pos = start;
            if (webp_single_image(f)) return -1;
        } else if (memcmp(p, "ANIM", 4) == 0) {
            if (padded < 6) return clip_error(f->err, "clip: WebP: ANIM chunk is truncated");
            anim_chunks = 1;
            f->pos += padded;
        } else if (memcmp(p, "ANMF", 4) == 0) {
            if (!anim_chunks) return clip_error(f->err, "clip: WebP: ANMF chunk before ANIM");
            if (webp_anmf(f, padded)) return -1;
        } else {
            f->pos += padded; /* ICCP, EXIF, XMP and unknown chunks */
        }
        if (f->pos == f->end) return 0;
    }
}

static int webp_parse(webp_file *f, size_t size)
{
    uint32_t riff;
    const unsigned char *p;
    if (size < 20) return clip_error(f->err, "clip: WebP: file is truncated (%llu bytes)", (unsigned long long)size);
    riff = le32(f->d + 4);
    if (riff < 8 || riff > WEBP_MAX_CHUNK)
        return clip_error(f->err, "clip: WebP: RIFF size %u is invalid", (unsigned)riff);
    if ((size_t)riff + 8 > size)
        return clip_error(f->err, "clip: WebP: file is truncated (RIFF size says %llu bytes, %llu present)",
                          (unsigned long long)riff + 8, (unsigned long long)size);
    f->end = (size_t)riff + 8;
    f->pos = 12;
    p = f->d + 12;
    if (memcmp(p, "VP8 ", 4) == 0 || memcmp(p, "VP8L", 4) == 0) return webp_single_image(f);
    if (memcmp(p, "VP8X", 4) != 0)
        return clip_error(f->err, "clip: WebP: first chunk '%.4s' is not VP8, VP8L or VP8X", (const char *)p);
    if (webp_left(f) < 8) return clip_error(f->err, "clip: WebP: VP8X chunk is truncated");
    {
        uint32_t vsize = le32(p + 4);
        size_t padded;
        if (vsize < 10) return clip_error(f->err, "clip: WebP: VP8X size %u is invalid", (unsigned)vsize);
        if (webp_chunk_header(f, &vsize, &padded)) return -1;
        f->extended = 1;
        f->flags = p[8];
        f->cw = (long long)le24(p + 12) + 1;
        f->ch = (long long)le24(p + 15) + 1;
        if ((unsigned long long)f->cw * (unsigned long long)f->ch >= WEBP_MAX_AREA)
            return clip_error(f->err, "clip: WebP: canvas %lldx%lld is too large", f->cw, f->ch);
        f->pos += 8 + padded;
    }
    if (webp_left(f) < 8) return clip_error(f->err, "clip: WebP: no image after the VP8X chunk");
    if (webp_extended_chunks(f)) return -1;
    if (f->flags & ~WEBP_FLAGS_VALID)
        return clip_error(f->err, "clip: WebP: reserved VP8X flags 0x%02x are set", f->flags & ~WEBP_FLAGS_VALID);
    if (!f->frames) return clip_error(f->err, "clip: WebP: the file has no image");
    return 0;
}

/* ------------------------------------------------------------------------
   Frame 0, onto the canvas */

static int vp8l_decode_argb(const unsigned char *data, size_t size, int w, int h, uint32_t **out, char *err);
static int alph_check(const unsigned char *data, size_t size, int w, int h, char *err);

static int webp_decode_frame(const webp_file *f, clip_image *img)
{
    const webp_frame *fr = &f->first;
    size_t stride = (size_t)img->width * 3;
    unsigned char *dst = img->rgb + (size_t)fr->y * stride + (size_t)fr->x * 3;
    if (fr->lossless) {
        uint32_t *argb;
        const uint32_t *s;
        int x, y;
        if (vp8l_decode_argb(f->d + fr->image_off, fr->image_size, fr->w, fr->h, &argb, f->err)) return -1;
        s = argb;
        for (y = 0; y < fr->h; y++) {
            unsigned char *o = dst + (size_t)y * stride;
            for (x = 0; x < fr->w; x++, s++, o += 3) {
                o[0] = (unsigned char)(*s >> 16);
                o[1] = (unsigned char)(*s >> 8);
                o[2] = (unsigned char)*s;
            }
        }
        clip_free(argb);
        return 0;
    }
    if (clip_vp8_decode(f->d + fr->image_off, fr->image_size, fr->w, fr->h, dst, stride, f->err)) return -1;
    if (fr->has_alpha_chunk && alph_check(f->d + fr->alpha_off, fr->alpha_size, fr->w, fr->h, f->err)) return -1;
    return 0;
}

/* ------------------------------------------------------------------------
   VP8L bit reader: least significant bit first, from a 64-bit window.
   Reading past the end gives zero bits; libwebp only calls the stream
   short once more bits were consumed than exist, counting a stream under
   8 bytes as 64 bits (its window), so that is what vl_overrun() says. */

typedef struct {
    const unsigned char *p; /* the data */
    size_t len;             /* its size */
    size_t pos;             /* next byte to load */
    uint64_t val;           /* loaded bits, next bit lowest */
    int nbits;              /* how many of them are valid */
    uint64_t zeros;         /* zero bits added after the end */
    uint64_t limit;         /* bits that may be consumed */
} vl_reader;

static void vl_init(vl_reader *br, const unsigned char *p, size_t len)
{
    br->p = p;
    br->len = len;
    br->pos = 0;
    br->val = 0;
    br->nbits = 0;
    br->zeros = 0;
    br->limit = (uint64_t)len * 8 < 64 ? 64 : (uint64_t)len * 8;
}

/* At least 32 valid bits in the window. */
static void vl_fill(vl_reader *br)
{
    if (br->nbits >= 32) return;
    if (br->len - br->pos >= 4) {
        const unsigned char *q = br->p + br->pos;
        br->val |= (uint64_t)((uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24)
                   << br->nbits;
        br->pos += 4;
        br->nbits += 32;
        return;
    }
    while (br->nbits < 32 && br->pos < br->len) {
        br->val |= (uint64_t)br->p[br->pos++] << br->nbits;
        br->nbits += 8;
    }
    if (br->nbits < 32) {
        br->zeros += (uint64_t)(56 - br->nbits);
        br->nbits = 56;
    }
}

static int vl_overrun(const vl_reader *br)
{
    return (uint64_t)br->pos * 8 + br->zeros - (uint64_t)br->nbits > br->limit;
}

/* n <= 24 bits */
static uint32_t vl_bits(vl_reader *br, int n)
{
    uint32_t v;
    vl_fill(br);
    v = (uint32_t)br->val & ((1u << n) - 1);
    br->val >>= n;
    br->nbits -= n;
    return v;
}

/* ------------------------------------------------------------------------
   Huffman codes: canonical, code lengths up to 15, decoded through a root
   table of up to 8 bits with second-level tables for longer codes. An
   entry's bits is the code length (or, in the root table, root + the
   second-level table's bits, with value its offset). A code with a single
   symbol takes no bits; any other must be complete, as libwebp requires. */

typedef struct {
    uint16_t value; /* symbol, or second-level table offset */
    uint8_t bits;   /* bits consumed (see above) */
} vl_entry;

typedef struct {
    const vl_entry *t; /* root table, second-level tables after it */
    int root;          /* root table bits */
} vl_code;

#define VL_MAX_LEN 15
#define VL_SCRATCH 4096 /* over the largest table a 2328-symbol alphabet needs */

/* The next code of length len, bit-reversed (codes are read LSB first). */
static unsigned vl_next_key(unsigned key, int len)
{
    unsigned step = 1u << (len - 1);
    while (key & step) step >>= 1;
    return step ? (key & (step - 1)) + step : key;
}

/* Build the table for lens[0..n) into out (cap entries). Returns its size,
   0 for an invalid code. */
static int vl_build(const uint8_t *lens, int n, vl_entry *out, int cap, int *root_bits)
{
    int count[VL_MAX_LEN + 1] = {0}, offs[VL_MAX_LEN + 2];
    uint16_t sorted[2400];
    int i, len, maxlen = 0, nsym = 0, root, total, left;
    unsigned key = 0, low = ~0u, rmask;
    int sub = 0, sub_bits = 0, k = 0;
    for (i = 0; i < n; i++) {
        count[lens[i]]++;
        if (lens[i]) {
            nsym++;
            if (lens[i] > maxlen) maxlen = lens[i];
        }
    }
    if (nsym == 0) return 0;
    offs[1] = 0;
    for (len = 1; len <= VL_MAX_LEN; len++) offs[len + 1] = offs[len] + count[len];
    for (i = 0; i < n; i++)
        if (lens[i]) sorted[offs[lens[i]]++] = (uint16_t)i;
    if (nsym == 1) {
        out[0].value = sorted[0];
        out[0].bits = 0;
        *root_bits = 0;
        return 1;
    }
    left = 1;
    for (len = 1; len <= VL_MAX_LEN; len++) {
        left = 2 * left - count[len];
        if (left < 0) return 0; /* over-subscribed */
    }
    if (left) return 0; /* incomplete */
    root = maxlen < 8 ? maxlen : 8;
    rmask = (1u << root) - 1;
    total = 1 << root;
    for (len = 1; len <= maxlen; len++) {
        int c;
        for (c = 0; c < count[len]; c++) {
            int sym = sorted[k++];
            if (len <= root) {
                unsigned j;
                for (j = key; j < (1u << root); j += 1u << len) {
                    out[j].value = (uint16_t)sym;
                    out[j].bits = (uint8_t)len;
                }
            } else {
                unsigned j;
                if ((key & rmask) != low) {
                    /* a new second-level table: as wide as the codes that share this prefix need */
                    int l = len, room = 1 << (len - root);
                    for (;;) {
                        room -= count[l] - (l == len ? c : 0);
                        if (room <= 0 || l == VL_MAX_LEN) break;
                        l++;
                        room <<= 1;
                    }
                    sub_bits = l - root;
                    sub = total;
                    total += 1 << sub_bits;
                    if (total > cap) return 0;
                    low = key & rmask;
                    out[low].value = (uint16_t)sub;
                    out[low].bits = (uint8_t)(root + sub_bits);
                }
                for (j = key >> root; j < (1u << sub_bits); j += 1u << (len - root)) {
                    out[sub + j].value = (uint16_t)sym;
                    out[sub + j].bits = (uint8_t)(len - root);
                }
            }
            key = vl_next_key(key, len);
        }
    }
    *root_bits = root;
    return total;
}

static int vl_symbol(const vl_code *c, vl_reader *br)
{
    vl_entry e;
    vl_fill(br);
    e = c->t[br->val & ((1u << c->root) - 1)];
    if (e.bits > c->root) {
        int sb = e.bits - c->root;
        br->val >>= c->root;
        br->nbits -= c->root;
        e = c->t[e.value + (br->val & ((1u << sb) - 1))];
    }
    br->val >>= e.bits;
    br->nbits -= e.bits;
    return e.value;
}

/* ------------------------------------------------------------------------
   VP8L image streams: the main image (transforms, colour cache, meta
   Huffman codes, pixels) and the sub-images (transform data, the meta
   code image, the palette), each with its own codes and cache. */

enum { VL_GREEN, VL_RED, VL_BLUE, VL_ALPHA, VL_DIST };

typedef struct {
    vl_code c[5]; /* green (+lengths, cache), red, blue, alpha, distance */
} vl_group;

typedef struct {
    int type;      /* 0 predictor, 1 cross-colour, 2 subtract green, 3 colour indexing */
    int bits;      /* tile bits, or pixels-per-byte bits for indexing */
    int xsize;     /* image width this transform's inverse outputs */
    uint32_t *data; /* tile data or the expanded palette */
} vl_transform;

typedef struct {
    vl_reader br;           /* the bitstream */
    char *err;              /* where messages go */
    vl_transform tr[4];     /* transforms in reading order */
    int ntr;                /* how many */
    unsigned seen;          /* transform types seen (each at most once) */
    vl_entry *scratch;      /* VL_SCRATCH entries for building one table */
    int alpha;              /* an ALPH stream */
    int alpha8;             /* ...that libwebp decodes in its 8-bit mode: see vl_pixels */
} vl_decoder;

/* One level's entropy coding. */
typedef struct {
    vl_group *groups; /* used groups */
    vl_entry *pool;   /* all their tables */
    uint32_t *meta;   /* group index per tile (NULL: one group) */
    int meta_bits;    /* tile size bits */
    int meta_w;       /* tiles per row */
    int cache_bits;   /* colour cache bits (0: none) */
} vl_level;

static int vl_stream(vl_decoder *d, int w, int h, int level0, uint32_t **out);

static void vl_level_free(vl_level *lv)
{
    clip_free(lv->groups);
    clip_free(lv->pool);
    clip_free(lv->meta);
}

static int vl_sub(int size, int bits) { return (int)(((long long)size + (1 << bits) - 1) >> bits); }

/* One code's lengths (normal or simple form), then its table into the pool
   at *used (grown as needed); pool NULL: validate only. */
static int vl_read_code(vl_decoder *d, int alphabet, vl_entry **pool, size_t *cap, size_t *used, size_t *off,
                        int *root)
{
    uint8_t lens[2400];
    int size;
    vl_reader *br = &d->br;
    memset(lens, 0, (size_t)alphabet);
    if (vl_bits(br, 1)) {
        /* simple: one or two symbols of length 1 (out-of-alphabet ones are dropped) */
        int two = (int)vl_bits(br, 1);
        int s = (int)vl_bits(br, vl_bits(br, 1) ? 8 : 1);
        if (s < alphabet) lens[s] = 1;
        if (two) {
            s = (int)vl_bits(br, 8);
            if (s < alphabet) lens[s] = 1;
        }
    } else {
        static const uint8_t order[19] = {17, 18, 0, 1, 2, 3, 4, 5, 16, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
        uint8_t cl[19] = {0};
        vl_entry t[128];
        vl_code lc;
        int i, n = (int)vl_bits(br, 4) + 4, max_symbol = alphabet, sym = 0, prev = 8;
        for (i = 0; i < n; i++) cl[order[i]] = (uint8_t)vl_bits(br, 3);
        if (!vl_build(cl, 19, t, 128, &lc.root))
            return clip_error(d->err, vl_overrun(br) ? "clip: WebP: VP8L data is truncated (in a Huffman code)"
                                                     : "clip: WebP: invalid Huffman code-length code");
        lc.t = t;
        if (vl_bits(br, 1)) {
            int nb = 2 + 2 * (int)vl_bits(br, 3);
            max_symbol = 2 + (int)vl_bits(br, nb);
            if (max_symbol > alphabet)
                return clip_error(d->err, "clip: WebP: Huffman code has %d lengths for %d symbols", max_symbol,
                                  alphabet);
        }
        while (sym < alphabet) {
            int c;
            if (max_symbol-- == 0) break;
            c = vl_symbol(&lc, br);
            if (c < 16) {
                lens[sym++] = (uint8_t)c;
                if (c) prev = c;
            } else {
                static const uint8_t extra[3] = {2, 3, 7}, base[3] = {3, 3, 11};
                int rep = (int)vl_bits(br, extra[c - 16]) + base[c - 16];
                uint8_t v = c == 16 ? (uint8_t)prev : 0;
                if (sym + rep > alphabet) return clip_error(d->err, "clip: WebP: Huffman code lengths overflow");
                while (rep-- > 0) lens[sym++] = v;
            }
        }
    }
    if (vl_overrun(br)) return clip_error(d->err, "clip: WebP: VP8L data is truncated (in a Huffman code)");
    size = vl_build(lens, alphabet, d->scratch, VL_SCRATCH, root);
    if (!size) return clip_error(d->err, "clip: WebP: invalid Huffman code");
    if (pool) {
        if (*used + (size_t)size > *cap) {
            size_t ncap = (*cap ? *cap * 2 : 4096) + (size_t)size;
            vl_entry *np = (vl_entry *)clip_realloc(*pool, ncap * sizeof *np);
            if (!np) return clip_error(d->err, "clip: WebP: out of memory for Huffman tables");
            *pool = np;
            *cap = ncap;
        }
        memcpy(*pool + *used, d->scratch, (size_t)size * sizeof(vl_entry));
        *off = *used;
        *used += (size_t)size;
    }
    return 0;
}

/* Colour cache bits, the meta code image (main image only) and every
   group's five codes. */
static int vl_read_codes(vl_decoder *d, int w, int h, int level0, vl_level *lv)
{
    static const int alphabet[5] = {256 + 24, 256, 256, 256, 40};
    int ngroups = 1, nused = 1, g, j;
    int *map = NULL;
    size_t *offs = NULL, cap = 0, used = 0;
    int *roots = NULL;
    memset(lv, 0, sizeof *lv);
    if (vl_bits(&d->br, 1)) {
        lv->cache_bits = (int)vl_bits(&d->br, 4);
        if (lv->cache_bits < 1 || lv->cache_bits > 11)
            return clip_error(d->err, "clip: WebP: colour cache bits %d is outside 1..11", lv->cache_bits);
    }
    if (level0 && vl_bits(&d->br, 1)) {
        size_t i, n;
        int maxg = 0;
        lv->meta_bits = (int)vl_bits(&d->br, 3) + 2;
        lv->meta_w = vl_sub(w, lv->meta_bits);
        if (vl_stream(d, lv->meta_w, vl_sub(h, lv->meta_bits), 0, &lv->meta)) return -1;
        n = (size_t)lv->meta_w * (size_t)vl_sub(h, lv->meta_bits);
        for (i = 0; i < n; i++) {
            lv->meta[i] = (lv->meta[i] >> 8) & 0xffff;
            if ((int)lv->meta[i] > maxg) maxg = (int)lv->meta[i];
        }
        ngroups = maxg + 1;
        /* groups the image never uses are read and checked, then dropped */
        map = (int *)clip_malloc((size_t)ngroups * sizeof *map);
        if (!map) goto oom;
        for (g = 0; g < ngroups; g++) map[g] = -1;
        nused = 0;
        for (i = 0; i < n; i++) {
            if (map[lv->meta[i]] < 0) map[lv->meta[i]] = nused++;
            lv->meta[i] = (uint32_t)map[lv->meta[i]];
        }
    }
    lv->groups = (vl_group *)clip_calloc((size_t)nused, sizeof *lv->groups);
    offs = (size_t *)clip_calloc((size_t)nused * 5, sizeof *offs);
    roots = (int *)clip_calloc((size_t)nused * 5, sizeof *roots);
    if (!lv->groups || !offs || !roots) goto oom;
    for (g = 0; g < ngroups; g++) {
        int idx = map ? map[g] : g;
        for (j = 0; j < 5; j++) {
            int a = alphabet[j] + (j == 0 && lv->cache_bits ? 1 << lv->cache_bits : 0), root;
            size_t off = 0;
            if (vl_read_code(d, a, idx >= 0 ? &lv->pool : NULL, &cap, &used, &off, &root)) goto fail;
            if (idx >= 0) {
                offs[idx * 5 + j] = off;
                roots[idx * 5 + j] = root;
            }
        }
    }
    for (g = 0; g < nused; g++)
        for (j = 0; j < 5; j++) {
            lv->groups[g].c[j].t = lv->pool + offs[g * 5 + j];
            lv->groups[g].c[j].root = roots[g * 5 + j];
        }
    clip_free(map);
    clip_free(offs);
    clip_free(roots);
    return 0;
oom:
    clip_error(d->err, "clip: WebP: out of memory for Huffman codes");
fail:
    clip_free(map);
    clip_free(offs);
    clip_free(roots);
    vl_level_free(lv);
    memset(lv, 0, sizeof *lv);
    return -1;
}

/* Backward reference distance codes 1..120 map to nearby (dx, dy) in the
   2-D plane (the VP8L specification's table), encoded as dy * 16 + 8 - dx. */
static const uint8_t vl_plane[120] = {
    0x18, 0x07, 0x17, 0x19, 0x28, 0x06, 0x27, 0x29, 0x16, 0x1a, 0x26, 0x2a, 0x38, 0x05, 0x37, 0x39, 0x15, 0x1b,
    0x36, 0x3a, 0x25, 0x2b, 0x48, 0x04, 0x47, 0x49, 0x14, 0x1c, 0x35, 0x3b, 0x46, 0x4a, 0x24, 0x2c, 0x58, 0x45,
    0x4b, 0x34, 0x3c, 0x03, 0x57, 0x59, 0x13, 0x1d, 0x56, 0x5a, 0x23, 0x2d, 0x44, 0x4c, 0x55, 0x5b, 0x33, 0x3d,
    0x68, 0x02, 0x67, 0x69, 0x12, 0x1e, 0x66, 0x6a, 0x22, 0x2e, 0x54, 0x5c, 0x43, 0x4d, 0x65, 0x6b, 0x32, 0x3e,
    0x78, 0x01, 0x77, 0x79, 0x53, 0x5d, 0x11, 0x1f, 0x64, 0x6c, 0x42, 0x4e, 0x76, 0x7a, 0x21, 0x2f, 0x75, 0x7b,
    0x31, 0x3f, 0x63, 0x6d, 0x52, 0x5e, 0x00, 0x74, 0x7c, 0x41, 0x4f, 0x10, 0x20, 0x62, 0x6e, 0x30, 0x73, 0x7d,
    0x51, 0x5f, 0x40, 0x72, 0x7e, 0x61, 0x6f, 0x50, 0x71, 0x7f, 0x60, 0x70};

/* A length or distance: a prefix symbol plus extra bits. */
static int vl_prefix(int sym, vl_reader *br)
{
    int extra;
    if (sym < 4) return sym + 1;
    extra = (sym - 2) >> 1;
    return ((2 + (sym & 1)) << extra) + (int)vl_bits(br, extra) + 1;
}

static const vl_group *vl_group_at(const vl_level *lv, int x, int y)
{
    return lv->groups + lv->meta[(size_t)(y >> lv->meta_bits) * (size_t)lv->meta_w + (size_t)(x >> lv->meta_bits)];
}

/* The entropy-coded pixels of one level, w x h into px. */
static int vl_pixels(vl_decoder *d, const vl_level *lv, uint32_t *px, int w, int h)
{
    vl_reader *br = &d->br;
    size_t total = (size_t)w * (size_t)h, pos = 0;
    uint32_t *cache = NULL;
    int x = 0, y = 0, cshift = 32 - lv->cache_bits;
    int mask = lv->meta ? (1 << lv->meta_bits) - 1 : -1;
    const vl_group *g = lv->groups;
    if (lv->cache_bits) {
        cache = (uint32_t *)clip_calloc((size_t)1 << lv->cache_bits, sizeof *cache);
        if (!cache) return clip_error(d->err, "clip: WebP: out of memory for the colour cache");
    }
    while (pos < total) {
        int code;
        if (lv->meta && (x & mask) == 0) g = vl_group_at(lv, x, y);
        code = vl_symbol(&g->c[VL_GREEN], br);
        if (code < 256) {
            uint32_t r = (uint32_t)vl_symbol(&g->c[VL_RED], br), b, a;
            b = (uint32_t)vl_symbol(&g->c[VL_BLUE], br);
            a = (uint32_t)vl_symbol(&g->c[VL_ALPHA], br);
            px[pos] = a << 24 | r << 16 | (uint32_t)code << 8 | b;
            if (cache) cache[(0x1e35a7bdu * px[pos]) >> cshift] = px[pos];
            pos++;
            if (++x == w) {
                x = 0;
                y++;
                if (vl_overrun(br)) break;
            }
        } else if (code < 256 + 24) {
            int len = vl_prefix(code - 256, br), dcode = vl_prefix(vl_symbol(&g->c[VL_DIST], br), br);
            size_t dist, i;
            if (dcode > 120) {
                dist = (size_t)(dcode - 120);
            } else {
                int v = vl_plane[dcode - 1];
                long long dd = (long long)(v >> 4) * w + 8 - (v & 15);
                dist = dd >= 1 ? (size_t)dd : 1;
            }
            if (vl_overrun(br)) break;
            if (dist > pos || (size_t)len > total - pos) {
                clip_free(cache);
                return clip_error(d->err, "clip: WebP: VP8L back-reference (distance %llu, length %d) leaves the image",
                                  (unsigned long long)dist, len);
            }
            for (i = 0; i < (size_t)len; i++) {
                px[pos + i] = px[pos + i - dist];
                if (cache) cache[(0x1e35a7bdu * px[pos + i]) >> cshift] = px[pos + i];
            }
            pos += (size_t)len;
            x += len;
            while (x >= w) {
                x -= w;
                y++;
            }
            if (lv->meta && (x & mask) && pos < total) g = vl_group_at(lv, x, y);
        } else {
            /* only a cache code is left in the green alphabet */
            uint32_t c;
            if (!cache) break; /* cannot happen: the alphabet has no such codes */
            c = cache[code - 280];
            px[pos] = c;
            cache[(0x1e35a7bdu * c) >> cshift] = c;
            pos++;
            if (++x == w) {
                x = 0;
                y++;
            }
        }
        /* libwebp's 8-bit alpha path forgives a final code that reads past the end */
        if (d->alpha8 && vl_overrun(br) && pos < total) break;
    }
    clip_free(cache);
    if (vl_overrun(br) && !(d->alpha8 && pos == total))
        return clip_error(d->err, "clip: WebP: VP8L data is truncated (%llu of %llu pixels)",
                           (unsigned long long)pos, (unsigned long long)total);
    return 0;
}

static int vl_transform_read(vl_decoder *d, int *w, int h)
{
    vl_transform *t = &d->tr[d->ntr];
    int type = (int)vl_bits(&d->br, 2);
    if (d->seen & (1u << type)) return clip_error(d->err, "clip: WebP: VP8L transform %d appears twice", type);
    d->seen |= 1u << type;
    t->type = type;
    t->xsize = *w;
    t->data = NULL;
    t->bits = 0;
    d->ntr++;
    if (type == 0 || type == 1) {
        t->bits = (int)vl_bits(&d->br, 3) + 2;
        return vl_stream(d, vl_sub(*w, t->bits), vl_sub(h, t->bits), 0, &t->data);
    }
    if (type == 3) {
        int n = (int)vl_bits(&d->br, 8) + 1, full, i;
        uint32_t *pal;
        t->bits = n > 16 ? 0 : n > 4 ? 1 : n > 2 ? 2 : 3;
        *w = vl_sub(*w, t->bits);
        if (vl_stream(d, n, 1, 0, &t->data)) return -1;
        /* delta-coded palette, padded with transparent black to a full index range */
        full = 1 << (8 >> t->bits);
        pal = (uint32_t *)clip_calloc((size_t)full, sizeof *pal);
        if (!pal) return clip_error(d->err, "clip: WebP: out of memory for a palette");
        pal[0] = t->data[0];
        for (i = 1; i < n; i++) {
            uint32_t a = t->data[i], b = pal[i - 1];
            pal[i] = (((a & 0xff00ff00u) + (b & 0xff00ff00u)) & 0xff00ff00u) |
                     (((a & 0x00ff00ffu) + (b & 0x00ff00ffu)) & 0x00ff00ffu);
        }
        clip_free(t->data);
        t->data = pal;
    }
    return 0;
}

/* Does libwebp decode this ALPH stream in its 8-bit mode? It does when the
   only transform is colour indexing, there is no colour cache, and every
   used group codes red, blue and alpha with a single symbol. */
static int vl_alpha8(const vl_decoder *d, const vl_level *lv, int h)
{
    size_t i, n = 1;
    if (d->ntr != 1 || d->tr[0].type != 3 || lv->cache_bits) return 0;
    if (lv->meta) {
        size_t tiles = (size_t)lv->meta_w * (size_t)vl_sub(h, lv->meta_bits);
        for (i = 0; i < tiles; i++)
            if (lv->meta[i] + 1 > n) n = lv->meta[i] + 1;
    }
    for (i = 0; i < n; i++)
        if (lv->groups[i].c[VL_RED].root || lv->groups[i].c[VL_BLUE].root || lv->groups[i].c[VL_ALPHA].root)
            return 0;
    return 1;
}

/* An image stream of w x h pixels into *out (clip_malloc'ed). The main
   image (level0) reads the transforms first and its buffer is as wide as
   the final image, for the inverse transforms in place. */
static int vl_stream(vl_decoder *d, int w, int h, int level0, uint32_t **out)
{
    vl_level lv;
    int xs = w;
    uint32_t *px;
    *out = NULL;
    if (level0)
        while (vl_bits(&d->br, 1)) {
            if (d->ntr == 4) return clip_error(d->err, "clip: WebP: too many VP8L transforms");
            if (vl_transform_read(d, &xs, h)) return -1;
        }
    if (vl_overrun(&d->br)) return clip_error(d->err, "clip: WebP: VP8L data is truncated (in the header)");
    if (vl_read_codes(d, xs, h, level0, &lv)) return -1;
    px = (uint32_t *)clip_malloc((size_t)w * (size_t)h * sizeof *px);
    if (!px) {
        vl_level_free(&lv);
        return clip_error(d->err, "clip: WebP: out of memory for a %dx%d VP8L image", w, h);
    }
    if (level0 && d->alpha) d->alpha8 = vl_alpha8(d, &lv, h);
    if (vl_pixels(d, &lv, px, xs, h)) {
        vl_level_free(&lv);
        clip_free(px);
        return -1;
    }
    vl_level_free(&lv);
    *out = px;
    return 0;
}

/* ------------------------------------------------------------------------
   Inverse transforms, last read first applied */

static uint32_t vl_add(uint32_t a, uint32_t b)
{
    return (((a & 0xff00ff00u) + (b & 0xff00ff00u)) & 0xff00ff00u) |
           (((a & 0x00ff00ffu) + (b & 0x00ff00ffu)) & 0x00ff00ffu);
}

static uint32_t vl_avg(uint32_t a, uint32_t b) { return (((a ^ b) & 0xfefefefeu) >> 1) + (a & b); }

static int vl_abs(int v) { return v < 0 ? -v : v; }

static uint32_t vl_clamp_byte(int v) { return v < 0 ? 0u : v > 255 ? 255u : (uint32_t)v; }

/* Predictor 11: whichever of top and left is closer to the gradient guess. */
static uint32_t vl_select(uint32_t t, uint32_t l, uint32_t tl)
{
    int s = 0, sh;
    for (sh = 0; sh < 32; sh += 8) {
        int a = (int)(t >> sh & 255), b = (int)(l >> sh & 255), c = (int)(tl >> sh & 255);
        s += vl_abs(b - c) - vl_abs(a - c);
    }
    return s <= 0 ? t : l;
}

static uint32_t vl_add_sub_full(uint32_t a, uint32_t b, uint32_t c)
{
    uint32_t r = 0;
    int sh;
    for (sh = 0; sh < 32; sh += 8)
        r |= vl_clamp_byte((int)(a >> sh & 255) + (int)(b >> sh & 255) - (int)(c >> sh & 255)) << sh;
    return r;
}

static uint32_t vl_add_sub_half(uint32_t a, uint32_t c)
{
    uint32_t r = 0;
    int sh;
    for (sh = 0; sh < 32; sh += 8) {
        int x = (int)(a >> sh & 255), y = (int)(c >> sh & 255);
        r |= vl_clamp_byte(x + (x - y) / 2) << sh;
    }
    return r;
}

/* Pixels [x0, x1) of a row (not the first row, x0 >= 1) with one mode; up
   is the row above (up[x1] is the current row's first pixel at the right
   edge, which is what the format wants there). */
static void vl_predict_run(int mode, uint32_t *p, const uint32_t *up, int x0, int x1)
{
    int x;
    switch (mode) {
    case 1:
        for (x = x0; x < x1; x++) p[x] = vl_add(p[x], p[x - 1]);
        break;
    case 2:
        for (x = x0; x < x1; x++) p[x] = vl_add(p[x], up[x]);
        break;
    case 3:
        for (x = x0; x < x1; x++) p[x] = vl_add(p[x], up[x + 1]);
        break;
    case 4:
        for (x = x0; x < x1; x++) p[x] = vl_add(p[x], up[x - 1]);
        break;
    case 5:
        for (x = x0; x < x1; x++) p[x] = vl_add(p[x], vl_avg(vl_avg(p[x - 1], up[x + 1]), up[x]));
        break;
    case 6:
        for (x = x0; x < x1; x++) p[x] = vl_add(p[x], vl_avg(p[x - 1], up[x - 1]));
        break;
    case 7:
        for (x = x0; x < x1; x++) p[x] = vl_add(p[x], vl_avg(p[x - 1], up[x]));
        break;
    case 8:
        for (x = x0; x < x1; x++) p[x] = vl_add(p[x], vl_avg(up[x - 1], up[x]));
        break;
    case 9:
        for (x = x0; x < x1; x++) p[x] = vl_add(p[x], vl_avg(up[x], up[x + 1]));
        break;
    case 10:
        for (x = x0; x < x1; x++) p[x] = vl_add(p[x], vl_avg(vl_avg(p[x - 1], up[x - 1]), vl_avg(up[x], up[x + 1])));
        break;
    case 11:
        for (x = x0; x < x1; x++) p[x] = vl_add(p[x], vl_select(up[x], p[x - 1], up[x - 1]));
        break;
    case 12:
        for (x = x0; x < x1; x++) p[x] = vl_add(p[x], vl_add_sub_full(p[x - 1], up[x], up[x - 1]));
        break;
    case 13:
        for (x = x0; x < x1; x++) p[x] = vl_add(p[x], vl_add_sub_half(vl_avg(p[x - 1], up[x]), up[x - 1]));
        break;
    default: /* 0, and 14 and 15 which libwebp treats as 0 */
        for (x = x0; x < x1; x++) p[x] = vl_add(p[x], 0xff000000u);
        break;
    }
}

static void vl_unpredict(const vl_transform *t, uint32_t *px, int w, int h)
{
    int x, y, tiles = vl_sub(w, t->bits);
    px[0] = vl_add(px[0], 0xff000000u);
    for (x = 1; x < w; x++) px[x] = vl_add(px[x], px[x - 1]);
    for (y = 1; y < h; y++) {
        uint32_t *p = px + (size_t)y * w;
        const uint32_t *modes = t->data + (size_t)(y >> t->bits) * tiles;
        p[0] = vl_add(p[0], p[-(ptrdiff_t)w]);
        for (x = 1; x < w;) {
            int end = ((x >> t->bits) + 1) << t->bits;
            if (end > w) end = w;
            vl_predict_run((int)(modes[x >> t->bits] >> 8 & 15), p, p - w, x, end);
            x = end;
        }
    }
}

static int vl_delta(int8_t t, int8_t c) { return ((int)t * (int)c) >> 5; }

static void vl_uncross(const vl_transform *t, uint32_t *px, int w, int h)
{
    int x, y, tiles = vl_sub(w, t->bits);
    for (y = 0; y < h; y++) {
        uint32_t *p = px + (size_t)y * w;
        const uint32_t *m = t->data + (size_t)(y >> t->bits) * tiles;
        for (x = 0; x < w; x++) {
            uint32_t c = m[x >> t->bits], v = p[x];
            int8_t g = (int8_t)(v >> 8 & 255);
            int r = (int)(v >> 16 & 255), b = (int)(v & 255);
            r = (r + vl_delta((int8_t)(c & 255), g)) & 255;
            b = (b + vl_delta((int8_t)(c >> 8 & 255), g) + vl_delta((int8_t)(c >> 16 & 255), (int8_t)r)) & 255;
            p[x] = (v & 0xff00ff00u) | (uint32_t)r << 16 | (uint32_t)b;
        }
    }
}

static void vl_add_green(uint32_t *px, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        uint32_t g = (px[i] >> 8) & 255;
        px[i] = (px[i] & 0xff00ff00u) | (((px[i] & 0x00ff00ffu) + (g << 16 | g)) & 0x00ff00ffu);
    }
}

/* Palette lookup, unpacking 2, 4 or 8 indices per pixel: in place, from
   the last pixel back, since the packed rows (pw wide) are never wider
   than the output rows (w wide). */
static void vl_unindex(const vl_transform *t, uint32_t *px, int pw, int w, int h)
{
    int x, y, bpp = 8 >> t->bits, xm = (1 << t->bits) - 1, im = (1 << bpp) - 1;
    for (y = h - 1; y >= 0; y--) {
        const uint32_t *src = px + (size_t)y * pw;
        uint32_t *dst = px + (size_t)y * w;
        for (x = w - 1; x >= 0; x--) {
            int packed = (int)(src[x >> t->bits] >> 8 & 255);
            dst[x] = t->data[(packed >> ((x & xm) * bpp)) & im];
        }
    }
}

static void vl_inverse(const vl_decoder *d, uint32_t *px, int h)
{
    int i;
    for (i = d->ntr - 1; i >= 0; i--) {
        const vl_transform *t = &d->tr[i];
        if (t->type == 0) vl_unpredict(t, px, t->xsize, h);
        if (t->type == 1) vl_uncross(t, px, t->xsize, h);
        if (t->type == 2) vl_add_green(px, (size_t)t->xsize * (size_t)h);
        if (t->type == 3) vl_unindex(t, px, vl_sub(t->xsize, t->bits), t->xsize, h);
    }
}

static void vl_free(vl_decoder *d)
{
    int i;
    for (i = 0; i < d->ntr; i++) clip_free(d->tr[i].data);
    clip_free(d->scratch);
}

/* A whole VP8L stream, w x h ARGB pixels into *out. alpha: an ALPH stream,
   which has no header and follows libwebp's 8-bit mode rules when it can. */
static int vl_run(const unsigned char *data, size_t size, int w, int h, int alpha, uint32_t **out, char *err)
{
    vl_decoder d;
    memset(&d, 0, sizeof d);
    d.err = err;
    d.alpha = alpha;
    vl_init(&d.br, data, size);
    if (!alpha) {
        /* signature, 14 + 14 bits of size, alpha hint, version: checked by the container pass */
        vl_bits(&d.br, 16);
        vl_bits(&d.br, 24);
    }
    d.scratch = (vl_entry *)clip_malloc(VL_SCRATCH * sizeof *d.scratch);
    if (!d.scratch) return clip_error(err, "clip: WebP: out of memory");
    if (vl_stream(&d, w, h, 1, out)) {
        vl_free(&d);
        return -1;
    }
    vl_inverse(&d, *out, h);
    vl_free(&d);
    return 0;
}

static int vp8l_decode_argb(const unsigned char *data, size_t size, int w, int h, uint32_t **out, char *err)
{
    return vl_run(data, size, w, h, 0, out, err);
}

/* ------------------------------------------------------------------------
   ALPH: a header byte (method, filter, pre-processing, reserved), then the
   alpha plane raw or as a headerless VP8L stream whose green channel is
   alpha. The RGB output has no use for the values (nor for the filtering,
   which cannot fail), only for whether libwebp would decode them. */

static int alph_check(const unsigned char *data, size_t size, int w, int h, char *err)
{
    int method, filter, pre, rsrv;
    uint32_t *px;
    if (size <= 1) return clip_error(err, "clip: WebP: ALPH chunk is empty");
    method = data[0] & 3;
    filter = data[0] >> 2 & 3;
    pre = data[0] >> 4 & 3;
    rsrv = data[0] >> 6 & 3;
    if (method > 1 || pre > 1 || rsrv)
        return clip_error(err, "clip: WebP: ALPH header 0x%02x is invalid (method %d, filter %d, pre-processing %d)",
                          data[0], method, filter, pre);
    if (method == 0) {
        if (size - 1 < (size_t)w * (size_t)h)
            return clip_error(err, "clip: WebP: ALPH data is truncated (%llu bytes for %dx%d)",
                              (unsigned long long)(size - 1), w, h);
        return 0;
    }
    if (vl_run(data + 1, size - 1, w, h, 1, &px, err)) return -1;
    clip_free(px);
    return 0;
}
