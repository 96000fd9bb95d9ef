/* clip.c - OpenAI's CLIP in plain C99: the weights loader, the transformer
   ops, the vision and text towers, zero-shot classification and the command
   line. Reads top to bottom in that order. Images are decoded in image.c,
   text is tokenized in tokenizer.c; the public API is clip.h.

   The numbers follow Hugging Face transformers' CLIPModel (modeling_clip.py);
   each op names the PyTorch line it reproduces. */
#if !defined(_WIN32) && !defined(CLIP_NO_MMAP)
#define _POSIX_C_SOURCE 200112L /* mmap, fstat, fileno under -std=c99 */
#define _FILE_OFFSET_BITS 64    /* 32-bit hosts: see a file's true size, and refuse it clearly */
#endif
#include "clip.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(_WIN32) && !defined(CLIP_NO_MMAP)
#define CLIP_HAVE_MMAP 1
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif
#ifdef _WIN32
#include <windows.h> /* UTF-8 <-> UTF-16 (file names, the command line); file mapping */
#if !defined(CLIP_NO_MMAP)
#define CLIP_HAVE_WINMAP 1
#endif
#endif
#if defined(_WIN32) && !defined(CLIP_NO_MAIN)
#include <fcntl.h> /* _O_BINARY: stdin and stdout carry bytes, not text */
#include <io.h>
#include <shellapi.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#define OMP(directive) _Pragma(directive)
#else
#define OMP(directive)
#endif

/* ------------------------------------------------------------------------
   Errors: every failure writes one message into the caller's buffer. */

