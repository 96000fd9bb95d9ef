/* Fuzz target: the PNG decoder and its inflate, called directly. Every
   failure must come with a "clip: " message and leave the image empty; a
   success must give an image of the size the header declares. */
#include <string.h>

#include "../../clip.h"
#include "../../decoders/decoders.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    clip_image img;
    char err[CLIP_ERR_SIZE];
    int r;
    if (!clip_is_png(data, size)) return 0;
    memset(&img, 0, sizeof img);
    r = clip_decode_png(&img, data, size, err);
    if (r) {
        if (strncmp(err, "clip: ", 6) != 0) __builtin_trap(); /* every failure must come with a message */
        if (img.rgb || img.width || img.height) __builtin_trap();
        return 0;
    }
    if (!img.rgb || img.width <= 0 || img.height <= 0) __builtin_trap();
    {
        /* touch every byte, so a hole in the output shows under MSan/ASan */
        size_t i, n = (size_t)img.width * img.height * 3;
        unsigned sum = 0;
        for (i = 0; i < n; i++) sum += img.rgb[i];
        if (sum == 0xffffffffu) __builtin_trap();
    }
    clip_image_free(&img);
    return 0;
}
