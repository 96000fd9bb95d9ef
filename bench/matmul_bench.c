/* matmul_bench: clip.c's matmul on each shape of a ViT-B/32 forward pass
   (and the image towers' larger shapes of ViT-B/16 and ViT-L/14), and its
   attention for ViT-B/32, B/16, L/14 and prompts, as GFLOP/s and
   as a fraction of this machine's float32 peak, so the gap to the limit is
   visible shape by shape; and LayerNorm's time against its reference.
     matmul_bench [RUNS]        (threads: OMP_NUM_THREADS)
   The peak is measured here, in the same build and with the same threads: a
   loop of independent multiply-adds on vectors that stay in registers
   (twelve accumulators of 16 floats, so the compiler keeps every FMA unit
   busy). Like test_ops.c, this file includes clip.c to reach its static
   functions. Prints three Markdown tables. */
#define _POSIX_C_SOURCE 200809L
#define CLIP_NO_MAIN
#include "../clip.c"

#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* FLOP/s of one thread's register-resident multiply-add loop */
static double fma_loop(long iters, float *sink)
{
    float acc[12][16], m[16], a[16];
    long it;
    int i, j;
    double t0;
    for (j = 0; j < 16; j++) {
        m[j] = 0.999999f + 1e-7f * (float)j;
        a[j] = 1e-6f * (float)j;
        for (i = 0; i < 12; i++) acc[i][j] = (float)(i + j);
    }
    t0 = now();
    for (it = 0; it < iters; it++)
        UNROLLED for (i = 0; i < 12; i++) /* clip.c's hint: clang keeps acc in registers */
            UNROLLED for (j = 0; j < 16; j++) acc[i][j] = acc[i][j] * m[j] + a[j];
    t0 = now() - t0;
    for (i = 0; i < 12; i++)
        for (j = 0; j < 16; j++) *sink += acc[i][j];
    return 2.0 * 12 * 16 * (double)iters / t0;
}

/* the peak of all threads together: each runs the loop at once */
static double peak_flops(void)
{
    double total = 0.0;
    float sink = 0.0f;
    OMP("omp parallel reduction(+ : total, sink)")
    {
        total += fma_loop(20000000L, &sink);
    }
    if (sink == 12345.0f) printf(" "); /* keeps the loop's result alive */
    return total;
}

typedef struct {
    const char *what;
    int n, in_dim, out_dim, mode;
} shape;

/* the median of t[0..runs), which it sorts */
static double median_of(double *t, int runs)
{
    qsort(t, (size_t)runs, sizeof *t, by_value);
    return t[runs / 2];
}

/* attention_forward on n_seqs sequences of len rows: median seconds */
static double time_attention(int len, int n_seqs, int dim, int heads, int causal, int runs)
{
    int n = len * n_seqs, starts[65], r, i;
    float *qkv = (float *)malloc(sizeof(float) * (size_t)n * 3 * dim), *out = (float *)malloc(sizeof(float) * n * dim);
    float *scratch = (float *)malloc(sizeof(float) * attention_scratch(n, dim, heads, len, n_seqs));
    double *t = (double *)malloc(sizeof(double) * runs), med;
    if (!qkv || !out || !scratch || !t || n_seqs > 64) {
        fprintf(stderr, "matmul_bench: out of memory\n");
        exit(1);
    }
    for (i = 0; i < n * 3 * dim; i++) qkv[i] = (float)((i * 7) % 13) * 0.05f - 0.3f;
    for (i = 0; i <= n_seqs; i++) starts[i] = i * len;
    attention_forward(out, qkv, scratch, n, dim, heads, causal, starts, n_seqs, len); /* warm-up */
    for (r = 0; r < runs; r++) {
        double t0 = now();
        attention_forward(out, qkv, scratch, n, dim, heads, causal, starts, n_seqs, len);
        t[r] = now() - t0;
    }
    med = median_of(t, runs);
    free(qkv);
    free(out);
    free(scratch);
    free(t);
    return med;
}

