/* bmp.c - Windows and OS/2 bitmaps ("BM" files): 1, 4 and 8 bits with a
   palette, RLE8 and RLE4, 16 bits (5-5-5, or 5-6-5 by bit fields), 24 and
   32 bits (BGRX, or the bit-field layouts Pillow knows), bottom-up or
   top-down rows, with the OS/2 12-byte, the 40-byte, OS/2 2.x 64-byte, V4
   and V5 headers. The output is exactly what Pillow 9.4's BmpImagePlugin
   gives after convert("RGB"), quirks included:
   - 5-bit and 6-bit channels scale as floor(c * 255 / max); alpha is dropped;
   - a palette that is a gray ramp makes the image mode L (or mode 1 for a
     black and white pair), and then the rows are unpacked at 8 bits (or 1)
     per pixel whatever the file's depth says (8-bit rows longer than the
     stride overlap, as Pillow's memory map of a file opened by name reads
     them); indices past the palette are the gray (i,i,i) of Pillow's
     initial palette;
   - the pixel data offset, when it points right after the header, is moved
     past 4 bytes per palette entry (even for OS/2's 3-byte entries);
   - RLE: a delta takes its offsets from the 2 bytes after the 2 it
     should use, an odd RLE4 literal run loses
     its last pixel, literal runs may run past the row, the 16-bit alignment
     is to the file position, and the image must come out full;
   - what Pillow refuses, refused here: other depths and compressions (JPEG,
     PNG, alpha bit fields), unknown bit-field layouts, palettes over 256
     entries, truncated pixel data.

   Reading order: the headers (clip_decode_bmp), then the uncompressed rows,
   then RLE. */
#include "../platform/platform.h"
#include "decoders.h"

#include <stdint.h>
#include <string.h>

/* How the pixels are laid out, once the headers are read. */
typedef struct {
    long long w, h;             /* image size (validated by clip_image_alloc) */
    int bits;                   /* the file's bits per pixel */
    int unpack_bits;            /* bits per pixel Pillow unpacks the rows with */
    int bottom_up;              /* rows stored last row first */
    int layout;                 /* for 16 and 32 bits: one of the LAYOUT_ values */
    unsigned long long offset;  /* where the pixel data starts */
    unsigned char table[256 * 3]; /* index -> RGB, for the paletted modes */
} bmp_info;

enum { LAYOUT_BGR15, LAYOUT_BGR16, LAYOUT_BGRX, LAYOUT_XBGR, LAYOUT_RGBX };

static int bmp_raw_check(const bmp_info *bi, size_t size, char *err);
static int bmp_raw(clip_image *img, const bmp_info *bi, const unsigned char *data, size_t size);
static int bmp_rle(clip_image *img, const bmp_info *bi, int rle4, const unsigned char *data, size_t size, char *err);

