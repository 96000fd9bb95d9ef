/* clip.c - OpenAI's CLIP in plain C99: the weights loader, the transformer
   ops, the vision and text towers, zero-shot classification and the command
   line. Reads top to bottom in that order. Images are decoded in image.c,
   text is tokenized in tokenizer.c, files, memory and error messages are
   platform/platform.c's; the public API is clip.h.

   The numbers follow Hugging Face transformers' CLIPModel (modeling_clip.py);
   each op names the PyTorch line it reproduces. */
#include "clip.h"
#include "platform/platform.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __F16C__
#include <immintrin.h> /* the compiler's own: x86's half-to-float instruction (halves_to_floats) */
#endif

/* ------------------------------------------------------------------------
   Weights. Linear layers are stored as the matmul reads them: transposed to
   (in, out) and cut into panels of 64 output columns, each panel contiguous
   (in, 64), the last one zero-padded; the kernel then streams every weight
   once, in order. Per-layer tensors are stacked over layers.

   The linear weights and the token embedding (marked "typed") are float32,
   or, in a half- or quarter-size file, f16, bf16 or q8 (CLIP_WEIGHTS_*):
   they are bytes here, expanded to float32 as they are used (see "Reduced
   precision"). Everything else is always float32. */

typedef struct {
    float *ln1_w, *ln1_b;        /* (layers, dim) layer_norm1 */
    const unsigned char *wqkv;   /* typed (layers, panels of (dim, 3*dim)) q_proj | k_proj | v_proj */
    float *bqkv;                 /* (layers, 3*dim) */
    const unsigned char *wo;     /* typed (layers, panels of (dim, dim)) out_proj */
    float *bo;                   /* (layers, dim) */
    float *ln2_w, *ln2_b;        /* (layers, dim) layer_norm2 */
    const unsigned char *w1;     /* typed (layers, panels of (dim, mlp)) mlp.fc1 */
    float *b1;                   /* (layers, mlp) */
    const unsigned char *w2;     /* typed (layers, panels of (mlp, dim)) mlp.fc2 */
    float *b2;                   /* (layers, dim) */
} encoder_weights;

typedef struct {
    const unsigned char *patch_w;/* typed panels of (channels*patch*patch, dim): patch_embedding conv as a matmul */
    float *class_emb;            /* (dim) class_embedding */
    float *pos_emb;              /* (tokens, dim) position_embedding, tokens = grid^2 + 1 */
    float *pre_ln_w, *pre_ln_b;  /* (dim) pre_layrnorm */
    encoder_weights enc;         /* the transformer blocks */
    float *post_ln_w, *post_ln_b;/* (dim) post_layernorm */
    const unsigned char *proj;   /* typed panels of (dim, projection_dim): visual_projection */
} vision_weights;

typedef struct {
    const unsigned char *tok_emb;/* typed rows (vocab, dim) token_embedding */
    float *pos_emb;              /* (context, dim) position_embedding */
    encoder_weights enc;         /* the transformer blocks (causal) */
    float *final_ln_w, *final_ln_b; /* (dim) final_layer_norm */
    const unsigned char *proj;   /* typed panels of (dim, projection_dim): text_projection */
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
    const unsigned char *file;   /* the whole blob: source.data, or the caller's buffer */
    size_t file_size;
    clip_file source;            /* the weights file, mapped or read (empty when borrowed) */
    unsigned char *weights_copy; /* byte-swapped / aligned copy of the weights, or NULL */
    clip_context *ctx;           /* the working memory of the one-model API (clip_encode_image, ...) */
};

/* What one forward pass writes: a model is read-only once loaded, so any
   number of threads share it, each with a context of its own. */
struct clip_context {
    const clip_model *model;     /* read only */
    workspace ws;                /* activations, reused between calls */
    float *panels;               /* (slots, panel_floats): expanded weight panels of a typed file, one per thread */
    int panel_slots;             /* how many */
    size_t panel_floats;         /* floats in each */
    clip_probe probe;            /* sees every stage (clip_context_set_probe), or NULL */
    void *probe_ctx;
};

/* ------------------------------------------------------------------------
   The weights file ("blob"); README.md documents it. A 256-byte header of
   64 little-endian 32-bit words, the tensors in the order of
   weight_layout(), then the BPE merges as text. Version 3 says how the
   typed tensors are stored (word 37) and starts every tensor 64-byte
   aligned; version 2 is all float32, tensors back to back. */

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
        clip_error(err, "clip: %s: header field %s is %lu, outside %ld..%ld; the file is damaged, re-run export_weights.py",
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
        clip_error(err, "clip: %s: header field %s is %g, outside %g..%g; the file is damaged, re-run export_weights.py",
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
    int version;
} blob_sections;

static int parse_header(const unsigned char *h, size_t size, const char *path, clip_config *c, blob_sections *s,
                        char *err)
{
    int version, header_size, i, tmp;
    if (size < HEADER_SIZE || memcmp(h, blob_magic, 4) != 0) {
        clip_error(err, "clip: %s: not a clip.c weights file (%s); make one with export_weights.py", path,
                size < HEADER_SIZE ? "too short" : "wrong magic");
        return -1;
    }
    version = (int)rd32(h + 4);
    if (version != 2 && version != CLIP_FORMAT_VERSION) {
        clip_error(err, "clip: %s: version %d, this build reads versions 2 and %d; re-run export_weights.py", path,
                version, CLIP_FORMAT_VERSION);
        return -1;
    }
    s->version = version;
    c->weight_type = CLIP_WEIGHTS_F32;
    if (version >= 3 && hdr_int(h, 37, CLIP_WEIGHTS_F32, CLIP_WEIGHTS_Q8, "weight_type", &c->weight_type, path, err))
        return -1;
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
        clip_error(err, "clip: %s: image_size %d is not a multiple of patch_size %d", path, c->image_size, c->patch_size);
        return -1;
    }
    if (c->vision_width % c->vision_heads || c->text_width % c->text_heads) {
        clip_error(err, "clip: %s: a tower's width is not divisible by its number of heads", path);
        return -1;
    }
    if (hdr_int(h, 48, 1, c->vocab_size - 514, "n_merges", &c->n_merges, path, err)) return -1;
    if (c->vocab_size != 512 + c->n_merges + 2) {
        clip_error(err, "clip: %s: vocab_size %d does not match %d merges (CLIP's vocabulary is 512 + merges + 2)", path,
                c->vocab_size, c->n_merges);
        return -1;
    }
    for (i = version >= 3 ? 38 : 37; i < HEADER_WORDS; i++) {
        if (i == 40 || i == 41 || i == 42 || i == 43 || i == 44 || i == 45 || i == 46 || i == 47 || i == 48 ||
            i == 49 || i == 50)
            continue;
        if (rd32(h + 4 * i) != 0) {
            clip_error(err, "clip: %s: reserved header word %d is not zero; the file is damaged or from a newer "
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
        clip_error(err, "clip: %s: the header says %llu bytes, the file has %llu; the file is truncated or damaged, "
                     "re-run export_weights.py", path, (unsigned long long)s->file_size, (unsigned long long)size);
        return -1;
    }
    if (s->weights_off < HEADER_SIZE || s->weights_off % SECTION_ALIGN ||
        s->weights_size > s->file_size - s->weights_off || s->merges_off < s->weights_off + s->weights_size ||
        s->merges_off > s->file_size || s->merges_size != s->file_size - s->merges_off) {
        clip_error(err, "clip: %s: the section table (weights at %llu+%llu, merges at %llu+%llu) does not fit the file",
                path, (unsigned long long)s->weights_off, (unsigned long long)s->weights_size,
                (unsigned long long)s->merges_off, (unsigned long long)s->merges_size);
        return -1;
    }
    return 0;
}

/* The one table of tensors, in file order; export_weights.py (write_tensors)
   writes the same order. */
enum { SLOT_F32, SLOT_LINEAR, SLOT_ROWS }; /* float32; typed panels; typed embedding rows */
typedef struct {
    const char *name;
    void *dst;    /* where the tensor's address goes: a float ** (SLOT_F32), else a const unsigned char ** */
    int kind;     /* SLOT_* */
    size_t bytes; /* in the file, before the version 3 alignment */
} tensor_slot;

#define MAX_SLOTS 40
#define PANEL 64   /* linear weights come in panels of 64 output columns */
#define Q8_BLOCK 32 /* q8: weights per scale, along a row of nn.Linear's weight (a panel's column) */

/* Floats of a float32 linear weight (in_dim -> out_dim) stored in panels,
   the last one padded. Saturates at SIZE_MAX, which the loader's size check
   refuses (so do the byte counts below). */
static size_t packed_size(size_t in_dim, size_t out_dim)
{
    size_t cols = (out_dim + PANEL - 1) / PANEL * PANEL;
    return cols && in_dim > SIZE_MAX / cols ? SIZE_MAX : in_dim * cols;
}

/* Bytes of one panel (in_dim, PANEL) of a linear weight of the given type.
   q8 keeps, for each block of Q8_BLOCK rows of the panel, the 64 columns'
   half-precision scales and then the (Q8_BLOCK, 64) int8 values, the last
   block zero-padded. */
static size_t panel_bytes(size_t in_dim, int type)
{
    if (in_dim > SIZE_MAX / (PANEL * 4)) return SIZE_MAX;
    switch (type) {
    case CLIP_WEIGHTS_F16:
    case CLIP_WEIGHTS_BF16: return in_dim * PANEL * 2;
    case CLIP_WEIGHTS_Q8: return (in_dim + Q8_BLOCK - 1) / Q8_BLOCK * (PANEL * 2 + Q8_BLOCK * PANEL);
    default: return in_dim * PANEL * 4;
    }
}

/* Bytes of one linear weight (in_dim -> out_dim) of the given type. */
static size_t linear_bytes(size_t in_dim, size_t out_dim, int type)
{
    if (type == CLIP_WEIGHTS_F32) {
        size_t floats = packed_size(in_dim, out_dim);
        return floats > SIZE_MAX / 4 ? SIZE_MAX : floats * 4;
    } else {
        size_t panels = (out_dim + PANEL - 1) / PANEL, pb = panel_bytes(in_dim, type);
        return pb == SIZE_MAX || (panels && pb > SIZE_MAX / panels) ? SIZE_MAX : panels * pb;
    }
}

/* Bytes of one row of cols values of an embedding table: q8 stores each
   block of Q8_BLOCK values as its half-precision scale, then the int8s. */
static size_t row_bytes(size_t cols, int type)
{
    if (cols > SIZE_MAX / 8) return SIZE_MAX;
    switch (type) {
    case CLIP_WEIGHTS_F16:
    case CLIP_WEIGHTS_BF16: return cols * 2;
    case CLIP_WEIGHTS_Q8: return (cols + Q8_BLOCK - 1) / Q8_BLOCK * (2 + Q8_BLOCK);
    default: return cols * 4;
    }
}

static int encoder_layout(tensor_slot *t, int n, encoder_weights *w, size_t layers, size_t dim, size_t mlp, int type,
                          int *ok)
{
#define F32(field, cnt) (t[n].name = #field, t[n].dst = &w->field, t[n].kind = SLOT_F32, \
                         t[n].bytes = mul_sz(cnt, 4, ok), n++)
#define LIN(field, in, out) (t[n].name = #field, t[n].dst = &w->field, t[n].kind = SLOT_LINEAR, \
                             t[n].bytes = mul_sz(layers, linear_bytes(in, out, type), ok), n++)
    F32(ln1_w, mul_sz(layers, dim, ok));
    F32(ln1_b, mul_sz(layers, dim, ok));
    LIN(wqkv, dim, mul_sz(dim, 3, ok));
    F32(bqkv, mul_sz(layers, mul_sz(dim, 3, ok), ok));
    LIN(wo, dim, dim);
    F32(bo, mul_sz(layers, dim, ok));
    F32(ln2_w, mul_sz(layers, dim, ok));
    F32(ln2_b, mul_sz(layers, dim, ok));
    LIN(w1, dim, mlp);
    F32(b1, mul_sz(layers, mlp, ok));
    LIN(w2, mlp, dim);
    F32(b2, mul_sz(layers, dim, ok));
#undef F32
#undef LIN
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
    int n = 0, i, type = c->weight_type;
#define F32(nm, ptr, cnt) (t[n].name = nm, t[n].dst = &(ptr), t[n].kind = SLOT_F32, t[n].bytes = mul_sz(cnt, 4, ok), n++)
#define LIN(nm, ptr, in, out) (t[n].name = nm, t[n].dst = &(ptr), t[n].kind = SLOT_LINEAR, \
                               t[n].bytes = linear_bytes(in, out, type), n++)
    LIN("vision.patch_w", v->patch_w, patch, D);
    F32("vision.class_emb", v->class_emb, D);
    F32("vision.pos_emb", v->pos_emb, mul_sz(tokens, D, ok));
    F32("vision.pre_ln_w", v->pre_ln_w, D);
    F32("vision.pre_ln_b", v->pre_ln_b, D);
    n = encoder_layout(t, n, &v->enc, (size_t)c->vision_layers, D, (size_t)c->vision_mlp, type, ok);
    F32("vision.post_ln_w", v->post_ln_w, D);
    F32("vision.post_ln_b", v->post_ln_b, D);
    LIN("vision.proj", v->proj, D, E);
    t[n].name = "text.tok_emb", t[n].dst = &x->tok_emb, t[n].kind = SLOT_ROWS;
    t[n].bytes = mul_sz((size_t)c->vocab_size, row_bytes(Dt, type), ok), n++;
    F32("text.pos_emb", x->pos_emb, mul_sz((size_t)c->context_length, Dt, ok));
    n = encoder_layout(t, n, &x->enc, (size_t)c->text_layers, Dt, (size_t)c->text_mlp, type, ok);
    F32("text.final_ln_w", x->final_ln_w, Dt);
    F32("text.final_ln_b", x->final_ln_b, Dt);
    LIN("text.proj", x->proj, Dt, E);
