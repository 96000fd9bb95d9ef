/* image.c - image input for clip.c: PPM/PGM decoding, and the resize and
   center crop of Hugging Face's CLIPImageProcessor, bit-exact with Pillow.

   Every size a file controls is checked before anything is allocated. */
#include "clip.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Pillow refuses images above twice Image.MAX_IMAGE_PIXELS as decompression
   bombs; so do we, before allocating. */
#define CLIP_MAX_PIXELS 178956970LL

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
        return fail(err, "clip: JPEG decoding is not in this build yet; convert with djpeg to PPM");
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
    int y, o, x, ch;
    for (y = 0; y < rows; y++) {
        const unsigned char *src = in + (size_t)(row0 + y) * in_w * 3;
        unsigned char *dst = out + (size_t)y * ncols * 3;
        for (o = 0; o < ncols; o++) {
            int xmin = c->bounds[o * 2], xmax = c->bounds[o * 2 + 1];
            const int32_t *k = c->k + (size_t)o * c->ksize;
            for (ch = 0; ch < 3; ch++) {
                int32_t ss = 1 << (PRECISION_BITS - 1);
                for (x = 0; x < xmax; x++) ss += src[(size_t)(x + xmin) * 3 + ch] * k[x];
                dst[o * 3 + ch] = clip8(ss);
            }
        }
    }
}

/* out rows o (nrows of them, width w) from in (w wide) rows, with the
   window of each output row shifted up by row0 (in holds rows from row0) */
static void resample_vertical(unsigned char *out, int nrows, const unsigned char *in, int w, int row0,
                              const coeffs *c)
{
    int o, x, y;
    for (o = 0; o < nrows; o++) {
        int ymin = c->bounds[o * 2] - row0, ymax = c->bounds[o * 2 + 1];
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
