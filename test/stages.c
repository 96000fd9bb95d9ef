/* Every stage of a forward pass, for test_stages.py: encodes one image and
   a batch of texts with a probe installed and writes each stage the probe
   sees to stdout as one JSON line,
       {"stage": "vision.layer", "layer": 0, "rows": 50, "cols": 768, "x": [...]}
   (rows of x concatenated), after one line {"ids": [[...], ...]} with the
   texts' token ids (clip_tokenize, truncated to the context); then the
   features once more without the probe,
       {"unprobed": "vision.features", "rows": 1, "cols": 512, "x": [...]}
   and the same for "text.features".

   usage: stages MODEL IMAGE [TEXT...]   (IMAGE: the crop, or any image to preprocess) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip.h"

static void print_float(float v)
{
    /* JSON has no NaN or infinities; Python's json module reads these names */
    if (v != v)
        fputs("NaN", stdout);
    else if (v > 3.4e38f || v < -3.4e38f)
        fputs(v > 0 ? "Infinity" : "-Infinity", stdout);
    else
        printf("%.9g", v);
}

/* x's rows x cols values as the rest of a JSON line: [...]} */
static void print_floats(const float *x, int rows, int cols)
{
    long i, n = (long)rows * cols;
    for (i = 0; i < n; i++) {
        if (i) putchar(',');
        print_float(x[i]);
    }
    printf("]}\n");
}

static void probe(void *ctx, const char *stage, int layer, const float *x, int rows, int cols)
{
    (void)ctx;
    printf("{\"stage\": \"%s\", \"layer\": %d, \"rows\": %d, \"cols\": %d, \"x\": [", stage, layer, rows, cols);
    print_floats(x, rows, cols);
}

/* the same line for a result computed without the probe: {"unprobed": stage, ...} */
static void unprobed(const char *stage, const float *x, int rows, int cols)
{
    printf("{\"unprobed\": \"%s\", \"rows\": %d, \"cols\": %d, \"x\": [", stage, rows, cols);
    print_floats(x, rows, cols);
}

static int fail(const char *err)
{
    fprintf(stderr, "stages: %s\n", err);
    return 1;
}

int main(int argc, char **argv)
{
    char err[CLIP_ERR_SIZE];
    clip_model *m;
    const clip_config *c;
    clip_image img, crop;
    float *features;
    int32_t *ids;
    int *lens, n_texts = argc - 3, t, i, rc = 1;
    if (argc < 3) {
        fprintf(stderr, "usage: stages MODEL IMAGE [TEXT...]\n");
        return 2;
    }
    m = clip_model_load(argv[1], err);
    if (!m) return fail(err);
    c = clip_model_config(m);
    features = malloc(sizeof(float) * (size_t)c->projection_dim * (size_t)(n_texts > 0 ? n_texts : 1));
    ids = malloc(sizeof(int32_t) * (size_t)c->context_length * (size_t)(n_texts > 0 ? n_texts : 1));
    lens = malloc(sizeof(int) * (size_t)(n_texts > 0 ? n_texts : 1));
    memset(&img, 0, sizeof img);
    memset(&crop, 0, sizeof crop);
    if (!features || !ids || !lens) {
        fail("out of memory");
        goto done;
    }
    if (clip_image_load(&img, argv[2], err)) {
        fail(err);
        goto done;
    }
    if (img.width != c->image_size || img.height != c->image_size) {
        if (clip_preprocess(m, &img, &crop, err)) {
            fail(err);
            goto done;
        }
    } else {
        crop = img;
        memset(&img, 0, sizeof img);
    }
    for (t = 0; t < n_texts; t++) {
        lens[t] = clip_tokenize(m, argv[3 + t], strlen(argv[3 + t]), ids + (size_t)t * c->context_length,
                                c->context_length, err);
        if (lens[t] < 0) {
            fail(err);
            goto done;
        }
    }
    printf("{\"ids\": [");
    for (t = 0; t < n_texts; t++) {
        printf(t ? ", [" : "[");
        for (i = 0; i < lens[t]; i++) printf(i ? ", %ld" : "%ld", (long)ids[(size_t)t * c->context_length + i]);
        printf("]");
    }
    printf("]}\n");
    clip_model_set_probe(m, probe, NULL);
    if (clip_encode_image(m, &crop, features, err)) {
        fail(err);
        goto done;
    }
    if (n_texts > 0 && clip_encode_text(m, ids, lens, n_texts, c->context_length, features, err)) {
        fail(err);
        goto done;
    }
    /* again without the probe (the last layer then runs on the pooled rows
       only): the features, for test_stages to hold to the probed ones bit
       for bit */
    clip_model_set_probe(m, NULL, NULL);
    if (clip_encode_image(m, &crop, features, err)) {
        fail(err);
        goto done;
    }
    unprobed("vision.features", features, 1, c->projection_dim);
    if (n_texts > 0) {
        if (clip_encode_text(m, ids, lens, n_texts, c->context_length, features, err)) {
            fail(err);
            goto done;
        }
        unprobed("text.features", features, n_texts, c->projection_dim);
    }
    rc = fflush(stdout) ? fail("write error") : 0;
done:
    clip_image_free(&img);
    clip_image_free(&crop);
    free(features);
    free(ids);
    free(lens);
    clip_model_free(m);
    return rc;
}