#undef F32
#undef LIN
    for (i = 0; i < n; i++)
        if (t[i].bytes == SIZE_MAX) *ok = 0;
    return n;
}

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* A copy of a typed tensor for a big-endian host: the 16-bit values
   (f16, bf16, q8's scales) in host order; q8's int8s need nothing. */
static void copy_typed(unsigned char *dst, const unsigned char *src, size_t bytes, int type, int kind)
{
    size_t i, block = type != CLIP_WEIGHTS_Q8 ? 2 : kind == SLOT_ROWS ? 2 + Q8_BLOCK : PANEL * 2 + Q8_BLOCK * PANEL;
    size_t halves = type != CLIP_WEIGHTS_Q8 ? 1 : kind == SLOT_ROWS ? 1 : PANEL;
    memcpy(dst, src, bytes);
    for (i = 0; i + block <= bytes; i += block) {
        size_t k;
        for (k = 0; k < halves; k++) {
            uint16_t h = (uint16_t)(src[i + 2 * k] | src[i + 2 * k + 1] << 8);
            memcpy(dst + i + 2 * k, &h, 2);
        }
    }
}

/* bytes rounded up to a multiple of align, as the file pads each tensor
   (wraps to less than bytes where size_t cannot hold it: callers check) */
static size_t padded_size(size_t bytes, size_t align)
{
    return bytes + (align - bytes % align) % align;
}

/* Decode the header, check the sections, point the weights into the blob
   and build the tokenizer. m->file and m->file_size are set. */
static int model_init(clip_model *m, const char *path, char *err)
{
    tensor_slot slots[MAX_SLOTS];
    blob_sections s;
    const unsigned char *w;
    unsigned char *base;
    size_t total = 0, off = 0, align;
    int i, n, ok = 1, copy;
    if (parse_header(m->file, m->file_size, path, &m->cfg, &s, err)) return -1;
    /* version 3 starts every tensor at a multiple of 64 bytes */
    align = s.version >= 3 ? SECTION_ALIGN : 1;
    n = weight_layout(m, slots, &ok);
    for (i = 0; i < n && ok; i++) {
        size_t padded = padded_size(slots[i].bytes, align);
        if (padded < slots[i].bytes || padded > SIZE_MAX - total) ok = 0;
        total += padded;
    }
    if (!ok || (uint64_t)total != s.weights_size) {
        if (ok)
            clip_error(err, "clip: %s: the weights section has %llu bytes, the header's dimensions need %llu; the file "
                         "is damaged, re-run export_weights.py", path, (unsigned long long)s.weights_size,
                    (unsigned long long)total);
        else
            clip_error(err, "clip: %s: the header's dimensions need more weights than this platform can address; the "
                         "weights section has %llu bytes", path, (unsigned long long)s.weights_size);
        return -1;
    }
    w = m->file + (size_t)s.weights_off;
    /* used in place where the host reads the file's numbers as they are */
    copy = !host_is_little_endian() || ((uintptr_t)w % sizeof(float)) != 0;
    base = (unsigned char *)(uintptr_t)w; /* weights are never written through */
    if (copy) {
        /* big-endian host or a misaligned borrowed buffer: decode a copy */
        m->weights_copy = (unsigned char *)clip_malloc(total ? total : 1);
        if (!m->weights_copy) {
            clip_error(err, "clip: %s: out of memory for %llu bytes of weights", path, (unsigned long long)total);
            return -1;
        }
        base = m->weights_copy;
    }
    for (i = 0; i < n; i++) {
        if (copy) {
            if (slots[i].kind == SLOT_F32 || m->cfg.weight_type == CLIP_WEIGHTS_F32) {
                size_t k;
                for (k = 0; k + 4 <= slots[i].bytes; k += 4) {
                    float f = bits_to_float(rd32(w + off + k));
                    memcpy(base + off + k, &f, 4);
                }
            } else {
                copy_typed(base + off, w + off, slots[i].bytes, m->cfg.weight_type, slots[i].kind);
            }
        }
        if (slots[i].kind == SLOT_F32)
            *(float **)slots[i].dst = (float *)(void *)(base + off);
        else
            *(const unsigned char **)slots[i].dst = base + off;
        off += padded_size(slots[i].bytes, align);
    }
    m->tok = clip_tokenizer_create((const char *)m->file + (size_t)s.merges_off, (size_t)s.merges_size,
                                   m->cfg.n_merges, err);
    if (!m->tok) return -1;
    if (clip_tokenizer_vocab_size(m->tok) != m->cfg.vocab_size) {
        clip_error(err, "clip: %s: the tokenizer has %d tokens, the model %d", path, clip_tokenizer_vocab_size(m->tok),
                m->cfg.vocab_size);
        return -1;
    }
    m->ctx = clip_context_create(m, err);
    return m->ctx ? 0 : -1;
}

clip_model *clip_model_load_memory(const void *data, size_t size, char *err)
{
    clip_model *m = (clip_model *)clip_calloc(1, sizeof(clip_model));
    if (!m) {
        clip_error(err, "clip: out of memory");
        return NULL;
    }
    m->file = (const unsigned char *)data;
    m->file_size = size;
    if (model_init(m, "(memory)", err)) {
        clip_model_free(m);
        return NULL;
    }
    return m;
}

/* clip_model_load(_read): the file mapped (map) or read */
static clip_model *load_file(const char *path, int map, char *err)
{
    clip_model *m = (clip_model *)clip_calloc(1, sizeof(clip_model));
    if (!m) {
        clip_error(err, "clip: out of memory");
        return NULL;
    }
    if (map ? clip_file_open(&m->source, path, err) : clip_file_read(&m->source, path, err)) {
        clip_free(m);
        return NULL;
    }
    m->file = m->source.data;
    m->file_size = m->source.size;
    if (model_init(m, path, err)) {
        clip_model_free(m);
        return NULL;
    }
    return m;
}

clip_model *clip_model_load(const char *path, char *err)
{
    return load_file(path, 1, err);
}

clip_model *clip_model_load_read(const char *path, char *err)
{
    return load_file(path, 0, err);
}

void clip_model_free(clip_model *m)
{
    if (!m) return;
    clip_context_free(m->ctx);
    clip_tokenizer_free(m->tok);
    clip_free(m->weights_copy);
    clip_file_close(&m->source);
    clip_free(m);
}

const clip_config *clip_model_config(const clip_model *m)
{
    return &m->cfg;
}

/* Four independent multiply-rotate lanes over 8-byte words (fast enough to
   run at memory speed), folded together with the length and the tail bytes.
   Any change of any byte changes the result with near certainty; it is not
   a cryptographic hash and does not need to be. */
uint64_t clip_model_fingerprint(const clip_model *m)
{
    const uint64_t K1 = 0x9E3779B97F4A7C15ull, K2 = 0xC2B2AE3D27D4EB4Full;
    uint64_t lane[4], h;
    const unsigned char *p = m->file;
    size_t n = m->file_size, i, k;
    int le = host_is_little_endian();
    lane[0] = K1;
    lane[1] = K2;
    lane[2] = ~K1;
    lane[3] = ~K2;
    for (i = 0; i + 32 <= n; i += 32)
        for (k = 0; k < 4; k++) {
            uint64_t v;
            memcpy(&v, p + i + 8 * k, 8);
            if (!le) { /* the words as a little-endian host reads them */
                int b;
                v = 0;
                for (b = 7; b >= 0; b--) v = v << 8 | p[i + 8 * k + (size_t)b];
            }
            lane[k] = (lane[k] ^ v) * K1;
            lane[k] = (lane[k] << 29 | lane[k] >> 35) * K2;
        }
    h = (uint64_t)n * K1;
    for (k = 0; k < 4; k++) h = ((h ^ lane[k]) * K2) ^ (h >> 31);
    for (; i < n; i++) h = (h ^ p[i]) * K1;
    return h ^ (h >> 29);
}

clip_context *clip_context_create(const clip_model *m, char *err)
{
    clip_context *c;
    if (!m) {
        clip_error(err, "clip: no model for the context");
        return NULL;
    }
    c = (clip_context *)clip_calloc(1, sizeof(clip_context));
    if (!c) {
        clip_error(err, "clip: out of memory");
        return NULL;
    }
    c->model = m;
    return c;
}

void clip_context_free(clip_context *c)
{
    if (!c) return;
    clip_free(c->ws.mem);
    clip_free(c->panels);
    clip_free(c);
}

void clip_context_set_probe(clip_context *c, clip_probe fn, void *ctx)
{
    c->probe = fn;
    c->probe_ctx = ctx;
}

void clip_model_set_probe(clip_model *m, clip_probe fn, void *ctx)
{
    clip_context_set_probe(m->ctx, fn, ctx);
}

/* Show a stage to the probe, if there is one. */
static void probe(const clip_context *c, const char *stage, int layer, const float *x, int rows, int cols)
{
    if (c->probe) c->probe(c->probe_ctx, stage, layer, x, rows, cols);
}

/* A workspace of at least n floats; the old contents are not kept. */
static float *ws_reserve(workspace *ws, size_t n, char *err)
{
    if (n > ws->cap) {
        float *p;
        if (n > SIZE_MAX / sizeof(float)) {
            clip_error(err, "clip: activation buffers too large for this platform");
            return NULL;
        }
        p = (float *)clip_malloc(n * sizeof(float));
        if (!p) {
            clip_error(err, "clip: out of memory for %llu bytes of activations", (unsigned long long)(n * sizeof(float)));
            return NULL;
        }
        clip_free(ws->mem);
        ws->mem = p;
        ws->cap = n;
    }
    return ws->mem;
}

/* ------------------------------------------------------------------------
   Primitive ops. Shapes: (rows, cols), row-major.

   Each fast op has its plain reference beside it, and the tests compare
   them; a port whose compiler mistranslates a fast one can build with
   -DCLIP_REFERENCE_OPS=1 to run the references instead (slowly) and
   compare. */
#ifndef CLIP_REFERENCE_OPS
#define CLIP_REFERENCE_OPS 0
#endif

/* nn.LayerNorm(dim, eps)(in), the definition: statistics in double, each
   one running sum (for the tests and CLIP_REFERENCE_OPS) */
static void layernorm_reference(float *out, const float *in, const float *w, const float *b, int n, int dim, float eps)
{
    int r;
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

/* The same, each statistic summed in LN_LANES running sums side by side.
   One running sum is a chain of dependent adds, a few cycles each (about
   2 ms of a ViT-B/32 image at one thread); separate lanes vectorize and
   overlap. In double, the order changes the statistics far below a
   float's rounding. */
#define LN_LANES 32
static void layernorm_forward(float *out, const float *in, const float *w, const float *b, int n, int dim, float eps)
{
    int r;
    if (CLIP_REFERENCE_OPS) {
        layernorm_reference(out, in, w, b, n, dim, eps);
        return;
    }
    OMP("omp parallel for schedule(static) if ((size_t)n * dim > 16384)")
    for (r = 0; r < n; r++) {
        const float *x = in + (size_t)r * dim;
        float *y = out + (size_t)r * dim;
        double lane[LN_LANES], mean = 0.0, var = 0.0;
        float mu, rstd;
        int i, j, full = dim - dim % LN_LANES;
        for (j = 0; j < LN_LANES; j++) lane[j] = 0.0;
        for (i = 0; i < full; i += LN_LANES)
            for (j = 0; j < LN_LANES; j++) lane[j] += x[i + j];
        for (j = 0; j < LN_LANES; j++) mean += lane[j];
        for (i = full; i < dim; i++) mean += x[i];
        mean /= dim;
        for (j = 0; j < LN_LANES; j++) lane[j] = 0.0;
        for (i = 0; i < full; i += LN_LANES)
            for (j = 0; j < LN_LANES; j++) {
                double d = x[i + j] - mean;
                lane[j] += d * d;
            }
        for (j = 0; j < LN_LANES; j++) var += lane[j];
        for (i = full; i < dim; i++) {
            double d = x[i] - mean;
            var += d * d;
        }
        mu = (float)mean;
        rstd = (float)(1.0 / sqrt(var / dim + eps));
        for (i = 0; i < dim; i++) y[i] = (x[i] - mu) * rstd * w[i] + b[i];
    }
}

/* nn.Linear: out = in @ W^T + bias, for n rows of in_dim; bias may be NULL.
   W (out_dim, in_dim) is stored in panels (see "Weights" above): weight_at
   hides that layout, so the reference reads as PyTorch's definition.

   What a matmul does with each result before storing it (its epilogue):
   store it, add it to what is there (a residual connection: out is the
   residual stream), or store it through the MLP's activation. */
enum { MM_STORE, MM_RESIDUAL_ADD, MM_QUICK_GELU, MM_GELU };

/* e^x for the fast ops (softmax, quick_gelu), vectorizable: libm's expf
   is a call per value, this is a few multiply-adds that compilers run 8 or
   16 at a time. x = n ln2 + r with |r| <= ln2/2 (ln2 in two parts, so r is
   exact), e^r by its Taylor series to r^7 (the first term left out is
   below 1e-8 relative), 2^n put in a float's exponent bits. Measured on
   every float in [-87, 88.72]: within 0.94 ulp of expf with FMA, 1.22
   without. Outside, it saturates: 0 below about -86.9, FLT_MAX above
   ln(FLT_MAX) (expf: subnormals, then 0; inf); NaN stays NaN. Branch-free
   on purpose: the clamps are bit masks, because a ?: lets gcc's partial
   redundancy elimination split the loop into paths that it then refuses
   to vectorize; n comes from the bits of t + 1.5 * 2^23 (round to nearest),
   not from a float-to-int conversion. */
static inline float exp_fast(float x)
{
    union {
        float f;
        uint32_t u;
    } a, lo, hi, t, scale;
    uint32_t below, above;
    float r, p, nf;
    int32_t n;
    a.f = x;
    lo.f = -87.0f;
    hi.f = 88.7228317f;
    below = 0u - (uint32_t)(x < lo.f);
    above = 0u - (uint32_t)(x > hi.f);
    a.u = (a.u & ~(below | above)) | (lo.u & below) | (hi.u & above);
    t.f = a.f * 1.44269504088896341f + 12582912.0f; /* round(x / ln2) + 1.5 * 2^23 */
    n = (int32_t)(t.u & 0x7fffffu) - 0x400000;
    nf = (float)n;
    r = a.f - nf * 0.693359375f; /* ln2's high part: 9 bits, so nf * it is exact */
    r = r + nf * 2.12194440e-4f; /* and the rest of ln2 */
    p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    scale.u = (uint32_t)(n + 126) << 23; /* 2^(n-1): n + 127 would overflow at n = 128; 0 at n = -126 */
    return p * 2.0f * scale.f; /* in this order: p * 2 is exact, p * scale could go subnormal */
}

/* ACT2FN["quick_gelu"]: x * sigmoid(1.702 x); ACT2FN["gelu"]: the exact erf
   form. The reference ops use libm; the fast ops take quick_gelu_fast and
   gelu_fast. */
static float quick_gelu(float x)
{
    return x / (1.0f + expf(-1.702f * x));
}

static inline float quick_gelu_fast(float x)
{
    return x / (1.0f + exp_fast(-1.702f * x));
}

static float gelu(float x)
{
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

/* GELU as x * Phi(x), Phi the normal distribution's CDF, from erf's
   approximation 7.1.26 in Abramowitz and Stegun (absolute error below
   1.5e-7): 1 - Phi(|x|) = q(t) e^(-z^2) / 2 with z = |x| / sqrt(2),
   t = 1 / (1 + 0.3275911 z), q of degree 5. Measured against float64:
   |error| <= 1.8e-7 max(1, |x|), where the libm form has 1.0e-7 (1 + erff
   loses as much to rounding). Branch-free, so it vectorizes: the sign
   picks Phi or 1 - Phi by a bit mask. */
static inline float gelu_fast(float x)
{
    union {
        float f;
        uint32_t u;
    } z, phi, tail;
    uint32_t negative;
    float t, q;
    z.f = x * 0.70710678118654752f;
    negative = 0u - (z.u >> 31);
    z.u &= 0x7fffffffu; /* |z| */
    t = 1.0f / (1.0f + 0.3275911f * z.f);
    q = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    tail.f = q * exp_fast(-z.f * z.f) * 0.5f; /* 1 - Phi(|x|) = Phi(-|x|) */
    phi.f = 1.0f - tail.f;
    phi.u = (phi.u & ~negative) | (tail.u & negative);
    return x * phi.f;
}

/* the fast matmul's epilogue for one row of cols results. Not inlined
   under clang: inlined into a tile, clang 14 forwarded the tile's sums
   into its memcpy and then kept all the tile's accumulators in memory. */
#if defined(__clang__)
__attribute__((noinline))
#endif
static void epilogue(float *out, const float *acc, int cols, int mode)
{
    int c;
    switch (mode) {
    case MM_RESIDUAL_ADD:
        for (c = 0; c < cols; c++) out[c] += acc[c];
        break;
    case MM_QUICK_GELU:
        for (c = 0; c < cols; c++) out[c] = quick_gelu_fast(acc[c]);
        break;
    case MM_GELU:
        for (c = 0; c < cols; c++) out[c] = gelu_fast(acc[c]);
        break;
    default:
        memcpy(out, acc, (size_t)cols * sizeof(float));
    }
}

/* the same, one value, with libm, for the reference matmul */
static void epilogue_reference(float *out, float acc, int mode)
{
    *out = mode == MM_RESIDUAL_ADD ? *out + acc
         : mode == MM_QUICK_GELU  ? quick_gelu(acc)
         : mode == MM_GELU        ? gelu(acc)
                                  : acc;
}

/* W[o][k] of nn.Linear's weight, from its panel layout */
static float weight_at(const float *w, int in_dim, int o, int k)
{
    return w[((size_t)(o / PANEL) * in_dim + (size_t)k) * PANEL + (size_t)(o % PANEL)];
}

/* out[r][o] = bias[o] + sum_k in[r][k] * W[o][k], one output at a time */
static void matmul_reference(float *out, const float *in, const float *w, const float *bias, int n, int in_dim,
                             int out_dim, int mode)
{
    int r, o, k;
    for (r = 0; r < n; r++)
        for (o = 0; o < out_dim; o++) {
            float acc = bias ? bias[o] : 0.0f;
            for (k = 0; k < in_dim; k++) acc += in[(size_t)r * in_dim + k] * weight_at(w, in_dim, o, k);
            epilogue_reference(out + (size_t)r * out_dim + o, acc, mode);
        }
}

#define MM_MR 6 /* at most this many input rows per tile */

/* The tile's width: a 64-column panel is walked in PANEL / MM_NC slices of
   MM_NC columns; each output's sum is the same, in the same k order,
   whatever the width, so the width is only a matter of speed, chosen per
   target from its registers (-DMM_NC=... overrides it): the tile's
   MM_MR x MM_NC accumulators, 24 registers where the width allows, plus
   a slice of a weight row and the broadcast input should fit the target's
   register file, or the sums go to memory and back at every k. Measured
   with gcc 12 on this project's machine (AMD Zen 5), one thread,
   bench/matmul_bench, as a fraction of the peak of the same build:
     AVX-512 (32 registers of 16 floats): 64, 6 x 4 registers, 86-96%;
     AVX2 + FMA (16 of 8): 32 (6 x 4, some spilled), 59-65% of its peak,
       where 16 (6 x 2) made 49-56%;
     128-bit vectors: 16, 6 x 4 registers. SSE2 (x86-64 without -march,
       16 registers, no fused multiply-add) 70-77%, against 47-57% for 16
       and 64 before the tile's loops were turned so that the rows sit
       inside the columns (matmul_tile); aarch64's NEON (32 registers)
       compiles to a 6 x 16 block of fmla by element with one spill every
       other k (gcc 12 -O3, read in its assembly; no arm64 machine here);
     no vectors (the compilers' defaults for armhf, i686, s390x, riscv64
       and the bare-metal Cortex-M4; 32-bit ARM with -mfpu=neon too, as
       gcc does not vectorize float arithmetic on NEON there without
       -funsafe-math-optimizations): 4, 24 scalar accumulators, which
       the 32 single-precision registers of ARM's VFP and RISC-V's F hold
       (armhf's assembly: the k loop is loads and vmla only); a 64-wide
       tile there kept its sums in memory, a load and a store per product.
   wasm's simd128, POWER's VSX and s390x's vector facility take 16 by the
   same reasoning, not measured. Narrower was slower where measured: 8
   columns made 8-11% of the peak on SSE2 and 5% on AVX2 (gcc 12 then
   vectorizes across the rows instead). */
#ifndef MM_NC
#if defined(__AVX512F__)
#define MM_NC 64
#elif defined(__AVX__)
#define MM_NC 32
#elif defined(__SSE2__) || defined(_M_X64) || defined(__aarch64__) || defined(_M_ARM64) || \
    defined(__wasm_simd128__) || defined(__VSX__) || defined(__VEC__)
#define MM_NC 16
#else
#define MM_NC 4
#endif
#endif
#if MM_NC < 1 || PANEL % MM_NC != 0
#error "MM_NC must divide the panel width PANEL"
#endif

/* A hint that the bytes at p will be read soon (no effect on results;
   compilers without the builtin get nothing). */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(__TINYC__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)(p))
#endif
#define CACHE_LINE 64

/* The tiles are inlined where they are called with constant sizes and
   types: left to itself, gcc 12 made out-of-line copies of them once
   matmul_block called six, and those ran at a third of the speed. */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(__TINYC__)
#define TILE_INLINE static inline __attribute__((always_inline))
#else
#define TILE_INLINE static inline
#endif

/* Which weight types the tiles multiply straight from the file's panels:
   float32; bf16, whose conversion is a shift; and f16 where the target
   converts it in one instruction (x86's F16C). A tile converts each weight
   row as it reads it, in registers, so no float32 copy of the panel is
   written and the half-size panels are what streams from memory: a
   ViT-B/32 text pass, 1 thread, took 7% (bf16) and 13% (f16) less time
   than when each panel was first expanded to a float32 buffer
   (bench/README). Other types (q8, and f16 elsewhere) are expanded
   (matmul_expanded). */
#if defined(__F16C__) && !CLIP_REFERENCE_OPS
#define F16_IN_TILE 1
#else
#define F16_IN_TILE 0
#endif
static int in_tile(int type)
{
    return type == CLIP_WEIGHTS_F32 || type == CLIP_WEIGHTS_BF16 || (type == CLIP_WEIGHTS_F16 && F16_IN_TILE);
}

/* bytes of one weight of a type in_tile takes */
static size_t weight_size(int type)
{
    return type == CLIP_WEIGHTS_F32 ? 4 : 2;
}

static void halves_row(float *dst, const uint16_t *src, int type);

/* a * b + c as the tiles sum it: fused into one rounding where the target
   has the instruction (as -ffp-contract=fast contracts the reference ops).
   For gcc it is spelled out, so that every inlined copy of a tile is fused
   alike: its vectorizer left some products of some copies unfused
   otherwise, and their sums differed in the last bits. Not for clang,
   which contracts each expression as written but does not vectorize fmaf
   (under -std=c99 it may set errno): its tiles became scalar code. */
#if defined(FP_FAST_FMAF) && defined(__GNUC__) && !defined(__clang__)
#define MADD(a, b, c) fmaf(a, b, c)
#else
#define MADD(a, b, c) ((a) * (b) + (c))
#endif

/* For clang, the tile's loops are unrolled in full before it vectorizes
   them, so that each accumulator is a value of its own that can live in a
   register: otherwise clang 14 kept them in memory, a load and a store
   around every multiply-add (with epilogue's noinline and tile_store, all
   three were needed). gcc unrolls them itself, after vectorizing. */
#if defined(__clang__)
#define UNROLLED _Pragma("clang loop unroll(full)")
#else
#define UNROLLED
#endif

/* The tile's sums through the epilogue into the rows of out (a NULL row
   is dropped). Each row is copied out first, so that the accumulators'
   address is never taken; clang keeps in memory what a call could see. */
TILE_INLINE void tile_store(float *const *out, float acc[][MM_NC], int cols, int mode, int mr)
{
    float sums[MM_NC];
    int r, c;
    for (r = 0; r < mr; r++) {
        if (!out[r]) continue;
        for (c = 0; c < MM_NC; c++) sums[c] = acc[r][c];
        epilogue(out[r], sums, cols, mode);
    }
}

/* The order of the tile's loops at each k; each sum is the same sequence
   of products either way, so it is only a matter of speed. Rows inside
   the columns: each slice of a weight row is loaded once and multiplied
   into every row's sums, which holds the MM_MR inputs of the k in
   registers beside the sums; gcc keeps the tile in registers this way on
   narrow vector units and without vectors (a ViT-B/32 image, 1 thread:
   AVX2 137 ms against 177-183 with rows outside; SSE2 239 against 328
   with the width per target as well; bench/README).
   Rows outside: one input at a time is broadcast and multiplied by the
   row's slice, which the multiply-adds read from memory; with AVX-512's 32
   registers the 24 sums and the broadcast fit this way, and gcc's build
   was faster so (ViT-B/16 image, gcc 12, builds alternating: 168-174
   against 178-183 ms at 1 thread, 90-97 against 96-102 at 2); clang 14's
   was far slower so (265-299 against 167-178 ms), and keeps the rows
   inside. -DTILE_ROWS_INSIDE=0 or 1 overrides it. */
#ifndef TILE_ROWS_INSIDE
#if defined(__AVX512F__) && !defined(__clang__)
#define TILE_ROWS_INSIDE 0
#else
#define TILE_ROWS_INSIDE 1
#endif
#endif

/* One mr x MM_NC tile: each row's sums start from init (the bias, or the
   sums of the k before), then the products in k order. It is called
   with constant mr (5 or 6), so the compiler makes one copy per size
   with fixed loop bounds and keeps the accumulators in vector registers.
   The order of its loops is TILE_ROWS_INSIDE's. panel points at the
   slice's first column (rows of the panel are PANEL apart); rows come
   as pointers (a short last tile repeats a row and drops it). On the way
   it asks for ahead_steps x lines_per_step cache lines from ahead (the
   weights the next tiles will need), a few per k. */
TILE_INLINE void matmul_tile(float *const *out, const float *const *in, const float *panel, const float *const *init,
                             int in_dim, int cols, int mode, int mr, const char *ahead, int ahead_steps,
                             int lines_per_step)
{
    float acc[MM_MR][MM_NC], a[MM_MR];
    int r, c, k, j;
    UNROLLED for (r = 0; r < mr; r++)
        UNROLLED for (c = 0; c < MM_NC; c++) acc[r][c] = init[r][c];
    for (k = 0; k < in_dim; k++) {
        const float *wk = panel + (size_t)k * PANEL;
        if (k < ahead_steps)
            for (j = 0; j < lines_per_step; j++) PREFETCH(ahead + ((size_t)k * lines_per_step + j) * CACHE_LINE);
        if (TILE_ROWS_INSIDE) {
            UNROLLED for (r = 0; r < mr; r++) a[r] = in[r][k];
            UNROLLED for (c = 0; c < MM_NC; c++) {
                float w = wk[c];
                UNROLLED for (r = 0; r < mr; r++) acc[r][c] = MADD(a[r], w, acc[r][c]);
            }
        } else {
            UNROLLED for (r = 0; r < mr; r++) {
                float x = in[r][k];
                UNROLLED for (c = 0; c < MM_NC; c++) acc[r][c] = MADD(x, wk[c], acc[r][c]);
            }
        }
    }
    tile_store(out, acc, cols, mode, mr);
}

/* matmul_tile on a panel of f16 or bf16 weights (type, a constant at
   each call): each weight row is converted as it is read, into registers,
   and the sums are matmul_tile's on the converted weights. A copy of its
   own, so that the float32 tile's code stays as the compiler made it.
   Its rows stay outside the columns on every target (TILE_ROWS_INSIDE
   turns matmul_tile's on most): with gcc this copy ran slower turned, by
   7-16% on AVX-512 and 9-11% on AVX2 (ViT-B/32 f16 and bf16 passes,
   bench/clip_bench, builds alternating) and no faster on SSE2. The sums
   are the same either way. */
TILE_INLINE void matmul_tile_halves(float *const *out, const float *const *in, const uint16_t *panel, int type,
                                    const float *const *init, int in_dim, int cols, int mode, int mr,
                                    const char *ahead, int ahead_steps, int lines_per_step)
{
    float acc[MM_MR][MM_NC], wk[MM_NC];
    int r, c, k, j;
    UNROLLED for (r = 0; r < mr; r++)
        UNROLLED for (c = 0; c < MM_NC; c++) acc[r][c] = init[r][c];
    for (k = 0; k < in_dim; k++) {
        halves_row(wk, panel + (size_t)k * PANEL, type);
        if (k < ahead_steps)
            for (j = 0; j < lines_per_step; j++) PREFETCH(ahead + ((size_t)k * lines_per_step + j) * CACHE_LINE);
        UNROLLED for (r = 0; r < mr; r++) {
            float x = in[r][k];
            UNROLLED for (c = 0; c < MM_NC; c++) acc[r][c] = MADD(x, wk[c], acc[r][c]);
        }
    }
    tile_store(out, acc, cols, mode, mr);
}

/* matmul_tile_halves with mr (5 or 6) made a constant: a copy per height */
TILE_INLINE void tile_halves_of_height(float *const *out, const float *const *in, const uint16_t *panel, int type,
                                       const float *const *init, int in_dim, int cols, int mode, int mr,
                                       const char *ahead, int ahead_steps, int lines_per_step)
{
    if (mr == 6)
        matmul_tile_halves(out, in, panel, type, init, in_dim, cols, mode, 6, ahead, ahead_steps, lines_per_step);
    else
        matmul_tile_halves(out, in, panel, type, init, in_dim, cols, mode, 5, ahead, ahead_steps, lines_per_step);
}

/* One tile height, 5 or 6, that wastes the fewest rows on n: the
   attention's blocks of query rows (matmuls mix the two, row_split).
   Not 4: gcc 12 compiles the 4-row tile another way (across the rows),
   and it ran at a third of the speed of the 5- and 6-row tiles on this
   project's machine (bench/matmul_bench: 4 prompts of 7 tokens, 28 rows,
   went from 4-row tiles at 50-70 GFLOP/s to 6-row tiles at 117-190, one
   thread), so a few repeated rows cost less. */
static int tile_rows(int n)
{
    int best = MM_MR, waste = INT_MAX, mr;
    for (mr = MM_MR; mr >= 5; mr--) {
        int w = (n + mr - 1) / mr * mr - n;
        if (w < waste) {
            waste = w;
            best = mr;
        }
    }
    return best;
}

/* A matmul's rows as tiles of MM_MR rows, then of MM_MR - 1 (6 and 5):
   every n from 20 up is such a sum, so no row is computed twice (28
   prompt rows: 3 x 6 + 2 x 5, where one height took 5 x 6 = 30), and
   below that the fewest rows are repeated. Of the splits that waste the
   fewest rows, the one with the fewest tiles. Returns the number of
   tiles; *tall of them, the first, are MM_MR rows high. */
static int row_split(int n, int *tall)
{
    int best_waste = INT_MAX, best_tiles = INT_MAX, b;
    *tall = 0;
    for (b = 0; b < MM_MR; b++) { /* b short tiles; MM_MR of them would be MM_MR - 1 tall ones */
        int rest = n - b * (MM_MR - 1), a = rest > 0 ? (rest + MM_MR - 1) / MM_MR : 0;
        int waste = a * MM_MR + b * (MM_MR - 1) - n;
        if (waste < best_waste || (waste == best_waste && a + b < best_tiles)) {
            best_waste = waste;
            best_tiles = a + b;
            *tall = a;
        }
    }
    return best_tiles;
}

/* tile i of a row_split with tall tall tiles: its first row and height */
static void row_tile(int tall, int i, int *r0, int *mr)
{
    *mr = i < tall ? MM_MR : MM_MR - 1;
    *r0 = i < tall ? i * MM_MR : tall * MM_MR + (i - tall) * (MM_MR - 1);
}

/* Products over more than MM_KC inputs are summed in blocks of k: the
   input rows and the panel rows of one block stay in cache while every row
   tile uses them (fc2's 3,072 inputs: 50 rows x 12 KB and a 768 KB panel
   do not fit this machine's 1 MB L2 together, and it ran at 73% of the
   peak against 89% for 768 inputs). Between blocks the running sums wait
   in memory as floats, so each is the same sum in the same k order. */
#ifndef MM_KC
#define MM_KC 1024
#endif

/* How many k blocks, of at most MM_KC each, a product over in_dim takes:
   one for a residual add with nowhere but out to keep its running sums
   (partial NULL), since out holds the residual until the end. */
static int k_blocks(int in_dim, int mode, const float *partial)
{
    if (mode == MM_RESIDUAL_ADD && !partial) return 1;
    return in_dim > MM_KC ? (in_dim + MM_KC - 1) / MM_KC : 1;
}

/* where k block kb of blocks starts (kb = blocks: where the last ends) */
static int k_bound(int in_dim, int kb, int blocks)
{
    return (int)((long long)in_dim * kb / blocks);
}

/* Row tile `tile` of the `tiles` of row_split(n, &tall) (rows past n
   repeat the last and are dropped) times the MM_NC columns from c0, over
   inputs k0 .. k1-1: panel points at that slice of the (in_dim, PANEL)
   panel holding column c0, weights of the given type (in_tile).
   The sums start from the bias when k0 is 0, else from partial (n,
   out_dim); they end in out through the epilogue when k1 is in_dim, else
   in partial. partial may be out unless mode adds to out.

   next (next_bytes long; NULL for none) is the weights the thread goes on
   to. The first row tile of a panel waits on memory: its weights stream
   in at the rate it multiplies, faster than memory delivers, while the
   later tiles find them in cache and leave memory idle. So the later tiles
   (or the only one) fetch the next panel between them, a share each, and
   its first tile finds it in cache too: without this a batch-1 forward
   pass, whose weights fit in no cache, spent a tenth of its time waiting. */
static void matmul_block(float *out, float *partial, const float *in, const void *panel, int type,
                         const float *bias, int n, int in_dim, int k0, int k1, int out_dim, int mode, int tall, int tile,
                         int tiles, int c0, const char *next, size_t next_bytes)
{
    int cols = out_dim - c0 < MM_NC ? out_dim - c0 : MM_NC, depth = k1 - k0, r0, mr, r, c;
    int share = tiles > 1 ? tile - 1 : 0, steps = 0, per_step = 1;
    const float *rows_in[MM_MR], *init[MM_MR];
    float *rows_out[MM_MR], b[MM_NC], held[MM_MR][MM_NC];
    const char *ahead = NULL;
    row_tile(tall, tile, &r0, &mr);
    if (next && share >= 0 && depth > 0) {
        size_t lines = next_bytes / CACHE_LINE, helpers = tiles > 1 ? (size_t)tiles - 1 : 1, first;
        per_step = (int)((lines + helpers * depth - 1) / (helpers * depth)); /* lines per k to cover it */
        if (per_step < 1) per_step = 1;
        if (per_step > 4) per_step = 4;
        first = (size_t)share * depth * per_step;
        if (first < lines) {
            size_t mine = lines - first < (size_t)depth * per_step ? lines - first : (size_t)depth * per_step;
            ahead = next + first * CACHE_LINE;
            steps = (int)(mine / per_step);
        }
    }
    for (c = 0; c < MM_NC; c++) b[c] = bias && c < cols ? bias[c0 + c] : 0.0f;
    for (r = 0; r < mr; r++) {
        size_t rr = (size_t)(r0 + r < n ? r0 + r : n - 1);
        rows_in[r] = in + rr * in_dim + k0;
        if (k0 == 0) {
            init[r] = b;
        } else if (cols == MM_NC) {
            init[r] = partial + rr * out_dim + c0;
        } else { /* a narrow last slice: its row in partial is only cols wide */
            for (c = 0; c < MM_NC; c++) held[r][c] = c < cols ? partial[rr * out_dim + c0 + c] : 0.0f;
            init[r] = held[r];
        }
        rows_out[r] = r0 + r < n ? (k1 == in_dim ? out : partial) + (size_t)(r0 + r) * out_dim + c0 : NULL;
    }
    if (k1 < in_dim) mode = MM_STORE;
    panel = (const char *)panel + (size_t)k0 * PANEL * weight_size(type);
    /* constant arguments: a copy of the tile for each height and type */
    if (type == CLIP_WEIGHTS_F32) {
        const float *p = (const float *)panel;
        if (mr == 6)
            matmul_tile(rows_out, rows_in, p, init, depth, cols, mode, 6, ahead, steps, per_step);
        else
            matmul_tile(rows_out, rows_in, p, init, depth, cols, mode, 5, ahead, steps, per_step);
    } else if (type == CLIP_WEIGHTS_BF16) {
        tile_halves_of_height(rows_out, rows_in, (const uint16_t *)panel, CLIP_WEIGHTS_BF16, init, depth, cols, mode, mr,
                              ahead, steps, per_step);
    } else {
        tile_halves_of_height(rows_out, rows_in, (const uint16_t *)panel, CLIP_WEIGHTS_F16, init, depth, cols, mode, mr,
                              ahead, steps, per_step);
    }
}

/* The bytes of a weight (in_dim inputs, panels, a type in_tile takes)
   that a matmul over it reads first: its first panel's rows of the first
   k block. */
static size_t first_block_bytes(int in_dim, int type)
{
    return (size_t)k_bound(in_dim, 1, k_blocks(in_dim, MM_STORE, NULL)) * PANEL * weight_size(type);
}

/* matmul_reference's sums, in the same k order, computed in register tiles
   of mr rows x one MM_NC-column slice of a panel, with the epilogue applied
   on the way out. w is the panels, weights of a type in_tile takes.
   partial: (n, out_dim) floats for the running sums of a product in k
   blocks, or NULL to keep them in out (then a residual add takes its k in
   one block). next (next_bytes long, or NULL) is what the caller reads
   after this product, the next matmul's first_block_bytes: it is fetched
   while the last panel runs, as each panel fetches the one after it (a
   hint; results do not depend on it). */
static void matmul_forward(float *out, const float *in, const void *w, int type, const float *bias, int n,
                           int in_dim, int out_dim, int mode, float *partial, const void *next, size_t next_bytes)
{
    int tall, row_blocks = row_split(n, &tall), slices = (out_dim + MM_NC - 1) / MM_NC;
    int blocks = k_blocks(in_dim, mode, partial);
    size_t size = weight_size(type);
    if (CLIP_REFERENCE_OPS && type == CLIP_WEIGHTS_F32) {
        matmul_reference(out, in, (const float *)w, bias, n, in_dim, out_dim, mode);
        return;
    }
    if (!partial) partial = out;
    /* the tiles of one slice are adjacent, and the slices of one panel, so
       a thread streams each panel once per k block; tiny products are not
       worth waking the threads for */
    OMP("omp parallel if ((size_t)n * in_dim * out_dim > 65536)")
    {
        int kb, blk;
        for (kb = 0; kb < blocks; kb++) {
            int k0 = k_bound(in_dim, kb, blocks), k1 = k_bound(in_dim, kb + 1, blocks);
            OMP("omp for schedule(static)")
            for (blk = 0; blk < row_blocks * slices; blk++) {
                int tile = blk % row_blocks, c0 = (blk / row_blocks) * MM_NC, p = c0 / PANEL;
                const char *panel = (const char *)w + (size_t)p * in_dim * PANEL * size;
                const void *ahead = NULL;
                size_t ahead_bytes = 0;
                /* the slice that ends a panel fetches what comes next: the next
                   panel's rows k0 .. k1-1, else the first panel's rows of the
                   next k block, else the caller's next */
                if (c0 % PANEL == PANEL - MM_NC || c0 + MM_NC >= out_dim) {
                    if ((p + 1) * PANEL < out_dim) {
                        ahead = panel + ((size_t)in_dim + k0) * PANEL * size;
                        ahead_bytes = (size_t)(k1 - k0) * PANEL * size;
                    } else if (kb + 1 < blocks) {
                        ahead = (const char *)w + (size_t)k1 * PANEL * size;
                        ahead_bytes = (size_t)(k_bound(in_dim, kb + 2, blocks) - k1) * PANEL * size;
                    } else {
                        ahead = next;
                        ahead_bytes = next_bytes;
                    }
                }
                matmul_block(out, partial, in, panel + (size_t)(c0 % PANEL) * size, type, bias, n, in_dim, k0, k1,
                             out_dim, mode, tall, tile, row_blocks, c0, (const char *)ahead, ahead_bytes);
            }
        }
    }
}

/* ------------------------------------------------------------------------
   Reduced precision. A half- or quarter-size file keeps its linear weights
   and token embedding as f16, bf16 or q8; the arithmetic stays float32.
   bf16 and (with F16C) f16 panels go to the tiles as they are, which
   convert each weight row in registers (in_tile). The rest are expanded:
   a matmul expands each weight panel to float32 once, into a buffer of
   the thread's own, and runs all its row tiles on that; the expansion
   costs one conversion per weight against 2n flops (n rows), and the
   panel is then read from cache. Either way the sums are the float32
   matmul's on the converted weights, exactly. */

static uint32_t float_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* IEEE binary16 to float32, exactly. The half's exponent and mantissa,
   moved to float32's places, need the exponent rebiased by 112 (normal
   numbers), 224 (infinities and NaNs: 31 becomes 255), or, for subnormals
   m * 2^-24, the value 2^-14 * (1 + m/1024) - 2^-14, which is exact. All
   three are computed and one is picked with masks: a loop of it has no
   branches, and vectorizes. */
static float half_to_float(uint16_t h)
{
    uint32_t mag = ((uint32_t)h & 0x7fff) << 13, e = mag & 0x0f800000u;
    uint32_t normal = mag + (112u << 23), special = mag + (224u << 23);
    uint32_t tiny = float_to_bits(bits_to_float(mag + (113u << 23)) - 6.103515625e-05f); /* 2^-14 */
    uint32_t is_tiny = 0u - (uint32_t)(e == 0), is_special = 0u - (uint32_t)(e == 0x0f800000u);
    uint32_t out = (tiny & is_tiny) | (special & is_special) | (normal & ~(is_tiny | is_special));
    return bits_to_float(out | ((uint32_t)h & 0x8000) << 16);
}

/* n halves to float32: the same values as half_to_float. Where the
   compiler targets x86's F16C (-march=native on any x86 since 2013), the
   conversion instruction does 8 at a time, about 4x the branch-free loop's
   speed (the expansion was 0.1x of a batch-1 pass before the tiles took
   f16 themselves). The one difference: F16C sets a signalling
   NaN's quiet bit, which no weight a matmul can use has anyway. */
#if defined(__F16C__) && !CLIP_REFERENCE_OPS
static void halves_to_floats(float *dst, const uint16_t *h, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(h + i))));
    for (; i < n; i++) dst[i] = half_to_float(h[i]);
}
#else
static void halves_to_floats(float *dst, const uint16_t *h, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) dst[i] = half_to_float(h[i]);
}
#endif

