/* Fuzz target: the tokenizer on arbitrary bytes. The merges come from the
   weights file in CLIP_FUZZ_MODEL (e.g. an export of a fixture model), else
   from a small built-in list that still exercises every merge path. */
#include <stdlib.h>
#include <string.h>

#include "../../clip.h"
#include "fuzz_common.h"

static clip_model *model;
static clip_tokenizer *tok;

static const char builtin_merges[] = "t h\ni n\nth e</w>\na n\ne r\nr e\no n\na t\nin g</w>\no r\ne n\n"
                                     "Ã ©</w>\nc a\nca t</w>\nd o\ndo g</w>\n< |\n| >\n' s</w>\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int32_t ids[80], *big;
    char err[CLIP_ERR_SIZE];
    int n;
    if (!model && !tok) {
        const char *path = getenv("CLIP_FUZZ_MODEL");
        if (path) model = clip_model_load(path, err);
        if (!model) {
            int count = 0;
            const char *p;
            for (p = builtin_merges; *p; p++) count += *p == '\n';
            tok = clip_tokenizer_create(builtin_merges, strlen(builtin_merges), count, err);
            if (!tok) __builtin_trap();
        }
    }
    n = model ? clip_tokenize(model, (const char *)data, size, ids, 77, err)
              : clip_tokenizer_encode(tok, (const char *)data, size, ids, 77);
    if (n < 2 || n > 77) __builtin_trap();
    /* untruncated too: every id in range */
    big = (int32_t *)malloc(sizeof(int32_t) * (size * 4 + 8));
    if (!big) return 0;
    n = model ? clip_tokenize(model, (const char *)data, size, big, (int)(size * 4 + 8), err)
              : clip_tokenizer_encode(tok, (const char *)data, size, big, (int)(size * 4 + 8));
    if (n >= 0) {
        int i, vocab = model ? clip_model_config(model)->vocab_size : clip_tokenizer_vocab_size(tok);
        for (i = 0; i < n; i++)
            if (big[i] < 0 || big[i] >= vocab) __builtin_trap();
    }
    free(big);
    return 0;
}