static void set_err(char *err, const char *fmt, ...)
{
    va_list ap;
    if (!err) return;
    va_start(ap, fmt);
    vsnprintf(err, CLIP_ERR_SIZE, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------
   Weights. Linear layers are stored as the matmul reads them: transposed to
   (in, out) and cut into panels of 64 output columns, each panel contiguous
   (in, 64), the last one zero-padded; the kernel then streams every weight
   once, in order. Per-layer tensors are stacked over layers. */

typedef struct {
    float *ln1_w, *ln1_b; /* (layers, dim) layer_norm1 */
    float *wqkv;          /* (layers, panels of (dim, 3*dim)) q_proj | k_proj | v_proj */
    float *bqkv;          /* (layers, 3*dim) */
    float *wo;            /* (layers, panels of (dim, dim)) out_proj */
    float *bo;            /* (layers, dim) */
    float *ln2_w, *ln2_b; /* (layers, dim) layer_norm2 */
    float *w1;            /* (layers, panels of (dim, mlp)) mlp.fc1 */
    float *b1;            /* (layers, mlp) */
    float *w2;            /* (layers, panels of (mlp, dim)) mlp.fc2 */
    float *b2;            /* (layers, dim) */
} encoder_weights;

typedef struct {
    float *patch_w;              /* panels of (channels*patch*patch, dim): patch_embedding conv as a matmul */
    float *class_emb;            /* (dim) class_embedding */
    float *pos_emb;              /* (tokens, dim) position_embedding, tokens = grid^2 + 1 */
    float *pre_ln_w, *pre_ln_b;  /* (dim) pre_layrnorm */
    encoder_weights enc;         /* the transformer blocks */
    float *post_ln_w, *post_ln_b;/* (dim) post_layernorm */
    float *proj;                 /* panels of (dim, projection_dim): visual_projection */
} vision_weights;

typedef struct {
    float *tok_emb;              /* (vocab, dim) token_embedding */
    float *pos_emb;              /* (context, dim) position_embedding */
    encoder_weights enc;         /* the transformer blocks (causal) */
    float *final_ln_w, *final_ln_b; /* (dim) final_layer_norm */
    float *proj;                 /* panels of (dim, projection_dim): text_projection */
} text_weights;

/* Activation buffers, grown on demand and reused between calls. */
typedef struct {
    float *mem;                  /* one allocation for everything below */
    size_t cap;                  /* floats in mem */
} workspace;

struct clip_model {
    clip_config cfg;             /* the header, decoded and validated */
    vision_weights vision;
    text_weights text;
    clip_tokenizer *tok;         /* built from the merges section */
    const unsigned char *file;   /* the whole blob (mapped, read or borrowed) */
    size_t file_size;
    int file_kind;               /* FILE_MAPPED, FILE_MALLOCED or FILE_BORROWED */
    float *weights_copy;         /* byte-swapped / aligned copy of the weights, or NULL */
    workspace ws;
};

enum { FILE_MAPPED, FILE_MALLOCED, FILE_BORROWED };

/* ------------------------------------------------------------------------
   The weights file ("blob"); README.md documents it. A 256-byte header of
   64 little-endian 32-bit words, the float32 tensors in the order of
   weight_layout(), then the BPE merges as text. */

#define HEADER_WORDS 64
#define HEADER_SIZE (HEADER_WORDS * 4)
#define SECTION_ALIGN 64
static const unsigned char blob_magic[4] = {'C', 'L', 'I', 'P'};

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* a * b, or 0 with *ok cleared when it does not fit in size_t */
static size_t mul_sz(size_t a, size_t b, int *ok)
{
    if (a != 0 && b > SIZE_MAX / a) {
        *ok = 0;
        return 0;
    }
    return a * b;
}

/* header word i, which must lie in [lo, hi] */
static int hdr_int(const unsigned char *h, int i, long lo, long hi, const char *field, int *out, const char *path,
                   char *err)
{
    uint32_t v = rd32(h + 4 * i);
    if (v < (uint32_t)lo || v > (uint32_t)hi) {
        set_err(err, "clip: %s: header field %s is %lu, outside %ld..%ld; the file is damaged, re-run export_weights.py",
                path, field, (unsigned long)v, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int hdr_float(const unsigned char *h, int i, double lo, double hi, const char *field, float *out,
                     const char *path, char *err)
{
    float f = bits_to_float(rd32(h + 4 * i));
    if (!(f >= lo && f <= hi)) { /* also catches NaN */
        set_err(err, "clip: %s: header field %s is %g, outside %g..%g; the file is damaged, re-run export_weights.py",
                path, field, (double)f, lo, hi);
        return -1;
    }
    *out = f;
    return 0;
}

static uint64_t hdr_u64(const unsigned char *h, int i)
{
    return (uint64_t)rd32(h + 4 * i) | (uint64_t)rd32(h + 4 * i + 4) << 32;
}

/* The section table of a blob. */
typedef struct {
    uint64_t weights_off, weights_size, merges_off, merges_size, file_size;
} blob_sections;

static int parse_header(const unsigned char *h, size_t size, const char *path, clip_config *c, blob_sections *s,
                        char *err)
{
    int version, header_size, i, tmp;
    if (size < HEADER_SIZE || memcmp(h, blob_magic, 4) != 0) {
        set_err(err, "clip: %s: not a clip.c weights file (%s); make one with export_weights.py", path,
                size < HEADER_SIZE ? "too short" : "wrong magic");
        return -1;
    }
    version = (int)rd32(h + 4);
    if (version != CLIP_FORMAT_VERSION) {
        set_err(err, "clip: %s: version %d, this build reads version %d; re-run export_weights.py", path, version,
                CLIP_FORMAT_VERSION);
        return -1;
    }
    if (hdr_int(h, 2, HEADER_SIZE, HEADER_SIZE, "header_size", &header_size, path, err)) return -1;
    /* dimension limits: far beyond any CLIP, small enough that no product below overflows 64 bits */
    if (hdr_int(h, 3, 1, 16384, "image_size", &c->image_size, path, err) ||
        hdr_int(h, 4, 1, c->image_size, "patch_size", &c->patch_size, path, err) ||
        hdr_int(h, 5, 3, 3, "channels", &c->channels, path, err) ||
        hdr_int(h, 6, 1, 65536, "vision_width", &c->vision_width, path, err) ||
        hdr_int(h, 7, 1, 1024, "vision_layers", &c->vision_layers, path, err) ||
        hdr_int(h, 8, 1, c->vision_width, "vision_heads", &c->vision_heads, path, err) ||
        hdr_int(h, 9, 1, 1 << 20, "vision_mlp", &c->vision_mlp, path, err) ||
        hdr_int(h, 10, 0, 1, "vision_act", &c->vision_act, path, err) ||
        hdr_float(h, 11, 1e-30, 1.0, "vision_eps", &c->vision_eps, path, err) ||
        hdr_int(h, 12, 516, 1 << 24, "vocab_size", &c->vocab_size, path, err) ||
        hdr_int(h, 13, 2, 65536, "context_length", &c->context_length, path, err) ||
        hdr_int(h, 14, 1, 65536, "text_width", &c->text_width, path, err) ||
        hdr_int(h, 15, 1, 1024, "text_layers", &c->text_layers, path, err) ||
        hdr_int(h, 16, 1, c->text_width, "text_heads", &c->text_heads, path, err) ||
        hdr_int(h, 17, 1, 1 << 20, "text_mlp", &c->text_mlp, path, err) ||
        hdr_int(h, 18, 0, 1, "text_act", &c->text_act, path, err) ||
        hdr_float(h, 19, 1e-30, 1.0, "text_eps", &c->text_eps, path, err) ||
        hdr_int(h, 20, c->vocab_size - 2, c->vocab_size - 2, "bos_id", &c->bos_id, path, err) ||
        hdr_int(h, 21, c->vocab_size - 1, c->vocab_size - 1, "eos_id", &c->eos_id, path, err) ||
        hdr_int(h, 22, 1, 65536, "projection_dim", &c->projection_dim, path, err) ||
        hdr_float(h, 23, -80.0, 80.0, "logit_scale", &c->logit_scale, path, err) ||
        hdr_int(h, 24, 0, 1, "resize_mode", &c->resize_mode, path, err) ||
        hdr_int(h, 25, 1, 65536, "resize_h", &c->resize_h, path, err) ||
        hdr_int(h, 26, 1, 65536, "resize_w", &c->resize_w, path, err) ||
        hdr_int(h, 27, c->image_size, c->image_size, "crop_h", &c->crop_h, path, err) ||
        hdr_int(h, 28, c->image_size, c->image_size, "crop_w", &c->crop_w, path, err) ||
        hdr_int(h, 29, 2, 3, "resample", &c->resample, path, err) ||
        hdr_int(h, 36, 0, 1, "center_crop", &tmp, path, err))
        return -1;
    for (i = 0; i < 3; i++)
        if (hdr_float(h, 30 + i, -1e3, 1e3, "mean", &c->mean[i], path, err) ||
            hdr_float(h, 33 + i, 1e-6, 1e3, "std", &c->std[i], path, err))
            return -1;
    if (c->image_size % c->patch_size) {
        set_err(err, "clip: %s: image_size %d is not a multiple of patch_size %d", path, c->image_size, c->patch_size);
        return -1;
    }
    if (c->vision_width % c->vision_heads || c->text_width % c->text_heads) {
        set_err(err, "clip: %s: a tower's width is not divisible by its number of heads", path);
        return -1;
    }
    if (hdr_int(h, 48, 1, c->vocab_size - 514, "n_merges", &c->n_merges, path, err)) return -1;
    if (c->vocab_size != 512 + c->n_merges + 2) {
        set_err(err, "clip: %s: vocab_size %d does not match %d merges (CLIP's vocabulary is 512 + merges + 2)", path,
                c->vocab_size, c->n_merges);
        return -1;
    }
    for (i = 37; i < HEADER_WORDS; i++) {
        if (i == 40 || i == 41 || i == 42 || i == 43 || i == 44 || i == 45 || i == 46 || i == 47 || i == 48 ||
            i == 49 || i == 50)
            continue;
        if (rd32(h + 4 * i) != 0) {
            set_err(err, "clip: %s: reserved header word %d is not zero; the file is damaged or from a newer "
                         "export_weights.py", path, i);
            return -1;
        }
    }
    s->weights_off = hdr_u64(h, 40);
    s->weights_size = hdr_u64(h, 42);
    s->merges_off = hdr_u64(h, 44);
    s->merges_size = hdr_u64(h, 46);
    s->file_size = hdr_u64(h, 49);
    if (s->file_size != (uint64_t)size) {
        set_err(err, "clip: %s: the header says %llu bytes, the file has %llu; the file is truncated or damaged, "
                     "re-run export_weights.py", path, (unsigned long long)s->file_size, (unsigned long long)size);
        return -1;
    }
    if (s->weights_off < HEADER_SIZE || s->weights_off % SECTION_ALIGN || s->weights_size % 4 ||
        s->weights_size > s->file_size - s->weights_off || s->merges_off < s->weights_off + s->weights_size ||
        s->merges_off > s->file_size || s->merges_size != s->file_size - s->merges_off) {
        set_err(err, "clip: %s: the section table (weights at %llu+%llu, merges at %llu+%llu) does not fit the file",
                path, (unsigned long long)s->weights_off, (unsigned long long)s->weights_size,
                (unsigned long long)s->merges_off, (unsigned long long)s->merges_size);
        return -1;
    }
    return 0;
}

/* The one table of tensors, in file order; export_weights.py (write_tensors)
   writes the same order. */
typedef struct {
    const char *name;
    float **dst;
    size_t count; /* floats */
} tensor_slot;

#define MAX_SLOTS 40
#define PANEL 64 /* = MM_NR below: linear weights come in panels of 64 output columns */

/* floats of a linear weight (in, out) stored in panels, overflow-checked */
static size_t packed(size_t in, size_t out, int *ok)
{
    return mul_sz(in, mul_sz((out + PANEL - 1) / PANEL, PANEL, ok), ok);
}

static int encoder_layout(tensor_slot *t, int n, encoder_weights *w, size_t layers, size_t dim, size_t mlp, int *ok)
{
#define SLOT(field, cnt) (t[n].name = #field, t[n].dst = &w->field, t[n].count = (cnt), n++)
    SLOT(ln1_w, mul_sz(layers, dim, ok));
    SLOT(ln1_b, mul_sz(layers, dim, ok));
    SLOT(wqkv, mul_sz(layers, packed(dim, mul_sz(dim, 3, ok), ok), ok));
    SLOT(bqkv, mul_sz(layers, mul_sz(dim, 3, ok), ok));
    SLOT(wo, mul_sz(layers, packed(dim, dim, ok), ok));
    SLOT(bo, mul_sz(layers, dim, ok));
    SLOT(ln2_w, mul_sz(layers, dim, ok));
    SLOT(ln2_b, mul_sz(layers, dim, ok));
    SLOT(w1, mul_sz(layers, packed(dim, mlp, ok), ok));
    SLOT(b1, mul_sz(layers, mlp, ok));
    SLOT(w2, mul_sz(layers, packed(mlp, dim, ok), ok));
    SLOT(b2, mul_sz(layers, dim, ok));
#undef SLOT
    return n;
}

static int weight_layout(clip_model *m, tensor_slot *t, int *ok)
{
    const clip_config *c = &m->cfg;
    vision_weights *v = &m->vision;
    text_weights *x = &m->text;
    size_t D = (size_t)c->vision_width, Dt = (size_t)c->text_width, E = (size_t)c->projection_dim;
    size_t grid = (size_t)(c->image_size / c->patch_size);
    size_t tokens = grid * grid + 1;
    size_t patch = mul_sz((size_t)c->channels, mul_sz((size_t)c->patch_size, (size_t)c->patch_size, ok), ok);
    int n = 0;
#define SLOT(nm, ptr, cnt) (t[n].name = nm, t[n].dst = &(ptr), t[n].count = (cnt), n++)
    SLOT("vision.patch_w", v->patch_w, packed(patch, D, ok));
    SLOT("vision.class_emb", v->class_emb, D);
    SLOT("vision.pos_emb", v->pos_emb, mul_sz(tokens, D, ok));
    SLOT("vision.pre_ln_w", v->pre_ln_w, D);
    SLOT("vision.pre_ln_b", v->pre_ln_b, D);
    n = encoder_layout(t, n, &v->enc, (size_t)c->vision_layers, D, (size_t)c->vision_mlp, ok);
    SLOT("vision.post_ln_w", v->post_ln_w, D);
    SLOT("vision.post_ln_b", v->post_ln_b, D);
    SLOT("vision.proj", v->proj, packed(D, E, ok));
    SLOT("text.tok_emb", x->tok_emb, mul_sz((size_t)c->vocab_size, Dt, ok));
    SLOT("text.pos_emb", x->pos_emb, mul_sz((size_t)c->context_length, Dt, ok));
    n = encoder_layout(t, n, &x->enc, (size_t)c->text_layers, Dt, (size_t)c->text_mlp, ok);
    SLOT("text.final_ln_w", x->final_ln_w, Dt);
    SLOT("text.final_ln_b", x->final_ln_b, Dt);
    SLOT("text.proj", x->proj, packed(Dt, E, ok));
#undef SLOT
    return n;
}

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* Decode the header, check the sections, point the weights into the blob
   and build the tokenizer. m->file and m->file_size are set. */
static int model_init(clip_model *m, const char *path, char *err)
{
    tensor_slot slots[MAX_SLOTS];
    blob_sections s;
    const unsigned char *w;
    size_t total = 0, off = 0, nw;
    int i, n, ok = 1;
    if (parse_header(m->file, m->file_size, path, &m->cfg, &s, err)) return -1;
    n = weight_layout(m, slots, &ok);
    for (i = 0; i < n && ok; i++) {
        if (slots[i].count > SIZE_MAX - total) ok = 0;
        total += slots[i].count;
    }
    if (!ok || total > SIZE_MAX / 4 || (uint64_t)total * 4 != s.weights_size) {
        set_err(err, "clip: %s: the weights section has %llu bytes, the header's dimensions need %llu; the file is "
                     "damaged, re-run export_weights.py", path, (unsigned long long)s.weights_size,
                (unsigned long long)((uint64_t)total * 4));
        return -1;
    }
    w = m->file + (size_t)s.weights_off;
    nw = total;
    if (host_is_little_endian() && ((uintptr_t)w % sizeof(float)) == 0) {
        for (i = 0; i < n; i++) {
            *slots[i].dst = (float *)(uintptr_t)w + off; /* weights are never written through */
            off += slots[i].count;
        }
    } else {
        /* big-endian host or a misaligned borrowed buffer: decode a copy */
        size_t k;
        m->weights_copy = (float *)malloc(nw * sizeof(float));
        if (!m->weights_copy) {
            set_err(err, "clip: %s: out of memory for %llu bytes of weights", path, (unsigned long long)(nw * 4));
            return -1;
        }
        for (k = 0; k < nw; k++) m->weights_copy[k] = bits_to_float(rd32(w + 4 * k));
        for (i = 0; i < n; i++) {
            *slots[i].dst = m->weights_copy + off;
            off += slots[i].count;
        }
    }
    m->tok = clip_tokenizer_create((const char *)m->file + (size_t)s.merges_off, (size_t)s.merges_size,
                                   m->cfg.n_merges, err);
    if (!m->tok) return -1;
    if (clip_tokenizer_vocab_size(m->tok) != m->cfg.vocab_size) {
        set_err(err, "clip: %s: the tokenizer has %d tokens, the model %d", path, clip_tokenizer_vocab_size(m->tok),
                m->cfg.vocab_size);
        return -1;
    }
    return 0;
}

static clip_model *model_new(void)
{
    return (clip_model *)calloc(1, sizeof(clip_model));
}

clip_model *clip_model_load_memory(const void *data, size_t size, char *err)
{
    clip_model *m = model_new();
    if (!m) {
        set_err(err, "clip: out of memory");
        return NULL;
    }
    m->file = (const unsigned char *)data;
    m->file_size = size;
    m->file_kind = FILE_BORROWED;
    if (model_init(m, "(memory)", err)) {
        clip_model_free(m);
        return NULL;
    }
    return m;
}

/* All of a stream into memory; name is for the messages. An empty stream
   still gives a valid (1-byte) buffer. */
static unsigned char *read_stream(FILE *f, size_t *size, const char *name, char *err)
{
    unsigned char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        size_t got;
        if (len == cap) {
            unsigned char *nb;
            size_t ncap = cap ? cap * 2 : 1 << 16;
            if (ncap < cap) {
                set_err(err, "clip: %s: too large for this platform's address space", name);
                break;
            }
            nb = (unsigned char *)realloc(buf, ncap);
            if (!nb) {
                set_err(err, "clip: %s: out of memory reading the file (%llu bytes so far)", name,
                        (unsigned long long)len);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                set_err(err, "clip: %s: read error", name);
                break;
            }
            *size = len;
            return buf;
        }
    }
    free(buf);
    return NULL;
}

#ifdef _WIN32
/* A UTF-8 string as UTF-16 (malloc'ed), or NULL when it is not valid UTF-8
   or memory runs out. Windows' narrow file calls read the ANSI code page;
   the wide ones take every name. */
static wchar_t *widen(const char *s)
{
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
    wchar_t *w = n > 0 ? (wchar_t *)malloc((size_t)n * sizeof(wchar_t)) : NULL;
    if (w && MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n) <= 0) {
        free(w);
        w = NULL;
    }
    return w;
}
#endif

FILE *clip_fopen(const char *path, const char *mode)
{
#ifdef _WIN32
    wchar_t *wpath = widen(path), *wmode = widen(mode);
    FILE *f = wpath && wmode ? _wfopen(wpath, wmode) : fopen(path, mode);
    free(wpath);
    free(wmode);
    return f;
#else
    return fopen(path, mode);
#endif
}

/* Read a whole file into memory: the path for platforms without mmap. */
static unsigned char *read_file(const char *path, size_t *size, char *err)
{
    FILE *f = clip_fopen(path, "rb");
    unsigned char *buf;
    if (!f) {
        set_err(err, "clip: %s: %s", path, strerror(errno));
        return NULL;
    }
    buf = read_stream(f, size, path, err);
    fclose(f);
    return buf;
}

clip_model *clip_model_load(const char *path, char *err)
{
    clip_model *m = model_new();
    if (!m) {
        set_err(err, "clip: out of memory");
        return NULL;
    }
#ifdef CLIP_HAVE_MMAP
    {
        int fd = open(path, O_RDONLY);
        struct stat st;
        void *p;
        if (fd < 0) {
            set_err(err, "clip: %s: %s", path, strerror(errno));
            free(m);
            return NULL;
        }
        if (fstat(fd, &st) != 0) {
            set_err(err, "clip: %s: %s", path, strerror(errno));
            close(fd);
            free(m);
            return NULL;
        }
        if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
            set_err(err, "clip: %s: %llu bytes do not fit this platform's address space; use a 64-bit build", path,
                    (unsigned long long)st.st_size);
            close(fd);
            free(m);
            return NULL;
        }
        if (st.st_size < HEADER_SIZE) {
            set_err(err, "clip: %s: not a clip.c weights file (too short, %lld bytes); make one with export_weights.py",
                    path, (long long)st.st_size);
            close(fd);
            free(m);
            return NULL;
        }
        p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (p != MAP_FAILED) {
            m->file = (const unsigned char *)p;
            m->file_size = (size_t)st.st_size;
            m->file_kind = FILE_MAPPED;
        }
    }
#endif
#ifdef CLIP_HAVE_WINMAP
    { /* the Windows mapping; any failure falls through to reading, which reports it */
        wchar_t *wpath = widen(path);
        HANDLE fh = wpath ? CreateFileW(wpath, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING,
                                        FILE_ATTRIBUTE_NORMAL, NULL)
                          : INVALID_HANDLE_VALUE;
        LARGE_INTEGER size;
        free(wpath);
        if (fh != INVALID_HANDLE_VALUE) {
            if (GetFileSizeEx(fh, &size) && size.QuadPart >= HEADER_SIZE &&
                (unsigned long long)size.QuadPart <= (unsigned long long)SIZE_MAX) {
                HANDLE mh = CreateFileMappingW(fh, NULL, PAGE_READONLY, 0, 0, NULL);
                if (mh) {
                    void *p = MapViewOfFile(mh, FILE_MAP_READ, 0, 0, 0);
                    CloseHandle(mh); /* the view keeps the mapping */
                    if (p) {
                        m->file = (const unsigned char *)p;
                        m->file_size = (size_t)size.QuadPart;
                        m->file_kind = FILE_MAPPED;
                    }
                }
            }
            CloseHandle(fh);
        }
    }
#endif
    if (!m->file) { /* no mmap here, or it failed (a pipe, an odd file system): read it */
        m->file = read_file(path, &m->file_size, err);
        if (!m->file) {
            free(m);
            return NULL;
        }
        m->file_kind = FILE_MALLOCED;
    }
    if (model_init(m, path, err)) {
        clip_model_free(m);
        return NULL;
    }
    return m;
}

void clip_model_free(clip_model *m)
{
    if (!m) return;
    clip_tokenizer_free(m->tok);
    free(m->weights_copy);
    free(m->ws.mem);
#ifdef CLIP_HAVE_MMAP
    if (m->file_kind == FILE_MAPPED) munmap((void *)(uintptr_t)m->file, m->file_size);
#endif
#ifdef CLIP_HAVE_WINMAP
    if (m->file_kind == FILE_MAPPED) UnmapViewOfFile(m->file);
#endif
    if (m->file_kind == FILE_MALLOCED) free((void *)(uintptr_t)m->file);
    free(m);
}

const clip_config *clip_model_config(const clip_model *m)
{
    return &m->cfg;
}

/* A workspace of at least n floats; the old contents are not kept. */
static float *ws_reserve(workspace *ws, size_t n, char *err)
{
    if (n > ws->cap) {
        float *p;
        if (n > SIZE_MAX / sizeof(float)) {
            set_err(err, "clip: activation buffers too large for this platform");
            return NULL;
        }
        p = (float *)malloc(n * sizeof(float));
        if (!p) {
            set_err(err, "clip: out of memory for %llu bytes of activations", (unsigned long long)(n * sizeof(float)));
            return NULL;
        }
        free(ws->mem);
        ws->mem = p;
        ws->cap = n;
    }
    return ws->mem;
}

/* ------------------------------------------------------------------------
   Primitive ops. Shapes: (rows, cols), row-major. */

/* nn.LayerNorm(dim, eps)(in): statistics in double */
static void layernorm_forward(float *out, const float *in, const float *w, const float *b, int n, int dim, float eps)
{
    int r;
    OMP("omp parallel for schedule(static) if ((size_t)n * dim > 16384)")
    for (r = 0; r < n; r++) {
        const float *x = in + (size_t)r * dim;
        float *y = out + (size_t)r * dim;
        double mean = 0.0, var = 0.0;
        float mu, rstd;
        int i;
        for (i = 0; i < dim; i++) mean += x[i];
        mean /= dim;
        for (i = 0; i < dim; i++) {
            double d = x[i] - mean;
            var += d * d;
        }
        var /= dim;
        mu = (float)mean;
        rstd = (float)(1.0 / sqrt(var + eps));
        for (i = 0; i < dim; i++) y[i] = (x[i] - mu) * rstd * w[i] + b[i];
    }
}

/* nn.Linear: out = in @ W^T + bias. W is stored in panels: the output
   columns in groups of MM_NR, each group a contiguous (in_dim, MM_NR) block,
   the last one zero-padded (see packed_size). bias may be NULL.
   The reference version: one output at a time, summing in k order. */
#define MM_NR PANEL /* output columns per weight panel */
#define MM_MR 6  /* at most this many input rows per tile: 6 x 64 accumulators fit the vector registers */

static size_t packed_size(size_t in_dim, size_t out_dim)
{
    return in_dim * ((out_dim + MM_NR - 1) / MM_NR * MM_NR);
}

static void matmul_reference(float *out, const float *in, const float *w, const float *bias, int n, int in_dim,
                             int out_dim)
{
    int r, o, k;
    for (r = 0; r < n; r++)
        for (o = 0; o < out_dim; o++) {
            const float *panel = w + (size_t)(o / MM_NR) * in_dim * MM_NR + o % MM_NR;
            float acc = bias ? bias[o] : 0.0f;
            for (k = 0; k < in_dim; k++) acc += in[(size_t)r * in_dim + k] * panel[(size_t)k * MM_NR];
            out[(size_t)r * out_dim + o] = acc;
        }
}

/* What a matmul does with each result before storing it (its epilogue):
   store it, add it to what is there (a residual connection), or store it
   through the MLP's activation. */
enum { MM_STORE, MM_ADD, MM_QUICK_GELU, MM_GELU };

/* ACT2FN["quick_gelu"]: x * sigmoid(1.702 x); ACT2FN["gelu"]: the exact erf form */
static float quick_gelu(float x)
{
    return x / (1.0f + expf(-1.702f * x));
}

static float gelu(float x)
{
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

static void epilogue(float *out, const float *acc, int cols, int mode)
{
    int c;
    switch (mode) {
    case MM_ADD:
        for (c = 0; c < cols; c++) out[c] += acc[c];
        break;
    case MM_QUICK_GELU:
        for (c = 0; c < cols; c++) out[c] = quick_gelu(acc[c]);
        break;
    case MM_GELU:
        for (c = 0; c < cols; c++) out[c] = gelu(acc[c]);
        break;
    default:
        memcpy(out, acc, (size_t)cols * sizeof(float));
    }
}

/* One mr x MM_NR tile: the same sums in the same k order. It is called with
   constant mr (4, 5 or 6), so the compiler makes one copy per size with
   fixed loop bounds and keeps the accumulators in vector registers. Rows
   come as pointers (a short last tile repeats a row and drops it). */
static void matmul_tile(float *const *out, const float *const *in, const float *panel, const float *bias, int in_dim,
                        int cols, int mode, int mr)
{
    float acc[MM_MR][MM_NR];
    int r, c, k;
    for (r = 0; r < mr; r++)
        for (c = 0; c < MM_NR; c++) acc[r][c] = bias[c];
    for (k = 0; k < in_dim; k++) {
        const float *wk = panel + (size_t)k * MM_NR;
        for (r = 0; r < mr; r++) {
            float a = in[r][k];
            for (c = 0; c < MM_NR; c++) acc[r][c] += a * wk[c];
        }
    }
    for (r = 0; r < mr; r++)
        if (out[r]) epilogue(out[r], acc[r], cols, mode);
}

/* The tile height (4..6) that wastes the fewest rows on n. */
static int tile_rows(int n)
{
    int best = MM_MR, waste = INT_MAX, mr;
    for (mr = MM_MR; mr >= 4; mr--) {
        int w = (n + mr - 1) / mr * mr - n;
        if (w < waste) {
            waste = w;
            best = mr;
        }
    }
    return best;
}

static void matmul_forward(float *out, const float *in, const float *w, const float *bias, int n, int in_dim,
                           int out_dim, int mode)
{
    int mr = tile_rows(n), row_blocks = (n + mr - 1) / mr, panels = (out_dim + MM_NR - 1) / MM_NR, blk;
    /* tiles of one panel are adjacent, so a thread streams each panel once;
       tiny products are not worth waking the threads for */
    OMP("omp parallel for schedule(static) if ((size_t)n * in_dim * out_dim > 65536)")
    for (blk = 0; blk < row_blocks * panels; blk++) {
        int r0 = (blk % row_blocks) * mr, c0 = (blk / row_blocks) * MM_NR, r, c;
        int cols = out_dim - c0 < MM_NR ? out_dim - c0 : MM_NR;
        const float *rows_in[MM_MR];
        float *rows_out[MM_MR], b[MM_NR];
        const float *panel = w + (size_t)(c0 / MM_NR) * in_dim * MM_NR;
        for (r = 0; r < mr; r++) {
            int rr = r0 + r < n ? r0 + r : n - 1;
            rows_in[r] = in + (size_t)rr * in_dim;
            rows_out[r] = r0 + r < n ? out + (size_t)(r0 + r) * out_dim + c0 : NULL;
        }
        for (c = 0; c < MM_NR; c++) b[c] = bias && c < cols ? bias[c0 + c] : 0.0f;
        if (mr == 6)
            matmul_tile(rows_out, rows_in, panel, b, in_dim, cols, mode, 6);
        else if (mr == 5)
            matmul_tile(rows_out, rows_in, panel, b, in_dim, cols, mode, 5);
        else
            matmul_tile(rows_out, rows_in, panel, b, in_dim, cols, mode, 4);
    }
}

/* x += y */
static void residual_forward(float *x, const float *y, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] += y[i];
}

/* CLIPAttention's core: softmax(q k^T * head_dim^-0.5 [+ causal mask]) v for
   each head. qkv is (n, 3*dim) as q | k | v; out is (n, dim). The n rows may
   hold several independent sequences: row i attends to rows first[i] ..
   last[i] (NULL: one sequence, rows 0 .. n-1, or 0 .. i when causal).
   att is scratch of (heads * n, seq) floats, seq the longest sequence.
   All heads and rows of all sequences are one parallel loop. */
static void attention_forward(float *out, const float *qkv, float *att, int n, int dim, int heads, int causal,
                              const int *first, const int *last, int seq)
{
    int hd = dim / heads, job;
    float scale = 1.0f / sqrtf((float)hd);
    size_t stride = (size_t)3 * dim;
    OMP("omp parallel for schedule(dynamic, 4) if ((size_t)n * n * dim > 65536)")
    for (job = 0; job < heads * n; job++) {
        int h = job / n, i = job % n, j, d;
        int j0 = first ? first[i] : 0, j1 = last ? last[i] : causal ? i : n - 1;
        const float *q = qkv + (size_t)i * stride + (size_t)h * hd;
        float *s = att + (size_t)job * seq - j0, *o = out + (size_t)i * dim + (size_t)h * hd;
        float mx = -FLT_MAX, sum = 0.0f;
        for (j = j0; j <= j1; j++) {
            const float *k = qkv + (size_t)j * stride + dim + (size_t)h * hd;
            float part[8] = {0, 0, 0, 0, 0, 0, 0, 0}, dot = 0.0f;
            int u;
            /* eight partial sums: a vector accumulator, without -ffast-math */
            for (d = 0; d + 8 <= hd; d += 8)
                for (u = 0; u < 8; u++) part[u] += q[d + u] * k[d + u];
            for (; d < hd; d++) dot += q[d] * k[d];
            for (u = 0; u < 8; u++) dot += part[u];
            s[j] = dot * scale;
            if (s[j] > mx) mx = s[j];
        }
        for (j = j0; j <= j1; j++) {
            s[j] = expf(s[j] - mx);
            sum += s[j];
        }
        for (d = 0; d < hd; d++) o[d] = 0.0f;
        for (j = j0; j <= j1; j++) {
            const float *v = qkv + (size_t)j * stride + 2 * (size_t)dim + (size_t)h * hd;
            float p = s[j] / sum;
            for (d = 0; d < hd; d++) o[d] += p * v[d];
        }
    }
}

/* ------------------------------------------------------------------------
   Blocks */

/* Scratch one encoder needs for n token rows: xb (n, dim), qkv (n, 3dim),
   attn (n, dim), h (n, mlp), att (heads * n, seq) for the longest sequence
   seq. */
static size_t encoder_scratch(int n, int dim, int mlp, int heads, int seq)
{
    return (size_t)n * dim * 5 + (size_t)n * mlp + (size_t)heads * n * seq;
}

/* CLIPEncoderLayer, pre-norm:
     x = x + out_proj(attention(layer_norm1(x)))
     x = x + fc2(act(fc1(layer_norm2(x))))
   on n rows that may pack several independent sequences (first/last: the
   rows each row may attend to, as attention_forward takes them; seq: the
   longest sequence). */
static void encoder_forward(float *x, float *scratch, const encoder_weights *w, int layers, int n, int dim, int mlp,
                            int heads, int act, float eps, int causal, const int *first, const int *last, int seq)
{
    float *xb = scratch;
    float *qkv = xb + (size_t)n * dim;
    float *attn = qkv + (size_t)n * dim * 3;
    float *h = attn + (size_t)n * dim;
    float *att = h + (size_t)n * mlp;
    int l;
    for (l = 0; l < layers; l++) {
        size_t D = (size_t)dim, M = (size_t)mlp;
        layernorm_forward(xb, x, w->ln1_w + l * D, w->ln1_b + l * D, n, dim, eps);
        matmul_forward(qkv, xb, w->wqkv + l * packed_size(D, 3 * D), w->bqkv + l * D * 3, n, dim, 3 * dim, MM_STORE);
        attention_forward(attn, qkv, att, n, dim, heads, causal, first, last, seq);
        matmul_forward(x, attn, w->wo + l * packed_size(D, D), w->bo + l * D, n, dim, dim, MM_ADD);
        layernorm_forward(xb, x, w->ln2_w + l * D, w->ln2_b + l * D, n, dim, eps);
        matmul_forward(h, xb, w->w1 + l * packed_size(D, M), w->b1 + l * M, n, dim, mlp,
                       act == CLIP_ACT_QUICK_GELU ? MM_QUICK_GELU : MM_GELU);
        matmul_forward(x, h, w->w2 + l * packed_size(M, D), w->b2 + l * D, n, mlp, dim, MM_ADD);
    }
}

/* ------------------------------------------------------------------------
   Towers */

/* CLIPVisionTransformer + visual_projection on one crop. */
int clip_encode_image(clip_model *m, const clip_image *crop, float *features, char *err)
{
    const clip_config *c = &m->cfg;
    const vision_weights *w = &m->vision;
    int S = c->image_size, P = c->patch_size, grid = S / P, n = grid * grid + 1, D = c->vision_width;
    int patch_len = c->channels * P * P, g, ch, py, px;
    float *x, *patches, *scratch, *pooled, *mem;
    size_t need;
    if (!crop || !crop->rgb || crop->width != S || crop->height != S) {
        set_err(err, "clip: the image to encode must be %dx%d (run clip_preprocess first), got %dx%d", S, S,
                crop ? crop->width : 0, crop ? crop->height : 0);
        return -1;
    }
    need = (size_t)n * D + (size_t)(n - 1) * patch_len + (size_t)D +
           encoder_scratch(n, D, c->vision_mlp, c->vision_heads, n);
    mem = ws_reserve(&m->ws, need, err);
    if (!mem) return -1;
    x = mem;
    patches = x + (size_t)n * D;
    pooled = patches + (size_t)(n - 1) * patch_len;
    scratch = pooled + D;
    /* CLIPImageProcessor: x / 255, then (x - mean) / std, in float32; each
       patch flattened as the conv weight is, (channel, row, column) */
    for (g = 0; g < grid * grid; g++) {
        float *p = patches + (size_t)g * patch_len;
        int gy = g / grid, gx = g % grid;
        for (ch = 0; ch < 3; ch++)
            for (py = 0; py < P; py++)
                for (px = 0; px < P; px++) {
                    unsigned char u = crop->rgb[((size_t)(gy * P + py) * S + (size_t)(gx * P + px)) * 3 + ch];
                    float v = (float)(u * (1.0 / 255.0));
                    *p++ = (v - c->mean[ch]) / c->std[ch];
                }
    }
    /* CLIPVisionEmbeddings: [class_embedding; patch_embedding(pixels)] + position_embedding */
    memcpy(x, w->class_emb, (size_t)D * sizeof(float));
    matmul_forward(x + D, patches, w->patch_w, NULL, n - 1, patch_len, D, MM_STORE);
    residual_forward(x, w->pos_emb, (size_t)n * D);
    layernorm_forward(x, x, w->pre_ln_w, w->pre_ln_b, n, D, c->vision_eps);
    encoder_forward(x, scratch, &w->enc, c->vision_layers, n, D, c->vision_mlp, c->vision_heads, c->vision_act,
                    c->vision_eps, 0, NULL, NULL, n);
    /* pooled_output = post_layernorm(last_hidden_state[:, 0, :]) */
    layernorm_forward(pooled, x, w->post_ln_w, w->post_ln_b, 1, D, c->vision_eps);
    matmul_forward(features, pooled, w->proj, NULL, 1, D, c->projection_dim, MM_STORE);
    return 0;
}

/* CLIPTextTransformer + text_projection on a batch of token sequences. Each
   sequence runs only up to its first <|endoftext|> (causal attention makes
   later positions irrelevant to it); the sequences are packed into one
   matrix, unpadded, so every matmul serves the whole batch. */
static int encode_text_batch(clip_model *m, const int32_t *ids, const int *seg, int n_texts, int stride,
                             float *features, char *err)
{
    const clip_config *c = &m->cfg;
    const text_weights *w = &m->text;
    int D = c->text_width, t, i, max_len = 0, rows = 0;
    size_t row, need;
    float *x, *pooled, *scratch, *mem;
    int *span;
    for (t = 0; t < n_texts; t++) {
        rows += seg[t];
        if (seg[t] > max_len) max_len = seg[t];
    }
    /* each row attends to the rows of its own text, up to itself */
    span = (int *)malloc((size_t)rows * 2 * sizeof(int));
    if (!span) {
        set_err(err, "clip: out of memory");
        return -1;
    }
    for (t = 0, row = 0; t < n_texts; t++)
        for (i = 0; i < seg[t]; i++, row++) {
            span[row] = (int)(row - (size_t)i);
            span[rows + row] = (int)row;
        }
    need = (size_t)rows * D + (size_t)n_texts * D + encoder_scratch(rows, D, c->text_mlp, c->text_heads, max_len);
    mem = ws_reserve(&m->ws, need, err);
    if (!mem) {
        free(span);
        return -1;
    }
    x = mem;
    pooled = x + (size_t)rows * D;
    scratch = pooled + (size_t)n_texts * D;
    /* CLIPTextEmbeddings: token_embedding(ids) + position_embedding(positions) */
    for (t = 0, row = 0; t < n_texts; t++)
        for (i = 0; i < seg[t]; i++, row++) {
            const float *te = w->tok_emb + (size_t)ids[(size_t)t * stride + i] * D, *pe = w->pos_emb + (size_t)i * D;
            float *xr = x + row * D;
            int d;
            for (d = 0; d < D; d++) xr[d] = te[d] + pe[d];
        }
    encoder_forward(x, scratch, &w->enc, c->text_layers, rows, D, c->text_mlp, c->text_heads, c->text_act,
                    c->text_eps, 1, span, span + rows, max_len);
    free(span);
    /* final_layer_norm at each sequence's <|endoftext|> (its last row), then text_projection */
    for (t = 0, row = 0; t < n_texts; t++) {
        row += (size_t)seg[t];
        layernorm_forward(pooled + (size_t)t * D, x + (row - 1) * D, w->final_ln_w, w->final_ln_b, 1, D, c->text_eps);
    }
    matmul_forward(features, pooled, w->proj, NULL, n_texts, D, c->projection_dim, MM_STORE);
    return 0;
}

#define TEXT_BATCH 64 /* texts per forward pass: bounds the activation memory */

int clip_encode_text(clip_model *m, const int32_t *ids, const int *lens, int n_texts, int stride, float *features,
                     char *err)
{
    const clip_config *c = &m->cfg;
    int seg[TEXT_BATCH], t0, t, i;
    for (t0 = 0; t0 < n_texts; t0 += TEXT_BATCH) {
        int n = n_texts - t0 < TEXT_BATCH ? n_texts - t0 : TEXT_BATCH;
        for (t = 0; t < n; t++) {
            const int32_t *tid = ids + (size_t)(t0 + t) * stride;
            int len = lens[t0 + t];
            if (len < 1 || len > c->context_length || len > stride) {
                set_err(err, "clip: text %d has %d tokens; 1..%d allowed", t0 + t, len, c->context_length);
                return -1;
            }
            seg[t] = len;
            for (i = 0; i < len; i++) {
                if (tid[i] < 0 || tid[i] >= c->vocab_size) {
                    set_err(err, "clip: text %d: token id %ld is outside the vocabulary (0..%d)", t0 + t,
                            (long)tid[i], c->vocab_size - 1);
                    return -1;
                }
                if (tid[i] == c->eos_id) { /* pool at the first <|endoftext|> */
                    seg[t] = i + 1;
                    break;
                }
            }
        }
        if (encode_text_batch(m, ids + (size_t)t0 * stride, seg, n, stride,
                              features + (size_t)t0 * c->projection_dim, err))
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
   Labels files */

static int is_blank(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' || ch == '\f';
}

int clip_split_labels(const char *text, size_t len, size_t **spans, char *err)
{
    size_t i = 0, cap = 0, n = 0;
    size_t *sp = NULL;
    *spans = NULL;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) i = 3;
    while (i < len) {
        size_t start = i, end;
        const char *nl = (const char *)memchr(text + i, '\n', len - i);
        i = nl ? (size_t)(nl - text) : len;
        end = i;
        if (i < len) i++;
        while (start < end && is_blank((unsigned char)text[start])) start++;
        while (end > start && is_blank((unsigned char)text[end - 1])) end--;
        if (start == end) continue;
        if (n == cap) {
            size_t *ns;
            cap = cap ? cap * 2 : 16;
            if (cap > (size_t)INT_MAX || cap > SIZE_MAX / (2 * sizeof(size_t))) {
                free(sp);
                set_err(err, "clip: too many labels");
                return -1;
            }
            ns = (size_t *)realloc(sp, cap * 2 * sizeof(size_t));
            if (!ns) {
                free(sp);
                set_err(err, "clip: out of memory for the labels");
                return -1;
            }
            sp = ns;
        }
        sp[2 * n] = start;
        sp[2 * n + 1] = end - start;
        n++;
    }
    *spans = sp;
    return (int)n;
}

/* ------------------------------------------------------------------------
   Zero-shot classification */

float clip_cosine(const float *a, const float *b, int n)
{
    double ab = 0.0, aa = 0.0, bb = 0.0;
    int i;
    for (i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    if (aa == 0.0 || bb == 0.0) return 0.0f;
    return (float)(ab / (sqrt(aa) * sqrt(bb)));
}

/* logits_per_image = logit_scale.exp() * image_embeds @ text_embeds.t() (both
   normalized); probs = logits_per_image.softmax(dim=1) */
void clip_zero_shot(const clip_model *m, const float *image_features, const float *text_features, int n_texts,
                    float *logits, float *probs)
{
    int E = m->cfg.projection_dim, j;
    double scale = exp((double)m->cfg.logit_scale), mx = -DBL_MAX, sum = 0.0;
    for (j = 0; j < n_texts; j++) {
        logits[j] = (float)(scale * clip_cosine(image_features, text_features + (size_t)j * E, E));
        if (logits[j] > mx) mx = logits[j];
    }
    if (!probs) return;
    for (j = 0; j < n_texts; j++) sum += exp(logits[j] - mx);
    for (j = 0; j < n_texts; j++) probs[j] = (float)(exp(logits[j] - mx) / sum);
}

int clip_preprocess(const clip_model *m, const clip_image *in, clip_image *out, char *err)
{
    const clip_config *c = &m->cfg;
    return clip_resize_crop(in, out, c->resize_mode, c->resize_h, c->resize_w, c->crop_h, c->crop_w, c->resample,
                            err);
}

int clip_preprocess_file(const clip_model *m, const char *path, clip_image *out, char *err)
{
    const clip_config *c = &m->cfg;
    return clip_load_resize_crop(out, path, c->resize_mode, c->resize_h, c->resize_w, c->crop_h, c->crop_w,
                                 c->resample, err);
}

int clip_preprocess_data(const clip_model *m, const unsigned char *data, size_t size, clip_image *out, char *err)
{
    const clip_config *c = &m->cfg;
    return clip_decode_resize_crop(out, data, size, c->resize_mode, c->resize_h, c->resize_w, c->crop_h, c->crop_w,
                                   c->resample, err);
}

int clip_tokenize(const clip_model *m, const char *text, size_t len, int32_t *ids, int max_ids, char *err)
{
    int n = clip_tokenizer_encode(m->tok, text, len, ids, max_ids);
    if (n < 0) set_err(err, "clip: out of memory while tokenizing");
    return n;
}

/* Exposed for the tests (test/test_ops.c): the fast matmul against the
   reference one. */
void clip_internal_matmul(float *out, const float *in, const float *w, const float *bias, int n, int in_dim,
                          int out_dim, int reference)
{
    if (reference)
        matmul_reference(out, in, w, bias, n, in_dim, out_dim);
    else
        matmul_forward(out, in, w, bias, n, in_dim, out_dim, MM_STORE);
}

/* ------------------------------------------------------------------------
   Command line */
#ifndef CLIP_NO_MAIN

static const char usage_text[] =
    "usage: clip MODEL IMAGE LABELS [--json] [--top K] [--template T] [-t N]\n"
    "       clip embed MODEL IMAGE...           image features, one JSON array per image\n"
    "       clip embed MODEL --text TEXT...     text features, one JSON array per text\n"
    "       clip tokenize MODEL [TEXT]          token ids (all of stdin when TEXT is absent)\n"
    "       clip preprocess MODEL IMAGE OUT.ppm the crop the model sees\n"
    "       clip decode IMAGE OUT.ppm           the decoded image\n"
    "\n"
    "MODEL is a weights file from export_weights.py; IMAGE a JPEG or PPM/PGM;\n"
    "LABELS a UTF-8 text file, one label per line.\n"
    "options (anywhere after the command word):\n"
    "  --json          machine-readable output (classification)\n"
    "  --top K         print the K best labels (default: all)\n"
    "  --template T    apply T to every label, {} marks the label (e.g. \"a photo of a {}.\")\n"
    "  -t N            threads (default: all cores, or OMP_NUM_THREADS)\n"
    "  -h, --help      this text\n";

static void die(const char *msg)
{
    fprintf(stderr, "%s\n", msg);
    exit(1);
}

static void usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "clip: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage_text);
    exit(2);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) die("clip: out of memory");
    return p;
}

/* JSON string output: UTF-8 passes through, control characters and quotes
   are escaped, invalid bytes become U+FFFD. */
static void json_string(FILE *f, const char *s, size_t len)
{
    size_t i = 0;
    fputc('"', f);
    while (i < len) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            fputc('\\', f);
            fputc(ch, f);
            i++;
        } else if (ch < 0x20 || ch == 0x7f) {
            fprintf(f, "\\u%04x", ch);
            i++;
        } else if (ch < 0x80) {
            fputc(ch, f);
            i++;
        } else {
            /* copy a well-formed UTF-8 sequence, else emit U+FFFD for one byte */
            int n = ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : ch >= 0xC2 ? 2 : 0, k;
            unsigned cp = n == 4 ? ch & 7u : n == 3 ? ch & 15u : ch & 31u;
            int ok = n > 0 && ch < 0xF5 && i + (size_t)n <= len;
            for (k = 1; ok && k < n; k++) {
                unsigned char cc = (unsigned char)s[i + k];
                if ((cc & 0xC0) != 0x80) ok = 0;
                cp = cp << 6 | (cc & 63u);
            }
            if (ok && ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp < 0xE000))) || (n == 4 && (cp < 0x10000 ||
                                                                                                 cp > 0x10FFFF))))
                ok = 0;
            if (ok) {
                fwrite(s + i, 1, (size_t)n, f);
                i += (size_t)n;
            } else {
                fputs("\xEF\xBF\xBD", f);
                i++;
            }
        }
    }
    fputc('"', f);
}

