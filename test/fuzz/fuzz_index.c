/* Fuzz target: reading an index folder (index.json, files.tsv, failed.tsv,
   embeddings.npy) in full and for a search, and searching it. The input is the four files' bytes in
   that order, separated by the line "@@"; they are written to a scratch
   folder of this process, opened with clip_index_open and searched. */
#define _POSIX_C_SOURCE 200809L /* mkdir, getpid */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../clip.h"
#include "../../index/index.h"
#include "fuzz_common.h"

static const char *const names[4] = {"index.json", "files.tsv", "failed.tsv", "embeddings.npy"};
static char dir[64];

static void clean_up(void)
{
    char path[128];
    int i;
    for (i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        remove(path);
    }
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[128], err[CLIP_ERR_SIZE];
    const uint8_t *p = data, *end = data + size;
    clip_index *ix;
    int i;
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/clip-fuzz-index-%ld", (long)getpid());
        mkdir(dir, 0700);
        atexit(clean_up);
    }
    for (i = 0; i < 4; i++) {
        const uint8_t *sep = NULL, *q;
        FILE *f;
        for (q = p; i < 3 && q + 4 <= end; q++)
            if (!memcmp(q, "\n@@\n", 4)) {
                sep = q;
                break;
            }
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        f = fopen(path, "wb");
        if (!f) return 0;
        fwrite(p, 1, (size_t)((sep ? sep : end) - p), f);
        fclose(f);
        p = sep ? sep + 4 : end;
    }
    ix = clip_index_open_all(dir, err); /* every row read and checked */
    if (ix) clip_index_close(ix);
    ix = clip_index_open(dir, err); /* only what a search needs */
    if (ix) {
        int dim = clip_index_dim(ix), k, n;
        size_t rows[5], r = clip_index_rows(ix);
        float scores[5], *q = (float *)malloc((size_t)dim * sizeof(float));
        if (!q) __builtin_trap();
        for (k = 0; k < dim; k++) q[k] = 1.0f;
        n = clip_index_search(ix, q, 5, rows, scores, err);
        if (n < 0 || (size_t)n > r || n > 5) __builtin_trap();
        for (k = 0; k < n; k++)
            if (rows[k] >= r) __builtin_trap();
        for (k = 0; (size_t)k < r && k < 64; k++) clip_index_path(ix, (size_t)k); /* NULL for a damaged path */
        free(q);
        clip_index_close(ix);
    } else if (strncmp(err, "clip", 4)) {
        __builtin_trap(); /* every refusal is a message */
    }
    return 0;
}