static float bf16_to_float(uint16_t h)
{
    return bits_to_float((uint32_t)h << 16);
}

/* One (in_dim, PANEL) panel of a typed linear weight, as float32. */
static void expand_panel(float *dst, const unsigned char *src, int type, int in_dim)
{
    size_t i, count = (size_t)in_dim * PANEL;
    const uint16_t *h = (const uint16_t *)(const void *)src;
    if (type == CLIP_WEIGHTS_F16) {
        halves_to_floats(dst, h, count);
    } else if (type == CLIP_WEIGHTS_BF16) {
        for (i = 0; i < count; i++) dst[i] = bf16_to_float(h[i]);
    } else { /* q8: blocks of Q8_BLOCK rows, each its 64 scales and then its int8s */
        int k0, k, c;
        for (k0 = 0; k0 < in_dim; k0 += Q8_BLOCK) {
            const uint16_t *sc = (const uint16_t *)(const void *)src;
            const signed char *q = (const signed char *)(src + PANEL * 2);
            float scale[PANEL];
            int rows = in_dim - k0 < Q8_BLOCK ? in_dim - k0 : Q8_BLOCK;
            for (c = 0; c < PANEL; c++) scale[c] = half_to_float(sc[c]);
            for (k = 0; k < rows; k++)
                for (c = 0; c < PANEL; c++) dst[(size_t)(k0 + k) * PANEL + c] = (float)q[k * PANEL + c] * scale[c];
            src += PANEL * 2 + Q8_BLOCK * PANEL;
        }
    }
}

