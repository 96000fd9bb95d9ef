/* Unit tests of clip.c's ops, the way llm.c's tests reach its kernels: this
   file includes clip.c itself (without its main), so it calls the static
   functions directly. Each fast op is compared with plain code written
   here from PyTorch's definition, on odd shapes:
     - matmul_forward (tiled, every epilogue) against matmul_reference, and
       matmul_reference against a plain (out, in) matmul, which also checks
       the panel layout (weight_at, packed_size);
     - layernorm_forward and layernorm_reference against a float64
       LayerNorm and each other;
     - attention_forward and attention_reference against a float64 softmax
       attention, one sequence, causal, and several sequences packed into
       one matrix (each also alone: the same bits), and against each other;
     - exp_fast against exp on a sweep of the floats, gelu_fast against
       the float64 GELU;
     - the reduced-precision weights: half_to_float on all 65,536 halves
       against IEEE's definition, halves_to_floats (F16C where built for
       it) against half_to_float, and matmul_expanded / expand_row on f16,
       bf16 and q8 data against weights decoded here from the layout README
       documents, bit for bit.
   Prints every max error; exits 1 on any failure. */
#define CLIP_NO_MAIN
#include "../clip.c"

static int failures, checks;

static void report(int ok, const char *what, double err)
{
    checks++;
    if (!ok) failures++;
    printf("%s %s: max err %.3g\n", ok ? "ok  " : "FAIL", what, err);
}

static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

/* max |a - b| / max(1, max |b|) */
static double rel_diff(const float *a, const double *b, size_t n)
{
    double err = 0.0, mag = 1.0;
    size_t i;
    for (i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (e > err || e != e) err = e != e ? INFINITY : e;
        if (fabs(b[i]) > mag) mag = fabs(b[i]);
    }
    return err / mag;
}

static double act_ref(double x, int mode)
{
    if (mode == MM_QUICK_GELU) return x / (1.0 + exp(-1.702 * x));
    if (mode == MM_GELU) return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    return x;
}

