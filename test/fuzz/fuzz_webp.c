/* Fuzz target: the WebP decoder (container, VP8L, ALPH, animation frame 0;
   lossy frames through vp8.c). A failure must come with a "clip: "
   message and leave the image empty; a success must give a whole image. */
#include <string.h>

#include "../../clip.h"
#include "../../decoders/decoders.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    clip_image img;
    char err[CLIP_ERR_SIZE];
    if (!clip_is_webp(data, size)) return 0;
    if (clip_decode_webp(&img, data, size, err) != 0) {
        if (strncmp(err, "clip: ", 6) != 0 || img.rgb != NULL || img.width || img.height) __builtin_trap();
        return 0;
    }
    if (!img.rgb || img.width <= 0 || img.height <= 0) __builtin_trap();
    /* touch every byte, so ASan sees a short buffer */
    {
        size_t i, n = (size_t)img.width * (size_t)img.height * 3;
        unsigned s = 0;
        for (i = 0; i < n; i++) s += img.rgb[i];
        if (s == 0xffffffffu) __builtin_trap();
    }
    clip_image_free(&img);
    return 0;
}
