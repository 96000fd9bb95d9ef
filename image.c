/* image.c - CLIP's image input: a JPEG, PNG, GIF, BMP, WebP, PPM or PGM file decoded
   to RGB, then resized and center-cropped as Hugging Face's CLIPImageProcessor
   does, bit-exact with Pillow's resampling; the crop is what the vision
   tower sees (clip.c normalizes it).

   Reading order: the image type, the format dispatch (the decoders
   themselves are in decoders/, one file per format, behind
   decoders/decoders.h), the resize and crop, the one-pass decode + resize
   + crop that never builds the full-size image, and the file entry points.

   Every size a file controls is checked before anything is allocated. */
#include "platform/platform.h"
#include "decoders/decoders.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------
   The image */

int clip_image_alloc(clip_image *img, long long w, long long h, char *err)
{
    img->rgb = NULL;
    img->width = img->height = 0;
    if (w <= 0 || h <= 0) return clip_error(err, "clip: image has no pixels (%lldx%lld)", w, h);
    if (w > INT_MAX || h > INT_MAX || w * h > CLIP_MAX_PIXELS)
        return clip_error(err,
                          "clip: image of %lldx%lld pixels is over the limit of %lld pixels (a decompression bomb?)",
                          w, h, CLIP_MAX_PIXELS);
    if ((unsigned long long)(w * h) > (SIZE_MAX - 1) / 3)
        return clip_error(err, "clip: image of %lldx%lld pixels does not fit this platform's memory", w, h);
    img->rgb = (unsigned char *)clip_malloc((size_t)(w * h) * 3);
    if (!img->rgb) return clip_error(err, "clip: out of memory for a %lldx%lld image", w, h);
    img->width = (int)w;
    img->height = (int)h;
    return 0;
}

void clip_image_free(clip_image *img)
{
    if (!img) return;
    clip_free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}

/* ------------------------------------------------------------------------
   Format dispatch: by content, never by file name. Each decoder recognizes
   its own signature; a new format is one more line here (and a file in
   decoders/). */

int clip_image_decode(clip_image *img, const unsigned char *data, size_t size, char *err)
{
    img->rgb = NULL;
    img->width = img->height = 0;
    if (clip_is_jpeg(data, size)) return clip_decode_jpeg(img, data, size, err);
    if (clip_is_png(data, size)) return clip_decode_png(img, data, size, err);
    if (clip_is_gif(data, size)) return clip_decode_gif(img, data, size, err);
    if (clip_is_bmp(data, size)) return clip_decode_bmp(img, data, size, err);
    if (clip_is_webp(data, size)) return clip_decode_webp(img, data, size, err);
    if (clip_is_pnm(data, size)) return clip_decode_pnm(img, data, size, err);
    return clip_error(err, "clip: unknown image format (JPEG, PNG, GIF, BMP, WebP, PPM and PGM are read)");
}

/* ------------------------------------------------------------------------
   Resize and center crop, as CLIPImageProcessor does them (resize with
   Pillow, then crop). Reading order: the filters and their fixed-point
   coefficients, the two passes, then the plan that runs them for one image
   and crop, and clip_resize_crop.

   Resampling, as Pillow's ImagingResample (libImaging/Resample.c) computes
   it for 8-bit images: separable, horizontal pass first; each output pixel
   is a window of input pixels weighted by the filter stretched by the
   downscale factor (antialiasing); weights normalized to sum 1, converted
   to fixed point with 22 fractional bits, rounded and clamped per pass. */

#define PRECISION_BITS (32 - 8 - 2)

/* Whether the target has 32-bit vector multiplies: the horizontal resize
   pass takes the loop shape that vectorizes well there, and the plain one
   (faster on SSE2-only and scalar targets) elsewhere. */
#if defined(__SSE4_1__) || defined(__ARM_NEON) || defined(__aarch64__)
#define VECTOR_MUL32 1
#else
#define VECTOR_MUL32 0
#endif

