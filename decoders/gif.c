/* gif.c - GIF (GIF87a and GIF89a): the first frame, exactly as Pillow 9.4's
   GifImagePlugin composes it and convert("RGB") then colours it.

   What Pillow does with frame 0, and so what this file reproduces:
   - the canvas is the logical screen, grown to fit a frame that reaches
     past it; pixels outside the frame are index 0, or the transparent index
     when a graphic control extension before the frame names one;
   - colours come from the local palette, else the global one, but a palette
     that is exactly the gray ramp (i,i,i) counts as none (Pillow opens the
     image as mode L, and then still attaches the global palette); an index
     past the palette's end, or any index without a palette, is the gray
     (i,i,i) of the ramp Pillow initialises every palette with.
   - its LZW decoder's quirks: codes are read across the block terminator,
     an end code before the frame is full only pauses the decoder (Pillow
     then reads the file on, in 64 KiB chunks, and fails at its end), the
     frame is done at its last pixel whatever follows, a first frame of width
     0 at x 0 covers the whole canvas;
   - what Pillow refuses, refused here: truncations, broken LZW codes, code
     sizes above 12, empty frames, malformed extensions it trips over.

   Reading order: the block structure (clip_decode_gif), then the LZW
   decoder, then the colouring. */
#include "../platform/platform.h"
#include "decoders.h"

#include <stdint.h>
#include <string.h>

#define LZW_TABLE 4096       /* 12-bit codes at most */
#define READ_CHUNK 65536     /* Pillow's ImageFile reads the frame data in chunks of this size */

/* The frame being decoded: where its pixels go in the canvas of indices. */
typedef struct {
    unsigned char *canvas; /* W x H palette indices */
    long long canvas_w;    /* W: row length of canvas */
    int x0, y0;            /* the frame's top-left corner in the canvas */
    int w, h;              /* the frame's size (both > 0) */
    int interlaced;        /* rows in the four-pass order */
} gif_frame;

static int gif_lzw(const gif_frame *f, const unsigned char *data, size_t size, size_t pos, int bits, char *err);
static int gif_is_ramp(const unsigned char *pal, int n);
static void gif_colour(clip_image *img, const unsigned char *canvas, const unsigned char *pal, int npal);

int clip_is_gif(const unsigned char *data, size_t size)
{
    return size >= 6 && (memcmp(data, "GIF87a", 6) == 0 || memcmp(data, "GIF89a", 6) == 0);
}

/* ------------------------------------------------------------------------
   Blocks up to the first image */

/* The next data sub-block as Pillow's GifImageFile.data() reads it: its
   length byte, then up to that many bytes (fewer at the end of the file).
   Returns 0 for the terminator or the end of the file, else 1. */
static int gif_sub_block(const unsigned char *data, size_t size, size_t *pos, const unsigned char **block,
                         size_t *len)
{
    size_t n;
    if (*pos >= size || data[*pos] == 0) {
        if (*pos < size) (*pos)++;
        return 0;
    }
    n = data[(*pos)++];
    if (n > size - *pos) n = size - *pos;
    *block = data + *pos;
    *len = n;
    *pos += n;
    return 1;
}

static void gif_skip_sub_blocks(const unsigned char *data, size_t size, size_t *pos)
{
    const unsigned char *b;
    size_t n;
    /* each round consumes at least a byte: bounded by the file */
    while (gif_sub_block(data, size, pos, &b, &n) && n > 0) {
    }
}