/* One row of MM_NC weights of an f16 or bf16 panel as float32, for
   matmul_tile_halves: with F16C the same values as half_to_float (F16_IN_TILE),
   in a fixed number of instructions the compiler keeps inline. */
static inline void halves_row(float *dst, const uint16_t *src, int type)
{
    int c = 0;
    if (type == CLIP_WEIGHTS_BF16) {
        for (c = 0; c < MM_NC; c++) dst[c] = bf16_to_float(src[c]);
        return;
    }
#if F16_IN_TILE && defined(__AVX512F__)
    for (; c + 16 <= MM_NC; c += 16)
        _mm512_storeu_ps(dst + c, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(src + c))));
#elif F16_IN_TILE
    for (; c + 8 <= MM_NC; c += 8)
        _mm256_storeu_ps(dst + c, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(src + c))));
#endif
    for (; c < MM_NC; c++) dst[c] = half_to_float(src[c]);
}

/* Row `row` of a typed embedding table of cols values, as float32. */
static void expand_row(float *dst, const unsigned char *table, int type, size_t row, int cols)
{
    const unsigned char *src = table + row * row_bytes((size_t)cols, type);
    const uint16_t *h = (const uint16_t *)(const void *)src;
    int i, j;
    switch (type) {
    case CLIP_WEIGHTS_F32:
        for (i = 0; i < cols; i++) dst[i] = ((const float *)(const void *)src)[i];
        break;
    case CLIP_WEIGHTS_F16:
        halves_to_floats(dst, h, (size_t)cols);
        break;
    case CLIP_WEIGHTS_BF16:
        for (i = 0; i < cols; i++) dst[i] = bf16_to_float(h[i]);
        break;
    default: /* q8: per block, its scale and then its int8s */
        for (i = 0; i < cols; i += Q8_BLOCK, src += 2 + Q8_BLOCK) {
            uint16_t bits;
            float scale;
            memcpy(&bits, src, 2);
            scale = half_to_float(bits);
            for (j = 0; j < Q8_BLOCK && i + j < cols; j++) dst[i + j] = (float)((const signed char *)src)[2 + j] * scale;
        }
    }
}

/* How many threads a parallel region gets (1 without OpenMP). */
static int team_size(void)
{
    int n = 0;
    OMP("omp parallel")
    {
        OMP("omp atomic")
        n++;
    }
    return n;
}

/* A panel buffer per thread for matmuls of up to max_in input columns;
   nothing for a float32 file. */
static int reserve_panels(clip_context *ctx, int max_in, char *err)
{
    int slots;
    size_t floats = (size_t)max_in * PANEL;
    if (in_tile(ctx->model->cfg.weight_type)) return 0;
    slots = team_size();
    if (slots > ctx->panel_slots || floats > ctx->panel_floats) {
        int ns = slots > ctx->panel_slots ? slots : ctx->panel_slots;
        size_t nf = floats > ctx->panel_floats ? floats : ctx->panel_floats;
        float *p = nf <= SIZE_MAX / sizeof(float) / (size_t)ns ? (float *)clip_malloc((size_t)ns * nf * sizeof(float)) : NULL;
        if (!p)
            return clip_error(err, "clip: out of memory for %d weight-panel buffers of %llu bytes", ns,
                              (unsigned long long)(nf * sizeof(float)));
        clip_free(ctx->panels);
        ctx->panels = p;
        ctx->panel_slots = ns;
        ctx->panel_floats = nf;
    }
    return 0;
}

/* matmul_forward on a typed weight the tiles do not take (q8; f16
   without F16C): the buffers' slots split the panels between them, each
   expanded once and used by every row tile (in k blocks, as
   matmul_forward's). next (NULL for none) is the typed weight,
   next_in x next_out, multiplied after this one: each slot's last panel
   fetches the panel that slot starts the next matmul with. */