static void print_floats(FILE *f, const float *v, int n)
{
    int i;
    fputc('[', f);
    for (i = 0; i < n; i++) fprintf(f, "%s%.9g", i ? ", " : "", (double)v[i]);
    fputs("]\n", f);
}

/* Read a whole file (labels) or stream (stdin). */
static char *slurp(FILE *f, size_t *len, const char *what)
{
    char err[CLIP_ERR_SIZE];
    unsigned char *buf = read_stream(f, len, what, err);
    if (!buf) die(err);
    return (char *)buf;
}

typedef struct {
    char **text;   /* each label, NUL-terminated (NUL bytes inside are kept via len) */
    size_t *len;
    int n;
} label_list;

/* Labels file: see clip_split_labels. */
static label_list read_labels(const char *path)
{
    label_list L = {NULL, NULL, 0};
    FILE *f = clip_fopen(path, "rb");
    char err[CLIP_ERR_SIZE], *buf;
    size_t len, *spans;
    int i;
    if (!f) {
        fprintf(stderr, "clip: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    buf = slurp(f, &len, path);
    fclose(f);
    L.n = clip_split_labels(buf, len, &spans, err);
    if (L.n < 0) die(err);
    if (L.n == 0) {
        fprintf(stderr, "clip: %s: no labels (the file is empty or has only blank lines)\n", path);
        exit(1);
    }
    L.text = (char **)xmalloc((size_t)L.n * sizeof(char *));
    L.len = (size_t *)xmalloc((size_t)L.n * sizeof(size_t));
    for (i = 0; i < L.n; i++) {
        L.len[i] = spans[2 * i + 1];
        L.text[i] = (char *)xmalloc(L.len[i] + 1);
        memcpy(L.text[i], buf + spans[2 * i], L.len[i]);
        L.text[i][L.len[i]] = 0;
    }
    free(spans);
    free(buf);
    return L;
}

/* "a photo of a {}." with the label in place of every {} */
static char *apply_template(const char *tmpl, const char *label, size_t label_len, size_t *out_len)
{
    size_t tl = strlen(tmpl), n = 0, i, count = 0;
    char *out;
    for (i = 0; i + 1 < tl; i++)
        if (tmpl[i] == '{' && tmpl[i + 1] == '}') count++;
    if (count == 0) usage_error("--template \"%s\" has no {} to put the label in", tmpl);
    if (label_len > (SIZE_MAX - tl - 1) / count) die("clip: label too long");
    out = (char *)xmalloc(tl + count * label_len + 1);
    for (i = 0; i < tl; i++) {
        if (tmpl[i] == '{' && i + 1 < tl && tmpl[i + 1] == '}') {
            memcpy(out + n, label, label_len);
            n += label_len;
            i++;
        } else {
            out[n++] = tmpl[i];
        }
    }
    out[n] = 0;
    *out_len = n;
    return out;
}

typedef struct {
    const char *args[4096]; /* positional arguments after the command word */
    int nargs;
    int json, top, threads;
    const char *template_;
    int text_mode;          /* embed --text */
} cli_options;

static int parse_int(const char *s, const char *opt)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < 1 || v > 1000000) usage_error("%s needs a positive integer", opt);
    return (int)v;
}

