/* test_threads.c - one model, many threads: each thread has its own
   clip_context on one shared clip_model, and every result must be the
   bytes one thread alone computes.

   usage: test_threads MODEL THREADS ROUNDS IMAGE...

   First one thread computes the reference features of every image (one at
   a time and as one batch), of a set of texts and of a prompt ensemble.
   Then THREADS threads run ROUNDS rounds each, every thread starting at a
   different item so that different images, texts and batch sizes run at
   the same moment, decoding, tokenizing and encoding through their own
   context, and compare with memcmp. Built normally (OpenMP inside each
   call) and under ThreadSanitizer (without OpenMP) by test_threads.py.
   Exits 1 on any difference or error. */
#include "clip.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *texts[] = {"a photo of a cat", "a diagram", "Ελληνικά 中文 🐱", "a very long caption that goes on "
                              "and on about a small grey cat sitting on a red chair in a sunny kitchen next to a "
                              "window with flowers and a cup of coffee on the table beside it"};
#define N_TEXTS ((int)(sizeof texts / sizeof texts[0]))
static const char *labels[] = {"cat", "dog", "coffee", "rocket"};
static const char *templates[] = {"a photo of a {}.", "a drawing of a {}.", "{} {}"};
#define N_LABELS 4

typedef struct {
    clip_model *model;        /* shared, read-only */
    const char *const *paths; /* the images */
    int n_images;
    int rounds;
    int E;                    /* projection_dim */
    float *ref_img;           /* (n_images, E) one at a time */
    float *ref_batch;         /* (n_images, E) all at once */
    float *ref_txt;           /* (N_TEXTS, E) */
    float *ref_labels;        /* (N_LABELS, E) the ensemble */
    clip_context *shared;     /* SHARE_ONE_CONTEXT only */
} shared_data;

typedef struct {
    shared_data *s;
    int id;
    int failures;
    long checks;
    char err[CLIP_ERR_SIZE + 64]; /* the last failure: "thread N: " and the library's message */
} worker;

static void *work(void *arg)
{
    worker *w = (worker *)arg;
    shared_data *s = w->s;
    const clip_config *c = clip_model_config(s->model);
    int E = s->E, C = c->context_length, r, k;
    char err[CLIP_ERR_SIZE];
    float *f = (float *)malloc((size_t)(s->n_images > N_LABELS ? s->n_images : N_LABELS) * E * sizeof(float));
    int *ok = (int *)malloc((size_t)s->n_images * sizeof(int));
    char *msgs = (char *)malloc((size_t)s->n_images * CLIP_ERR_SIZE);
    int32_t *ids = (int32_t *)malloc((size_t)C * sizeof(int32_t));
#ifdef SHARE_ONE_CONTEXT
    /* the negative control: every thread on one context, a data race that
       ThreadSanitizer must report (test_threads.py checks that it does) */
    clip_context *ctx = s->shared;
#else
    clip_context *ctx = clip_context_create(s->model, err);
#endif
    if (!ctx || !f || !ok || !msgs || !ids) {
        snprintf(w->err, sizeof w->err, "thread %d: %s", w->id, ctx ? "out of memory" : err);
        w->failures++;
        goto done;
    }
    for (r = 0; r < s->rounds; r++) {
        int item = (w->id + r) % (s->n_images + N_TEXTS + 2);
        if (item < s->n_images) { /* one image: decode, preprocess, encode */
            clip_image crop = {0, 0, NULL};
            if (clip_preprocess_file(s->model, s->paths[item], &crop, err) ||
                clip_context_encode_images(ctx, &crop, 1, f, err)) {
                snprintf(w->err, sizeof w->err, "thread %d: %s", w->id, err);
                w->failures++;
                if (crop.rgb) clip_image_free(&crop);
                continue;
            }
            clip_image_free(&crop);
            if (memcmp(f, s->ref_img + (size_t)item * E, (size_t)E * sizeof(float))) {
                snprintf(w->err, sizeof w->err, "thread %d: image %d differs", w->id, item);
                w->failures++;
            }
        } else if (item < s->n_images + N_TEXTS) { /* one text */
            int t = item - s->n_images, n = clip_tokenize(s->model, texts[t], strlen(texts[t]), ids, C, err);
            if (n < 0 || clip_context_encode_text(ctx, ids, &n, 1, C, f, err)) {
                snprintf(w->err, sizeof w->err, "thread %d: %s", w->id, err);
                w->failures++;
                continue;
            }
            if (memcmp(f, s->ref_txt + (size_t)t * E, (size_t)E * sizeof(float))) {
                snprintf(w->err, sizeof w->err, "thread %d: text %d differs", w->id, t);
                w->failures++;
            }
        } else if (item == s->n_images + N_TEXTS) { /* every image as one batch (parallel decode inside) */
            if (clip_context_encode_files(ctx, s->paths, s->n_images, f, ok, msgs, err)) {
                snprintf(w->err, sizeof w->err, "thread %d: %s", w->id, err);
                w->failures++;
                continue;
            }
            for (k = 0; k < s->n_images; k++)
                if (!ok[k]) {
                    snprintf(w->err, sizeof w->err, "thread %d: %s", w->id, msgs + (size_t)k * CLIP_ERR_SIZE);
                    w->failures++;
                }
            if (memcmp(f, s->ref_batch, (size_t)s->n_images * E * sizeof(float))) {
                snprintf(w->err, sizeof w->err, "thread %d: the batch of %d images differs", w->id, s->n_images);
                w->failures++;
            }
        } else { /* a prompt ensemble */
            if (clip_context_encode_labels(ctx, labels, NULL, N_LABELS, templates, 3, f, err)) {
                snprintf(w->err, sizeof w->err, "thread %d: %s", w->id, err);
                w->failures++;
                continue;
            }
            if (memcmp(f, s->ref_labels, (size_t)N_LABELS * E * sizeof(float))) {
                snprintf(w->err, sizeof w->err, "thread %d: the label ensemble differs", w->id);
                w->failures++;
            }
        }
        w->checks++;
    }
done:
#ifndef SHARE_ONE_CONTEXT
    clip_context_free(ctx);
#endif
    free(f);
    free(ok);
    free(msgs);
    free(ids);
    return NULL;
}