static double max_abs(const float *x, size_t n)
{
    double m = 0.0;
    size_t i;
    for (i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

static int finite_all(const float *x, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (!(fabsf(x[i]) <= FLT_MAX)) return 0;
    return 1;
}

static const char *mode_name[] = {"store", "residual add", "quick_gelu", "gelu"};

static void test_matmul(void)
{
    static const int shapes[][3] = {{1, 1, 1},    {1, 7, 3},    {3, 5, 65},   {5, 64, 64},    {50, 768, 97},
                                    {6, 64, 64},  {7, 64, 128}, {4, 3, 128},  {7, 129, 200}, {13, 40, 1},
                                    {2, 1, 300},  {9, 33, 63},  {11, 17, 129}, {50, 768, 2304},
                                    {23, 70, 130},  {7, 2500, 130}, {13, 1025, 64}}; /* 23: tiles of 6 and 5; the last two in k blocks */
    unsigned seed = 1;
    int s, mode, with_bias, i;
    for (s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
        int n = shapes[s][0], k = shapes[s][1], o = shapes[s][2];
        size_t np = packed_size((size_t)k, (size_t)o);
        float *in = (float *)malloc(sizeof(float) * n * k), *w = (float *)calloc(np, sizeof(float));
        float *wt = (float *)malloc(sizeof(float) * o * k), *b = (float *)malloc(sizeof(float) * o);
        float *start = (float *)malloc(sizeof(float) * n * o), *ref = (float *)malloc(sizeof(float) * n * o);
        float *fast = (float *)malloc(sizeof(float) * n * o), *part = (float *)malloc(sizeof(float) * n * o);
        float *inplace = (float *)malloc(sizeof(float) * n * o);
        double *plain = (double *)malloc(sizeof(double) * n * o), *refd = (double *)malloc(sizeof(double) * n * o);
        char what[128];
        for (i = 0; i < n * k; i++) in[i] = frand(&seed);
        /* PyTorch's (out, in) weight, and the same weight in panels */
        for (i = 0; i < o * k; i++) {
            int oo = i / k, kk = i % k;
            wt[i] = frand(&seed);
            w[(size_t)(oo / 64) * k * 64 + (size_t)kk * 64 + oo % 64] = wt[i];
        }
        for (i = 0; i < o; i++) b[i] = frand(&seed);
        for (i = 0; i < n * o; i++) start[i] = frand(&seed);
        for (with_bias = 0; with_bias < 2; with_bias++)
            for (mode = MM_STORE; mode <= MM_GELU; mode++) {
                int r, c, kk;
                double err;
                memcpy(ref, start, sizeof(float) * n * o);
                memcpy(fast, start, sizeof(float) * n * o);
                matmul_reference(ref, in, w, with_bias ? b : NULL, n, k, o, mode);
                memcpy(inplace, start, sizeof(float) * n * o);
                for (i = 0; i < n * o; i++) part[i] = -1e30f; /* must all be overwritten before they are read */
                matmul_forward(fast, in, w, CLIP_WEIGHTS_F32, with_bias ? b : NULL, n, k, o, mode, part, NULL, 0);
                /* without a partial buffer: k blocks kept in out, or a residual add in one block; the same sums */
                matmul_forward(inplace, in, w, CLIP_WEIGHTS_F32, with_bias ? b : NULL, n, k, o, mode, NULL, NULL, 0);
                err = 0.0;
                for (i = 0; i < n * o; i++)
                    if (inplace[i] != fast[i]) err = fmax(err, fabs((double)inplace[i] - fast[i]));
                snprintf(what, sizeof what, "matmul_forward %dx%d @ %dx%d, %s%s: %d k block(s) with partial sums "
                         "apart = in out / in one", n, k, k, o, mode_name[mode], with_bias ? ", bias" : "", k_blocks(k, mode, part));
                report(FLT_EVAL_METHOD == 0 ? err == 0.0 : err <= 1e-6 * fmax(1.0, max_abs(fast, (size_t)n * o)), what,
                       err);
                /* the plain definition, in float64 */
                for (r = 0; r < n; r++)
                    for (c = 0; c < o; c++) {
                        double acc = with_bias ? b[c] : 0.0;
                        for (kk = 0; kk < k; kk++) acc += (double)in[r * k + kk] * wt[c * k + kk];
                        plain[r * o + c] = mode == MM_RESIDUAL_ADD ? start[r * o + c] + acc : act_ref(acc, mode);
                    }
                for (i = 0; i < n * o; i++) refd[i] = ref[i];
                err = rel_diff(fast, refd, (size_t)n * o);
                snprintf(what, sizeof what, "matmul_forward %dx%d @ %dx%d, %s%s vs matmul_reference", n, k, k, o,
                         mode_name[mode], with_bias ? ", bias" : "");
                report(err <= 1e-6, what, err);
                err = rel_diff(ref, plain, (size_t)n * o);
                snprintf(what, sizeof what, "matmul_reference %dx%d @ %dx%d, %s%s vs float64 (out, in) matmul", n, k,
                         k, o, mode_name[mode], with_bias ? ", bias" : "");
                report(err <= 1e-5, what, err);
            }
        free(in);
        free(w);
        free(wt);
        free(b);
        free(start);
        free(ref);
        free(fast);
        free(part);
        free(inplace);
        free(plain);
        free(refd);
    }
    /* the tile height wastes fewest rows; packed sizes saturate instead of wrapping */
    report(tile_rows(12) == 6 && tile_rows(10) == 5 && tile_rows(8) == 5 && tile_rows(50) == 5 && tile_rows(28) == 6 &&
               tile_rows(1) == 5,
           "tile_rows", 0.0);
    /* row_split covers 0 .. n-1 in order, tall tiles first, repeating a
       row only below 20 (and then fewer than 5) */
    {
        int n, bad = 0;
        char what[96];
        for (n = 1; n <= 1000 && !bad; n++) {
            int tall, tiles = row_split(n, &tall), t, next = 0, r0, mr;
            for (t = 0; t < tiles; t++) {
                row_tile(tall, t, &r0, &mr);
                if (r0 != next || (mr != MM_MR && mr != MM_MR - 1) || (t < tall) != (mr == MM_MR)) bad = n;
                next = r0 + mr;
            }
            if (next < n || next - n >= MM_MR - 1 || (n >= 20 && next != n)) bad = n;
        }
        snprintf(what, sizeof what, "row_split, n = 1 .. 1000 (first wrong n: %d)", bad);
        report(!bad, what, 0.0);
        report(row_split(28, &n) == 5 && n == 3 && row_split(50, &n) == 9 && n == 5 && row_split(7, &n) == 2 && n == 0,
               "row_split(28), (50), (7): 3 x 6 + 2 x 5, 5 x 6 + 4 x 5, 2 x 5", 0.0);
    }
    report(packed_size(3, 65) == 3 * 128 && packed_size(SIZE_MAX / 64, 65) == SIZE_MAX, "packed_size", 0.0);
}

/* IEEE binary16 by its definition, in double */
static float half_by_definition(unsigned h)
{
    unsigned e = h >> 10 & 31, m = h & 1023;
    double v = e == 0 ? ldexp((double)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1.0 + m / 1024.0, (int)e - 15);
    return (float)(h & 0x8000 ? -v : v);
}

/* W[o][k] of a typed linear weight (in_dim k's, panels of 64 outputs), read
   from the layout README's "The weights file" describes */
static float typed_weight_at(const unsigned char *w, int type, int in_dim, int o, int k)
{
    size_t panel = (size_t)(o / 64), col = (size_t)(o % 64);
    if (type == CLIP_WEIGHTS_Q8) {
        size_t blocks = (size_t)(in_dim + 31) / 32, block = (size_t)k / 32;
        const unsigned char *b = w + (panel * blocks + block) * (64 * 2 + 32 * 64);
        unsigned scale = b[2 * col] | b[2 * col + 1] << 8;
        return (float)(signed char)b[128 + (size_t)(k % 32) * 64 + col] * half_by_definition(scale);
    } else {
        const unsigned char *b = w + ((panel * (size_t)in_dim + (size_t)k) * 64 + col) * 2;
        unsigned h = b[0] | b[1] << 8;
        return type == CLIP_WEIGHTS_F16 ? half_by_definition(h) : bits_to_float((uint32_t)h << 16);
    }
}

static void test_typed(void)
{
    static const int shapes[][3] = {{1, 1, 1}, {3, 5, 65}, {7, 33, 128}, {50, 96, 200}, {13, 70, 64}, {6, 588, 129}, {9, 1100, 70}};
    static const char *names[] = {"f32", "f16", "bf16", "q8"};
    unsigned seed = 4, h;
    int s, type, i, bad = 0;
    /* every half, exactly (NaNs keep their payload) */
    for (h = 0; h < 65536; h++) {
        float got = half_to_float((uint16_t)h), want = half_by_definition(h);
        uint32_t wb = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) ? (h & 0x8000u) << 16 | 0x7f800000u | (h & 0x3ffu) << 13
                                                             : float_to_bits(want);
        if (float_to_bits(got) != wb) bad++;
    }
    report(bad == 0, "half_to_float on all 65,536 halves vs IEEE binary16 (mismatches)", bad);
    /* the fast conversion, in runs of every length up to 19 and the rest
       in one: the same floats (a NaN may come back quiet) */
    {
        static uint16_t all[65536];
        static float fast[65536];
        size_t at = 0, len = 0;
        for (h = 0; h < 65536; h++) all[h] = (uint16_t)h;
        for (bad = 0; at < 65536; at += len) {
            len = at + len + 1 < 65536 && len < 19 ? len + 1 : 65536 - at;
            halves_to_floats(fast + at, all + at, len);
        }
        for (h = 0; h < 65536; h++) {
            uint32_t got = float_to_bits(fast[h]), want = float_to_bits(half_to_float((uint16_t)h));
            if (got != want && !(isnan(fast[h]) && (got | 0x00400000u) == (want | 0x00400000u))) bad++;
        }
        report(bad == 0, "halves_to_floats on all 65,536 halves vs half_to_float (mismatches)", bad);
    }
    for (type = CLIP_WEIGHTS_F16; type <= CLIP_WEIGHTS_Q8; type++)
        for (s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
            int n = shapes[s][0], k = shapes[s][1], o = shapes[s][2], r, c;
            size_t bytes = linear_bytes((size_t)k, (size_t)o, type), np = packed_size((size_t)k, (size_t)o);
            unsigned char *w = (unsigned char *)malloc(bytes);
            float *wf = (float *)calloc(np, sizeof(float)), *in = (float *)malloc(sizeof(float) * n * k);
            float *b = (float *)malloc(sizeof(float) * o), *want = (float *)malloc(sizeof(float) * n * o);
            float *got = (float *)malloc(sizeof(float) * n * o), *part = (float *)malloc(sizeof(float) * n * o);
            float *tiled = (float *)malloc(sizeof(float) * n * o);
            float row[600];
            clip_model m;
            clip_context ctx;
            char what[160], err[CLIP_ERR_SIZE];
            double diff = 0.0;
            memset(&m, 0, sizeof m);
            memset(&ctx, 0, sizeof ctx);
            m.cfg.weight_type = type;
            ctx.model = &m;
            /* random finite values: halves with exponents up to 2^1, scales up to 2^-4 */
            for (i = 0; i < (int)bytes; i++) w[i] = (unsigned char)(frand(&seed) * 128.0f + 128.0f);
            if (type == CLIP_WEIGHTS_Q8) {
                size_t blk, col, per = 64 * 2 + 32 * 64;
                for (blk = 0; blk < bytes / per; blk++)
                    for (col = 0; col < 64; col++) w[blk * per + 2 * col + 1] &= 0x2f; /* |scale| < 2^-4 */
            } else {
                for (i = 1; i < (int)bytes; i += 2) w[i] &= 0xbf; /* exponent below the top: finite */
            }
            for (r = 0; r < o; r++)
                for (c = 0; c < k; c++)
                    wf[(size_t)(r / 64) * k * 64 + (size_t)c * 64 + r % 64] = typed_weight_at(w, type, k, r, c);
            for (i = 0; i < n * k; i++) in[i] = frand(&seed);
            for (i = 0; i < o; i++) b[i] = frand(&seed);
            for (i = 0; i < n * o; i++) want[i] = frand(&seed);
            if (reserve_panels(&ctx, k, err)) {
                report(0, err, 0.0);
                continue;
            }
            if (!ctx.panel_slots) { /* a type the tiles take straight (in_tile): expanded on other targets */
                ctx.panels = (float *)malloc(sizeof(float) * k * 64);
                ctx.panel_slots = 1;
                ctx.panel_floats = (size_t)k * 64;
            }
            memcpy(got, want, sizeof(float) * n * o);
            memcpy(tiled, want, sizeof(float) * n * o);
            matmul_forward(want, in, wf, CLIP_WEIGHTS_F32, b, n, k, o, MM_RESIDUAL_ADD, NULL, NULL, 0);
            matmul_expanded(&ctx, got, in, w, type, b, n, k, o, MM_RESIDUAL_ADD, part, NULL, 0, 0);
            for (i = 0; i < n * o; i++)
                if (got[i] != want[i]) diff = fmax(diff, fabs((double)got[i] - want[i]));
            snprintf(what, sizeof what, "matmul_expanded %s %dx%d @ %dx%d vs matmul_forward on the decoded weights "
                     "(%d panel buffers)", names[type], n, k, k, o, ctx.panel_slots);
            report(diff == 0.0 && finite_all(got, (size_t)n * o), what, diff);
            if (in_tile(type)) { /* the tiles converting each weight row as they read it */
                matmul_forward(tiled, in, w, type, b, n, k, o, MM_RESIDUAL_ADD, part, NULL, 0);
                for (diff = 0.0, i = 0; i < n * o; i++)
                    if (tiled[i] != want[i]) diff = fmax(diff, fabs((double)tiled[i] - want[i]));
                snprintf(what, sizeof what, "matmul_forward on %s weights %dx%d @ %dx%d vs float32 on the decoded "
                         "weights", names[type], n, k, k, o);
                report(diff == 0.0 && finite_all(tiled, (size_t)n * o), what, diff);
            }
            /* an embedding table of o rows of k values, in the rows layout */
            if (k <= 600 && type != CLIP_WEIGHTS_Q8) {
                int ok = 1;
                for (r = 0; r < o && ok; r++) {
                    expand_row(row, w, type, (size_t)r, k);
                    for (c = 0; c < k; c++) {
                        const unsigned char *e = w + ((size_t)r * k + c) * 2;
                        unsigned hh = e[0] | e[1] << 8;
                        float v = type == CLIP_WEIGHTS_F16 ? half_by_definition(hh) : bits_to_float((uint32_t)hh << 16);
                        if (float_to_bits(row[c]) != float_to_bits(v)) ok = 0;
                    }
                }
                snprintf(what, sizeof what, "expand_row %s, %d rows of %d", names[type], o, k);
                report(ok, what, ok ? 0.0 : 1.0);
            } else if (type == CLIP_WEIGHTS_Q8 && k <= 600) { /* row holds 600 */
                int ok = 1;
                size_t rb = row_bytes((size_t)k, type);
                for (r = 0; r < o && ok && (size_t)(r + 1) * rb <= bytes; r++) {
                    expand_row(row, w, type, (size_t)r, k);
                    for (c = 0; c < k; c++) {
                        const unsigned char *blk = w + (size_t)r * rb + (size_t)(c / 32) * 34;
                        float v = (float)(signed char)blk[2 + c % 32] * half_by_definition(blk[0] | blk[1] << 8);
                        /* these bytes were not made as rows: a scale may be infinite or NaN */
                        if (float_to_bits(row[c]) != float_to_bits(v) && !(v != v && row[c] != row[c])) ok = 0;
                    }
                }
                snprintf(what, sizeof what, "expand_row q8, rows of %d", k);
                report(ok, what, ok ? 0.0 : 1.0);
            }
            free(ctx.panels);
            free(w);
            free(wf);
            free(part);
            free(in);
            free(b);
            free(want);
            free(got);
            free(tiled);
        }
    /* the byte counts of the layout, and that they saturate instead of wrapping */
    report(linear_bytes(33, 65, CLIP_WEIGHTS_Q8) == 2 * 2 * 2176 && linear_bytes(33, 65, CLIP_WEIGHTS_F16) == 33 * 128 * 2 &&
               row_bytes(33, CLIP_WEIGHTS_Q8) == 2 * 34 && linear_bytes(SIZE_MAX / 64, 65, CLIP_WEIGHTS_Q8) == SIZE_MAX &&
               row_bytes(SIZE_MAX / 2, CLIP_WEIGHTS_F16) == SIZE_MAX,
           "linear_bytes, row_bytes", 0.0);
}

static void test_layernorm(void)
{
    static const int shapes[][2] = {{1, 1}, {3, 7}, {5, 64}, {50, 768}, {2, 1000}, {4, 33}, {3, 1057}};
    unsigned seed = 2;
    int s, i, r;
    for (s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
        int n = shapes[s][0], d = shapes[s][1];
        float *x = (float *)malloc(sizeof(float) * n * d), *y = (float *)malloc(sizeof(float) * n * d);
        float *w = (float *)malloc(sizeof(float) * d), *b = (float *)malloc(sizeof(float) * d);
        float *ref = (float *)malloc(sizeof(float) * n * d);
        double *want = (double *)malloc(sizeof(double) * n * d), err;
        char what[96];
        for (i = 0; i < n * d; i++) x[i] = 3.0f * frand(&seed) + 0.5f;
        for (i = 0; i < d; i++) {
            w[i] = 1.0f + 0.1f * frand(&seed);
            b[i] = 0.1f * frand(&seed);
        }
        for (r = 0; r < n; r++) {
            double mu = 0.0, var = 0.0;
            for (i = 0; i < d; i++) mu += x[r * d + i];
            mu /= d;
            for (i = 0; i < d; i++) var += (x[r * d + i] - mu) * (x[r * d + i] - mu);
            var /= d;
            for (i = 0; i < d; i++) want[r * d + i] = (x[r * d + i] - mu) / sqrt(var + 1e-5) * w[i] + b[i];
        }
        layernorm_reference(y, x, w, b, n, d, 1e-5f);
        err = rel_diff(y, want, (size_t)n * d);
        snprintf(what, sizeof what, "layernorm_reference %dx%d vs float64", n, d);
        report(err <= 1e-5, what, err);
        memcpy(ref, y, sizeof(float) * n * d);
        layernorm_forward(y, x, w, b, n, d, 1e-5f);
        err = rel_diff(y, want, (size_t)n * d);
        snprintf(what, sizeof what, "layernorm_forward %dx%d vs float64", n, d);
        report(err <= 1e-5, what, err);
        /* the lanes change only the double sums' rounding: at most an ulp of a float */
        for (err = 0.0, i = 0; i < n * d; i++) err = fmax(err, fabs((double)y[i] - ref[i]) / fmax(1.0, fabs(ref[i])));
        snprintf(what, sizeof what, "layernorm_forward %dx%d vs layernorm_reference", n, d);
        report(err <= 2.4e-7, what, err);
        layernorm_forward(x, x, w, b, n, d, 1e-5f); /* in place, as the vision tower's pre_layrnorm runs */
        err = rel_diff(x, want, (size_t)n * d);
        snprintf(what, sizeof what, "layernorm_forward %dx%d in place", n, d);
        report(err <= 1e-5, what, err);
        free(x);
        free(y);
        free(w);
        free(b);
        free(want);
        free(ref);
    }
}

/* softmax(q k^T / sqrt(hd)) v for one head and row i over rows j0..j1, float64 */
static void attention_row_ref(double *o, const float *qkv, int dim, int heads, int h, int i, int j0, int j1)
{
    int hd = dim / heads, j, d;
    double mx = -INFINITY, sum = 0.0, *s = (double *)malloc(sizeof(double) * (size_t)(j1 - j0 + 1));
    for (j = j0; j <= j1; j++) {
        double dot = 0.0;
        for (d = 0; d < hd; d++) dot += (double)qkv[i * 3 * dim + h * hd + d] * qkv[j * 3 * dim + dim + h * hd + d];
        s[j - j0] = dot / sqrt((double)hd);
        if (s[j - j0] > mx) mx = s[j - j0];
    }
    for (j = j0; j <= j1; j++) sum += s[j - j0] = exp(s[j - j0] - mx);
    for (d = 0; d < hd; d++) {
        double acc = 0.0;
        for (j = j0; j <= j1; j++) acc += s[j - j0] / sum * qkv[j * 3 * dim + 2 * dim + h * hd + d];
        o[d] = acc;
    }
    free(s);
}

static void test_attention(void)
{
    /* n rows, dim, heads, causal, sequences packed (0: one sequence) */
    static const int cases[][5] = {{1, 8, 1, 0, 0},    {5, 12, 3, 0, 0},  {50, 64, 4, 0, 0},  {7, 40, 5, 1, 0},
                                   {77, 64, 8, 1, 0},  {20, 24, 2, 1, 3}, {9, 16, 2, 0, 2},   {197, 768, 12, 0, 0},
                                   {150, 160, 2, 0, 3}, {140, 128, 2, 1, 4}, {31, 6, 3, 0, 5},
                                   {50, 32, 2, 1, 3},  {50, 72, 3, 0, 3},  {16, 40, 1, 1, 0},  {17, 40, 1, 1, 0}};
    unsigned seed = 3;
    int c, i;
    for (c = 0; c < (int)(sizeof cases / sizeof cases[0]); c++) {
        int n = cases[c][0], dim = cases[c][1], heads = cases[c][2], causal = cases[c][3];
        int nseq = cases[c][4] ? cases[c][4] : 1, hd = dim / heads, h, s, seq = 0, starts[8];
        float *qkv = (float *)malloc(sizeof(float) * n * 3 * dim), *out = (float *)malloc(sizeof(float) * n * dim);
        float *ref = (float *)malloc(sizeof(float) * n * dim), *att;
        double *want = (double *)malloc(sizeof(double) * n * dim), *refd = (double *)malloc(sizeof(double) * n * dim);
        double err;
        char what[160], shape[96];
        for (i = 0; i < n * 3 * dim; i++) qkv[i] = 2.0f * frand(&seed);
        /* sequences of unequal lengths, one after another */
        for (s = 0, starts[0] = 0; s < nseq; s++) {
            starts[s + 1] = s + 1 < nseq ? starts[s] + n / nseq + s : n;
            if (starts[s + 1] - starts[s] > seq) seq = starts[s + 1] - starts[s];
        }
        att = (float *)malloc(sizeof(float) * attention_scratch(n, dim, heads, seq, nseq));
        attention_forward(out, qkv, att, n, dim, heads, causal, starts, nseq, seq);
        attention_reference(ref, qkv, att, n, dim, heads, causal, starts, nseq, seq);
        for (s = 0; s < nseq; s++)
            for (i = starts[s]; i < starts[s + 1]; i++)
                for (h = 0; h < heads; h++)
                    attention_row_ref(want + i * dim + h * hd, qkv, dim, heads, h, i, starts[s],
                                      causal ? i : starts[s + 1] - 1);
        snprintf(shape, sizeof shape, "%d rows, dim %d, %d heads%s%s", n, dim, heads, causal ? ", causal" : "",
                 nseq > 1 ? ", packed sequences" : "");
        err = rel_diff(out, want, (size_t)n * dim);
        snprintf(what, sizeof what, "attention_forward %s vs float64", shape);
        report(err <= 1e-5, what, err);
        err = rel_diff(ref, want, (size_t)n * dim);
        snprintf(what, sizeof what, "attention_reference %s vs float64", shape);
        report(err <= 1e-5, what, err);
        for (i = 0; i < n * dim; i++) refd[i] = ref[i];
        err = rel_diff(out, refd, (size_t)n * dim);
        snprintf(what, sizeof what, "attention_forward %s vs attention_reference", shape);
        report(err <= 2e-6, what, err);
        /* each sequence alone gives its rows of the packed result, bit for bit */
        if (nseq > 1) {
            int same = 1, one[2];
            for (s = 0; s < nseq; s++) {
                int len = starts[s + 1] - starts[s];
                one[0] = 0;
                one[1] = len;
                attention_forward(ref, qkv + (size_t)starts[s] * 3 * dim, att, len, dim, heads, causal, one, 1, len);
                if (memcmp(ref, out + (size_t)starts[s] * dim, sizeof(float) * len * dim)) same = 0;
            }
            snprintf(what, sizeof what, "attention_forward %s: each sequence alone, bit for bit", shape);
            report(same, what, 0.0);
        }
        free(qkv);
        free(out);
        free(ref);
        free(want);
        free(refd);
        free(att);
    }
}

/* exp_fast against libm's expf on a sweep of all floats (every 61st), in
   units in the last place of the float64 result, and its saturation */
static void test_exp_fast(void)
{
    double worst = 0.0, at = 0.0;
    uint32_t u;
    int bad = 0;
    for (u = 0; u < 0xFF800000u; u += 61) {
        float x, y;
        double want, ulp;
        memcpy(&x, &u, sizeof x);
        y = exp_fast(x);
        want = exp((double)x);
        if (!(x >= -87.0f && x <= 88.7228317f)) { /* outside: saturates (or NaN) */
            if (x != x ? y == y : x < 0 ? !(y >= 0.0f && y <= 1.2e-38f) : !(y >= 3.4e38f && y <= FLT_MAX)) bad++, printf("     exp_fast(%.9g) = %.9g\n", x, y);
            continue;
        }
        if (want < 2e-38) { /* the bottom end: 0 or within a relative 1e-6 */
            if (y != 0.0f && fabs(y - want) > 1e-6 * want) bad++;
            continue;
        }
        ulp = ldexp(1.0, ilogb(want) - 23);
        if (fabs(y - want) / ulp > worst) worst = fabs(y - want) / ulp, at = x;
    }
    printf("     exp_fast: worst %.3f ulp at x = %.9g\n", worst, at);
    report(worst <= 1.5 && !bad, "exp_fast vs exp on a sweep of the floats (ulp), saturation outside", worst);
}

/* gelu_fast against the float64 GELU, x * Phi(x), on a sweep of [-30, 30] in
   steps of 2^-12 and at the ends */
static void test_gelu_fast(void)
{
    static const float ends[] = {-1e30f, -1e4f, -87.0f, 0.0f, 1e-30f, 1e4f, 1e30f};
    double worst = 0.0, at = 0.0;
    int i, bad = 0;
    for (i = -30 * 4096; i <= 30 * 4096 + 6; i++) {
        float x = i <= 30 * 4096 ? (float)i / 4096.0f : ends[i - 30 * 4096 - 1];
        double want = 0.5 * x * (1.0 + erf(x / sqrt(2.0))), e = fabs(gelu_fast(x) - want);
        if (!(e <= 1e-30 || e / (fabs(x) > 1.0 ? fabs(x) : 1.0) <= 2.5e-7)) bad++;
        e /= fabs(x) > 1.0 ? fabs(x) : 1.0;
        if (e > worst) worst = e, at = x;
    }
    printf("     gelu_fast: worst %.3g max(1, |x|) at x = %.9g\n", worst, at);
    report(!bad && gelu_fast(NAN) != gelu_fast(NAN), "gelu_fast vs float64 GELU (error / max(1, |x|)), NaN", worst);
}

int main(void)
{
    test_matmul();
    test_typed();
    test_layernorm();
    test_attention();
    test_exp_fast();
    test_gelu_fast();
    printf("test_ops: %d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
