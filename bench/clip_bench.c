/* clip_bench: time the library on one weights file.
     clip_bench MODEL [RUNS] [TEXTS] [TOKENS] [IMAGE]
   Prints, as one JSON line: load time, image-tower and text-tower medians
   (TEXTS prompts of TOKENS tokens each, encoded as one batch), the image
   tower's time per image in a batch of 8 (clip_encode_images), and peak RSS;
   with IMAGE also the medians of decoding it whole (clip_image_load) and of
   decoding + preprocessing it (clip_preprocess_file), file reading included. */
#define _XOPEN_SOURCE 600
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "clip.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* This process's peak resident memory in MiB. Linux's VmHWM belongs to the
   process image; getrusage's ru_maxrss also keeps the high-water mark of
   the program that exec'd it (a Python bench holding 232 MiB made a q8
   run read 232 MiB), so it is only the fallback. */
static double peak_rss_mib(void)
{
    struct rusage ru;
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        long kib = -1;
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "VmHWM:", 6)) kib = atol(line + 6);
        fclose(f);
        if (kib >= 0) return kib / 1024.0;
    }
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

int main(int argc, char **argv)
{
    char err[CLIP_ERR_SIZE];
    int runs = argc > 2 ? atoi(argv[2]) : 20, texts = argc > 3 ? atoi(argv[3]) : 4, tokens = argc > 4 ? atoi(argv[4]) : 7;
    double t0, load, *ti, *tt, *td, *tp, *tb, tok_us[2];
    const char *image = argc > 5 ? argv[5] : NULL;
    clip_model *m;
    const clip_config *c;
    clip_image crop, batch[8];
    float *f;
    int32_t *ids;
    int *lens, i, j;
    if (argc < 2 || runs < 1 || texts < 1 || tokens < 2) {
        fprintf(stderr, "usage: clip_bench MODEL [RUNS] [TEXTS] [TOKENS] [IMAGE]\n");
        return 2;
    }
    t0 = now();
    /* CLIP_BENCH_READ=1: the weights read into memory (clip --no-mmap) */
    m = getenv("CLIP_BENCH_READ") && !strcmp(getenv("CLIP_BENCH_READ"), "1") ? clip_model_load_read(argv[1], err)
                                                                           : clip_model_load(argv[1], err);
    load = now() - t0;
    if (!m) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    c = clip_model_config(m);
    crop.width = crop.height = c->image_size;
    crop.rgb = malloc((size_t)c->image_size * c->image_size * 3);
    for (i = 0; i < c->image_size * c->image_size * 3; i++) crop.rgb[i] = (unsigned char)(i * 7 % 251);
    if (tokens > c->context_length) tokens = c->context_length;
    ids = malloc(sizeof(int32_t) * texts * c->context_length);
    lens = malloc(sizeof(int) * texts);
    for (i = 0; i < texts; i++) {
        lens[i] = tokens;
        ids[i * c->context_length] = c->bos_id;
        for (j = 1; j < tokens - 1; j++) ids[i * c->context_length + j] = 320 + 13 * i + j;
        ids[i * c->context_length + tokens - 1] = c->eos_id;
    }
    f = malloc(sizeof(float) * c->projection_dim * (texts > 8 ? texts : 8));
    for (i = 0; i < 8; i++) batch[i] = crop;
    ti = malloc(sizeof(double) * runs);
    tt = malloc(sizeof(double) * runs);
    td = malloc(sizeof(double) * runs);
    tp = malloc(sizeof(double) * runs);
    tb = malloc(sizeof(double) * runs);
    /* one warm-up of each: first touches of the mapped weights */
    if (clip_encode_image(m, &crop, f, err) || clip_encode_text(m, ids, lens, texts, c->context_length, f, err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    for (i = 0; i < runs; i++) {
        t0 = now();
        clip_encode_image(m, &crop, f, err);
        ti[i] = now() - t0;
        t0 = now();
        clip_encode_text(m, ids, lens, texts, c->context_length, f, err);
        tt[i] = now() - t0;
        t0 = now();
        clip_encode_images(m, batch, 8, f, err);
        tb[i] = (now() - t0) / 8;
        if (image) {
            clip_image img;
            t0 = now();
            if (clip_image_load(&img, image, err)) {
                fprintf(stderr, "%s\n", err);
                return 1;
            }
            td[i] = now() - t0;
            clip_image_free(&img);
            t0 = now();
            if (clip_preprocess_file(m, image, &img, err)) {
                fprintf(stderr, "%s\n", err);
                return 1;
            }
            tp[i] = now() - t0;
            clip_image_free(&img);
        }
    }
    /* tokenizer: a typical label, and a long multilingual one */
    {
        static const char *labels[2] = {"a photo of a golden retriever.",
                                        "Ελληνικά 中文 🐱 Café déjà vu, İSTANBUL — a rather long label of many words"};
        int32_t tid[77];
        int k, reps = 20000;
        for (k = 0; k < 2; k++) {
            t0 = now();
            for (i = 0; i < reps; i++) clip_tokenize(m, labels[k], strlen(labels[k]), tid, 77, err);
            tok_us[k] = (now() - t0) / reps * 1e6;
        }
    }
    printf("{\"load_ms\": %.2f, \"image_ms\": %.3f, \"text_ms\": %.3f, \"texts\": %d, \"tokens\": %d, "
           "\"image_batch8_ms\": %.3f, \"tokenize_short_us\": %.2f, \"tokenize_long_us\": %.2f, ",
           load * 1e3, median(ti, runs) * 1e3, median(tt, runs) * 1e3, texts, tokens, median(tb, runs) * 1e3,
           tok_us[0], tok_us[1]);
    if (image) printf("\"decode_ms\": %.3f, \"preprocess_ms\": %.3f, ", median(td, runs) * 1e3, median(tp, runs) * 1e3);
    printf("\"peak_rss_mib\": %.1f}\n", peak_rss_mib());
    free(ti);
    free(tt);
    free(td);
    free(tp);
    free(tb);
    free(f);
    free(ids);
    free(lens);
    free(crop.rgb);
    clip_model_free(m);
    return 0;
}