static void parse_options(cli_options *o, int argc, char **argv, int first)
{
    int i, only_positional = 0;
    memset(o, 0, sizeof *o);
    for (i = first; i < argc; i++) {
        const char *a = argv[i];
        if (only_positional || a[0] != '-' || a[1] == 0) {
            if (o->nargs == (int)(sizeof o->args / sizeof o->args[0])) usage_error("too many arguments%s", "");
            o->args[o->nargs++] = a;
        } else if (!strcmp(a, "--")) {
            only_positional = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            exit(0);
        } else if (!strcmp(a, "--json")) {
            o->json = 1;
        } else if (!strcmp(a, "--text")) {
            o->text_mode = 1;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads") || !strcmp(a, "--top") || !strcmp(a, "--template")) {
            if (i + 1 >= argc) usage_error("%s needs a value", a);
            if (!strcmp(a, "--top"))
                o->top = parse_int(argv[++i], a);
            else if (!strcmp(a, "--template"))
                o->template_ = argv[++i];
            else
                o->threads = parse_int(argv[++i], a);
        } else {
            usage_error("unknown option %s", a);
        }
    }
#ifdef _OPENMP
    if (o->threads) omp_set_num_threads(o->threads);
#endif
}

static clip_model *cli_load(const char *path)
{
    char err[CLIP_ERR_SIZE];
    clip_model *m = clip_model_load(path, err);
    if (!m) die(err);
    return m;
}