/* layernorm_forward (fast) or layernorm_reference on n rows of dim: median seconds */
static double time_layernorm(int n, int dim, int fast, int runs)
{
    float *x = (float *)malloc(sizeof(float) * (size_t)n * dim), *y = (float *)malloc(sizeof(float) * (size_t)n * dim);
    float *w = (float *)malloc(sizeof(float) * dim), *b = (float *)malloc(sizeof(float) * dim);
    double *t = (double *)malloc(sizeof(double) * runs), med;
    int r, i;
    if (!x || !y || !w || !b || !t) {
        fprintf(stderr, "matmul_bench: out of memory\n");
        exit(1);
    }
    for (i = 0; i < n * dim; i++) x[i] = (float)((i * 7) % 13) * 0.05f - 0.3f;
    for (i = 0; i < dim; i++) w[i] = 1.0f, b[i] = 0.01f;
    for (r = -1; r < runs; r++) { /* run -1 warms up */
        double t0 = now();
        if (fast)
            layernorm_forward(y, x, w, b, n, dim, 1e-5f);
        else
            layernorm_reference(y, x, w, b, n, dim, 1e-5f);
        if (r >= 0) t[r] = now() - t0;
    }
    med = median_of(t, runs);
    free(x);
    free(y);
    free(w);
    free(b);
    free(t);
    return med;
}