static unsigned u16le(const unsigned char *p) { return (unsigned)p[0] | (unsigned)p[1] << 8; }
static uint32_t u32le(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int clip_is_bmp(const unsigned char *data, size_t size)
{
    return size >= 2 && data[0] == 'B' && data[1] == 'M';
}

/* ------------------------------------------------------------------------
   Headers */

int clip_decode_bmp(clip_image *img, const unsigned char *data, size_t size, char *err)
{
    bmp_info bi;
    uint32_t hsize, compression = 0, colors = 0, masks[4] = {0, 0, 0, 0};
    size_t pos;
    int padding, gray = 0, i, rc;
    unsigned long long offset;
    img->rgb = NULL;
    img->width = img->height = 0;
    memset(&bi, 0, sizeof bi);
    if (size < 18) return clip_error(err, "clip: BMP: the file header is truncated");
    offset = u32le(data + 10);
    hsize = u32le(data + 14);
    if (hsize != 12 && hsize != 40 && hsize != 64 && hsize != 108 && hsize != 124)
        return clip_error(err, "clip: BMP: unsupported header size %lu", (unsigned long)hsize);
    if (size - 14 < hsize) return clip_error(err, "clip: BMP: the %lu-byte header is truncated", (unsigned long)hsize);
    pos = 14 + hsize;
    if (hsize == 12) {
        /* OS/2 1.x: 16-bit sizes, 3-byte palette entries, no compression */
        bi.w = u16le(data + 18);
        bi.h = u16le(data + 20);
        bi.bits = (int)u16le(data + 24);
        bi.bottom_up = 1;
        padding = 3;
    } else {
        const unsigned char *hd = data + 18;
        /* Pillow takes a top byte of 0xFF as a negative (top-down) height, and
           any other height (and every width) as unsigned */
        bi.bottom_up = hd[7] != 0xFF;
        bi.w = u32le(hd);
        bi.h = bi.bottom_up ? (long long)u32le(hd + 4) : 4294967296LL - (long long)u32le(hd + 4);
        bi.bits = (int)u16le(hd + 10);
        compression = u32le(hd + 12);
        colors = u32le(hd + 28);
        padding = 4;
        if (compression == 3) {
            if (hsize >= 56) {
                for (i = 0; i < 4; i++) masks[i] = u32le(hd + 36 + 4 * i);
            } else {
                /* the 40-byte header: three masks follow it */
                if (size - pos < 12) return clip_error(err, "clip: BMP: the bit-field masks are truncated");
                for (i = 0; i < 3; i++) masks[i] = u32le(data + pos + 4 * i);
                pos += 12;
            }
        }
    }
    if (compression == 4) return clip_error(err, "clip: BMP: JPEG-compressed bitmaps are not supported");
    if (compression == 5) return clip_error(err, "clip: BMP: PNG-compressed bitmaps are not supported");
    if (bi.bits != 1 && bi.bits != 4 && bi.bits != 8 && bi.bits != 16 && bi.bits != 24 && bi.bits != 32)
        return clip_error(err, "clip: BMP: unsupported bit depth %d", bi.bits);
    if (bi.bits <= 8) {
        if (!colors) colors = 1u << bi.bits;
        if (offset == 14 + (unsigned long long)hsize) offset += 4ull * colors;
    }

    bi.unpack_bits = bi.bits;
    bi.layout = bi.bits == 16 ? LAYOUT_BGR15 : LAYOUT_BGRX;
    if (compression == 3) {
        uint32_t r = masks[0], g = masks[1], b = masks[2], a = masks[3];
        if (bi.bits == 32 && ((r == 0xFF0000 && g == 0xFF00 && b == 0xFF && (a == 0 || a == 0xFF000000)) ||
                              (r == 0 && g == 0 && b == 0 && a == 0)))
            bi.layout = LAYOUT_BGRX;
        else if (bi.bits == 32 && r == 0xFF000000 && g == 0xFF0000 && b == 0xFF00 && (a == 0 || a == 0xFF))
            bi.layout = LAYOUT_XBGR;
        else if (bi.bits == 32 && r == 0xFF && g == 0xFF00 && b == 0xFF0000 && a == 0xFF000000)
            bi.layout = LAYOUT_RGBX;
        else if (bi.bits == 24 && r == 0xFF0000 && g == 0xFF00 && b == 0xFF)
            bi.layout = LAYOUT_BGRX;
        else if (bi.bits == 16 && r == 0xF800 && g == 0x7E0 && b == 0x1F)
            bi.layout = LAYOUT_BGR16;
        else if (bi.bits == 16 && r == 0x7C00 && g == 0x3E0 && b == 0x1F)
            bi.layout = LAYOUT_BGR15;
        else
            return clip_error(err, "clip: BMP: unsupported bit-field layout (%d bits, masks %08lx %08lx %08lx %08lx)",
                              bi.bits, (unsigned long)r, (unsigned long)g, (unsigned long)b, (unsigned long)a);
    } else if (compression == 1 || compression == 2) {
        if (bi.bits > 8) return clip_error(err, "clip: BMP: RLE compression with %d bits per pixel", bi.bits);
    } else if (compression != 0) {
        return clip_error(err, "clip: BMP: unsupported compression %lu%s", (unsigned long)compression,
                          compression == 6 ? " (alpha bit fields)" : "");
    }

    for (i = 0; i < 256; i++) bi.table[i * 3] = bi.table[i * 3 + 1] = bi.table[i * 3 + 2] = (unsigned char)i;
    if (bi.bits <= 8) {
        /* the palette: Pillow reads what there is of colors entries */
        size_t want, have, entries;
        uint32_t k;
        if (colors > 65536) return clip_error(err, "clip: BMP: unsupported palette size %lu", (unsigned long)colors);
        want = (size_t)colors * (size_t)padding;
        have = size - pos < want ? size - pos : want;
        gray = 1;
        for (k = 0; k < colors && gray; k++) {
            unsigned v = colors == 2 ? (k ? 255u : 0u) : (k & 255u);
            size_t at = (size_t)k * (size_t)padding;
            if (have < at + 3 || data[pos + at] != v || data[pos + at + 1] != v || data[pos + at + 2] != v) gray = 0;
        }
        if (gray) {
            /* mode 1 or L: the rows are read at 1 or 8 bits per pixel */
            bi.unpack_bits = colors == 2 ? 1 : 8;
            if (colors == 2) memset(bi.table + 3, 255, 3);
        } else {
            entries = have / (size_t)padding;
            if (entries > 256)
                return clip_error(err, "clip: BMP: palette of %lu entries (more than 256)", (unsigned long)entries);
            for (k = 0; k < entries; k++) {
                const unsigned char *e = data + pos + (size_t)k * (size_t)padding;
                bi.table[k * 3] = e[2];
                bi.table[k * 3 + 1] = e[1];
                bi.table[k * 3 + 2] = e[0];
            }
        }
        pos += have;
    }
    bi.offset = offset ? offset : pos;

    if (compression != 1 && compression != 2 && bi.w > 0 && bi.h > 0 && bi.w <= CLIP_MAX_PIXELS &&
        bi.h <= CLIP_MAX_PIXELS / bi.w && bmp_raw_check(&bi, size, err))
        return -1;
    if (clip_image_alloc(img, bi.w, bi.h, err)) return -1;
    if (compression == 1 || compression == 2) {
        if (gray && colors == 2) {
            clip_image_free(img);
            return clip_error(err, "clip: BMP: RLE compression of a black and white (mode 1) image");
        }
        rc = bmp_rle(img, &bi, compression == 2, data, size, err);
    } else {
        rc = bmp_raw(img, &bi, data, size);
    }
    if (rc) clip_image_free(img);
    return rc;
}

/* ------------------------------------------------------------------------
   Uncompressed rows */

/* Whether the file holds the rows (before anything is allocated; w and h
   are within the pixel limit). */
static int bmp_raw_check(const bmp_info *bi, size_t size, char *err)
{
    /* rows are padded to 4 bytes at the file's depth; Pillow unpacks each
       at its own depth, and refuses when that is longer than the stride */
    unsigned long long stride = (((unsigned long long)bi->w * (unsigned)bi->bits + 31) >> 3) & ~3ull;
    unsigned long long rowbytes = ((unsigned long long)bi->w * (unsigned)bi->unpack_bits + 7) / 8;
    unsigned long long need;
    /* the last row needs no padding */
    need = (unsigned long long)(bi->h - 1) * stride + rowbytes;
    if (rowbytes > stride) {
        /* only mode L gets here (a 1- or 4-bit file with a gray-ramp
           palette): Pillow's decoder refuses it, but a file opened by name is
           memory-mapped instead, rows overlapping, when it holds h strides */
        if (bi->unpack_bits != 8 || bi->offset > size || size - bi->offset < (unsigned long long)bi->h * stride)
            return clip_error(err, "clip: BMP: %d-bit rows read as gray at %d bits do not fit their stride",
                              bi->bits, bi->unpack_bits);
        /* the last row may run past the end of the file: into the zeros of
           the mapping's last page (past that page Pillow would crash) */
        if (bi->offset + need > (size + 4095) / 4096 * 4096)
            return clip_error(err, "clip: BMP: gray rows overlapping past the end of the file");
    } else if (bi->offset > size || size - bi->offset < need)
        return clip_error(err, "clip: BMP: the pixel data is truncated (%llu bytes at offset %llu, file of %llu)", need,
                          bi->offset, (unsigned long long)size);
    return 0;
}

static int bmp_raw(clip_image *img, const bmp_info *bi, const unsigned char *data, size_t size)
{
    unsigned long long stride = (((unsigned long long)bi->w * (unsigned)bi->bits + 31) >> 3) & ~3ull;
    long long y, x;
    for (y = 0; y < bi->h; y++) {
        size_t at = (size_t)bi->offset + (size_t)y * (size_t)stride; /* the row's first byte */
        const unsigned char *row = data + at;
        unsigned char *out = img->rgb + (size_t)(bi->bottom_up ? bi->h - 1 - y : y) * (size_t)bi->w * 3;
        for (x = 0; x < bi->w; x++, out += 3) {
            const unsigned char *p;
            unsigned v;
            switch (bi->unpack_bits) {
            case 1:
            case 4:
            case 8:
                if (bi->unpack_bits == 1)
                    v = row[x >> 3] >> (7 - (x & 7)) & 1;
                else if (bi->unpack_bits == 4)
                    v = (x & 1) ? row[x >> 1] & 15 : row[x >> 1] >> 4;
                else
                    v = at + (size_t)x < size ? row[x] : 0; /* see the mapped case above */
                memcpy(out, bi->table + v * 3, 3);
                break;
            case 16:
                v = u16le(row + x * 2);
                if (bi->layout == LAYOUT_BGR16) {
                    out[0] = (unsigned char)((v >> 11 & 31) * 255 / 31);
                    out[1] = (unsigned char)((v >> 5 & 63) * 255 / 63);
                } else {
                    out[0] = (unsigned char)((v >> 10 & 31) * 255 / 31);
                    out[1] = (unsigned char)((v >> 5 & 31) * 255 / 31);
                }
                out[2] = (unsigned char)((v & 31) * 255 / 31);
                break;
            case 24:
                p = row + x * 3;
                out[0] = p[2];
                out[1] = p[1];
                out[2] = p[0];
                break;
            default:
                p = row + x * 4;
                if (bi->layout == LAYOUT_XBGR) {
                    out[0] = p[3];
                    out[1] = p[2];
                    out[2] = p[1];
                } else if (bi->layout == LAYOUT_RGBX) {
                    out[0] = p[0];
                    out[1] = p[1];
                    out[2] = p[2];
                } else {
                    out[0] = p[2];
                    out[1] = p[1];
                    out[2] = p[0];
                }
                break;
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
   RLE8 and RLE4, as Pillow's BmpRleDecoder (Python) runs them: it appends
   indices to one stream of w * h, rows first, then lays that out as rows. */

static int bmp_rle(clip_image *img, const bmp_info *bi, int rle4, const unsigned char *data, size_t size, char *err)
{
    unsigned long long w = (unsigned long long)bi->w, total = w * (unsigned long long)bi->h, len = 0;
    unsigned long long p = bi->offset, x = 0, y, k;
    unsigned char *idx = (unsigned char *)clip_calloc((size_t)total, 1);
    if (!idx) return clip_error(err, "clip: BMP: out of memory");
    /* every round reads 2 bytes or stops: bounded by the file */
    while (len < total) {
        unsigned n, b;
        if (p >= size || size - p < 2) break;
        n = data[p];
        b = data[p + 1];
        p += 2;
        if (n) {
            /* a run, cut at the row's end */
            if (x + n > w) n = x < w ? (unsigned)(w - x) : 0;
            for (k = 0; k < n; k++, len++)
                if (len < total) idx[len] = (unsigned char)(rle4 ? ((k & 1) ? b & 15 : b >> 4) : b);
            x += n;
        } else if (b == 0) {
            /* end of line: zeros up to a row boundary */
            len += (w - len % w) % w;
            x = 0;
        } else if (b == 1) {
            break; /* end of bitmap */
        } else if (b == 2) {
            /* delta: Pillow reads two bytes, checks them, and then takes
               right and up from the next two (failing when they are short) */
            if (size - p < 2) break;
            p += 2;
            if (size - p < 2) {
                clip_free(idx);
                return clip_error(err, "clip: BMP: an RLE delta is truncated");
            }
            len += data[p] + (unsigned long long)data[p + 1] * w;
            p += 2;
            x = len % w;
        } else {
            /* literal run: RLE4 reads b / 2 bytes (an odd run's last pixel is lost); not cut at the row */
            unsigned long long want = rle4 ? b / 2 : b, got = size - p < want ? size - p : want;
            for (k = 0; k < got; k++) {
                unsigned v = data[p + k];
                if (rle4) {
                    if (len < total) idx[len] = (unsigned char)(v >> 4);
                    len++;
                    if (len < total) idx[len] = (unsigned char)(v & 15);
                    len++;
                } else {
                    if (len < total) idx[len] = (unsigned char)v;
                    len++;
                }
            }
            p += got;
            if (got < want) break;
            x += b;
            if (p & 1) p++; /* 16-bit alignment, of the file position */
        }
    }
    if (len < total) {
        clip_free(idx);
        return clip_error(err, "clip: BMP: the RLE data ends before the image is full (truncated)");
    }
    for (y = 0; y < (unsigned long long)bi->h; y++) {
        const unsigned char *row = idx + y * w;
        unsigned char *out = img->rgb + (size_t)(bi->bottom_up ? (unsigned long long)bi->h - 1 - y : y) * (size_t)w * 3;
        for (k = 0; k < w; k++) memcpy(out + k * 3, bi->table + row[k] * 3, 3);
    }
    clip_free(idx);
    return 0;
}