static void cli_image(const clip_model *m, const char *path, clip_image *crop)
{
    char err[CLIP_ERR_SIZE];
    if (clip_preprocess_file(m, path, crop, err)) die(err);
}

/* Tokenize n texts into a (n, context) id matrix. */
static int32_t *cli_tokenize_all(const clip_model *m, char **texts, const size_t *lens, int n, int *counts)
{
    int ctx = m->cfg.context_length, i;
    char err[CLIP_ERR_SIZE];
    int32_t *ids = (int32_t *)xmalloc((size_t)n * ctx * sizeof(int32_t));
    for (i = 0; i < n; i++) {
        counts[i] = clip_tokenize(m, texts[i], lens[i], ids + (size_t)i * ctx, ctx, err);
        if (counts[i] < 0) die(err);
    }
    return ids;
}

static const float *sort_logits; /* for by_logit */

/* qsort order: higher logit first, then lower index (a stable order) */
static int by_logit(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    if (sort_logits[i] != sort_logits[j]) return sort_logits[i] > sort_logits[j] ? -1 : 1;
    return (i > j) - (i < j);
}

static int cmd_classify(cli_options *o)
{
    char err[CLIP_ERR_SIZE];
    clip_model *m;
    clip_image crop;
    label_list L;
    char **texts;
    size_t *tlens;
    int32_t *ids;
    int *counts, *order, i, E, shown;
    float *img_f, *txt_f, *logits, *probs;
    if (o->nargs != 3) usage_error("classification takes MODEL IMAGE LABELS%s", "");
    m = cli_load(o->args[0]);
    E = m->cfg.projection_dim;
    L = read_labels(o->args[2]);
    texts = (char **)xmalloc((size_t)L.n * sizeof(char *));
    tlens = (size_t *)xmalloc((size_t)L.n * sizeof(size_t));
    for (i = 0; i < L.n; i++) {
        if (o->template_) {
            texts[i] = apply_template(o->template_, L.text[i], L.len[i], &tlens[i]);
        } else {
            texts[i] = L.text[i];
            tlens[i] = L.len[i];
        }
    }
    counts = (int *)xmalloc((size_t)L.n * sizeof(int));
    ids = cli_tokenize_all(m, texts, tlens, L.n, counts);
    cli_image(m, o->args[1], &crop);
    img_f = (float *)xmalloc((size_t)E * sizeof(float));
    txt_f = (float *)xmalloc((size_t)L.n * E * sizeof(float));
    logits = (float *)xmalloc((size_t)L.n * sizeof(float));
    probs = (float *)xmalloc((size_t)L.n * sizeof(float));
    if (clip_encode_image(m, &crop, img_f, err)) die(err);
    if (clip_encode_text(m, ids, counts, L.n, m->cfg.context_length, txt_f, err)) die(err);
    clip_zero_shot(m, img_f, txt_f, L.n, logits, probs);
    /* best first; ties keep file order */
    order = (int *)xmalloc((size_t)L.n * sizeof(int));
    for (i = 0; i < L.n; i++) order[i] = i;
    sort_logits = logits;
    qsort(order, (size_t)L.n, sizeof(int), by_logit);
    shown = o->top && o->top < L.n ? o->top : L.n;
    if (o->json) {
        printf("{\"image\": ");
        json_string(stdout, o->args[1], strlen(o->args[1]));
        printf(", \"labels\": [");
        for (i = 0; i < shown; i++) {
            int k = order[i];
            printf("%s{\"label\": ", i ? ", " : "");
            json_string(stdout, L.text[k], L.len[k]);
            printf(", \"prob\": %.9g, \"logit\": %.9g}", (double)probs[k], (double)logits[k]);
        }
        printf("]}\n");
    } else {
        for (i = 0; i < shown; i++) {
            int k = order[i];
            printf("%6.2f%%  %s\n", 100.0 * probs[k], L.text[k]);
        }
    }
    for (i = 0; i < L.n; i++) {
        if (o->template_) free(texts[i]);
        free(L.text[i]);
    }
    free(L.text);
    free(L.len);
    free(texts);
    free(tlens);
    free(counts);
    free(ids);
    free(img_f);
    free(txt_f);
    free(logits);
    free(probs);
    free(order);
    clip_image_free(&crop);
    clip_model_free(m);
    return 0;
}

