/* selftest.c - clip_selftest: the built-in tiny model (generated/selftest_data.h,
   made by tools/gen_selftest.py) through every stage, each compared with
   the reference values stored beside it.

   It is for a porter with a compiler and nothing else: no files, no Python.
   clip_selftest decodes the data into an allocation and runs the checks on
   it; the two halves are also callable on their own (selftest.h), so that
   a board can keep the decoded data in flash and use the weights there.
   Each stage runs on the reference's own inputs (the stored token ids, the
   stored crop), so one broken stage does not drag the others down: the
   first line that says FAIL is where to look. */
#include "../platform/platform.h"

#include <math.h>
#include <string.h>

#include "../generated/selftest_data.h"
#include "selftest.h"

/* Tolerances. Activations, features and logits: the largest absolute error
   over the stage divided by the largest absolute reference value. float32
   against the float64 reference gives about 1e-6 on this model; the broken
   builds of test/test_selftest.py give 1e-2 and more (GELU's tanh form
   instead of erf: 2e-4). Token ids and crop bytes must be equal. */
#define TOL_ACTIVATIONS 1e-4
#define TOL_LOGITS 1e-4

#define LINE_SIZE 320

typedef struct {
    void (*report)(void *ctx, const char *line);
    void *ctx;
    char *err;
    int failed;        /* a stage disagreed; err names the first one */
    const float *ref;  /* the reference values (float32, in the data or a copy) */
    int next, end;     /* the stages the probe is to see next: selftest_stages[next .. end) */
} selftest;

/* x in the form %.1e gives on C99 libraries ("2.3e-01"): written out here
   because some C libraries print three exponent digits. */
static void sci(char *buf, double x)
{
    int e = 0, m;
    if (x != x) {
        strcpy(buf, "nan");
        return;
    }
    if (x > 1e300) {
        strcpy(buf, "inf");
        return;
    }
    if (x > 0) {
        e = (int)floor(log10(x));
        m = (int)floor(x / pow(10.0, e) * 10.0 + 0.5);
        if (m >= 100) { /* 9.96 rounds to 10.0 */
            m = 10;
            e++;
        } else if (m < 10) { /* log10 rounded up past an integer */
            e--;
            m = (int)floor(x / pow(10.0, e) * 10.0 + 0.5);
        }
    } else {
        m = 0;
    }
    sprintf(buf, "%d.%de%c%02d", m / 10, m % 10, e < 0 ? '-' : '+', e < 0 ? -e : e);
}

static void say(selftest *st, const char *line)
{
    if (st->report) st->report(st->ctx, line);
}

/* One stage's verdict: a report line, and the first failure into err. */
static void verdict(selftest *st, int ok, const char *stage, const char *detail, const char *tol)
{
    char line[LINE_SIZE];
    sprintf(line, "%-4s %.60s: %.200s%s", ok ? "ok" : "FAIL", stage, detail, tol);
    say(st, line);
    if (!ok && !st->failed) {
        st->failed = 1;
        clip_error(st->err, "first divergence at %.60s: %.150s%s", stage, detail, tol);
    }
}

/* A hard failure (something that should not fail did): no further stages. */
static int fatal(selftest *st, const char *stage, const char *msg)
{
    char line[LINE_SIZE];
    if (!strncmp(msg, "clip: ", 6)) msg += 6;
    sprintf(line, "FAIL %.60s: %.220s", stage, msg);
    say(st, line);
    if (!st->failed) clip_error(st->err, "%.60s: %.180s", stage, msg);
    st->failed = 1;
    return -1;
}

/* "vision.layer", 2 -> "vision layer 2" */
static void stage_name(char *buf, const char *stage, int layer)
{
    size_t i, n = strlen(stage);
    if (n > 40) n = 40;
    for (i = 0; i < n; i++) buf[i] = stage[i] == '.' ? ' ' : stage[i];
    buf[n] = '\0';
    if (layer >= 0) sprintf(buf + n, " %d", layer);
}

/* ---- the built-in data ---- */

#ifndef CLIP_SELFTEST_NO_TEXT
/* A digit of the text encoding (see selftest_data.h), or -1. */
static int b85_digit(int c)
{
    if (c < 35 || c > 121 || c == 63 || c == 92) return -1;
    return c - 35 - (c > 63) - (c > 92);
}

