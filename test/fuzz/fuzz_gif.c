/* Fuzz target: the GIF decoder alone (decoders/gif.c), called directly.
   A refusal must come with a "clip: " message and leave the image empty; a
   decoded image must have the size it says and be fully readable. */
#include <string.h>

#include "../../clip.h"
#include "../../decoders/decoders.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    clip_image img;
    char err[CLIP_ERR_SIZE];
    unsigned sum = 0;
    size_t i, n;
    if (!clip_is_gif(data, size)) return 0;
    if (clip_decode_gif(&img, data, size, err) != 0) {
        if (strncmp(err, "clip: ", 6) != 0) __builtin_trap();
        if (img.rgb || img.width || img.height) __builtin_trap();
        return 0;
    }
    if (img.width <= 0 || img.height <= 0 || !img.rgb) __builtin_trap();
    /* touch every byte, so ASan and MSan see any that was not written */
    n = (size_t)img.width * (size_t)img.height * 3;
    for (i = 0; i < n; i++) sum += img.rgb[i];
    if (sum == 0xFFFFFFFFu) __builtin_trap();
    clip_image_free(&img);
    return 0;
}
