/* Fuzz target: the weights-file loader (header, section table, merges) on
   small blobs, and a forward pass when one loads. */
#include <stdlib.h>
#include <string.h>

#include "../../clip.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[CLIP_ERR_SIZE];
    void *copy = malloc(size ? size : 1); /* aligned, as a file mapping is */
    clip_model *m;
    if (!copy) return 0;
    memcpy(copy, data, size);
    m = clip_model_load_memory(copy, size, err);
    if (m) {
        const clip_config *c = clip_model_config(m);
        /* keep the work small: the fuzzer wants many inputs per second */
        if ((long long)c->image_size * c->image_size <= 4096 && c->vision_width <= 64 && c->text_width <= 64 &&
            c->vision_layers <= 2 && c->text_layers <= 2 && c->vision_mlp <= 256 && c->text_mlp <= 256 &&
            c->projection_dim <= 64) {
            float f[64 * 2];
            int32_t ids[8];
            int lens[1], n;
            clip_image img;
            img.width = img.height = c->image_size;
            img.rgb = (unsigned char *)calloc((size_t)c->image_size * c->image_size, 3);
            if (img.rgb) {
                clip_encode_image(m, &img, f, err);
                free(img.rgb);
            }
            n = clip_tokenize(m, "a cat", 5, ids, 8, err);
            lens[0] = n;
            if (n > 0) clip_encode_text(m, ids, lens, 1, 8, f, err);
        }
        clip_model_free(m);
    } else if (strncmp(err, "clip: ", 6) != 0) {
        __builtin_trap();
    }
    free(copy);
    return 0;
}
