/* clip_wasm.c - the functions the web page's worker (web/worker.js) calls in
   the WebAssembly build of the library (`make wasm`).

   The module holds one model and the results of the last image and the last
   labels; the worker reads those results straight out of the module's memory
   through the pointers these functions return. Every function that can fail
   returns -1 (or NULL) and leaves the library's message in wc_error(). */
#include <stdio.h>
#include <string.h>

#include "../clip.h"

#ifdef __wasm__
#define EXPORT(name) __attribute__((export_name(name)))
#else
#define EXPORT(name) /* a native build of this file (a debugger) exports everything */
#endif

/* ------------------------------------------------------------------------
   State */

static char err[CLIP_ERR_SIZE];
static clip_model *model;
static unsigned char *blob; /* the weights file; the model uses it in place until it is freed */
static char config_json[512];

static clip_image crop;     /* the last image as the model saw it */
static float *image_f;      /* its features (projection_dim) */

static int n_labels, n_prompts; /* prompts: labels x templates */
static size_t *label_spans;     /* 2 offsets per label into the labels text */
static int32_t *prompt_ids;     /* (n_prompts, context_length) */
static int *prompt_lens;        /* ids per prompt */
static float *prompt_f;         /* (n_prompts, projection_dim): each prompt's features */
static float *label_f;          /* (n_labels, projection_dim): each label's (the ensemble when several templates) */
static float *logits, *probs;   /* (n_labels) */
static char *prompts_text;      /* the prompts, each followed by a NUL */
static size_t prompts_size;

static int fail(const char *msg)
{
    snprintf(err, sizeof err, "%s", msg);
    return -1;
}

static void free_labels(void)
{
    clip_free(label_spans);
    clip_free(prompt_ids);
    clip_free(prompt_lens);
    clip_free(prompt_f);
    clip_free(label_f);
    clip_free(logits);
    clip_free(probs);
    clip_free(prompts_text);
    label_spans = NULL;
    prompt_ids = NULL;
    prompt_lens = NULL;
    prompt_f = label_f = logits = probs = NULL;
    prompts_text = NULL;
    prompts_size = 0;
    n_labels = n_prompts = 0;
}

static void free_image(void)
{
    clip_image_free(&crop);
    memset(&crop, 0, sizeof crop);
    clip_free(image_f);
    image_f = NULL;
}

/* ------------------------------------------------------------------------
   Memory and messages: the worker copies files and strings in through
   buffers from wc_alloc */

EXPORT("wc_alloc") void *wc_alloc(size_t n)
{
    return clip_malloc(n);
}

EXPORT("wc_free") void wc_free(void *p)
{
    clip_free(p);
}

EXPORT("wc_error") const char *wc_error(void)
{
    return err;
}

/* ------------------------------------------------------------------------
   The model */

EXPORT("wc_unload") void wc_unload(void)
{
    free_labels();
    free_image();
    clip_model_free(model);
    model = NULL;
    clip_free(blob);
    blob = NULL;
    config_json[0] = 0;
}

/* Load the weights file in data (from wc_alloc; the module owns it from now
   on, whether loading succeeds or not). */
EXPORT("wc_load") int wc_load(unsigned char *data, size_t size)
{
    const clip_config *c;
    wc_unload();
    if (!data) return fail("no weights file");
    model = clip_model_load_memory(data, size, err);
    if (!model) {
        clip_free(data);
        return -1;
    }
    blob = data;
    c = clip_model_config(model);
    snprintf(config_json, sizeof config_json,
             "{\"image_size\": %d, \"patch_size\": %d, \"vision_width\": %d, \"vision_layers\": %d, "
             "\"text_width\": %d, \"text_layers\": %d, \"projection_dim\": %d, \"context_length\": %d, "
             "\"vocab_size\": %d, \"logit_scale\": %.9g}",
             c->image_size, c->patch_size, c->vision_width, c->vision_layers, c->text_width, c->text_layers,
             c->projection_dim, c->context_length, c->vocab_size, (double)c->logit_scale);
    return 0;
}

/* The loaded model's dimensions as a JSON object (empty without a model). */
EXPORT("wc_config") const char *wc_config(void)
{
    return config_json;
}

/* ------------------------------------------------------------------------
   An image: decoded, resized and cropped, encoded */