static int cmd_embed(cli_options *o)
{
    char err[CLIP_ERR_SIZE];
    clip_model *m;
    float *f;
    int i, E;
    if (o->nargs < 2) usage_error("embed takes MODEL IMAGE... or MODEL --text TEXT...%s", "");
    m = cli_load(o->args[0]);
    E = m->cfg.projection_dim;
    if (o->text_mode) {
        int n = o->nargs - 1, *counts = (int *)xmalloc((size_t)n * sizeof(int));
        size_t *lens = (size_t *)xmalloc((size_t)n * sizeof(size_t));
        int32_t *ids;
        for (i = 0; i < n; i++) lens[i] = strlen(o->args[1 + i]);
        ids = cli_tokenize_all(m, (char **)(o->args + 1), lens, n, counts);
        f = (float *)xmalloc((size_t)n * E * sizeof(float));
        if (clip_encode_text(m, ids, counts, n, m->cfg.context_length, f, err)) die(err);
        for (i = 0; i < n; i++) print_floats(stdout, f + (size_t)i * E, E);
        free(counts);
        free(lens);
        free(ids);
    } else {
        f = (float *)xmalloc((size_t)E * sizeof(float));
        for (i = 1; i < o->nargs; i++) {
            clip_image crop;
            cli_image(m, o->args[i], &crop);
            if (clip_encode_image(m, &crop, f, err)) die(err);
            print_floats(stdout, f, E);
            clip_image_free(&crop);
        }
    }
    free(f);
    clip_model_free(m);
    return 0;
}

