/* Fuzz target: JPEG/PPM/PGM decoding, then the Pillow-exact resize and crop. */
#include <string.h>

#include "../../clip.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    clip_image img, crop;
    char err[CLIP_ERR_SIZE];
    if (clip_image_decode(&img, data, size, err) == 0) {
        /* both filters, both resize modes, a crop larger than the image */
        if (clip_resize_crop(&img, &crop, 0, 24, 24, 24, 24, 3, err) == 0) clip_image_free(&crop);
        if (clip_resize_crop(&img, &crop, 1, 7, 31, 16, 40, 2, err) == 0) clip_image_free(&crop);
        clip_image_free(&img);
    } else if (strncmp(err, "clip: ", 6) != 0) {
        __builtin_trap(); /* every failure must come with a message */
    }
    return 0;
}