int main(int argc, char **argv)
{
    static const shape shapes[] = {
        {"image: patch embedding", 49, 3072, 768, MM_STORE},
        {"image: q, k, v", 50, 768, 2304, MM_STORE},
        {"image: out_proj", 50, 768, 768, MM_RESIDUAL_ADD},
        {"image: fc1 + quick_gelu", 50, 768, 3072, MM_QUICK_GELU},
        {"image: fc1 + gelu (open_clip)", 50, 768, 3072, MM_GELU},
        {"image: fc2", 50, 3072, 768, MM_RESIDUAL_ADD},
        {"8 images: q, k, v", 400, 768, 2304, MM_STORE},
        {"8 images: fc1 + quick_gelu", 400, 768, 3072, MM_QUICK_GELU},
        {"8 images: fc2", 400, 3072, 768, MM_RESIDUAL_ADD},
        {"4 prompts: q, k, v", 28, 512, 1536, MM_STORE},
        {"4 prompts: fc1 + quick_gelu", 28, 512, 2048, MM_QUICK_GELU},
        {"4 prompts: fc2", 28, 2048, 512, MM_RESIDUAL_ADD},
        {"ViT-B/16 image: q, k, v", 197, 768, 2304, MM_STORE},
        {"ViT-B/16 image: fc1 + quick_gelu", 197, 768, 3072, MM_QUICK_GELU},
        {"ViT-B/16 image: fc2", 197, 3072, 768, MM_RESIDUAL_ADD},
        {"ViT-L/14 image: q, k, v", 257, 1024, 3072, MM_STORE},
        {"ViT-L/14 image: fc1 + quick_gelu", 257, 1024, 4096, MM_QUICK_GELU},
        {"ViT-L/14 image: fc2", 257, 4096, 1024, MM_RESIDUAL_ADD},
    };
    int runs = argc > 1 ? atoi(argv[1]) : 30, s, r, threads = team_size();
    double peak;
    if (runs < 1) {
        fprintf(stderr, "usage: matmul_bench [RUNS]\n");
        return 2;
    }
    peak = peak_flops();
    printf("float32 peak, %d thread%s: %.1f GFLOP/s (register-resident multiply-add loop); MM_NC %d, MM_MR %d\n\n",
           threads, threads > 1 ? "s" : "", peak * 1e-9, MM_NC, MM_MR);
    printf("| shape | rows x in -> out | median | GFLOP/s | of peak |\n| --- | --- | --- | --- | --- |\n");
    for (s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
        const shape *h = &shapes[s];
        size_t np = packed_size((size_t)h->in_dim, (size_t)h->out_dim);
        float *in = (float *)malloc(sizeof(float) * (size_t)h->n * h->in_dim);
        float *w = (float *)malloc(sizeof(float) * np), *b = (float *)malloc(sizeof(float) * h->out_dim);
        float *out = (float *)calloc((size_t)h->n * h->out_dim, sizeof(float));
        float *part = (float *)malloc(sizeof(float) * (size_t)h->n * h->out_dim); /* as the encoder gives fc2 */
        double *t = (double *)malloc(sizeof(double) * runs), med, flops;
        size_t i;
        if (!in || !w || !b || !out || !part || !t) {
            fprintf(stderr, "matmul_bench: out of memory\n");
            return 1;
        }
        for (i = 0; i < (size_t)h->n * h->in_dim; i++) in[i] = (float)((i * 7) % 13) * 0.01f - 0.06f;
        for (i = 0; i < np; i++) w[i] = (float)((i * 5) % 11) * 0.002f - 0.01f;
        for (i = 0; i < (size_t)h->out_dim; i++) b[i] = 0.01f;
        matmul_forward(out, in, w, CLIP_WEIGHTS_F32, b, h->n, h->in_dim, h->out_dim, h->mode, part, NULL, 0); /* warm-up */
        for (r = 0; r < runs; r++) {
            double t0 = now();
            matmul_forward(out, in, w, CLIP_WEIGHTS_F32, b, h->n, h->in_dim, h->out_dim, h->mode, part, NULL, 0);
            t[r] = now() - t0;
        }
        med = median_of(t, runs);
        flops = 2.0 * h->n * h->in_dim * h->out_dim / med;
        printf("| %s | %d x %d -> %d | %.3f ms | %.1f | %.0f%% |\n", h->what, h->n, h->in_dim, h->out_dim, med * 1e3,
               flops * 1e-9, 100.0 * flops / peak);
        free(in);
        free(part);
        free(w);
        free(b);
        free(out);
        free(t);
    }
    /* attention: q k^T and p v, 2 * 2 * len * keys * dim flops a sequence
       (a causal row has as many keys as its position) */
    {
        static const struct {
            const char *what;
            int len, n_seqs, dim, heads, causal;
        } att[] = {
            {"ViT-B/32 image", 50, 1, 768, 12, 0},  {"ViT-B/16 image", 197, 1, 768, 12, 0},
            {"ViT-L/14 image", 257, 1, 1024, 16, 0}, {"8 ViT-B/32 images", 50, 8, 768, 12, 0},
            {"4 prompts of 7 tokens", 7, 4, 512, 8, 1}, {"4 prompts of 77 tokens", 77, 4, 512, 8, 1},
        };
        printf("\n| attention (one layer) | sequences x tokens, width / heads | median | GFLOP/s | of peak |\n"
               "| --- | --- | --- | --- | --- |\n");
        for (s = 0; s < (int)(sizeof att / sizeof att[0]); s++) {
            double med = time_attention(att[s].len, att[s].n_seqs, att[s].dim, att[s].heads, att[s].causal, runs);
            double keys = att[s].causal ? att[s].len * (att[s].len + 1) / 2.0 : (double)att[s].len * att[s].len;
            double flops = 4.0 * keys * att[s].dim * att[s].n_seqs / med;
            printf("| %s | %d x %d, %d / %d%s | %.3f ms | %.1f | %.0f%% |\n", att[s].what, att[s].n_seqs, att[s].len,
                   att[s].dim, att[s].heads, att[s].causal ? ", causal" : "", med * 1e3, flops * 1e-9,
                   100.0 * flops / peak);
        }
    }
    /* LayerNorm: two per layer and one or two per tower (25 calls in a
       ViT-B/32 image pass) */
    {
        static const struct {
            const char *what;
            int n, dim;
        } ln[] = {{"image", 50, 768}, {"8 images", 400, 768}, {"4 prompts", 28, 512}};
        printf("\n| layernorm (one call) | rows x width | median | layernorm_reference | x reference |\n"
               "| --- | --- | --- | --- | --- |\n");
        for (s = 0; s < (int)(sizeof ln / sizeof ln[0]); s++) {
            double fast = time_layernorm(ln[s].n, ln[s].dim, 1, runs), ref = time_layernorm(ln[s].n, ln[s].dim, 0, runs);
            printf("| %s | %d x %d | %.4f ms | %.4f ms | %.2f |\n", ln[s].what, ln[s].n, ln[s].dim, fast * 1e3,
                   ref * 1e3, fast / ref);
        }
    }
    return 0;
}
