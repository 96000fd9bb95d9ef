/* Fuzz target: the lossy WebP bitstream alone (decoders/vp8.c). The input is
   a 'VP8 ' chunk's payload: a key frame header, then the partitions. */
#include <stdlib.h>
#include <string.h>

#include "../../decoders/decoders.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[CLIP_ERR_SIZE];
    unsigned char *rgb;
    int w, h;
    if (clip_vp8_size(data, size, &w, &h, err)) {
        if (strncmp(err, "clip: ", 6) != 0) __builtin_trap(); /* every failure must come with a message */
        return 0;
    }
    if (w <= 0 || h <= 0 || (long long)w * h > 4000000) return 0;
    rgb = (unsigned char *)malloc((size_t)w * h * 3);
    if (!rgb) return 0;
    if (clip_vp8_decode(data, size, w, h, rgb, (size_t)w * 3, err) && strncmp(err, "clip: ", 6) != 0)
        __builtin_trap();
    /* a size that is not the header's must be refused */
    if (clip_vp8_decode(data, size, w, h > 1 ? h - 1 : h + 1, rgb, (size_t)w * 3, err) == 0) __builtin_trap();
    free(rgb);
    return 0;
}
