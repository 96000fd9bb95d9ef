/* Fuzz target: the labels-file reader. */
#include <stdlib.h>
#include <string.h>

#include "../../clip.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[CLIP_ERR_SIZE];
    size_t *spans;
    int n = clip_split_labels((const char *)data, size, &spans, err), i;
    for (i = 0; i < n; i++) {
        size_t a = spans[2 * i], len = spans[2 * i + 1];
        if (len == 0 || a > size || len > size - a) __builtin_trap();
        if (data[a] == ' ' || data[a] == '\n' || data[a + len - 1] == '\r' || memchr(data + a, '\n', len))
            __builtin_trap();
    }
    free(spans);
    return 0;
}