static int decode_data(unsigned char *out, size_t size, char *err)
{
    size_t pos = 0, k, n_lines = sizeof selftest_data / sizeof selftest_data[0];
    uint32_t w = 0, h = 0x811C9DC5u;
    int nd = 0, zeros = 0, d;
    for (k = 0; k < n_lines; k++) {
        const unsigned char *s;
        for (s = (const unsigned char *)selftest_data[k]; *s; s++) {
            if (*s == 'z' && nd == 0 && !zeros) {
                zeros = 1;
                continue;
            }
            d = b85_digit(*s);
            if (d < 0) return clip_error(err, "line %lu holds the character %d", (unsigned long)k + 1, *s);
            if (zeros) {
                size_t bytes = (size_t)(d + 1) * 4;
                if (bytes > size - pos) break;
                memset(out + pos, 0, bytes);
                pos += bytes;
                zeros = 0;
                continue;
            }
            if (w > (0xFFFFFFFFu - (uint32_t)d) / 85u) return clip_error(err, "line %lu: a group overflows",
                                                                      (unsigned long)k + 1);
            w = w * 85u + (uint32_t)d;
            if (++nd == 5) {
                if (size - pos < 4) break;
                out[pos] = (unsigned char)(w & 0xFF);
                out[pos + 1] = (unsigned char)(w >> 8 & 0xFF);
                out[pos + 2] = (unsigned char)(w >> 16 & 0xFF);
                out[pos + 3] = (unsigned char)(w >> 24 & 0xFF);
                pos += 4;
                nd = 0;
                w = 0;
            }
        }
        if (*s) return clip_error(err, "more than the %lu bytes expected", (unsigned long)size);
    }
    if (nd || zeros || pos != size)
        return clip_error(err, "%lu bytes decoded, %lu expected", (unsigned long)pos, (unsigned long)size);
    for (k = 0; k < size; k++) h = (h ^ out[k]) * 0x01000193u;
    if ((h & 0xFFFFFFFFu) != (uint32_t)SELFTEST_DATA_FNV1A)
        return clip_error(err, "checksum %08lX, expected %08lX", (unsigned long)(h & 0xFFFFFFFFu),
                          (unsigned long)SELFTEST_DATA_FNV1A);
    return 0;
}
#else
/* A build that gets the data decoded from elsewhere (baremetal/: in the
   board's flash) and calls clip_selftest_run: the text encoding (some
   200 KB of read-only data nothing would read) stays out of the image. */
static int decode_data(unsigned char *out, size_t size, char *err)
{
    (void)out;
    (void)size;
    return clip_error(err, "this build leaves out the encoded data (CLIP_SELFTEST_NO_TEXT)");
}
#endif