int clip_decode_gif(clip_image *img, const unsigned char *data, size_t size, char *err)
{
    size_t pos = 13, n;
    const unsigned char *gpal = NULL, *lpal = NULL, *pal, *block;
    int ngpal = 0, nlpal = 0, transparency = -1, bits;
    long long sw, sh, fx, fy, fw, fh, cw, ch;
    gif_frame f;
    img->rgb = NULL;
    img->width = img->height = 0;
    if (size < 13) return clip_error(err, "clip: GIF: the header is truncated");
    sw = data[6] | data[7] << 8;
    sh = data[8] | data[9] << 8;
    if (data[10] & 0x80) {
        ngpal = 1 << ((data[10] & 7) + 1);
        if (size - pos < (size_t)ngpal * 3) return clip_error(err, "clip: GIF: the global palette is truncated");
        gpal = data + pos;
        pos += (size_t)ngpal * 3;
    }

    /* extensions, until the first image descriptor */
    for (;;) {
        unsigned char tag;
        if (pos >= size) return clip_error(err, "clip: GIF: the file ends before its first image (truncated)");
        tag = data[pos++];
        if (tag == ';') return clip_error(err, "clip: GIF: the file has no image before its trailer");
        if (tag == '!') {
            unsigned char label;
            int have;
            if (pos >= size) return clip_error(err, "clip: GIF: an extension is truncated");
            label = data[pos++];
            block = NULL;
            n = 0;
            have = gif_sub_block(data, size, &pos, &block, &n);
            if (label == 0xF9) {
                /* graphic control: Pillow reads the flags, the delay and the transparent index */
                if (!have || n < 3 || ((block[0] & 1) && n < 4))
                    return clip_error(err, "clip: GIF: a graphic control extension is too short");
                if (block[0] & 1) transparency = block[3];
            } else if (label == 0xFF) {
                /* application: Pillow slices the first block, and reads a second one after NETSCAPE2.0 */
                if (!have) return clip_error(err, "clip: GIF: an application extension has no data");
                if (n >= 11 && memcmp(block, "NETSCAPE2.0", 11) == 0 &&
                    !gif_sub_block(data, size, &pos, &block, &n))
                    return clip_error(err, "clip: GIF: a NETSCAPE2.0 extension has no loop block");
            }
            if (label == 0xFE) {
                /* comment: Pillow reads blocks while they are non-empty */
                if (have && n > 0) gif_skip_sub_blocks(data, size, &pos);
            } else {
                /* Pillow skips blocks after the first even when that was
                   the terminator: then it skips what follows as blocks */
                gif_skip_sub_blocks(data, size, &pos);
            }
            continue;
        }
        if (tag != ',') continue; /* Pillow skips stray bytes between blocks */
        if (size - pos < 9) return clip_error(err, "clip: GIF: the image descriptor is truncated");
        fx = data[pos] | data[pos + 1] << 8;
        fy = data[pos + 2] | data[pos + 3] << 8;
        fw = data[pos + 4] | data[pos + 5] << 8;
        fh = data[pos + 6] | data[pos + 7] << 8;
        f.interlaced = (data[pos + 8] & 0x40) != 0;
        if (data[pos + 8] & 0x80) {
            nlpal = 1 << ((data[pos + 8] & 7) + 1);
            pos += 9;
            if (size - pos < (size_t)nlpal * 3) return clip_error(err, "clip: GIF: the local palette is truncated");
            lpal = data + pos;
            pos += (size_t)nlpal * 3;
        } else {
            pos += 9;
        }
        if (pos >= size) return clip_error(err, "clip: GIF: the LZW code size is missing (truncated)");
        bits = data[pos++];
        break;
    }

    /* the canvas: the screen, grown to fit the frame */
    cw = fx + fw > sw ? fx + fw : sw;
    ch = fy + fh > sh ? fy + fh : sh;
    if (fx == 0 && fw == 0) {
        /* Pillow's tile extent (0, y0, 0, y1) means "the whole image" */
        fy = 0;
        fw = cw;
        fh = ch;
    }
    if (fw <= 0 || fh <= 0 || cw <= 0 || ch <= 0)
        return clip_error(err, "clip: GIF: the first frame is empty (%lldx%lld)", fw, fh);
    if (bits > 12) return clip_error(err, "clip: GIF: LZW minimum code size %d is above 12", bits);
    if (clip_image_alloc(img, cw, ch, err)) return -1;
    f.canvas = (unsigned char *)clip_malloc((size_t)(cw * ch));
    if (!f.canvas) {
        clip_image_free(img);
        return clip_error(err, "clip: GIF: out of memory for a %lldx%lld image", cw, ch);
    }
    memset(f.canvas, transparency >= 0 ? transparency : 0, (size_t)(cw * ch));
    f.canvas_w = cw;
    f.x0 = (int)fx;
    f.y0 = (int)fy;
    f.w = (int)fw;
    f.h = (int)fh;
    if (gif_lzw(&f, data, size, pos, bits, err)) {
        clip_free(f.canvas);
        clip_image_free(img);
        return -1;
    }
    /* Pillow drops a palette that is exactly the gray ramp (mode L); the
       image then still gets the global palette, when that is not one */
    if (lpal && gif_is_ramp(lpal, nlpal)) lpal = NULL;
    if (gpal && gif_is_ramp(gpal, ngpal)) gpal = NULL;
    pal = lpal ? lpal : gpal;
    gif_colour(img, f.canvas, pal, lpal ? nlpal : gpal ? ngpal : 0);
    clip_free(f.canvas);
    return 0;
}

