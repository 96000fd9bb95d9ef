/* decoders.h - the image decoders' interface to image.c.

   One file per format in this folder (jpeg.c, png.c with inflate.c, gif.c,
   bmp.c, webp.c with vp8.c, pnm.c). A decoder has two
   functions: one that tells its format from the first bytes of the data,
   and one that decodes the whole file into a clip_image (allocated with
   clip_image_alloc; on failure the image is left empty and err says why,
   starting with "clip: "). image.c's clip_image_decode asks each in turn.
   A decoder may also hand over its rows one at a time to a clip_row_sink,
   as the JPEG one does: the one-pass decode + resize + crop
   (clip_decode_resize_crop) then reads only the rows and columns the crop
   needs, without the full-size image.

   Every size a file controls is checked before anything is allocated.

   Internal to the library: not installed, not part of the stable API. */
#ifndef CLIP_DECODERS_H
#define CLIP_DECODERS_H

#include <stddef.h>

#include "../clip.h"

/* Pillow refuses images above twice Image.MAX_IMAGE_PIXELS as decompression
   bombs; so do we, before allocating. (The fuzzers build with a lower one.) */
#ifndef CLIP_MAX_PIXELS
#define CLIP_MAX_PIXELS 178956970LL
#endif

/* Allocate a w x h RGB image (image.c), refusing sizes past the pixel limit. */
int clip_image_alloc(clip_image *img, long long w, long long h, char *err);

/* ---- rows, streamed ---- */

/* Where a streaming decoder's pixels go: rows [y0, y1) and columns
   [x0, x1), each row handed over as three planes (R, G, B; x1 - x0 samples
   each, followed by pad readable zero bytes). row() may be called from
   several threads at once, for different y. */
typedef struct {
    int y0, y1, x0, x1, pad;
    void (*row)(void *ctx, int y, const unsigned char *r, const unsigned char *g, const unsigned char *b);
    void *ctx;
} clip_row_sink;

/* Set up the sink once the image size is known (before any pixel work;
   reports its own errors in err). */
typedef int (*clip_sink_prepare)(void *ctx, int w, int h, clip_row_sink *sink, char *err);

/* ---- JPEG (jpeg.c) ---- */

int clip_is_jpeg(const unsigned char *data, size_t size);
int clip_decode_jpeg(clip_image *img, const unsigned char *data, size_t size, char *err);
/* Decode into the sink that prepare() sets up, at the first scan. */
int clip_decode_jpeg_rows(const unsigned char *data, size_t size, clip_sink_prepare prepare, void *ctx, char *err);

/* ---- PNG (png.c; zlib's inflate in inflate.c) ---- */

int clip_is_png(const unsigned char *data, size_t size);
int clip_decode_png(clip_image *img, const unsigned char *data, size_t size, char *err);

/* ---- GIF (gif.c): the first frame, as Pillow composes it ---- */

int clip_is_gif(const unsigned char *data, size_t size);
int clip_decode_gif(clip_image *img, const unsigned char *data, size_t size, char *err);

/* ---- BMP (bmp.c) ---- */

int clip_is_bmp(const unsigned char *data, size_t size);
int clip_decode_bmp(clip_image *img, const unsigned char *data, size_t size, char *err);

/* ---- WebP (webp.c: the RIFF container, lossless VP8L, alpha, animation;
   vp8.c: the lossy VP8 bitstream) ---- */

int clip_is_webp(const unsigned char *data, size_t size);
int clip_decode_webp(clip_image *img, const unsigned char *data, size_t size, char *err);

/* The frame size in a VP8 key frame header (data: a 'VP8 ' chunk's payload). */
int clip_vp8_size(const unsigned char *data, size_t size, int *w, int *h, char *err);
/* Decode that frame to RGB as libwebp's WebPDecodeRGB does (fancy
   upsampling): w x h pixels, 3 bytes each, rows stride bytes apart. */
int clip_vp8_decode(const unsigned char *data, size_t size, int w, int h, unsigned char *rgb, size_t stride,
                    char *err);

/* ---- PPM / PGM (pnm.c) ---- */

/* Any netpbm signature P1 .. P6 (the 1-bit ones are refused by name). */
int clip_is_pnm(const unsigned char *data, size_t size);
int clip_decode_pnm(clip_image *img, const unsigned char *data, size_t size, char *err);

#endif