static int cmd_tokenize(cli_options *o)
{
    clip_model *m;
    char err[CLIP_ERR_SIZE], *text;
    size_t len;
    int32_t *ids;
    int n, i;
    if (o->nargs != 1 && o->nargs != 2) usage_error("tokenize takes MODEL [TEXT]%s", "");
    m = cli_load(o->args[0]);
    if (o->nargs == 2) {
        len = strlen(o->args[1]);
        text = (char *)xmalloc(len + 1);
        memcpy(text, o->args[1], len + 1);
    } else {
        text = slurp(stdin, &len, "standard input");
    }
    ids = (int32_t *)xmalloc((size_t)m->cfg.context_length * sizeof(int32_t));
    n = clip_tokenize(m, text, len, ids, m->cfg.context_length, err);
    if (n < 0) die(err);
    putchar('[');
    for (i = 0; i < n; i++) printf("%s%ld", i ? ", " : "", (long)ids[i]);
    printf("]\n");
    free(ids);
    free(text);
    clip_model_free(m);
    return 0;
}

static int cmd_preprocess(cli_options *o)
{
    char err[CLIP_ERR_SIZE];
    clip_model *m;
    clip_image crop;
    if (o->nargs != 3) usage_error("preprocess takes MODEL IMAGE OUT.ppm%s", "");
    m = cli_load(o->args[0]);
    cli_image(m, o->args[1], &crop);
    if (clip_image_write_ppm(&crop, o->args[2], err)) die(err);
    clip_image_free(&crop);
    clip_model_free(m);
    return 0;
}

