/* Tokenize many texts in one process, for test_tokenizer.py: stdin holds
   records of a 4-byte little-endian length and that many bytes; stdout gets
   one line per record, "ids|ids truncated to the context length". */
#include <stdio.h>
#include <stdlib.h>

#include "clip.h"

int main(int argc, char **argv)
{
    char err[CLIP_ERR_SIZE];
    clip_model *m;
    unsigned char hdr[4];
    int32_t *ids;
    int max = 1 << 20;
    if (argc != 2) {
        fprintf(stderr, "usage: tok_batch MODEL < records\n");
        return 2;
    }
    m = clip_model_load(argv[1], err);
    if (!m) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    ids = malloc(sizeof(int32_t) * max);
    while (fread(hdr, 1, 4, stdin) == 4) {
        size_t len = hdr[0] | hdr[1] << 8 | (size_t)hdr[2] << 16 | (size_t)hdr[3] << 24;
        char *text = malloc(len + 1);
        int pass, n, i;
        if (!text || fread(text, 1, len, stdin) != len) return 1;
        for (pass = 0; pass < 2; pass++) {
            n = clip_tokenize(m, text, len, ids, pass ? clip_model_config(m)->context_length : max, err);
            if (n < 0) {
                fprintf(stderr, "%s\n", err);
                return 1;
            }
            for (i = 0; i < n; i++) printf(i ? " %ld" : "%ld", (long)ids[i]);
            putchar(pass ? '\n' : '|');
        }
        free(text);
    }
    free(ids);
    clip_model_free(m);
    return 0;
}