static int fail(const char *what, const char *err)
{
    fprintf(stderr, "FAIL %s: %s\n", what, err);
    return 1;
}

int main(int argc, char **argv)
{
    char err[CLIP_ERR_SIZE];
    shared_data s;
    worker *w;
    pthread_t *tid;
    clip_image *crops;
    int n_threads, i, failures = 0, C;
    long checks = 0;
    if (argc < 5) {
        fprintf(stderr, "usage: test_threads MODEL THREADS ROUNDS IMAGE...\n");
        return 2;
    }
    memset(&s, 0, sizeof s);
    s.model = clip_model_load(argv[1], err);
    if (!s.model) return fail("load", err);
    n_threads = atoi(argv[2]);
    s.rounds = atoi(argv[3]);
    s.paths = (const char *const *)(argv + 4);
    s.n_images = argc - 4;
    s.E = clip_model_config(s.model)->projection_dim;
    C = clip_model_config(s.model)->context_length;
    s.ref_img = (float *)malloc((size_t)s.n_images * s.E * sizeof(float));
    s.ref_batch = (float *)malloc((size_t)s.n_images * s.E * sizeof(float));
    s.ref_txt = (float *)malloc((size_t)N_TEXTS * s.E * sizeof(float));
    s.ref_labels = (float *)malloc((size_t)N_LABELS * s.E * sizeof(float));
    crops = (clip_image *)calloc((size_t)s.n_images, sizeof(clip_image));
    if (n_threads < 1 || s.rounds < 1 || !s.ref_img || !s.ref_batch || !s.ref_txt || !s.ref_labels || !crops)
        return fail("setup", "bad arguments or out of memory");

    /* the references, one thread, the model's own context */
    for (i = 0; i < s.n_images; i++) {
        if (clip_preprocess_file(s.model, s.paths[i], &crops[i], err)) return fail(s.paths[i], err);
        if (clip_encode_image(s.model, &crops[i], s.ref_img + (size_t)i * s.E, err)) return fail("encode", err);
    }
    if (clip_encode_images(s.model, crops, s.n_images, s.ref_batch, err)) return fail("encode batch", err);
    for (i = 0; i < s.n_images; i++) clip_image_free(&crops[i]);
    free(crops);
    for (i = 0; i < N_TEXTS; i++) {
        int32_t ids[512];
        int n = clip_tokenize(s.model, texts[i], strlen(texts[i]), ids, C < 512 ? C : 512, err);
        if (n < 0 || clip_encode_text(s.model, ids, &n, 1, C < 512 ? C : 512, s.ref_txt + (size_t)i * s.E, err))
            return fail("text", err);
    }
    if (clip_encode_labels(s.model, labels, NULL, N_LABELS, templates, 3, s.ref_labels, err))
        return fail("labels", err);
    /* a batch must equal one at a time (clip.h's promise), or the threads' comparisons mean nothing */
    if (memcmp(s.ref_img, s.ref_batch, (size_t)s.n_images * s.E * sizeof(float)))
        return fail("batch", "a batch of images differs from one at a time");

    s.shared = clip_context_create(s.model, err);
    if (!s.shared) return fail("context", err);
    w = (worker *)calloc((size_t)n_threads, sizeof(worker));
    tid = (pthread_t *)calloc((size_t)n_threads, sizeof(pthread_t));
    if (!w || !tid) return fail("setup", "out of memory");
    for (i = 0; i < n_threads; i++) {
        w[i].s = &s;
        w[i].id = i;
        if (pthread_create(&tid[i], NULL, work, &w[i])) return fail("pthread_create", "cannot start a thread");
    }
    for (i = 0; i < n_threads; i++) {
        pthread_join(tid[i], NULL);
        failures += w[i].failures;
        checks += w[i].checks;
        if (w[i].failures) fprintf(stderr, "FAIL %s (and %d more in that thread)\n", w[i].err, w[i].failures - 1);
    }
    printf("%d threads x %d rounds on one model: %ld results compared, %d differ or failed\n", n_threads, s.rounds,
           checks, failures);
    free(w);
    free(tid);
    free(s.ref_img);
    free(s.ref_batch);
    free(s.ref_txt);
    free(s.ref_labels);
    clip_context_free(s.shared);
    clip_model_free(s.model);
    return failures || checks != (long)n_threads * s.rounds ? 1 : 0;
}
