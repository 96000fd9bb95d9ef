/* Shared by the fuzz harnesses: the checks of a decoder called directly,
   and a main() that replays files when the harness is built without
   libFuzzer (make test runs the regression inputs this way, under the
   sanitizers when the compiler has them). */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../clip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One image decoder on the input, when is() says the format is its own. A
   refusal must come with a "clip: " message and leave the image empty; a
   decoded image must have the size it says and be fully readable. */
static inline int fuzz_decoder(int (*is)(const unsigned char *, size_t),
                               int (*decode)(clip_image *, const unsigned char *, size_t, char *),
                               const uint8_t *data, size_t size)
{
    clip_image img;
    char err[CLIP_ERR_SIZE];
    unsigned sum = 0;
    size_t i, n;
    if (!is(data, size)) return 0;
    if (decode(&img, data, size, err) != 0) {
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

#ifdef FUZZ_STANDALONE
int main(int argc, char **argv)
{
    int i;
    for (i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        unsigned char *buf;
        long n;
        if (!f || fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
            fprintf(stderr, "%s: cannot read\n", argv[i]);
            return 1;
        }
        buf = (unsigned char *)malloc((size_t)n + 1);
        if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) return 1;
        fclose(f);
        LLVMFuzzerTestOneInput(buf, (size_t)n);
        free(buf);
    }
    printf("replayed %d inputs\n", argc - 1);
    return 0;
}
#endif
#endif