/* ---- the coefficients ---- */

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
    c->bounds = (int *)clip_malloc((size_t)(count > 0 ? count : 1) * 2 * sizeof(int));
    c->k = (int32_t *)clip_malloc((size_t)(count > 0 ? count : 1) * (size_t)c->ksize * sizeof(int32_t));
    w = (double *)clip_malloc((size_t)c->ksize * sizeof(double));
    if (!c->bounds || !c->k || !w) {
        clip_free(c->bounds);
        clip_free(c->k);
        clip_free(w);
        c->bounds = NULL;
        c->k = NULL;
        return clip_error(err, "clip: out of memory for resampling coefficients");
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
    clip_free(w);
    return 0;
}

static void coeffs_free(coeffs *c)
{
    clip_free(c->bounds);
    clip_free(c->k);
}

/* ---- the passes ---- */

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

/* ---- the plan: resize + center crop ---- */

/* What the resize and crop are asked for: clip_resize_crop's parameters
   (resize_mode, resize_h, resize_w as in clip_config). */
typedef struct {
    int mode, h, w;
    int crop_h, crop_w, resample;
} resize_target;

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
    clip_free(p->tmp);
    p->tmp = NULL;
}

static int plan_make(resize_plan *p, int W, int H, const resize_target *want, char *err)
{
    int resize_h = want->h, resize_w = want->w, crop_h = want->crop_h, crop_w = want->crop_w;
    int resample = want->resample;
    long long rw, rh;
    memset(p, 0, sizeof *p);
    if (W < 1 || H < 1) return clip_error(err, "clip: empty input image");
    if (crop_h < 1 || crop_w < 1 || resize_h < 1 || resize_w < 1 || (resample != 2 && resample != 3))
        return clip_error(err, "clip: invalid preprocessing parameters");
    if (want->mode == 0) {
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
        return clip_error(err, "clip: a %dx%d image resizes to %lldx%lld, too large", W, H, rw, rh);
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
    p->tmp = (unsigned char *)clip_malloc((size_t)(p->y1 - p->y0) * (size_t)p->ncols * 3 + 1);
    if (!p->tmp) {
        plan_free(p);
        return clip_error(err, "clip: out of memory resizing");
    }
    return 0;
}

/* The vertical pass over p->tmp, into the crop. */
static int plan_finish(resize_plan *p, clip_image *out, char *err)
{
    const unsigned char *src = p->tmp;
    unsigned char *region = NULL;
    int y;
    if (clip_image_alloc(out, p->crop_w, p->crop_h, err)) return -1;
    memset(out->rgb, 0, (size_t)p->crop_w * p->crop_h * 3);
    if (p->need_v) {
        region = (unsigned char *)clip_malloc((size_t)p->nrows * p->ncols * 3 + 1);
        if (!region) {
            clip_image_free(out);
            return clip_error(err, "clip: out of memory resizing");
        }
        resample_vertical(region, p->nrows, src, p->ncols, p->y0, &p->cv);
        src = region;
    }
    /* place the region in the crop (offset where the crop was padded) */
    for (y = 0; y < p->nrows; y++)
        memcpy(out->rgb + ((size_t)(p->r0 - p->top + y) * p->crop_w + (size_t)(p->c0 - p->left)) * 3,
               src + (size_t)y * p->ncols * 3, (size_t)p->ncols * 3);
    clip_free(region);
    return 0;
}

int clip_resize_crop(const clip_image *in, clip_image *out, int resize_mode, int resize_h, int resize_w, int crop_h,
                     int crop_w, int resample, char *err)
{
    resize_target want = {resize_mode, resize_h, resize_w, crop_h, crop_w, resample};
    resize_plan p;
    int y, rc;
    out->rgb = NULL;
    out->width = out->height = 0;
    if (!in->rgb) return clip_error(err, "clip: empty input image");
    if (plan_make(&p, in->width, in->height, &want, err)) return -1;
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

/* ------------------------------------------------------------------------
   Decode, resize and crop in one pass: the JPEG decoder streams its rows
   (only those and the columns the crop needs) straight into the horizontal
   pass, so the full-size image is never built. The other formats decode
   whole, then resize. */

typedef struct {
    resize_plan plan;
    resize_target want;
    int ready;                 /* plan is made (and to be freed) */
} fused_ctx;

/* A decoded row into p->tmp: through the horizontal pass, or, when the
   width stays, its columns interleaved as they are. */
static void fused_row(void *ctx, int y, const unsigned char *r, const unsigned char *g, const unsigned char *b)
{
    const resize_plan *p = &((const fused_ctx *)ctx)->plan;
    unsigned char *dst = p->tmp + (size_t)(y - p->y0) * p->ncols * 3;
    int x, n = p->ncols;
    if (p->need_h) {
        hpass_channel(dst, r, &p->ch, p->x0, n);
        hpass_channel(dst + 1, g, &p->ch, p->x0, n);
        hpass_channel(dst + 2, b, &p->ch, p->x0, n);
        return;
    }
    for (x = 0; x < n; x++) {
        dst[3 * x] = r[x];
        dst[3 * x + 1] = g[x];
        dst[3 * x + 2] = b[x];
    }
}

static int fused_prepare(void *ctx, int w, int h, clip_row_sink *sink, char *err)
{
    fused_ctx *f = (fused_ctx *)ctx;
    resize_plan *p = &f->plan;
    if (plan_make(p, w, h, &f->want, err)) return -1;
    f->ready = 1;
    sink->y0 = p->y0;
    sink->y1 = p->y1;
    sink->x0 = p->x0;
    sink->x1 = p->x1;
    sink->pad = p->need_h ? p->ch.ksize : 0; /* hpass_channel reads whole windows */
    sink->row = fused_row;
    sink->ctx = f;
    return 0;
}

int clip_decode_resize_crop(clip_image *out, const unsigned char *data, size_t size, int resize_mode, int resize_h,
                            int resize_w, int crop_h, int crop_w, int resample, char *err)
{
    resize_target want = {resize_mode, resize_h, resize_w, crop_h, crop_w, resample};
    fused_ctx f;
    int rc;
    out->rgb = NULL;
    out->width = out->height = 0;
    if (!clip_is_jpeg(data, size)) {
        clip_image img;
        if (clip_image_decode(&img, data, size, err)) return -1;
        rc = clip_resize_crop(&img, out, resize_mode, resize_h, resize_w, crop_h, crop_w, resample, err);
        clip_image_free(&img);
        return rc;
    }
    memset(&f, 0, sizeof f);
    f.want = want;
    rc = clip_decode_jpeg_rows(data, size, fused_prepare, &f, err);
    if (!rc) rc = plan_finish(&f.plan, out, err);
    if (f.ready) plan_free(&f.plan);
    return rc;
}

/* ------------------------------------------------------------------------
   Files */

/* Read a file and decode it: whole (want NULL), or resized and cropped in
   one pass. A decoder's message gets the file's name. */
static int load_file(clip_image *out, const char *path, const resize_target *want, char *err)
{
    unsigned char *data;
    size_t size;
    int rc;
    out->rgb = NULL;
    out->width = out->height = 0;
    data = clip_read_file(path, &size, err);
    if (!data) return -1; /* its message names the file */
    if (want)
        rc = clip_decode_resize_crop(out, data, size, want->mode, want->h, want->w, want->crop_h, want->crop_w,
                                     want->resample, err);
    else
        rc = clip_image_decode(out, data, size, err);
    clip_free(data);
    if (rc && err) {
        char msg[CLIP_ERR_SIZE];
        const char *m = strncmp(err, "clip: ", 6) == 0 ? err + 6 : err;
        memcpy(msg, m, strlen(m) + 1);
        clip_error(err, "clip: %s: %s", path, msg);
    }
    return rc;
}

int clip_image_load(clip_image *img, const char *path, char *err)
{
    return load_file(img, path, NULL, err);
}

int clip_load_resize_crop(clip_image *out, const char *path, int resize_mode, int resize_h, int resize_w, int crop_h,
                          int crop_w, int resample, char *err)
{
    resize_target want = {resize_mode, resize_h, resize_w, crop_h, crop_w, resample};
    return load_file(out, path, &want, err);
}

int clip_image_write_ppm(const clip_image *img, const char *path, char *err)
{
    FILE *f = clip_fopen(path, "wb");
    size_t n = (size_t)img->width * (size_t)img->height * 3;
    int ok;
    if (!f) return clip_error(err, "clip: %s: %s", path, strerror(errno));
    ok = fprintf(f, "P6\n%d %d\n255\n", img->width, img->height) > 0 && fwrite(img->rgb, 1, n, f) == n;
    if (fclose(f) != 0) ok = 0; /* the buffered bytes are written here */
    return ok ? 0 : clip_error(err, "clip: %s: write error", path);
}