/* A little-endian float32, on any host (IEEE floats, as the library assumes). */
static float le_float(const unsigned char *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- comparisons ---- */

/* A computed stage against stage s of the table: max abs error / max abs reference. */
static void compare(selftest *st, int s, const float *x, int rows, int cols, double tol)
{
    const selftest_stage *r = &selftest_stages[s];
    const float *ref = st->ref + r->off;
    char name[64], detail[200], tol_s[16], err_s[16], tail[32];
    double max_err = 0.0, max_ref = 0.0;
    long i, n = (long)rows * cols, worst = 0;
    stage_name(name, r->stage, r->layer);
    if (rows != r->rows || cols != r->cols) {
        sprintf(detail, "%d x %d values, expected %d x %d", rows, cols, r->rows, r->cols);
        verdict(st, 0, name, detail, "");
        return;
    }
    for (i = 0; i < n; i++) {
        double e = fabs((double)x[i] - ref[i]);
        if (!(e <= max_err)) { /* NaN counts as the worst */
            max_err = e == e ? e : HUGE_VAL;
            worst = i;
        }
        if (fabs(ref[i]) > max_ref) max_ref = fabs(ref[i]);
    }
    if (max_ref == 0.0) max_ref = 1.0;
    sci(err_s, max_err / max_ref);
    sci(tol_s, tol);
    sprintf(tail, " (tol %s)", tol_s);
    if (max_err / max_ref <= tol)
        sprintf(detail, "max rel err %s", err_s);
    else
        sprintf(detail, "max rel err %s at row %ld, col %ld", err_s, worst / cols, worst % cols);
    verdict(st, max_err / max_ref <= tol, name, detail, tail);
}

/* The probe: each stage must come in the table's order with its shape. */
static void probe(void *ctx, const char *stage, int layer, const float *x, int rows, int cols)
{
    selftest *st = (selftest *)ctx;
    char name[64], want[64], detail[160];
    if (st->next < st->end && !strcmp(stage, selftest_stages[st->next].stage) &&
        layer == selftest_stages[st->next].layer) {
        compare(st, st->next++, x, rows, cols, TOL_ACTIVATIONS);
        return;
    }
    stage_name(name, stage, layer);
    if (st->next < st->end) {
        stage_name(want, selftest_stages[st->next].stage, selftest_stages[st->next].layer);
        sprintf(detail, "came where %s was expected", want);
    } else {
        strcpy(detail, "came after the last stage of the pass");
    }
    verdict(st, 0, name, detail, "");
}

/* The first stage of the table whose name starts with prefix. */
static int first_stage(const char *prefix)
{
    int s;
    for (s = 0; s < SELFTEST_N_STAGES; s++)
        if (!strncmp(selftest_stages[s].stage, prefix, strlen(prefix))) return s;
    return SELFTEST_N_STAGES;
}

/* The probe is to see the stages of prefix next ("vision.", "text."). */
static void expect_stages(selftest *st, const char *prefix)
{
    st->next = first_stage(prefix);
    for (st->end = st->next; st->end < SELFTEST_N_STAGES; st->end++)
        if (strncmp(selftest_stages[st->end].stage, prefix, strlen(prefix))) break;
}

/* After a pass: the stages it should have shown and did not. */
static void missing_stages(selftest *st)
{
    char name[64];
    for (; st->next < st->end; st->next++) {
        stage_name(name, selftest_stages[st->next].stage, selftest_stages[st->next].layer);
        verdict(st, 0, name, "not reported by the forward pass", "");
    }
}

/* ---- the stages ---- */

/* The start of a text for a report line: printable ASCII as it is, other
   bytes as \xNN (a line stays one line of ASCII). */
static void quote(char *buf, const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    int n = 0;
    for (; *s && n < 40; s++) {
        if (*s >= 32 && *s < 127 && *s != '\\') {
            buf[n++] = (char)*s;
        } else {
            sprintf(buf + n, "\\x%02X", *s);
            n += 4;
        }
    }
    strcpy(buf + n, *s ? "..." : "");
}

static void check_tokenizer(selftest *st, const clip_model *m, char *e)
{
    int32_t ids[SELFTEST_CONTEXT];
    char detail[200], q[64];
    int t, i, n, off = 0, total = 0;
    for (t = 0; t < SELFTEST_N_TEXTS; t++) {
        const int32_t *want = selftest_ids + off;
        int nw = selftest_n_ids[t];
        off += nw;
        n = clip_tokenize(m, selftest_texts[t], strlen(selftest_texts[t]), ids, SELFTEST_CONTEXT, e);
        if (n < 0) {
            sprintf(detail, "text %d: %.150s", t, e);
            verdict(st, 0, "tokenizer", detail, "");
            return;
        }
        for (i = 0; i < n && i < nw && ids[i] == want[i]; i++) continue;
        if (i < n || i < nw) {
            quote(q, selftest_texts[t]);
            if (i < n && i < nw)
                sprintf(detail, "text %d \"%s\": id %d is %ld, expected %ld", t, q, i, (long)ids[i], (long)want[i]);
            else
                sprintf(detail, "text %d \"%s\": %d ids, expected %d", t, q, n, nw);
            verdict(st, 0, "tokenizer", detail, "");
            return;
        }
        total += n;
    }
    sprintf(detail, "%d texts, %d ids, all as expected", SELFTEST_N_TEXTS, total);
    verdict(st, 1, "tokenizer", detail, "");
}

static void check_image(selftest *st, const clip_model *m, const unsigned char *data, char *e)
{
    const unsigned char *want = data + SELFTEST_CROP_OFF;
    clip_image crop;
    char detail[200];
    long i, n = (long)SELFTEST_CROP_SIZE * SELFTEST_CROP_SIZE * 3, bad = 0, first = -1;
    int max_diff = 0;
    memset(&crop, 0, sizeof crop);
    if (clip_preprocess_data(m, data + SELFTEST_JPEG_OFF, (size_t)SELFTEST_JPEG_SIZE, &crop, e)) {
        if (!strncmp(e, "clip: ", 6)) memmove(e, e + 6, strlen(e + 6) + 1);
        sprintf(detail, "decoding the built-in JPEG: %.150s", e);
        verdict(st, 0, "image", detail, "");
        return;
    }
    if (crop.width != SELFTEST_CROP_SIZE || crop.height != SELFTEST_CROP_SIZE) {
        sprintf(detail, "the crop is %d x %d, expected %d x %d", crop.width, crop.height, SELFTEST_CROP_SIZE,
                SELFTEST_CROP_SIZE);
        clip_image_free(&crop);
        verdict(st, 0, "image", detail, "");
        return;
    }
    for (i = 0; i < n; i++) {
        int d = crop.rgb[i] > want[i] ? crop.rgb[i] - want[i] : want[i] - crop.rgb[i];
        if (d) {
            bad++;
            if (first < 0) first = i;
            if (d > max_diff) max_diff = d;
        }
    }
    clip_image_free(&crop);
    if (bad)
        sprintf(detail, "%ld of %ld crop bytes differ (max by %d), the first at row %ld, col %ld", bad, n, max_diff,
                first / 3 / SELFTEST_CROP_SIZE, first / 3 % SELFTEST_CROP_SIZE);
    else
        sprintf(detail, "%d x %d JPEG (4:2:0, %ld bytes) decoded, resized and cropped to %d x %d: all %ld bytes as "
                "expected", SELFTEST_JPEG_W, SELFTEST_JPEG_H, (long)SELFTEST_JPEG_SIZE, SELFTEST_CROP_SIZE,
                SELFTEST_CROP_SIZE, n);
    verdict(st, bad == 0, "image", detail, "");
}

static void check_logits(selftest *st, const clip_model *m, const float *image_f, const float *text_f)
{
    float logits[SELFTEST_N_TEXTS];
    int s = first_stage("logits");
    clip_zero_shot(m, image_f, text_f, SELFTEST_N_TEXTS, logits, NULL);
    if (s < SELFTEST_N_STAGES) compare(st, s, logits, 1, SELFTEST_N_TEXTS, TOL_LOGITS);
}

/* The state every stage reports through. */
static void selftest_start(selftest *st, void (*report)(void *ctx, const char *line), void *ctx, char *err)
{
    memset(st, 0, sizeof *st);
    st->report = report;
    st->ctx = ctx;
    st->err = err;
    if (err) err[0] = '\0';
}

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

size_t clip_selftest_data_size(void)
{
    return (size_t)SELFTEST_DATA_SIZE;
}

const unsigned char *clip_selftest_weights(const unsigned char *data, size_t *size)
{
    *size = (size_t)SELFTEST_BLOB_SIZE;
    return data + SELFTEST_BLOB_OFF;
}

int clip_selftest_decode(unsigned char *out, size_t size, char *err)
{
    if (!out || size != (size_t)SELFTEST_DATA_SIZE)
        return clip_error(err, "a buffer of %lu bytes is needed for the built-in data", (unsigned long)SELFTEST_DATA_SIZE);
    return decode_data(out, size, err);
}

int clip_selftest_run(const unsigned char *data, size_t size, void (*report)(void *ctx, const char *line), void *ctx,
                      char *err)
{
    selftest st;
    char e[CLIP_ERR_SIZE], line[LINE_SIZE];
    float *ref_copy = NULL, *image_f = NULL, *text_f = NULL;
    int32_t *ids = NULL;
    clip_model *m = NULL;
    clip_image crop;
    uint32_t h = 0x811C9DC5u;
    size_t k;
    long i;
    int t, off, E;
    selftest_start(&st, report, ctx, err);

    /* The data may come from anywhere (flash on a board): the same bytes
       clip_selftest decodes, or nothing runs. Aligned, so that neither the
       weights nor the references need a copy in RAM. */
    if (!data || size != (size_t)SELFTEST_DATA_SIZE) {
        sprintf(e, "%lu bytes, expected %lu", (unsigned long)size, (unsigned long)SELFTEST_DATA_SIZE);
        return fatal(&st, "built-in data", e);
    }
    if ((uintptr_t)data % 4) {
        sprintf(e, "at 0x%lx, not 4-byte aligned (the weights and references are read in place as float32)",
                (unsigned long)(uintptr_t)data);
        return fatal(&st, "built-in data", e);
    }
    for (k = 0; k < size; k++) h = (h ^ data[k]) * 0x01000193u;
    if ((h & 0xFFFFFFFFu) != (uint32_t)SELFTEST_DATA_FNV1A) {
        sprintf(e, "checksum %08lX, expected %08lX", (unsigned long)(h & 0xFFFFFFFFu), (unsigned long)SELFTEST_DATA_FNV1A);
        return fatal(&st, "built-in data", e);
    }
    sprintf(line, "ok   built-in data: %ld bytes, checksum %08lX", (long)SELFTEST_DATA_SIZE,
            (unsigned long)SELFTEST_DATA_FNV1A);
    say(&st, line);
    /* the references are little-endian float32 at a multiple of 4: read in
       place where the host agrees, else converted into a copy */
    if (host_is_little_endian()) {
        st.ref = (const float *)(const void *)(data + SELFTEST_REF_OFF);
    } else {
        ref_copy = (float *)clip_malloc((size_t)SELFTEST_REF_COUNT * sizeof(float));
        if (!ref_copy) return fatal(&st, "built-in data", "out of memory");
        for (i = 0; i < SELFTEST_REF_COUNT; i++) ref_copy[i] = le_float(data + SELFTEST_REF_OFF + 4 * i);
        st.ref = ref_copy;
    }

    /* the weights are used in place (they start the 4-byte aligned data) */
    m = clip_model_load_memory(data + SELFTEST_BLOB_OFF, (size_t)SELFTEST_BLOB_SIZE, e);
    if (!m) {
        fatal(&st, "model", e);
        goto done;
    }
    E = clip_model_config(m)->projection_dim;
    if (clip_model_config(m)->image_size != SELFTEST_CROP_SIZE ||
        clip_model_config(m)->context_length != SELFTEST_CONTEXT) {
        fatal(&st, "model", "the built-in model's header does not match its data");
        goto done;
    }

    check_tokenizer(&st, m, e);
    check_image(&st, m, data, e);

    /* the towers, on the expected crop and the expected ids */
    image_f = (float *)clip_malloc((size_t)E * sizeof(float));
    text_f = (float *)clip_malloc((size_t)E * SELFTEST_N_TEXTS * sizeof(float));
    ids = (int32_t *)clip_calloc((size_t)SELFTEST_N_TEXTS * SELFTEST_CONTEXT, sizeof(int32_t));
    if (!image_f || !text_f || !ids) {
        fatal(&st, "encoders", "out of memory");
        goto done;
    }
    clip_model_set_probe(m, probe, &st);
    crop.width = crop.height = SELFTEST_CROP_SIZE;
    crop.rgb = (unsigned char *)(uintptr_t)(data + SELFTEST_CROP_OFF); /* only read */
    expect_stages(&st, "vision.");
    if (clip_encode_image(m, &crop, image_f, e)) {
        fatal(&st, "vision encoder", e);
        goto done;
    }
    missing_stages(&st);
    for (t = 0, off = 0; t < SELFTEST_N_TEXTS; t++) {
        memcpy(ids + (size_t)t * SELFTEST_CONTEXT, selftest_ids + off, (size_t)selftest_n_ids[t] * sizeof(int32_t));
        off += selftest_n_ids[t];
    }
    expect_stages(&st, "text.");
    if (clip_encode_text(m, ids, selftest_n_ids, SELFTEST_N_TEXTS, SELFTEST_CONTEXT, text_f, e)) {
        fatal(&st, "text encoder", e);
        goto done;
    }
    missing_stages(&st);
    clip_model_set_probe(m, NULL, NULL);
    check_logits(&st, m, image_f, text_f);
    if (!st.failed) say(&st, "selftest passed: every stage agrees with the reference");

done:
    clip_model_free(m);
    clip_free(ids);
    clip_free(text_f);
    clip_free(image_f);
    clip_free(ref_copy);
    return st.failed ? -1 : 0;
}

int clip_selftest(void (*report)(void *ctx, const char *line), void *ctx, char *err)
{
    selftest st;
    char e[CLIP_ERR_SIZE];
    unsigned char *data;
    int rc;
    selftest_start(&st, report, ctx, err);
    data = (unsigned char *)clip_malloc((size_t)SELFTEST_DATA_SIZE); /* malloc's alignment: 4 at least */
    if (!data) return fatal(&st, "built-in data", "out of memory");
    if (decode_data(data, (size_t)SELFTEST_DATA_SIZE, e)) {
        clip_free(data);
        return fatal(&st, "built-in data", e);
    }
    rc = clip_selftest_run(data, (size_t)SELFTEST_DATA_SIZE, report, ctx, err);
    clip_free(data);
    return rc;
}