static int cmd_decode(cli_options *o)
{
    char err[CLIP_ERR_SIZE];
    clip_image img;
    if (o->nargs != 2) usage_error("decode takes IMAGE OUT.ppm%s", "");
    if (clip_image_load(&img, o->args[0], err)) die(err);
    if (clip_image_write_ppm(&img, o->args[1], err)) die(err);
    clip_image_free(&img);
    return 0;
}

int main(int argc, char **argv)
{
    cli_options o;
    const char *cmd = argc > 1 ? argv[1] : "";
#ifdef _WIN32
    /* argv is in the ANSI code page, which loses most of Unicode: rebuild it
       as UTF-8 from the UTF-16 command line */
    {
        int wargc, i;
        wchar_t **wargv = CommandLineToArgvW(GetCommandLineW(), &wargc);
        if (wargv && wargc == argc) {
            for (i = 0; i < argc; i++) {
                int n = WideCharToMultiByte(CP_UTF8, 0, wargv[i], -1, NULL, 0, NULL, NULL);
                char *u = n > 0 ? (char *)malloc((size_t)n) : NULL;
                if (u && WideCharToMultiByte(CP_UTF8, 0, wargv[i], -1, u, n, NULL, NULL) > 0) argv[i] = u;
            }
            cmd = argc > 1 ? argv[1] : "";
        }
    }
    _setmode(_fileno(stdin), _O_BINARY);
    _setmode(_fileno(stdout), _O_BINARY);
#endif
    if (argc < 2) {
        fputs(usage_text, stderr);
        return 2;
    }
    if (!strcmp(cmd, "embed") || !strcmp(cmd, "tokenize") || !strcmp(cmd, "preprocess") || !strcmp(cmd, "decode")) {
        parse_options(&o, argc, argv, 2);
        if (o.text_mode && strcmp(cmd, "embed")) usage_error("--text belongs to clip embed%s", "");
        if (!strcmp(cmd, "embed")) return cmd_embed(&o);
        if (!strcmp(cmd, "tokenize")) return cmd_tokenize(&o);
        if (!strcmp(cmd, "preprocess")) return cmd_preprocess(&o);
        return cmd_decode(&o);
    }
    parse_options(&o, argc, argv, 1);
    if (o.text_mode) usage_error("--text belongs to clip embed%s", "");
    return cmd_classify(&o);
}
#endif /* CLIP_NO_MAIN */
