/* pnm.c - PPM / PGM (netpbm): P6 and P5 binary, P3 and P2 ASCII. Values are
   scaled to 8 bits as Pillow's PpmImagePlugin does: round(v / maxval * 255),
   with Python's round-half-even; 16-bit gray goes through Pillow's mode "I"
   and its clipping conversion to 8 bits. */
#include "../platform/platform.h"
#include "decoders.h"

#include <math.h>
#include <string.h>

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

int clip_is_pnm(const unsigned char *data, size_t size)
{
    return size >= 2 && data[0] == 'P' && data[1] >= '1' && data[1] <= '6';
}

int clip_decode_pnm(clip_image *img, const unsigned char *data, size_t size, char *err)
{
    cursor c;
    int kind = data[1] - '0', channels = (kind == 3 || kind == 6) ? 3 : 1, plain = kind == 2 || kind == 3;
    long long w, h, maxval;
    long long npix, i;
    int gray16, wide;
    if (kind == 1 || kind == 4)
        return clip_error(err, "clip: 1-bit PBM images are not supported; convert to PGM or PPM");
    c.p = data + 2;
    c.end = data + size;
    w = ppm_number(&c);
    h = ppm_number(&c);
    maxval = ppm_number(&c);
    if (w < 0 || h < 0 || maxval < 0) return clip_error(err, "clip: PNM header is malformed (width, height, maxval)");
    if (maxval < 1 || maxval > 65535) return clip_error(err, "clip: PNM maxval %lld is outside 1..65535", maxval);
    if (c.p >= c.end && !plain) return clip_error(err, "clip: PNM image data is missing");
    c.p++; /* the single whitespace byte that ends the header */
    if (clip_image_alloc(img, w, h, err)) return -1;
    npix = w * h;
    gray16 = channels == 1 && maxval > 255;
    wide = maxval > 255;
    if (!plain) {
        size_t bytes_per = (size_t)channels * (wide ? 2 : 1);
        if ((size_t)(c.end - c.p) / bytes_per < (size_t)npix) {
            clip_image_free(img);
            return clip_error(err, "clip: PNM image data is truncated (%lldx%lld needs %llu bytes, %llu present)", w, h,
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
                    px[k] = v > maxval ? 255 : scale_to_8bit(v, (long)maxval, gray16);
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
                    return clip_error(err, "clip: plain PNM data is truncated or malformed at pixel %lld", i);
                }
                if (v > maxval) {
                    clip_image_free(img);
                    return clip_error(err, "clip: plain PNM value %lld is above maxval %lld", v, maxval);
                }
                px[k] = maxval == 255 ? (unsigned char)v : scale_to_8bit((long)v, (long)maxval, gray16);
            }
            if (channels == 1) px[1] = px[2] = px[0];
            memcpy(img->rgb + i * 3, px, 3);
        }
    }
    return 0;
}