static void matmul_expanded(const clip_context *ctx, float *out, const float *in, const unsigned char *w, int type,
                            const float *bias, int n, int in_dim, int out_dim, int mode, float *partial,
                            const unsigned char *next, int next_in, int next_out)
{
    int panels = (out_dim + PANEL - 1) / PANEL, slots = ctx->panel_slots, tall, row_blocks = row_split(n, &tall), s;
    int blocks = k_blocks(in_dim, mode, partial);
    size_t pb = panel_bytes((size_t)in_dim, type);
    if (!partial) partial = out;
    OMP("omp parallel for schedule(static, 1) if ((size_t)n * in_dim * out_dim > 65536)")
    for (s = 0; s < slots; s++) {
        float *buf = ctx->panels + (size_t)s * ctx->panel_floats;
        int p, c0, kb, tile;
        for (p = s * panels / slots; p < (s + 1) * panels / slots; p++) {
            /* the next panel's file bytes are fetched while this one's last tiles run */
            const char *ahead = p + 1 < (s + 1) * panels / slots ? (const char *)w + (size_t)(p + 1) * pb : NULL;
            size_t ahead_bytes = pb;
            if (!ahead && next) {
                int next_panels = (next_out + PANEL - 1) / PANEL;
                ahead_bytes = panel_bytes((size_t)next_in, type);
                ahead = (const char *)next + (size_t)(s * next_panels / slots) * ahead_bytes;
            }
            expand_panel(buf, w + (size_t)p * pb, type, in_dim);
            for (kb = 0; kb < blocks; kb++) {
                int k0 = k_bound(in_dim, kb, blocks), k1 = k_bound(in_dim, kb + 1, blocks);
                for (c0 = p * PANEL; c0 < out_dim && c0 < (p + 1) * PANEL; c0 += MM_NC)
                    for (tile = 0; tile < row_blocks; tile++)
                        matmul_block(out, partial, in, buf + c0 % PANEL, CLIP_WEIGHTS_F32, bias, n, in_dim, k0, k1,
                                     out_dim, mode, tall, tile, row_blocks, c0,
                                     kb == blocks - 1 && c0 % PANEL == PANEL - MM_NC ? ahead : NULL, ahead_bytes);
            }
        }
    }
}

/* nn.Linear on a weight of the file's type (panels as "Weights" says);
   partial as matmul_forward takes it; next (NULL for none) is the weight
   the caller multiplies by next, next_in x next_out: the matmul fetches
   its first panel on the way (matmul_forward, matmul_expanded). */
static void linear_forward(const clip_context *ctx, float *out, const float *in, const unsigned char *w,
                           const float *bias, int n, int in_dim, int out_dim, int mode, float *partial,
                           const unsigned char *next, int next_in, int next_out)
{
    int type = ctx->model->cfg.weight_type;
    if (in_tile(type))
        matmul_forward(out, in, w, type, bias, n, in_dim, out_dim, mode, partial, next,
                       next ? first_block_bytes(next_in, type) : 0);
    else
        matmul_expanded(ctx, out, in, w, type, bias, n, in_dim, out_dim, mode, partial, next, next_in, next_out);
}

/* CLIPVisionEmbeddings: embeddings + self.position_embedding(self.position_ids), over n rows of dim */
static void add_position_embedding(float *x, const float *pos, int n, int dim)
{
    size_t i;
    for (i = 0; i < (size_t)n * dim; i++) x[i] += pos[i];
}

/* CLIPAttention's core: softmax(q k^T * head_dim^-0.5 [+ causal mask]) v for
   each head. qkv is (n, 3*dim) as q | k | v; out is (n, dim). The n rows
   hold n_seqs independent sequences, sequence s being rows starts[s] ..
   starts[s+1]-1: a row attends to the rows of its own sequence (when
   causal, up to itself). seq is the longest sequence; the scratch is
   attention_scratch(...) floats. */
static size_t attention_scratch(int n, int dim, int heads, int seq, int n_seqs)
{
    size_t hd = (size_t)(dim / heads), hdp = (hd + PANEL - 1) / PANEL * PANEL;
    /* the scores (heads * n, seq); k^T and v of each sequence and head in panels */
    return (size_t)heads * n * seq + (size_t)dim * ((size_t)n + (size_t)PANEL * n_seqs) + (size_t)n * heads * hdp;
}