EXPORT("wc_image") int wc_image(const unsigned char *data, size_t size)
{
    int E;
    free_image();
    if (!model) return fail("no model is loaded");
    E = clip_model_config(model)->projection_dim;
    image_f = (float *)clip_malloc((size_t)E * sizeof(float));
    if (!image_f) return fail("out of memory for the image features");
    if (clip_preprocess_data(model, data, size, &crop, err) || clip_encode_image(model, &crop, image_f, err)) {
        free_image();
        return -1;
    }
    return 0;
}

EXPORT("wc_crop") const unsigned char *wc_crop(void)
{
    return crop.rgb;
}

EXPORT("wc_image_features") const float *wc_image_features(void)
{
    return image_f;
}

/* ------------------------------------------------------------------------
   Labels: one per line, each put into every template (one per line; none:
   the label alone), as the command line's labels file and --template do */

/* The template with the label in place of every "{}": appended to
   prompts_text with its NUL; the offset of its first byte, or -1. */
static long add_prompt(const char *tmpl, size_t tl, const char *label, size_t ll)
{
    size_t i, n = 0, holes = 0, start = prompts_size;
    char *grown;
    if (!tmpl) { /* no template: the label itself */
        tmpl = "{}";
        tl = 2;
    }
    for (i = 0; i + 1 < tl; i++)
        if (tmpl[i] == '{' && tmpl[i + 1] == '}') holes++;
    if (holes && ll > ((size_t)-1 - tl - 1 - prompts_size) / holes) return -1;
    grown = (char *)clip_realloc(prompts_text, prompts_size + tl + holes * ll + 1);
    if (!grown) return -1;
    prompts_text = grown;
    for (i = 0; i < tl; i++) {
        if (tmpl[i] == '{' && i + 1 < tl && tmpl[i + 1] == '}') {
            memcpy(prompts_text + start + n, label, ll);
            n += ll;
            i++;
        } else {
            prompts_text[start + n++] = tmpl[i];
        }
    }
    prompts_text[start + n] = 0;
    prompts_size = start + n + 1;
    return (long)start;
}

/* label_f from clip_encode_labels: the labels as spans of their text, the
   templates copied out NUL-terminated (the library's form for them). */
static int label_features(const char *labels, const char *templates, const size_t *tspans, int n_tmpl)
{
    const char **lab = (const char **)clip_malloc((size_t)n_labels * sizeof(char *));
    size_t *lens = (size_t *)clip_malloc((size_t)n_labels * sizeof(size_t));
    char **tmpl = (char **)clip_malloc((n_tmpl ? (size_t)n_tmpl : 1) * sizeof(char *));
    int i, rc = -1;
    for (i = 0; tmpl && i < n_tmpl; i++) tmpl[i] = NULL;
    if (!lab || !lens || !tmpl) {
        fail("out of memory for the labels");
        goto done;
    }
    for (i = 0; i < n_labels; i++) {
        lab[i] = labels + label_spans[2 * i];
        lens[i] = label_spans[2 * i + 1];
    }
    for (i = 0; i < n_tmpl; i++) {
        size_t len = tspans[2 * i + 1];
        if (!(tmpl[i] = (char *)clip_malloc(len + 1))) {
            fail("out of memory for the templates");
            goto done;
        }
        memcpy(tmpl[i], templates + tspans[2 * i], len);
        tmpl[i][len] = 0;
    }
    rc = clip_encode_labels(model, lab, lens, n_labels, (const char *const *)tmpl, n_tmpl, label_f, err);
done:
    for (i = 0; tmpl && i < n_tmpl; i++) clip_free(tmpl[i]);
    clip_free(tmpl);
    clip_free(lens);
    clip_free((void *)lab);
    return rc;
}