/* ------------------------------------------------------------------------
   LZW, as Pillow's GifDecode.c runs it */

typedef struct {
    unsigned short link[LZW_TABLE]; /* each code's prefix code */
    unsigned char last[LZW_TABLE];  /* each code's last byte */
    unsigned char stack[LZW_TABLE + 1]; /* a string being expanded, filled from the end; [0] for its first byte */
} lzw_table;

/* Where the output is: x, y in the frame, the interlace pass and step. */
typedef struct {
    int x, y;
    int pass; /* 0: not interlaced or last pass; 1..3: the pass to move to next */
    int step;
} lzw_cursor;

/* Advance to the next row; returns 1 when the frame is complete. */
static int lzw_newline(lzw_cursor *c, int h)
{
    c->x = 0;
    c->y += c->step;
    while (c->y >= h) {
        switch (c->pass) {
        case 1:
            c->y = 4;
            c->pass = 2;
            break;
        case 2:
            c->step = 4;
            c->y = 2;
            c->pass = 3;
            break;
        case 3:
            c->step = 2;
            c->y = 1;
            c->pass = 0;
            break;
        default:
            return 1;
        }
    }
    return 0;
}

static int gif_lzw(const gif_frame *f, const unsigned char *data, size_t size, size_t pos, int bits, char *err)
{
    lzw_table *t;
    lzw_cursor cur;
    int clear = 1 << bits, end = clear + 1;
    int next = 0, codesize = 0, codemask = 0, lastcode = 0, fresh = 1, blocksize = 0, bitcount = 0;
    uint32_t bitbuffer = 0;
    unsigned char lastdata = 0;
    size_t fed; /* how far Pillow has read the file */
    int reset = 1;
    t = (lzw_table *)clip_malloc(sizeof *t);
    if (!t) return clip_error(err, "clip: GIF: out of memory");
    fed = size - pos < READ_CHUNK ? size : pos + READ_CHUNK;
    cur.x = cur.y = 0;
    cur.pass = f->interlaced ? 1 : 0;
    cur.step = f->interlaced ? 8 : 1;
    for (;;) {
        const unsigned char *str;
        int len, c, i;
        if (reset) {
            next = clear + 2;
            codesize = bits + 1;
            codemask = (1 << codesize) - 1;
            fresh = 1;
            reset = 0;
        }
        while (bitcount < codesize) {
            if (blocksize > 0) {
                bitbuffer |= (uint32_t)data[pos++] << bitcount;
                bitcount += 8;
                blocksize--;
                continue;
            }
            /* a new sub-block, taken only when all of it is there; the
               terminator is just an empty one */
            if (pos >= size || (size_t)data[pos] + 1 > size - pos) {
                clip_free(t);
                return clip_error(err, "clip: GIF: the image data is truncated");
            }
            blocksize = data[pos++];
            while (fed < pos + (size_t)blocksize) fed = size - fed < READ_CHUNK ? size : fed + READ_CHUNK;
        }
        c = (int)(bitbuffer & (uint32_t)codemask);
        bitbuffer >>= codesize;
        bitcount -= codesize;
        if (c == clear) {
            if (!fresh) reset = 1;
            continue;
        }
        if (c == end) {
            /* Pillow's decoder returns here; its reader then wants more of the file */
            if (fed >= size) {
                clip_free(t);
                return clip_error(err, "clip: GIF: the image data ends before the frame is complete (truncated)");
            }
            fed = size - fed < READ_CHUNK ? size : fed + READ_CHUNK;
            continue;
        }
        len = 1;
        str = &lastdata;
        if (fresh) {
            if (c > clear) {
                clip_free(t);
                return clip_error(err, "clip: GIF: broken LZW data (code %d after a clear code)", c);
            }
            lastdata = (unsigned char)c;
            lastcode = c;
            fresh = 0;
        } else {
            int thiscode = c, sp = LZW_TABLE + 1;
            if (c > next) {
                clip_free(t);
                return clip_error(err, "clip: GIF: broken LZW data (code %d past the table's %d)", c, next);
            }
            if (c == next) {
                t->stack[--sp] = lastdata;
                c = lastcode;
            }
            while (c >= clear) {
                if (sp <= 1 || c >= LZW_TABLE) {
                    clip_free(t);
                    return clip_error(err, "clip: GIF: broken LZW data (a string past the table)");
                }
                t->stack[--sp] = t->last[c];
                c = t->link[c];
            }
            lastdata = (unsigned char)c;
            if (next < LZW_TABLE) {
                /* no room: the table stays full until a clear code (deferred clear) */
                t->last[next] = (unsigned char)c;
                t->link[next] = (unsigned short)lastcode;
                if (next == codemask && codesize < 12) {
                    codesize++;
                    codemask = (1 << codesize) - 1;
                }
                next++;
            }
            lastcode = thiscode;
            if (sp <= LZW_TABLE) {
                /* the string: its first byte, then the expanded stack (Pillow keeps at most 4096 there) */
                t->stack[--sp] = lastdata;
                str = t->stack + sp;
                len = LZW_TABLE + 1 - sp;
            }
        }
        for (i = 0; i < len; i++) {
            f->canvas[(size_t)(f->y0 + cur.y) * (size_t)f->canvas_w + (size_t)(f->x0 + cur.x)] = str[i];
            if (++cur.x >= f->w && lzw_newline(&cur, f->h)) {
                clip_free(t);
                return 0;
            }
        }
    }
}

/* ------------------------------------------------------------------------
   Colours */

/* Whether entry i is (i,i,i) for every i. */
static int gif_is_ramp(const unsigned char *pal, int n)
{
    int i;
    for (i = 0; i < n; i++)
        if (pal[i * 3] != i || pal[i * 3 + 1] != i || pal[i * 3 + 2] != i) return 0;
    return 1;
}

/* Index i is palette entry i, or the gray (i,i,i) past the palette's end:
   Pillow's palettes start as that ramp and the file's entries overwrite it. */
static void gif_colour(clip_image *img, const unsigned char *canvas, const unsigned char *pal, int npal)
{
    unsigned char rgb[256 * 3];
    size_t i, n = (size_t)img->width * (size_t)img->height;
    for (i = 0; i < 256; i++) {
        int k;
        for (k = 0; k < 3; k++) rgb[i * 3 + k] = (int)i < npal ? pal[i * 3 + k] : (unsigned char)i;
    }
    for (i = 0; i < n; i++) memcpy(img->rgb + i * 3, rgb + canvas[i] * 3, 3);
}