/* the sequence holding row i: starts[s] <= i < starts[s+1] */
static int sequence_of(const int *starts, int n_seqs, int i)
{
    int lo = 0, hi = n_seqs - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (starts[mid] <= i)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* One row, one head at a time, with libm: the definition, for the tests
   and CLIP_REFERENCE_OPS. */
static void attention_reference(float *out, const float *qkv, float *scratch, int n, int dim, int heads, int causal,
                                const int *starts, int n_seqs, int seq)
{
    int hd = dim / heads, job;
    float scale = 1.0f / sqrtf((float)hd);
    size_t stride = (size_t)3 * dim;
    for (job = 0; job < heads * n; job++) {
        int h = job / n, i = job % n, sq = sequence_of(starts, n_seqs, i), j, d;
        int j0 = starts[sq], j1 = causal ? i : starts[sq + 1] - 1;
        const float *q = qkv + (size_t)i * stride + (size_t)h * hd;
        float *p = scratch + (size_t)job * seq - j0, *o = out + (size_t)i * dim + (size_t)h * hd;
        float mx = -FLT_MAX, sum = 0.0f;
        for (j = j0; j <= j1; j++) {
            const float *k = qkv + (size_t)j * stride + dim + (size_t)h * hd;
            float dot = 0.0f;
            for (d = 0; d < hd; d++) dot += q[d] * k[d];
            p[j] = dot * scale;
            if (p[j] > mx) mx = p[j];
        }
        for (j = j0; j <= j1; j++) sum += p[j] = expf(p[j] - mx);
        for (d = 0; d < hd; d++) {
            float acc = 0.0f;
            for (j = j0; j <= j1; j++) acc += p[j] / sum * qkv[(size_t)j * stride + 2 * (size_t)dim + (size_t)h * hd + d];
            o[d] = acc;
        }
    }
}

/* out[r][0..cols) = in[r][0..k) @ panels, the matmul tiles on panels of
   64 columns (panel_stride floats apart, rows PANEL apart): the products
   q k^T and p v of the fast attention */
static void attention_tiles(float *const *out, const float *const *in, const float *panels, size_t panel_stride,
                            int k, int cols, int mr)
{
    static const float zeros[MM_NC];
    static const float *const none[MM_MR] = {zeros, zeros, zeros, zeros, zeros, zeros}; /* sums start at 0 */
    float *o[MM_MR];
    int c0, r;
    for (c0 = 0; c0 < cols; c0 += MM_NC) {
        const float *panel = panels + (size_t)(c0 / PANEL) * panel_stride + c0 % PANEL;
        int w = cols - c0 < MM_NC ? cols - c0 : MM_NC;
        for (r = 0; r < mr; r++) o[r] = out[r] ? out[r] + c0 : NULL;
        if (mr == 6)
            matmul_tile(o, in, panel, none, k, w, MM_STORE, 6, NULL, 0, 1);
        else
            matmul_tile(o, in, panel, none, k, w, MM_STORE, 5, NULL, 0, 1);
    }
}

/* nn.functional.softmax of one row of attention scores, scaled first:
   x[0..own) becomes softmax(x * scale), and x[own..keys) zeros (the keys
   past a causal row's end). Max and sum in 16 lanes, a vector each without
   -ffast-math; max(x) * scale is the max of the scaled scores. The tiled
   rows and attention_row_short both take it. A function of its own:
   written inside attention_forward's loop, clang 14 left the exp_fast loop
   scalar where attention_forward was inlined into a larger unit
   (bench/matmul_bench: 70% of a ViT-L/14 layer's attention). */
static void softmax_row(float *x, int own, int keys, float scale)
{
    float mx[16], sum[16], m = -FLT_MAX, total = 0.0f;
    int j, u;
    for (u = 0; u < 16; u++) mx[u] = -FLT_MAX, sum[u] = 0.0f;
    for (j = 0; j + 16 <= own; j += 16)
        for (u = 0; u < 16; u++) mx[u] = x[j + u] > mx[u] ? x[j + u] : mx[u];
    for (; j < own; j++) m = x[j] > m ? x[j] : m;
    for (u = 0; u < 16; u++) m = mx[u] > m ? mx[u] : m;
    m *= scale;
    for (j = 0; j < own; j++) x[j] = exp_fast(x[j] * scale - m);
    for (j = 0; j + 16 <= own; j += 16)
        for (u = 0; u < 16; u++) sum[u] += x[j + u];
    for (; j < own; j++) total += x[j];
    for (u = 0; u < 16; u++) total += sum[u];
    for (j = 0; j < own; j++) x[j] /= total;
    for (j = own; j < keys; j++) x[j] = 0.0f;
}

/* A row of a short sequence (a prompt of a few tokens), one head: its
   scores straight from q and k (each k row's dot product in 16 lanes),
   softmax_row, and its output from v. The tiles below would spend 64
   keys' work on a handful. */
#define ATT_SHORT 16 /* the longest sequence that takes this path */
static void attention_row_short(float *restrict o, const float *q, const float *k, const float *v, size_t stride,
                                int keys, int hd, float scale)
{
    float p[ATT_SHORT];
    int j, d, u;
    for (j = 0; j < keys; j++) {
        const float *kj = k + (size_t)j * stride;
        float lane[16], dot = 0.0f;
        for (u = 0; u < 16; u++) lane[u] = 0.0f;
        for (d = 0; d + 16 <= hd; d += 16)
            for (u = 0; u < 16; u++) lane[u] += q[d + u] * kj[d + u];
        for (; d < hd; d++) dot += q[d] * kj[d];
        for (u = 0; u < 16; u++) dot += lane[u];
        p[j] = dot;
    }
    softmax_row(p, keys, keys, scale);
    for (d = 0; d < hd; d++) o[d] = 0.0f;
    for (j = 0; j < keys; j++) {
        const float *vj = v + (size_t)j * stride, pj = p[j];
        for (d = 0; d < hd; d++) o[d] += pj * vj[d];
    }
}

/* The same as matmul tiles: per sequence and head, k^T is copied into
   panels of 64 keys, (hd, 64) each, and v into panels of 64 of its
   columns, (len, 64) each; then each block of 5 or 6 query rows takes its
   scores from the first (q k^T, the same sums in the same order for a row
   whatever block it is in), a softmax with exp_fast, and its output from
   the second (p v; the probabilities past a causal row's end are zeros, so
   adding them changes nothing). Sequences of at most ATT_SHORT rows take
   attention_row_short instead; either way a row's result depends on its
   own sequence only. */
static void attention_forward(float *out, const float *qkv, float *scratch, int n, int dim, int heads, int causal,
                              const int *starts, int n_seqs, int seq)
{
    int hd = dim / heads, hdp = (hd + PANEL - 1) / PANEL * PANEL, job;
    float scale = 1.0f / sqrtf((float)hd);
    size_t stride = (size_t)3 * dim;
    float *att = scratch, *kt = att + (size_t)heads * n * seq, *vt = kt + (size_t)dim * ((size_t)n + (size_t)PANEL * n_seqs);
    if (CLIP_REFERENCE_OPS) {
        attention_reference(out, qkv, scratch, n, dim, heads, causal, starts, n_seqs, seq);
        return;
    }
    /* both loops head-major with static schedules, so that a thread reads
       the panels it copied itself (handing them between cores made two
       threads slower than one on ViT-B/32's 50 tokens) */
    OMP("omp parallel for schedule(static) if ((size_t)n * seq * dim > 65536)")
    for (job = 0; job < n_seqs * heads; job++) {
        int sq = job % n_seqs, h = job / n_seqs, s0 = starts[sq], len = starts[sq + 1] - s0, j, d, c;
        float *k_t = kt + (size_t)dim * ((size_t)s0 + (size_t)PANEL * sq) + (size_t)h * hd * (len + PANEL);
        float *v_p = vt + ((size_t)s0 * heads + (size_t)h * len) * hdp;
        if (len <= ATT_SHORT) continue; /* no panels */
        for (j = 0; j < len; j++) {
            const float *k = qkv + (size_t)(s0 + j) * stride + dim + (size_t)h * hd;
            const float *v = k + dim;
            float *kc = k_t + (size_t)(j / PANEL) * hd * PANEL + j % PANEL;
            for (d = 0; d < hd; d++) kc[(size_t)d * PANEL] = k[d];
            for (c = 0; c < hdp; c += PANEL) {
                float *vr = v_p + ((size_t)(c / PANEL) * len + j) * PANEL;
                int w = hd - c < PANEL ? hd - c : PANEL;
                memcpy(vr, v + c, (size_t)w * sizeof(float));
                memset(vr + w, 0, (size_t)(PANEL - w) * sizeof(float));
            }
        }
        /* the last key panel's columns past the sequence */
        if (len % PANEL)
            for (d = 0; d < hd; d++)
                memset(k_t + ((size_t)(len / PANEL) * hd + d) * PANEL + len % PANEL, 0,
                       (size_t)(PANEL - len % PANEL) * sizeof(float));
    }
    OMP("omp parallel for schedule(static) if ((size_t)n * seq * dim > 65536)")
    for (job = 0; job < heads * n; job++) {
        int h = job / n, i = job % n, sq = sequence_of(starts, n_seqs, i), s0 = starts[sq], s1 = starts[sq + 1];
        int len = s1 - s0, mr = tile_rows(len), last, keys, r;
        const float *k_t = kt + (size_t)dim * ((size_t)s0 + (size_t)PANEL * sq) + (size_t)h * hd * (len + PANEL);
        const float *v_p = vt + ((size_t)s0 * heads + (size_t)h * len) * hdp;
        const float *q[MM_MR], *p[MM_MR];
        float *s[MM_MR], *o[MM_MR];
        if (len <= ATT_SHORT) {
            const float *k = qkv + (size_t)s0 * stride + dim + (size_t)h * hd;
            attention_row_short(out + (size_t)i * dim + (size_t)h * hd, qkv + (size_t)i * stride + (size_t)h * hd, k,
                                k + dim, stride, (causal ? i : s1 - 1) - s0 + 1, hd, scale);
            continue;
        }
        if ((i - s0) % mr) continue; /* not the first row of a block */
        last = i + mr - 1 < s1 ? i + mr - 1 : s1 - 1;
        keys = (causal ? last : s1 - 1) - s0 + 1;
        for (r = 0; r < mr; r++) {
            int row = i + r <= last ? i + r : last;
            q[r] = qkv + (size_t)row * stride + (size_t)h * hd;
            p[r] = s[r] = att + ((size_t)h * n + row) * seq;
            o[r] = out + (size_t)row * dim + (size_t)h * hd;
            if (i + r > last) s[r] = o[r] = NULL; /* a repeat of the last row */
        }
        attention_tiles(s, q, k_t, (size_t)hd * PANEL, hd, keys, mr);
        for (r = 0; r < mr && s[r]; r++) softmax_row(s[r], (causal ? i + r : s1 - 1) - s0 + 1, keys, scale);
        attention_tiles(o, p, v_p, (size_t)len * PANEL, keys, hd, mr);
    }
}

/* ------------------------------------------------------------------------
   Blocks */

/* Scratch one encoder needs for n token rows: xb (n, dim), qkv (n, 3dim),
   attn (n, dim), h (n, mlp), and the attention's scratch for n_seqs
   sequences, the longest seq rows. */
static size_t encoder_scratch(int n, int dim, int mlp, int heads, int seq, int n_seqs)
{
    return (size_t)n * dim * 5 + (size_t)n * mlp + attention_scratch(n, dim, heads, seq, n_seqs);
}

/* Gather rows keep[0..n_keep) (ascending) of the (n, dim) matrices a and
   b, in place, to their first n_keep rows. */
static void keep_rows(float *a, float *b, const int *keep, int n_keep, int dim)
{
    int t;
    for (t = 0; t < n_keep; t++) {
        memmove(a + (size_t)t * dim, a + (size_t)keep[t] * dim, (size_t)dim * sizeof(float));
        if (b) memmove(b + (size_t)t * dim, b + (size_t)keep[t] * dim, (size_t)dim * sizeof(float));
    }
}

/* CLIPEncoder: layers of CLIPEncoderLayer (pre-norm, two residual
   connections each) on n rows that may pack several independent sequences
   (starts, n_seqs, seq: as attention_forward takes them). x is the residual stream, updated in
   place; each layer's output goes to the probe as stage[layer].

   keep (ascending, n_keep of them) names the rows the tower reads after the
   last layer (its pooling: the class token, or each text's last token);
   they end in x's first n_keep rows. After the last layer's attention no
   row depends on another, so, unless a probe wants to see every row, the
   rest of that layer runs on the kept rows only (a ViT-B/32 image: 1 row
   of 50 through out_proj and the MLP, 6% of its multiply-adds saved), and
   each kept row is the same sums in the same order as when all rows run. */
static void encoder_forward(const clip_context *ctx, const char *stage, float *x, float *scratch,
                            const encoder_weights *w, int layers, int n, int dim, int mlp, int heads, int act, float eps,
                            int causal, const int *starts, int n_seqs, int seq, const int *keep, int n_keep)
{
    float *xb = scratch;
    float *qkv = xb + (size_t)n * dim;
    float *attn = qkv + (size_t)n * dim * 3;
    float *h = attn + (size_t)n * dim;
    float *att = h + (size_t)n * mlp;
    int mlp_act = act == CLIP_ACT_QUICK_GELU ? MM_QUICK_GELU : MM_GELU, type = ctx->model->cfg.weight_type, l;
    int kept = 0; /* whether the last layer ran on the kept rows only */
    for (l = 0; l < layers; l++) {
        size_t D = (size_t)dim, M = (size_t)mlp;
        /* residual = hidden_states; hidden_states = self.layer_norm1(hidden_states) */
        layernorm_forward(xb, x, w->ln1_w + l * D, w->ln1_b + l * D, n, dim, eps);
        /* self.q_proj, self.k_proj, self.v_proj (hidden_states): one matmul, q | k | v */
        linear_forward(ctx, qkv, xb, w->wqkv + l * linear_bytes(D, 3 * D, type), w->bqkv + l * D * 3, n, dim, 3 * dim,
                       MM_STORE, NULL, w->wo + l * linear_bytes(D, D, type), dim, dim);
        /* softmax(q @ k^T * scale [+ causal_attention_mask]) @ v, per head */
        attention_forward(attn, qkv, att, n, dim, heads, causal, starts, n_seqs, seq);
        if (l == layers - 1 && !ctx->probe) {
            keep_rows(x, attn, keep, n_keep, dim);
            n = n_keep;
            kept = 1;
        }
        /* hidden_states = residual + self.out_proj(attn_output); qkv, read, holds the running sums of a wide one */
        linear_forward(ctx, x, attn, w->wo + l * linear_bytes(D, D, type), w->bo + l * D, n, dim, dim, MM_RESIDUAL_ADD,
                       qkv, w->w1 + l * linear_bytes(D, M, type), dim, mlp);
        /* residual = hidden_states; hidden_states = self.layer_norm2(hidden_states) */
        layernorm_forward(xb, x, w->ln2_w + l * D, w->ln2_b + l * D, n, dim, eps);
        /* CLIPMLP: self.activation_fn(self.fc1(hidden_states)) */
        linear_forward(ctx, h, xb, w->w1 + l * linear_bytes(D, M, type), w->b1 + l * M, n, dim, mlp, mlp_act, NULL,
                       w->w2 + l * linear_bytes(M, D, type), mlp, dim);
        /* hidden_states = residual + self.fc2(hidden_states); its running sums in qkv */
        linear_forward(ctx, x, h, w->w2 + l * linear_bytes(M, D, type), w->b2 + l * D, n, mlp, dim, MM_RESIDUAL_ADD,
                       qkv, l + 1 < layers ? w->wqkv + (l + 1) * linear_bytes(D, 3 * D, type) : NULL, dim, 3 * dim);
        probe(ctx, stage, l, x, n, dim);
    }
    if (!kept) keep_rows(x, NULL, keep, n_keep, dim); /* every row ran */
}

/* ------------------------------------------------------------------------
   Towers */

/* CLIPVisionTransformer + visual_projection on a batch of crops. The
   images' token rows are packed into one matrix (each image's rows attend
   only to each other), so every matmul streams its weights once for the
   whole batch; every row is computed exactly as it would be alone. */
static int encode_image_batch(clip_context *ctx, const clip_image *crops, int n_images, float *features, char *err)
{
    const clip_model *m = ctx->model;
    const clip_config *c = &m->cfg;
    const vision_weights *w = &m->vision;
    int S = c->image_size, P = c->patch_size, grid = S / P, n = grid * grid + 1, D = c->vision_width;
    int patch_len = c->channels * P * P, rows = n * n_images, b, g, ch, py, px, last;
    float *x, *patches, *scratch, *pooled, *mem;
    int *starts;
    size_t need;
    need = (size_t)rows * D + (size_t)(n - 1) * patch_len + (size_t)n_images * D +
           encoder_scratch(rows, D, c->vision_mlp, c->vision_heads, n, n_images);
    mem = ws_reserve(&ctx->ws, need, err);
    /* the widest input of a vision linear: the patch, the width or the MLP */
    if (!mem || reserve_panels(ctx, patch_len > D ? (patch_len > c->vision_mlp ? patch_len : c->vision_mlp)
                                                  : (D > c->vision_mlp ? D : c->vision_mlp), err))
        return -1;
    starts = (int *)clip_malloc((size_t)(n_images + 1) * sizeof(int));
    if (!mem || !starts) {
        clip_free(starts);
        return mem ? clip_error(err, "clip: out of memory") : -1;
    }
    /* image b's rows are b*n .. b*n + n-1 */
    for (b = 0; b <= n_images; b++) starts[b] = b * n;
    x = mem;
    patches = x + (size_t)rows * D;
    pooled = patches + (size_t)(n - 1) * patch_len;
    scratch = pooled + (size_t)n_images * D;
    for (b = 0; b < n_images; b++) {
        const unsigned char *rgb = crops[b].rgb;
        float *xb = x + (size_t)b * n * D;
        /* CLIPImageProcessor: x / 255, then (x - mean) / std, in float32; each
           patch flattened as the conv weight is, (channel, row, column) */
        for (g = 0; g < grid * grid; g++) {
            float *p = patches + (size_t)g * patch_len;
            int gy = g / grid, gx = g % grid;
            for (ch = 0; ch < 3; ch++)
                for (py = 0; py < P; py++)
                    for (px = 0; px < P; px++) {
                        unsigned char u = rgb[((size_t)(gy * P + py) * S + (size_t)(gx * P + px)) * 3 + ch];
                        float v = (float)(u * (1.0 / 255.0));
                        *p++ = (v - c->mean[ch]) / c->std[ch];
                    }
        }
        /* CLIPVisionEmbeddings: [class_embedding; patch_embedding(pixels)] + position_embedding */
        memcpy(xb, w->class_emb, (size_t)D * sizeof(float));
        /* what follows is the next image's patch embedding, or layer 0's q/k/v */
        last = b + 1 == n_images;
        linear_forward(ctx, xb + D, patches, w->patch_w, NULL, n - 1, patch_len, D, MM_STORE, NULL,
                       last ? w->enc.wqkv : w->patch_w, last ? D : patch_len, last ? 3 * D : D);
        add_position_embedding(xb, w->pos_emb, n, D);
    }
    /* hidden_states = self.pre_layrnorm(hidden_states) */
    layernorm_forward(x, x, w->pre_ln_w, w->pre_ln_b, rows, D, c->vision_eps);
    probe(ctx, "vision.embeddings", -1, x, rows, D);
    /* the class tokens, rows b*n (starts[0..n_images)), are what the tower reads after the last layer */
    encoder_forward(ctx, "vision.layer", x, scratch, &w->enc, c->vision_layers, rows, D, c->vision_mlp,
                    c->vision_heads, c->vision_act, c->vision_eps, 0, starts, n_images, n, starts, n_images);
    clip_free(starts);
    /* pooled_output = self.post_layernorm(last_hidden_state[:, 0, :]): the class tokens, now x's first rows */
    layernorm_forward(pooled, x, w->post_ln_w, w->post_ln_b, n_images, D, c->vision_eps);
    probe(ctx, "vision.pooled", -1, pooled, n_images, D);
    /* image_embeds = self.visual_projection(pooled_output) */
    linear_forward(ctx, features, pooled, w->proj, NULL, n_images, D, c->projection_dim, MM_STORE, NULL, NULL, 0, 0);
    probe(ctx, "vision.features", -1, features, n_images, c->projection_dim);
    return 0;
}

/* Token rows per image forward pass: enough images to reuse each weight
   panel across many row tiles, few enough to bound the activations. */
#define IMAGE_BATCH_ROWS 1024

int clip_context_encode_images(clip_context *ctx, const clip_image *crops, int n_images, float *features, char *err)
{
    const clip_config *c = &ctx->model->cfg;
    int S = c->image_size, n = (S / c->patch_size) * (S / c->patch_size) + 1, i, i0;
    int batch = IMAGE_BATCH_ROWS / n > 1 ? IMAGE_BATCH_ROWS / n : 1;
    if (n_images < 0 || (n_images > 0 && !crops)) return clip_error(err, "clip: no images to encode");
    for (i = 0; i < n_images; i++)
        if (!crops[i].rgb || crops[i].width != S || crops[i].height != S)
            return clip_error(err, "clip: image %d to encode must be %dx%d (run clip_preprocess first), got %dx%d", i,
                              S, S, crops[i].width, crops[i].height);
    for (i0 = 0; i0 < n_images; i0 += batch) {
        int k = n_images - i0 < batch ? n_images - i0 : batch;
        if (encode_image_batch(ctx, crops + i0, k, features + (size_t)i0 * c->projection_dim, err)) return -1;
    }
    return 0;
}

int clip_encode_image(clip_model *m, const clip_image *crop, float *features, char *err)
{
    int S = m->cfg.image_size;
    if (!crop || !crop->rgb || crop->width != S || crop->height != S)
        return clip_error(err, "clip: the image to encode must be %dx%d (run clip_preprocess first), got %dx%d", S, S,
                          crop ? crop->width : 0, crop ? crop->height : 0);
    return clip_context_encode_images(m->ctx, crop, 1, features, err);
}

int clip_encode_images(clip_model *m, const clip_image *crops, int n_images, float *features, char *err)
{
    return clip_context_encode_images(m->ctx, crops, n_images, features, err);
}

int clip_context_encode_files(clip_context *ctx, const char *const *paths, int n, float *features, int *ok,
                              char *msgs, char *err)
{
    const clip_model *m = ctx->model;
    int E = m->cfg.projection_dim, i, k = 0;
    /* crops[0..n): one per file; crops[n..): the readable ones, packed (shallow copies) */
    clip_image *crops = (clip_image *)clip_calloc(n > 0 ? 2 * (size_t)n : 1, sizeof(clip_image));
    int rc = 0;
    if (!crops) return clip_error(err, "clip: out of memory");
    /* one image per thread: the decoders share no state */
    OMP("omp parallel for schedule(dynamic, 1)")
    for (i = 0; i < n; i++)
        ok[i] = clip_preprocess_file(m, paths[i], &crops[i], msgs + (size_t)i * CLIP_ERR_SIZE) == 0;
    /* the readable ones, packed, through the tower together */
    for (i = 0; i < n; i++)
        if (ok[i]) crops[n + k++] = crops[i];
    if (k) rc = clip_context_encode_images(ctx, crops + n, k, features, err);
    /* spread the rows out to their files, from the last (rows only move down) */
    for (i = n - 1; i >= 0 && rc == 0; i--) {
        float *dst = features + (size_t)i * E;
        if (ok[i]) {
            k--;
            if (k != i) memmove(dst, features + (size_t)k * E, (size_t)E * sizeof(float));
        } else {
            memset(dst, 0, (size_t)E * sizeof(float));
        }
    }
    for (i = 0; i < n; i++) clip_image_free(&crops[i]);
    clip_free(crops);
    return rc;
}

/* CLIPTextTransformer + text_projection on a batch of token sequences. Each
   sequence runs only up to its first <|endoftext|> (causal attention makes
   later positions irrelevant to it); the sequences are packed into one
   matrix, unpadded, so every matmul serves the whole batch. */
static int encode_text_batch(clip_context *ctx, const int32_t *ids, const int *seg, int n_texts, int stride,
                             float *features, char *err)
{
    const clip_model *m = ctx->model;
    const clip_config *c = &m->cfg;
    const text_weights *w = &m->text;
    int D = c->text_width, t, i, max_len = 0, rows = 0;
    size_t row, need;
    float *x, *pooled, *scratch, *mem;
    int *starts, *ends;
    for (t = 0; t < n_texts; t++) {
        rows += seg[t];
        if (seg[t] > max_len) max_len = seg[t];
    }
    /* each row attends to the rows of its own text, up to itself; the
       tower reads each text's last row (ends) after the last layer */
    starts = (int *)clip_malloc((size_t)(2 * n_texts + 1) * sizeof(int));
    if (!starts) {
        clip_error(err, "clip: out of memory");
        return -1;
    }
    ends = starts + n_texts + 1;
    for (t = 0, starts[0] = 0; t < n_texts; t++) {
        starts[t + 1] = starts[t] + seg[t];
        ends[t] = starts[t + 1] - 1;
    }
    need = (size_t)rows * D + (size_t)n_texts * D +
           encoder_scratch(rows, D, c->text_mlp, c->text_heads, max_len, n_texts);
    mem = ws_reserve(&ctx->ws, need, err);
    if (!mem || reserve_panels(ctx, c->text_mlp > D ? c->text_mlp : D, err)) {
        clip_free(starts);
        return -1;
    }
    x = mem;
    pooled = x + (size_t)rows * D;
    scratch = pooled + (size_t)n_texts * D;
    /* CLIPTextEmbeddings: token_embedding(ids) + position_embedding(positions) */
    for (t = 0, row = 0; t < n_texts; t++)
        for (i = 0; i < seg[t]; i++, row++) {
            const float *pe = w->pos_emb + (size_t)i * D;
            float *xr = x + row * D;
            int d;
            expand_row(xr, w->tok_emb, c->weight_type, (size_t)ids[(size_t)t * stride + i], D);
            for (d = 0; d < D; d++) xr[d] += pe[d];
        }
    probe(ctx, "text.embeddings", -1, x, rows, D);
    encoder_forward(ctx, "text.layer", x, scratch, &w->enc, c->text_layers, rows, D, c->text_mlp, c->text_heads,
                    c->text_act, c->text_eps, 1, starts, n_texts, max_len, ends, n_texts);
    clip_free(starts);
    /* final_layer_norm at each sequence's <|endoftext|> (its last row, now
       x's row t), then text_projection */
    layernorm_forward(pooled, x, w->final_ln_w, w->final_ln_b, n_texts, D, c->text_eps);
    probe(ctx, "text.pooled", -1, pooled, n_texts, D);
    /* text_embeds = self.text_projection(pooled_output) */
    linear_forward(ctx, features, pooled, w->proj, NULL, n_texts, D, c->projection_dim, MM_STORE, NULL, NULL, 0, 0);
    probe(ctx, "text.features", -1, features, n_texts, c->projection_dim);
    return 0;
}

#define TEXT_BATCH 64 /* texts per forward pass: bounds the activation memory */

int clip_context_encode_text(clip_context *ctx, const int32_t *ids, const int *lens, int n_texts, int stride,
                             float *features, char *err)
{
    const clip_config *c = &ctx->model->cfg;
    int seg[TEXT_BATCH], t0, t, i;
    for (t0 = 0; t0 < n_texts; t0 += TEXT_BATCH) {
        int n = n_texts - t0 < TEXT_BATCH ? n_texts - t0 : TEXT_BATCH;
        for (t = 0; t < n; t++) {
            const int32_t *tid = ids + (size_t)(t0 + t) * stride;
            int len = lens[t0 + t];
            if (len < 1 || len > c->context_length || len > stride) {
                clip_error(err, "clip: text %d has %d tokens; 1..%d allowed", t0 + t, len, c->context_length);
                return -1;
            }
            seg[t] = len;
            for (i = 0; i < len; i++) {
                if (tid[i] < 0 || tid[i] >= c->vocab_size) {
                    clip_error(err, "clip: text %d: token id %ld is outside the vocabulary (0..%d)", t0 + t,
                            (long)tid[i], c->vocab_size - 1);
                    return -1;
                }
                if (tid[i] == c->eos_id) { /* pool at the first <|endoftext|> */
                    seg[t] = i + 1;
                    break;
                }
            }
        }
        if (encode_text_batch(ctx, ids + (size_t)t0 * stride, seg, n, stride,
                              features + (size_t)t0 * c->projection_dim, err))
            return -1;
    }
    return 0;
}

/* The one-model API: the model's own context. */
int clip_encode_text(clip_model *m, const int32_t *ids, const int *lens, int n_texts, int stride, float *features,
                     char *err)
{
    return clip_context_encode_text(m->ctx, ids, lens, n_texts, stride, features, err);
}

int clip_encode_files(clip_model *m, const char *const *paths, int n, float *features, int *ok, char *msgs,
                      char *err)
{
    return clip_context_encode_files(m->ctx, paths, n, features, ok, msgs, err);
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
                clip_free(sp);
                clip_error(err, "clip: too many labels");
                return -1;
            }
            ns = (size_t *)clip_realloc(sp, cap * 2 * sizeof(size_t));
            if (!ns) {
                clip_free(sp);
                clip_error(err, "clip: out of memory for the labels");
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

void clip_normalize(float *x, int n)
{
    double ss = 0.0, inv;
    int i;
    for (i = 0; i < n; i++) ss += (double)x[i] * x[i];
    if (ss == 0.0) return;
    inv = 1.0 / sqrt(ss);
    for (i = 0; i < n; i++) x[i] = (float)(x[i] * inv);
}

/* "a photo of a {}." with the label in place of every {}: a new string
   (clip_free it), or NULL with the reason in err. */
static char *apply_template(const char *tmpl, const char *label, size_t label_len, size_t *out_len, char *err)
{
    size_t tl = strlen(tmpl), n = 0, i, count = 0;
    char *out;
    for (i = 0; i + 1 < tl; i++)
        if (tmpl[i] == '{' && tmpl[i + 1] == '}') count++;
    if (count == 0) {
        clip_error(err, "clip: the template \"%.100s\" has no {} to put the label in", tmpl);
        return NULL;
    }
    if (label_len > (SIZE_MAX - tl - 1) / count) {
        clip_error(err, "clip: label too long");
        return NULL;
    }
    out = (char *)clip_malloc(tl + count * label_len + 1);
    if (!out) {
        clip_error(err, "clip: out of memory");
        return NULL;
    }
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

/* Tokenize and encode n texts: features (n, projection_dim). */
static int encode_strings(clip_context *ctx, const char *const *texts, const size_t *lens, int n, float *features,
                          char *err)
{
    const clip_model *m = ctx->model;
    int C = m->cfg.context_length, i, rc = -1;
    int *counts = (int *)clip_malloc((n > 0 ? (size_t)n : 1) * sizeof(int));
    int32_t *ids = (int32_t *)clip_malloc((n > 0 ? (size_t)n : 1) * (size_t)C * sizeof(int32_t));
    if (!counts || !ids) {
        clip_error(err, "clip: out of memory");
        goto done;
    }
    for (i = 0; i < n; i++) {
        counts[i] = clip_tokenize(m, texts[i], lens ? lens[i] : strlen(texts[i]), ids + (size_t)i * C, C, err);
        if (counts[i] < 0) goto done;
    }
    rc = clip_context_encode_text(ctx, ids, counts, n, C, features, err);
done:
    clip_free(counts);
    clip_free(ids);
    return rc;
}

/* The prompt ensemble of OpenAI's zero-shot ImageNet notebook: a label's
   feature is the mean of its normalized template features, normalized
   again. With one template (or none) the raw features, exactly what
   clip_encode_text gives for that prompt. */
int clip_context_encode_labels(clip_context *ctx, const char *const *labels, const size_t *lens, int n,
                               const char *const *templates, int n_templates, float *features, char *err)
{
    int E = ctx->model->cfg.projection_dim, T = n_templates > 0 ? n_templates : 1, i, t, d, k, made = 0, rc = -1;
    size_t total;
    const char **texts;
    size_t *tlens;
    float *f = NULL;
    if (n < 0 || n_templates < 0 || (n > 0 && !labels) || (n_templates > 0 && !templates))
        return clip_error(err, "clip: no labels to encode");
    if ((size_t)n > (size_t)INT_MAX / (size_t)T) return clip_error(err, "clip: too many labels x templates");
    total = (size_t)n * T;
    texts = (const char **)clip_calloc(total ? total : 1, sizeof(char *));
    tlens = (size_t *)clip_malloc((total ? total : 1) * sizeof(size_t));
    if (T > 1) f = (float *)clip_malloc(total * (size_t)E * sizeof(float));
    if (!texts || !tlens || (T > 1 && !f)) {
        clip_error(err, "clip: out of memory");
        goto done;
    }
    for (i = 0; i < n; i++)
        for (t = 0; t < T; t++) {
            k = i * T + t;
            if (!labels[i]) {
                clip_error(err, "clip: label %d is NULL", i);
                goto done;
            }
            tlens[k] = lens ? lens[i] : strlen(labels[i]);
            if (n_templates) {
                if (!templates[t]) {
                    clip_error(err, "clip: template %d is NULL", t);
                    goto done;
                }
                texts[k] = apply_template(templates[t], labels[i], tlens[k], &tlens[k], err);
                if (!texts[k]) goto done;
                made = k + 1;
            } else {
                texts[k] = labels[i];
            }
        }
    if (T == 1) { /* exactly the numbers of a single prompt */
        rc = encode_strings(ctx, texts, tlens, n, features, err);
        goto done;
    }
    if (encode_strings(ctx, texts, tlens, (int)total, f, err)) goto done;
    for (i = 0; i < n; i++) {
        float *o = features + (size_t)i * E;
        for (d = 0; d < E; d++) o[d] = 0.0f;
        for (t = 0; t < T; t++) {
            float *v = f + ((size_t)i * T + t) * E;
            clip_normalize(v, E);
            for (d = 0; d < E; d++) o[d] += v[d];
        }
        for (d = 0; d < E; d++) o[d] /= (float)T;
        clip_normalize(o, E);
    }
    rc = 0;
done:
    for (i = 0; n_templates && i < made; i++) clip_free((void *)(uintptr_t)texts[i]);
    clip_free((void *)texts);
    clip_free(tlens);
    clip_free(f);
    return rc;
}

int clip_encode_labels(clip_model *m, const char *const *labels, const size_t *lens, int n, const char *const *templates,
                       int n_templates, float *features, char *err)
{
    return clip_context_encode_labels(m->ctx, labels, lens, n, templates, n_templates, features, err);
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
    if (n < 0) clip_error(err, "clip: out of memory while tokenizing");
    return n;
}

/* ------------------------------------------------------------------------
   Command line */
#ifndef CLIP_NO_MAIN

#include "index/index.h"

static int cli_no_mmap; /* --no-mmap: read the weights file instead of mapping it */

static const char usage_text[] =
    "usage: clip MODEL IMAGE... LABELS [--json] [--top K] [--template T]... [--templates FILE]\n"
    "       clip embed MODEL IMAGE... [--npy OUT.npy]   image features, one JSON array per image\n"
    "       clip embed MODEL --text TEXT... [--npy OUT.npy]  text features, one JSON array per text\n"
    "       clip index MODEL INDEX [PATH... | -]   create or update an index of image files\n"
    "       clip index --merge OUT SHARD...        merge shard indexes into one\n"
    "       clip search MODEL INDEX TEXT [--top K] [--json]    the files that best match a text\n"
    "       clip search MODEL INDEX --image IMAGE [--top K]   ... or an image\n"
    "       clip tokenize MODEL [TEXT]          token ids (all of stdin when TEXT is absent)\n"
    "       clip preprocess MODEL IMAGE OUT.ppm the crop the model sees\n"
    "       clip decode IMAGE OUT.ppm           the decoded image\n"
    "       clip selftest                       check this build against built-in reference values\n"
    "       clip --version                      this build's version and the weights format it reads\n"
    "\n"
    "MODEL is a weights file from export_weights.py; IMAGE a JPEG, PNG, GIF,\n"
    "BMP, WebP or PPM/PGM file (told by its content, not its name); LABELS a\n"
    "UTF-8 text file, one label per line. INDEX is a folder (README.md, \"Collections\").\n"
    "options (anywhere after the command word):\n"
    "  --json            machine-readable output: one JSON object per image (JSON Lines), or an array (search)\n"
    "  --top K           the K best labels (default: all) or files (default: 10)\n"
    "  --template T      put each label into T where {} stands (e.g. \"a photo of a {}.\"); several\n"
    "                    --template (or --templates FILE, one per line) average their text features\n"
    "  --npy OUT.npy     embed: write the features as one float32 numpy array instead\n"
    "  --shard K/N       index: only the K-th of N slices of the files (K = 1..N)\n"
    "  --prune           index: drop the rows of files that no longer exist\n"
    "  --retry-failed    index: try unchanged files that failed before again\n"
    "  --checkpoint S    index: flush finished rows to the disk at least every S seconds (default 10)\n"
    "  -q, --quiet       index: no progress and no summary\n"
    "  -t N              threads (default: all cores, or OMP_NUM_THREADS)\n"
    "  --no-mmap         read the weights file into memory instead of mapping it\n"
    "  -h, --help        this text\n";

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
    void *p = clip_malloc(n);
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
    unsigned char *buf = clip_read_stream(f, len, what, err);
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
    clip_free(spans);
    clip_free(buf);
    return L;
}

typedef struct {
    const char **args;      /* positional arguments after the command word */
    int nargs;
    int json, top, threads;
    const char **templates; /* --template, in order */
    int n_templates;
    const char *templates_file; /* --templates FILE */
    int text_mode;          /* embed --text */
    const char *npy;        /* embed --npy OUT.npy */
    const char *image;      /* search --image IMAGE */
    const char *merge;      /* index --merge OUT */
    int prune, retry_failed, quiet;
    int shard_k, shard_n;   /* index --shard K/N */
    double checkpoint;      /* index --checkpoint SECONDS */
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

/* --shard K/N, 1 <= K <= N */
static void parse_shard(cli_options *o, const char *s)
{
    char *end;
    long k, n;
    errno = 0;
    k = strtol(s, &end, 10);
    if (errno || end == s || *end != '/') usage_error("--shard needs K/N, for example 1/4 (got \"%s\")", s);
    s = end + 1;
    n = strtol(s, &end, 10);
    if (errno || end == s || *end || n < 1 || n > 1000000 || k < 1 || k > n)
        usage_error("--shard K/N needs 1 <= K <= N, for example 1/4 ... 4/4 (got \"%s\")", s);
    o->shard_k = (int)k;
    o->shard_n = (int)n;
}

static int takes_value(const char *a)
{
    static const char *const with_value[] = {"--top", "--template", "--templates", "-t", "--threads", "--npy",
                                             "--image", "--merge", "--shard", "--checkpoint"};
    size_t i;
    for (i = 0; i < sizeof with_value / sizeof with_value[0]; i++)
        if (!strcmp(a, with_value[i])) return 1;
    return 0;
}

/* Options that take a value (takes_value), and where each goes. */
static void option_value(cli_options *o, const char *a, const char *v)
{
    if (!strcmp(a, "--top")) {
        o->top = parse_int(v, a);
    } else if (!strcmp(a, "--template")) {
        o->templates[o->n_templates++] = v;
    } else if (!strcmp(a, "--templates")) {
        o->templates_file = v;
    } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
        o->threads = parse_int(v, a);
    } else if (!strcmp(a, "--npy")) {
        o->npy = v;
    } else if (!strcmp(a, "--image")) {
        o->image = v;
    } else if (!strcmp(a, "--merge")) {
        o->merge = v;
    } else if (!strcmp(a, "--shard")) {
        parse_shard(o, v);
    } else if (!strcmp(a, "--checkpoint")) {
        char *end;
        o->checkpoint = strtod(v, &end);
        if (*end || end == v || !(o->checkpoint >= 0 && o->checkpoint <= 1e6))
            usage_error("--checkpoint needs a number of seconds (got \"%s\")", v);
    }
}

static void parse_options(cli_options *o, int argc, char **argv, int first)
{
    int i, only_positional = 0;
    memset(o, 0, sizeof *o);
    o->args = (const char **)xmalloc((size_t)argc * sizeof(char *));
    o->templates = (const char **)xmalloc((size_t)argc * sizeof(char *));
    o->checkpoint = 10.0;
    for (i = first; i < argc; i++) {
        const char *a = argv[i];
        if (only_positional || a[0] != '-' || a[1] == 0) {
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
        } else if (!strcmp(a, "--prune")) {
            o->prune = 1;
        } else if (!strcmp(a, "--retry-failed")) {
            o->retry_failed = 1;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            o->quiet = 1;
        } else if (!strcmp(a, "--no-mmap")) {
            cli_no_mmap = 1;
        } else if (takes_value(a)) {
            if (i + 1 >= argc) usage_error("%s needs a value", a);
            option_value(o, a, argv[++i]);
        } else {
            usage_error("unknown option %s", a);
        }
    }
#ifdef _OPENMP
    if (o->threads) omp_set_num_threads(o->threads);
#endif
}

static void free_options(cli_options *o)
{
    clip_free((void *)o->args);
    clip_free((void *)o->templates);
}

static clip_model *cli_load(const char *path)
{
    char err[CLIP_ERR_SIZE];
    clip_model *m = cli_no_mmap ? clip_model_load_read(path, err) : clip_model_load(path, err);
    if (!m) die(err);
    return m;
}

static void cli_image(const clip_model *m, const char *path, clip_image *crop)
{
    char err[CLIP_ERR_SIZE];
    if (clip_preprocess_file(m, path, crop, err)) die(err);
}

/* Features of n texts: (n, projection_dim), as get_text_features. */
static float *cli_encode_texts(clip_model *m, char **texts, const size_t *lens, int n)
{
    char err[CLIP_ERR_SIZE];
    float *f = (float *)xmalloc((size_t)n * m->cfg.projection_dim * sizeof(float));
    if (clip_encode_labels(m, (const char *const *)texts, lens, n, NULL, 0, f, err)) die(err);
    return f;
}

static const float *sort_logits; /* for by_logit */

/* qsort order: higher logit first, then lower index (a stable order) */
static int by_logit(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    if (sort_logits[i] != sort_logits[j]) return sort_logits[i] > sort_logits[j] ? -1 : 1;
    return (i > j) - (i < j);
}

/* The text feature of every label (clip_encode_labels: the label itself,
   put into the one template, or a prompt ensemble over several). */
static float *label_features(clip_model *m, const label_list *L, const char **tmpl, int n_tmpl)
{
    char err[CLIP_ERR_SIZE];
    float *f = (float *)xmalloc((size_t)L->n * m->cfg.projection_dim * sizeof(float));
    int t;
    for (t = 0; t < n_tmpl; t++)
        if (!strstr(tmpl[t], "{}")) usage_error("--template \"%s\" has no {} to put the label in", tmpl[t]);
    if (clip_encode_labels(m, (const char *const *)L->text, L->len, L->n, tmpl, n_tmpl, f, err)) die(err);
    return f;
}

/* One image's ranking, readable or as a JSON line. */
static void print_ranking(const cli_options *o, const char *image, const label_list *L, const float *logits,
                          const float *probs, int *order, int header)
{
    int i, shown = o->top && o->top < L->n ? o->top : L->n;
    for (i = 0; i < L->n; i++) order[i] = i;
    sort_logits = logits; /* best first; ties keep file order */
    qsort(order, (size_t)L->n, sizeof(int), by_logit);
    if (o->json) {
        printf("{\"image\": ");
        json_string(stdout, image, strlen(image));
        printf(", \"labels\": [");
        for (i = 0; i < shown; i++) {
            int k = order[i];
            printf("%s{\"label\": ", i ? ", " : "");
            json_string(stdout, L->text[k], L->len[k]);
            printf(", \"prob\": %.9g, \"logit\": %.9g}", (double)probs[k], (double)logits[k]);
        }
        printf("]}\n");
        return;
    }
    if (header) printf("%s\n", image);
    for (i = 0; i < shown; i++) {
        int k = order[i];
        printf("%s%6.2f%%  %s\n", header ? "  " : "", 100.0 * probs[k], L->text[k]);
    }
}

#define CLI_BATCH 16 /* images decoded in parallel and encoded together */

/* clip MODEL IMAGE... LABELS: the labels encoded once, the images in
   batches; an unreadable image is reported and the rest go on. */
static int cmd_classify(cli_options *o)
{
    char err[CLIP_ERR_SIZE], *msgs;
    clip_model *m;
    label_list L, T = {NULL, NULL, 0};
    const char **tmpl = o->templates;
    int n_tmpl = o->n_templates, n_images = o->nargs - 2, *order, *ok, i, j, E, status = 0;
    float *img_f, *txt_f, *logits, *probs;
    if (o->nargs < 3) usage_error("classification takes MODEL IMAGE... LABELS%s", "");
    m = cli_load(o->args[0]);
    E = m->cfg.projection_dim;
    L = read_labels(o->args[o->nargs - 1]);
    if (o->templates_file) { /* its lines join any --template */
        T = read_labels(o->templates_file);
        tmpl = (const char **)xmalloc((size_t)(n_tmpl + T.n) * sizeof(char *));
        for (i = 0; i < n_tmpl; i++) tmpl[i] = o->templates[i];
        for (i = 0; i < T.n; i++) tmpl[n_tmpl + i] = T.text[i];
        n_tmpl += T.n;
    }
    txt_f = label_features(m, &L, tmpl, n_tmpl);
    img_f = (float *)xmalloc((size_t)CLI_BATCH * E * sizeof(float));
    msgs = (char *)xmalloc((size_t)CLI_BATCH * CLIP_ERR_SIZE);
    ok = (int *)xmalloc(CLI_BATCH * sizeof(int));
    logits = (float *)xmalloc((size_t)L.n * sizeof(float));
    probs = (float *)xmalloc((size_t)L.n * sizeof(float));
    order = (int *)xmalloc((size_t)L.n * sizeof(int));
    for (i = 0; i < n_images; i += CLI_BATCH) {
        int n = n_images - i < CLI_BATCH ? n_images - i : CLI_BATCH;
        if (clip_encode_files(m, o->args + 1 + i, n, img_f, ok, msgs, err)) die(err);
        for (j = 0; j < n; j++) {
            if (!ok[j]) {
                fflush(stdout);
                fprintf(stderr, "%s\n", msgs + (size_t)j * CLIP_ERR_SIZE);
                status = 1;
                continue;
            }
            clip_zero_shot(m, img_f + (size_t)j * E, txt_f, L.n, logits, probs);
            if (!o->json && n_images > 1 && (i || j)) putchar('\n');
            print_ranking(o, o->args[1 + i + j], &L, logits, probs, order, n_images > 1);
        }
        fflush(stdout);
    }
    if (o->templates_file) {
        for (i = 0; i < T.n; i++) clip_free(T.text[i]);
        clip_free(T.text);
        clip_free(T.len);
        clip_free((void *)tmpl);
    }
    for (i = 0; i < L.n; i++) clip_free(L.text[i]);
    clip_free(L.text);
    clip_free(L.len);
    clip_free(img_f);
    clip_free(txt_f);
    clip_free(msgs);
    clip_free(ok);
    clip_free(logits);
    clip_free(probs);
    clip_free(order);
    clip_model_free(m);
    return status;
}

static int cmd_embed(cli_options *o)
{
    char err[CLIP_ERR_SIZE];
    clip_model *m;
    float *f;
    int i, E, n = o->nargs - 1;
    if (o->nargs < 2) usage_error("embed takes MODEL IMAGE... or MODEL --text TEXT...%s", "");
    m = cli_load(o->args[0]);
    E = m->cfg.projection_dim;
    if (o->text_mode) {
        size_t *lens = (size_t *)xmalloc((size_t)n * sizeof(size_t));
        for (i = 0; i < n; i++) lens[i] = strlen(o->args[1 + i]);
        f = cli_encode_texts(m, (char **)(o->args + 1), lens, n);
        clip_free(lens);
    } else {
        /* every image must be read: row i is image i */
        char *msgs = (char *)xmalloc((size_t)CLI_BATCH * CLIP_ERR_SIZE);
        int ok[CLI_BATCH], j;
        f = (float *)xmalloc((size_t)n * E * sizeof(float));
        for (i = 0; i < n; i += CLI_BATCH) {
            int k = n - i < CLI_BATCH ? n - i : CLI_BATCH;
            if (clip_encode_files(m, o->args + 1 + i, k, f + (size_t)i * E, ok, msgs, err)) die(err);
            for (j = 0; j < k; j++)
                if (!ok[j]) die(msgs + (size_t)j * CLIP_ERR_SIZE);
        }
        clip_free(msgs);
    }
    if (o->npy) {
        if (clip_npy_write(o->npy, f, (size_t)n, (size_t)E, err)) die(err);
    } else {
        for (i = 0; i < n; i++) print_floats(stdout, f + (size_t)i * E, E);
    }
    clip_free(f);
    clip_model_free(m);
    return 0;
}

/* index progress on a terminal: done / total, rate, time left */
static void show_progress(void *ctx, const clip_index_progress *p)
{
    double rate = p->seconds > 0 ? (double)p->done / p->seconds : 0.0;
    (void)ctx;
    if (p->finished) {
        fprintf(stderr, "\r\033[K");
        return;
    }
    fprintf(stderr, "\r\033[Kembedding %llu/%llu (%.1f%%)  %.1f images/s", (unsigned long long)p->done,
            (unsigned long long)p->todo, 100.0 * (double)p->done / (double)(p->todo ? p->todo : 1), rate);
    if (rate > 0) {
        double left = (double)(p->todo - p->done) / rate;
        if (left >= 3600)
            fprintf(stderr, "  %dh%02dm left", (int)(left / 3600), (int)(left / 60) % 60);
        else
            fprintf(stderr, "  %dm%02ds left", (int)(left / 60), (int)left % 60);
    }
    fflush(stderr);
}

/* clip index MODEL INDEX PATH... (or - for paths on stdin), clip index --merge OUT SHARD... */
static int cmd_index(cli_options *o)
{
    char err[CLIP_ERR_SIZE];
    clip_index_summary s;
    const char **paths;
    char *list = NULL;
    size_t n_paths = 0, i;
    int from_stdin = 0, rc;
    if (o->merge) {
        if (o->nargs < 1) usage_error("index --merge takes OUT SHARD...%s", "");
        if (clip_index_merge(o->merge, o->args, (size_t)o->nargs, &s, err)) die(err);
        if (!o->quiet)
            fprintf(stderr, "clip index: %s: %llu rows, %llu failed, merged from %d shards\n", o->merge,
                    (unsigned long long)s.rows, (unsigned long long)s.failed, o->nargs);
        return 0;
    }
    if (o->nargs < 2) usage_error("index takes MODEL INDEX [PATH...]%s", "");
    paths = (const char **)xmalloc((size_t)o->nargs * sizeof(char *));
    for (i = 2; i < (size_t)o->nargs; i++) {
        clip_path_info st;
        if (!strcmp(o->args[i], "-")) {
            from_stdin = 1;
            continue;
        }
        /* a path on the command line that is not there is a typo: stop before any work */
        if (clip_path_stat(o->args[i], &st, err) == 1) {
            fprintf(stderr, "clip index: %s\n", err);
            exit(1);
        }
        paths[n_paths++] = o->args[i];
    }
    if (from_stdin) { /* one path per line; paths listed there may be gone: they become failures */
        size_t len, start = 0, extra = 0;
        list = slurp(stdin, &len, "standard input");
        list = (char *)clip_realloc(list, len + 1); /* room for the last line's end */
        if (!list) die("clip: out of memory");
        for (i = 0; i < len; i++) extra += list[i] == '\n';
        paths = (const char **)clip_realloc((void *)paths, ((size_t)o->nargs + extra + 1) * sizeof(char *));
        if (!paths) die("clip: out of memory");
        for (i = 0; i <= len; i++)
            if (i == len || list[i] == '\n') {
                size_t e = i;
                if (e > start && list[e - 1] == '\r') e--;
                list[e] = 0;
                if (e > start) paths[n_paths++] = list + start;
                start = i + 1;
            }
    }
    {
        clip_model *m = cli_load(o->args[0]);
        clip_index_options opt;
        memset(&opt, 0, sizeof opt);
        opt.shard_k = o->shard_k;
        opt.shard_n = o->shard_n;
        opt.prune = o->prune;
        opt.retry_failed = o->retry_failed;
        opt.checkpoint_s = o->checkpoint;
        opt.progress = !o->quiet && clip_is_terminal(stderr) ? show_progress : NULL;
        rc = clip_index_update(m, o->args[0], o->args[1], paths, n_paths, &opt, &s, err);
        clip_model_free(m);
    }
    clip_free((void *)paths);
    clip_free(list);
    if (rc) die(err);
    if (!o->quiet) {
        fprintf(stderr, "clip index: %s: %llu rows, %llu failed", o->args[1], (unsigned long long)s.rows,
                (unsigned long long)s.failed);
        fprintf(stderr, "; this run: %llu embedded", (unsigned long long)s.embedded);
        if (s.embedded) fprintf(stderr, " (%.1f images/s)", (double)s.embedded / (s.seconds > 0 ? s.seconds : 1e-9));
        fprintf(stderr, ", %llu unchanged, %llu failed", (unsigned long long)s.unchanged,
                (unsigned long long)s.new_failed);
        if (s.recovered) fprintf(stderr, ", %llu saved from an interrupted run", (unsigned long long)s.recovered);
        if (s.pruned) fprintf(stderr, ", %llu pruned", (unsigned long long)s.pruned);
        if (s.missing) fprintf(stderr, ", %llu gone but kept (--prune drops them)", (unsigned long long)s.missing);
        if (s.loops) fprintf(stderr, ", folders reached twice through links: %llu", (unsigned long long)s.loops);
        fprintf(stderr, "\n");
    }
    return 0;
}

/* clip search MODEL INDEX TEXT | --image IMAGE */
static int cmd_search(cli_options *o)
{
    char err[CLIP_ERR_SIZE];
    clip_model *m;
    clip_index *ix;
    float *q, *scores;
    size_t *rows;
    int k = o->top ? o->top : 10, n, i;
    if (o->nargs != (o->image ? 2 : 3))
        usage_error("search takes MODEL INDEX TEXT, or MODEL INDEX --image IMAGE%s", "");
    m = cli_load(o->args[0]);
    ix = clip_index_open(o->args[1], err);
    if (!ix || clip_index_check_model(ix, m, o->args[0], err)) die(err);
    if (o->image) {
        clip_image crop;
        q = (float *)xmalloc((size_t)m->cfg.projection_dim * sizeof(float));
        cli_image(m, o->image, &crop);
        if (clip_encode_image(m, &crop, q, err)) die(err);
        clip_image_free(&crop);
    } else {
        size_t len = strlen(o->args[2]);
        q = cli_encode_texts(m, (char **)(o->args + 2), &len, 1);
    }
    rows = (size_t *)xmalloc((size_t)k * sizeof(size_t));
    scores = (float *)xmalloc((size_t)k * sizeof(float));
    n = clip_index_search(ix, q, k, rows, scores, err);
    if (n < 0) die(err);
    if (o->json) putchar('[');
    for (i = 0; i < n; i++) {
        const char *p = clip_index_path(ix, rows[i]);
        if (!p) {
            fflush(stdout);
            fprintf(stderr, "clip search: %s: row %llu of files.tsv is damaged (a bad escape in its path); index into a "
                            "new folder\n", o->args[1], (unsigned long long)rows[i] + 1);
            exit(1);
        }
        if (o->json) {
            printf("%s{\"path\": ", i ? ", " : "");
            json_string(stdout, p, strlen(p));
            printf(", \"score\": %.9g}", (double)scores[i]);
        } else {
            printf("%.4f  %s\n", (double)scores[i], p);
        }
    }
    if (o->json) printf("]\n");
    clip_free(q);
    clip_free(rows);
    clip_free(scores);
    clip_index_close(ix);
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
    clip_free(ids);
    clip_free(text);
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

static void print_line(void *ctx, const char *line)
{
    (void)ctx;
    printf("%s\n", line);
}

static int cmd_selftest(void)
{
    char err[CLIP_ERR_SIZE];
    if (clip_selftest(print_line, NULL, err)) {
        fflush(stdout);
        fprintf(stderr, "clip: selftest: %s\n", err);
        return 1;
    }
    return 0;
}

/* Each option belongs to some commands; elsewhere it is a mistake worth saying. */
static void check_options(const cli_options *o, const char *cmd)
{
    int classify = !*cmd, embed = !strcmp(cmd, "embed"), index = !strcmp(cmd, "index"),
        search = !strcmp(cmd, "search");
    if (o->text_mode && !embed) usage_error("--text belongs to clip embed%s", "");
    if (o->npy && !embed) usage_error("--npy belongs to clip embed%s", "");
    if ((o->n_templates || o->templates_file) && !classify)
        usage_error("--template and --templates belong to classification (clip MODEL IMAGE... LABELS)%s", "");
    if (o->image && !search) usage_error("--image belongs to clip search%s", "");
    if ((o->merge || o->shard_n || o->prune || o->retry_failed) && !index)
        usage_error("--merge, --shard, --prune and --retry-failed belong to clip index%s", "");
    if (o->json && !classify && !search) usage_error("--json belongs to classification and clip search%s", "");
    if (o->top && !classify && !search) usage_error("--top belongs to classification and clip search%s", "");
}

int main(int argc, char **argv)
{
    cli_options o;
    const char *cmd;
    int rc;
    clip_utf8_args(argc, argv);
    if (argc < 2) {
        fputs(usage_text, stderr);
        return 2;
    }
    cmd = argv[1];
    if (!strcmp(cmd, "--version")) {
        printf("clip %s (weights format %d)\n", CLIP_VERSION, CLIP_FORMAT_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "selftest")) {
        if (argc != 2) usage_error("selftest takes no arguments%s", "");
        return cmd_selftest();
    }
    if (!strcmp(cmd, "embed") || !strcmp(cmd, "tokenize") || !strcmp(cmd, "preprocess") || !strcmp(cmd, "decode") ||
        !strcmp(cmd, "index") || !strcmp(cmd, "search")) {
        parse_options(&o, argc, argv, 2);
        check_options(&o, cmd);
        if (!strcmp(cmd, "embed")) rc = cmd_embed(&o);
        else if (!strcmp(cmd, "tokenize")) rc = cmd_tokenize(&o);
        else if (!strcmp(cmd, "preprocess")) rc = cmd_preprocess(&o);
        else if (!strcmp(cmd, "index")) rc = cmd_index(&o);
        else if (!strcmp(cmd, "search")) rc = cmd_search(&o);
        else rc = cmd_decode(&o);
    } else {
        parse_options(&o, argc, argv, 1);
        check_options(&o, "");
        rc = cmd_classify(&o);
    }
    free_options(&o);
    return rc;
}
#endif /* CLIP_NO_MAIN */
