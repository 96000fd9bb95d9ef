/* Fuzz target: JPEG/PPM/PGM decoding, the Pillow-exact resize and crop, and the one-pass
   decode + resize + crop checked against the two steps. */
#include <string.h>

#include "../../clip.h"
#include "fuzz_common.h"

/* The one-pass decode + resize + crop must give what the two steps give,
   and fail exactly when they do. */
static void same_as_two_steps(const uint8_t *data, size_t size, const clip_image *img, int mode, int rh, int rw,
                              int ch, int cw, int resample)
{
    clip_image a, b;
    char err[CLIP_ERR_SIZE];
    int ra = img ? clip_resize_crop(img, &a, mode, rh, rw, ch, cw, resample, err) : -1;
    int rb = clip_decode_resize_crop(&b, data, size, mode, rh, rw, ch, cw, resample, err);
    if (rb && strncmp(err, "clip: ", 6) != 0) __builtin_trap();
    if ((ra == 0) != (rb == 0)) __builtin_trap();
    if (ra == 0 && (a.width != b.width || a.height != b.height ||
                    memcmp(a.rgb, b.rgb, (size_t)a.width * a.height * 3) != 0))
        __builtin_trap();
    if (ra == 0) clip_image_free(&a);
    if (rb == 0) clip_image_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    clip_image img;
    char err[CLIP_ERR_SIZE];
    int ok = clip_image_decode(&img, data, size, err) == 0;
    if (!ok && strncmp(err, "clip: ", 6) != 0) __builtin_trap(); /* every failure must come with a message */
    /* both filters, both resize modes, a crop larger than the image */
    same_as_two_steps(data, size, ok ? &img : NULL, 0, 24, 24, 24, 24, 3);
    same_as_two_steps(data, size, ok ? &img : NULL, 1, 7, 31, 16, 40, 2);
    if (ok) clip_image_free(&img);
    return 0;
}