/* Returns the number of labels (>= 1), or -1. */
EXPORT("wc_labels") int wc_labels(const char *labels, size_t labels_len, const char *templates, size_t templates_len)
{
    size_t *tspans = NULL;
    int T = 0, n_tmpl, i, t, ctx, E;
    long *offs = NULL;
    free_labels();
    if (!model) return fail("no model is loaded");
    ctx = clip_model_config(model)->context_length;
    E = clip_model_config(model)->projection_dim;
    n_labels = clip_split_labels(labels, labels_len, &label_spans, err);
    if (n_labels < 0) {
        n_labels = 0;
        return -1;
    }
    if (n_labels == 0) {
        free_labels();
        return fail("no labels: type one label per line");
    }
    n_tmpl = clip_split_labels(templates, templates_len, &tspans, err);
    if (n_tmpl < 0) goto bad;
    for (t = 0; t < n_tmpl; t++) {
        const char *s = templates + tspans[2 * t];
        size_t k, len = tspans[2 * t + 1];
        for (k = 0; k + 1 < len && !(s[k] == '{' && s[k + 1] == '}'); k++) continue;
        if (k + 1 >= len) {
            snprintf(err, sizeof err, "the template \"%.*s\" has no {} to put the label in",
                     (int)(len < 120 ? len : 120), s);
            goto bad;
        }
    }
    T = n_tmpl ? n_tmpl : 1;
    if (n_labels > (int)(0x7fffffff / T) || (size_t)n_labels * T > (size_t)-1 / ((size_t)ctx * sizeof(int32_t) + E * sizeof(float))) {
        fail("too many labels");
        goto bad;
    }
    n_prompts = n_labels * T;
    offs = (long *)clip_malloc((size_t)n_prompts * sizeof(long));
    prompt_ids = (int32_t *)clip_malloc((size_t)n_prompts * ctx * sizeof(int32_t));
    prompt_lens = (int *)clip_malloc((size_t)n_prompts * sizeof(int));
    prompt_f = (float *)clip_malloc((size_t)n_prompts * E * sizeof(float));
    label_f = (float *)clip_malloc((size_t)n_labels * E * sizeof(float));
    logits = (float *)clip_malloc((size_t)n_labels * sizeof(float));
    probs = (float *)clip_malloc((size_t)n_labels * sizeof(float));
    if (!offs || !prompt_ids || !prompt_lens || !prompt_f || !label_f || !logits || !probs) {
        fail("out of memory for the labels");
        goto bad;
    }
    for (i = 0; i < n_labels; i++)
        for (t = 0; t < T; t++) {
            int k = i * T + t;
            offs[k] = add_prompt(n_tmpl ? templates + tspans[2 * t] : NULL, n_tmpl ? tspans[2 * t + 1] : 0,
                                 labels + label_spans[2 * i], label_spans[2 * i + 1]);
            if (offs[k] < 0) {
                fail("out of memory for the labels");
                goto bad;
            }
        }
    /* offsets, not pointers: prompts_text moved as it grew */
    for (i = 0; i < n_prompts; i++) {
        const char *p = prompts_text + offs[i];
        prompt_lens[i] = clip_tokenize(model, p, strlen(p), prompt_ids + (size_t)i * ctx, ctx, err);
        if (prompt_lens[i] < 0) goto bad;
    }
    if (clip_encode_text(model, prompt_ids, prompt_lens, n_prompts, ctx, prompt_f, err)) goto bad;
    /* each label's feature: the library's own rules (one template: that
       prompt's numbers; several: the ensemble), as the command line has them */
    if (label_features(labels, templates, tspans, n_tmpl)) goto bad;
    clip_free(tspans);
    clip_free(offs);
    return n_labels;
bad:
    clip_free(tspans);
    clip_free(offs);
    free_labels();
    return -1;
}

EXPORT("wc_label_spans") const size_t *wc_label_spans(void)
{
    return label_spans;
}

EXPORT("wc_n_prompts") int wc_n_prompts(void)
{
    return n_prompts;
}

/* The prompts, NUL after each, in order label by label, template by template. */
EXPORT("wc_prompts") const char *wc_prompts(void)
{
    return prompts_text;
}

EXPORT("wc_prompts_size") size_t wc_prompts_size(void)
{
    return prompts_size;
}

EXPORT("wc_prompt_ids") const int32_t *wc_prompt_ids(void)
{
    return prompt_ids;
}

EXPORT("wc_prompt_lens") const int *wc_prompt_lens(void)
{
    return prompt_lens;
}

EXPORT("wc_prompt_features") const float *wc_prompt_features(void)
{
    return prompt_f;
}

EXPORT("wc_label_features") const float *wc_label_features(void)
{
    return label_f;
}

/* ------------------------------------------------------------------------
   Zero-shot: the last image against the last labels */

EXPORT("wc_classify") int wc_classify(void)
{
    if (!model || !image_f || !n_labels) return fail("an image and labels are needed first");
    clip_zero_shot(model, image_f, label_f, n_labels, logits, probs);
    return 0;
}

EXPORT("wc_logits") const float *wc_logits(void)
{
    return logits;
}

EXPORT("wc_probs") const float *wc_probs(void)
{
    return probs;
}
