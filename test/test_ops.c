/* Unit tests of clip.c's primitive ops: the tiled matmul against the
   reference matmul on odd shapes (weights in the panel layout: (in, out)
   in panels of 64 output columns, the last zero-padded). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void clip_internal_matmul(float *out, const float *in, const float *w, const float *bias, int n, int in_dim,
                          int out_dim, int reference);

static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

int main(void)
{
    static const int shapes[][3] = {{1, 1, 1}, {1, 7, 3}, {3, 5, 65}, {5, 64, 64}, {50, 768, 97}, {50, 768, 2304}, {6, 64, 64}, {7, 64, 128},
                                    {4, 3, 128}, {7, 129, 200}, {13, 40, 1}, {2, 1, 300}};
    unsigned seed = 1;
    int s, failed = 0;
    for (s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
        int n = shapes[s][0], k = shapes[s][1], o = shapes[s][2], i, with_bias;
        int padded = (o + 63) / 64 * 64;
        float *in = malloc(sizeof(float) * n * k), *w = calloc((size_t)k * padded, sizeof(float));
        float *b = malloc(sizeof(float) * o), *r = malloc(sizeof(float) * n * o), *f = malloc(sizeof(float) * n * o);
        for (i = 0; i < n * k; i++) in[i] = frand(&seed);
        for (i = 0; i < k * o; i++) { /* element (kk, oo) of panel oo / 64 */
            int kk = i / o, oo = i % o;
            w[(size_t)(oo / 64) * k * 64 + (size_t)kk * 64 + oo % 64] = frand(&seed);
        }
        for (i = 0; i < o; i++) b[i] = frand(&seed);
        for (with_bias = 0; with_bias < 2; with_bias++) {
            double maxerr = 0.0, maxval = 0.0;
            clip_internal_matmul(r, in, w, with_bias ? b : NULL, n, k, o, 1);
            clip_internal_matmul(f, in, w, with_bias ? b : NULL, n, k, o, 0);
            for (i = 0; i < n * o; i++) {
                double e = fabs((double)r[i] - f[i]);
                if (e > maxerr) maxerr = e;
                if (fabs(r[i]) > maxval) maxval = fabs(r[i]);
            }
            if (maxerr > 1e-6 * (maxval > 1 ? maxval : 1)) {
                printf("FAIL matmul %dx%d @ %dx%d bias=%d: max abs err %.3g\n", n, k, k, o, with_bias, maxerr);
                failed++;
            } else {
                printf("ok   matmul %dx%d @ %dx%d bias=%d: max abs err %.3g\n", n, k, k, o, with_bias, maxerr);
            }
        }
        free(in);
        free(w);
        free(b);
        free(r);
        free(f);
    }
    return failed ? 1 : 0;
}
