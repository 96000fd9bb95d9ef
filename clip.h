/* clip.h - the clip.c library: CLIP image and text embeddings in plain C99.

   A model is one weights file made by export_weights.py. Typical use:

       char err[CLIP_ERR_SIZE];
       clip_model *m = clip_model_load("weights.bin", err);
       clip_image crop;
       clip_preprocess_file(m, "cat.jpg", &crop, err);  (decode, resize, crop)
       float *f = malloc(clip_model_config(m)->projection_dim * sizeof(float));
       clip_encode_image(m, &crop, f, err);

   Every function that can fail returns 0 on success and -1 on failure, with
   a message in err (CLIP_ERR_SIZE bytes, may be NULL). The library never
   prints and never exits.

   Threads: a loaded clip_model is read-only. The clip_context_* functions
   take a context (the working memory of a forward pass): any number of
   threads may use one model at once, each with its own context. The
   functions that take the model itself (clip_encode_image, ...) use a
   context the model owns, so one thread at a time may call them.
   Everything else (decoding, preprocessing, tokenizing) is safe from any
   thread.

   Stability: the functions and types declared here are the API; within a
   major version (CLIP_VERSION_MAJOR, the shared library's soname) they
   keep their meaning and signatures, and new ones only get added. The
   weights-file format has its own version (CLIP_FORMAT_VERSION): a file of
   another version is refused with a message saying how to re-export it. */
#ifndef CLIP_H
#define CLIP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exported from the shared library (built with -fvisibility=hidden and
   -DCLIP_BUILD_SHARED); nothing else of the library is visible. */
#if defined(CLIP_BUILD_SHARED) && (defined(__GNUC__) || defined(__clang__))
#define CLIP_API __attribute__((visibility("default")))
#else
#define CLIP_API
#endif

#define CLIP_VERSION_MAJOR 1
#define CLIP_VERSION_MINOR 1
#define CLIP_VERSION_PATCH 0
#define CLIP_VERSION "1.1.0"

#define CLIP_ERR_SIZE 256
#define CLIP_FORMAT_VERSION 3   /* the weights-file version export_weights.py writes; 2 is read too */

/* How a file stores its linear-layer weights and token embedding (everything
   else is float32). Computation is float32 whatever the file holds. */
enum {
    CLIP_WEIGHTS_F32 = 0,  /* float32 */
    CLIP_WEIGHTS_F16 = 1,  /* IEEE half precision: half the size */
    CLIP_WEIGHTS_BF16 = 2, /* bfloat16 (float32's top 16 bits): half the size */
    CLIP_WEIGHTS_Q8 = 3    /* 8-bit integers with a half-precision scale per 32 weights of a row: 0.27x */
};

/* Activation functions of the MLP blocks. */
enum { CLIP_ACT_QUICK_GELU = 0, CLIP_ACT_GELU = 1 };

/* Everything the weights-file header describes. */
typedef struct {
    /* vision tower */
    int image_size;      /* S: input images are S x S */
    int patch_size;      /* P: patches are P x P, (S/P)^2 of them */
    int channels;        /* 3 (RGB) */
    int vision_width;    /* D */
    int vision_layers;
    int vision_heads;
    int vision_mlp;      /* MLP hidden size */
    int vision_act;      /* CLIP_ACT_* */
    float vision_eps;    /* LayerNorm epsilon */
    /* text tower */
    int vocab_size;
    int context_length;  /* max tokens, <|startoftext|> and <|endoftext|> included (77) */
    int text_width;
    int text_layers;
    int text_heads;
    int text_mlp;
    int text_act;
    float text_eps;
    int bos_id;          /* <|startoftext|> */
    int eos_id;          /* <|endoftext|> */
    /* joint space */
    int projection_dim;  /* length of every feature vector */
    float logit_scale;   /* log of the temperature; logits use exp(logit_scale) */
    /* image preprocessing (Hugging Face CLIPImageProcessor) */
    int resize_mode;     /* 0: short side to resize_h; 1: exactly resize_h x resize_w */
    int resize_h, resize_w;
    int crop_h, crop_w;  /* center crop, equal to image_size */
    int resample;        /* PIL filter id: 2 bilinear, 3 bicubic */
    float mean[3], std[3];
    int n_merges;        /* BPE merges in the tokenizer */
    int weight_type;     /* CLIP_WEIGHTS_*: how the file stores the large weights */
} clip_config;

typedef struct clip_model clip_model;
typedef struct clip_context clip_context;
/* Sees a stage of a forward pass (see "inspection" below). */
typedef void (*clip_probe)(void *ctx, const char *stage, int layer, const float *x, int rows, int cols);

/* An 8-bit RGB image, rows top to bottom, pixels interleaved. */
typedef struct {
    int width, height;
    unsigned char *rgb;  /* width * height * 3 bytes, owned (free with clip_image_free) */
} clip_image;

/* ---- models ---- */

/* Load a weights file (memory-mapped where the platform allows). */
CLIP_API clip_model *clip_model_load(const char *path, char *err);
/* The same, with the file read into the process's own memory instead of
   mapped: RSS grows by the file's size and loading takes a read of it, but
   no page of the weights can be dropped and fetched again while it runs
   (some systems reclaim mapped file pages eagerly; see bench/README.md). */
CLIP_API clip_model *clip_model_load_read(const char *path, char *err);
/* Use a weights file that is already in memory. The buffer must stay valid
   and unchanged until clip_model_free; it is not copied on little-endian
   hosts when 4-byte aligned. */
CLIP_API clip_model *clip_model_load_memory(const void *data, size_t size, char *err);
CLIP_API void clip_model_free(clip_model *m);
CLIP_API const clip_config *clip_model_config(const clip_model *m);
/* A 64-bit hash of the whole weights file: two files with the same
   fingerprint hold the same model (an index records the one that built it).
   Reads every byte once (a fraction of a second for ViT-B/32). */
CLIP_API uint64_t clip_model_fingerprint(const clip_model *m);

/* ---- images (image.c) ---- */

/* Decode an image file or buffer to RGB: JPEG, PNG, GIF (its first frame), BMP,
   WebP (an animation's first frame), PPM/PGM; the format is told by the content. */
CLIP_API int clip_image_load(clip_image *img, const char *path, char *err);
CLIP_API int clip_image_decode(clip_image *img, const unsigned char *data, size_t size, char *err);
CLIP_API void clip_image_free(clip_image *img);
/* Resize and center-crop as CLIPImageProcessor does (Pillow's resampling,
   bit-exact): out becomes the crop_h x crop_w image the model sees. */
CLIP_API int clip_preprocess(const clip_model *m, const clip_image *in, clip_image *out, char *err);
/* The resize and crop alone, for any target (resize_mode as in clip_config). */
CLIP_API int clip_resize_crop(const clip_image *in, clip_image *out, int resize_mode, int resize_h, int resize_w,
                              int crop_h, int crop_w, int resample, char *err);
/* Decode and resize + crop in one go: the same pixels as clip_image_decode
   (or clip_image_load) followed by clip_resize_crop, without the full-size
   image. For JPEG only the rows and columns the crop needs are transformed,
   overlapped with the entropy decoding. */
CLIP_API int clip_decode_resize_crop(clip_image *out, const unsigned char *data, size_t size, int resize_mode,
                                     int resize_h, int resize_w, int crop_h, int crop_w, int resample, char *err);
CLIP_API int clip_load_resize_crop(clip_image *out, const char *path, int resize_mode, int resize_h, int resize_w,
                                   int crop_h, int crop_w, int resample, char *err);
/* The same with the model's preprocessing: the crop clip_encode_image takes. */
CLIP_API int clip_preprocess_file(const clip_model *m, const char *path, clip_image *out, char *err);
CLIP_API int clip_preprocess_data(const clip_model *m, const unsigned char *data, size_t size, clip_image *out,
                                  char *err);
/* Write an image as binary PPM. */
CLIP_API int clip_image_write_ppm(const clip_image *img, const char *path, char *err);

/* ---- text (tokenizer.c) ---- */

/* The byte-level BPE tokenizer alone: merges is n_merges lines "left right\n"
   (the blob's merges section). Building it hashes the merges once. */
typedef struct clip_tokenizer clip_tokenizer;
CLIP_API clip_tokenizer *clip_tokenizer_create(const char *merges, size_t len, int n_merges, char *err);
CLIP_API void clip_tokenizer_free(clip_tokenizer *t);
/* As clip_tokenize, with the tokenizer's own <|startoftext|>/<|endoftext|>
   ids (the last two of its vocabulary). */
CLIP_API int clip_tokenizer_encode(const clip_tokenizer *t, const char *text, size_t len, int32_t *ids, int max_ids);
CLIP_API int clip_tokenizer_vocab_size(const clip_tokenizer *t);

/* Tokenize len bytes of UTF-8 text (invalid sequences become U+FFFD) into at
   most max_ids ids: <|startoftext|>, the text, <|endoftext|>, truncated to
   max_ids keeping the final <|endoftext|>. Returns the number of ids
   (>= 2 when max_ids >= 2), or -1 on error. */
CLIP_API int clip_tokenize(const clip_model *m, const char *text, size_t len, int32_t *ids, int max_ids, char *err);

/* Split a labels file: one label per line; a leading UTF-8 BOM is ignored,
   CR and surrounding whitespace are stripped, blank lines are skipped.
   Returns the number of labels n (or -1); *spans gets 2n offsets: label i is
   text[spans[2i] .. spans[2i] + spans[2i+1]). Release *spans with clip_free. */
CLIP_API int clip_split_labels(const char *text, size_t len, size_t **spans, char *err);

/* ---- encoders ---- */

/* Features of one preprocessed image (image_size x image_size, as made by
   clip_preprocess): projection_dim floats, not normalized, as Hugging Face's
   get_image_features. */
CLIP_API int clip_encode_image(clip_model *m, const clip_image *crop, float *features, char *err);
/* Features of n preprocessed images at once: n * projection_dim floats, each
   row bit-identical to clip_encode_image of that image alone. Batching lets
   every weight serve several images (faster for collections). */
CLIP_API int clip_encode_images(clip_model *m, const clip_image *crops, int n, float *features, char *err);
/* Features of n image files (features: n * projection_dim floats): they are
   decoded and preprocessed in parallel, then encoded together. ok[i] = 1
   when file i was read (row i holds its features), 0 when it was not (row i
   is zeros, the reason in msgs + i * CLIP_ERR_SIZE). Returns -1 only when
   encoding itself fails (err). */
CLIP_API int clip_encode_files(clip_model *m, const char *const *paths, int n, float *features, int *ok, char *msgs,
                               char *err);
/* Features of n token sequences (ids from clip_tokenize, lens[i] ids each,
   ids for text i at ids + i * stride): n * projection_dim floats, as
   get_text_features. */
CLIP_API int clip_encode_text(clip_model *m, const int32_t *ids, const int *lens, int n, int stride, float *features,
                              char *err);

/* Text features of n labels, as the CLI's zero-shot makes them (lens may be
   NULL for NUL-terminated labels): n_templates = 0, each label as it is; 1,
   the label put in place of every "{}" of the template (exactly
   clip_encode_text of that prompt); several, a prompt ensemble as in
   OpenAI's zero-shot ImageNet notebook: the mean of the label's normalized
   template features, normalized again. features: n * projection_dim. */
CLIP_API int clip_encode_labels(clip_model *m, const char *const *labels, const size_t *lens, int n,
                                const char *const *templates, int n_templates, float *features, char *err);

/* ---- contexts: one model, many threads ----

   A context holds the activations of forward passes on one model (grown on
   first use, reused after). Each thread that encodes needs its own; the
   model must outlive its contexts. The functions are the encoders above,
   with the same numbers. */
CLIP_API clip_context *clip_context_create(const clip_model *m, char *err);
CLIP_API void clip_context_free(clip_context *ctx);
CLIP_API int clip_context_encode_images(clip_context *ctx, const clip_image *crops, int n, float *features, char *err);
CLIP_API int clip_context_encode_files(clip_context *ctx, const char *const *paths, int n, float *features, int *ok,
                                       char *msgs, char *err);
CLIP_API int clip_context_encode_text(clip_context *ctx, const int32_t *ids, const int *lens, int n, int stride,
                                      float *features, char *err);
CLIP_API int clip_context_encode_labels(clip_context *ctx, const char *const *labels, const size_t *lens, int n,
                                        const char *const *templates, int n_templates, float *features, char *err);
/* The probe (below) of this context's forward passes. */
CLIP_API void clip_context_set_probe(clip_context *ctx, clip_probe fn, void *probe_ctx);

/* ---- memory ----

   The allocation hook: every allocation of the library goes through these
   three, which behave as malloc, realloc and free (and may be used to free
   what the library hands out, such as clip_split_labels' spans). They call
   the C library's; a build with -DCLIP_CUSTOM_ALLOC leaves them out, and
   the program defines them itself (an arena, an RTOS heap). */
CLIP_API void *clip_malloc(size_t n);
CLIP_API void *clip_realloc(void *p, size_t n);
CLIP_API void clip_free(void *p);

/* ---- files ---- */

/* fopen for a UTF-8 path, which is what every path in this API is: on
   Windows it goes through _wfopen (a path that is not valid UTF-8 is passed
   to fopen as it is). */
CLIP_API FILE *clip_fopen(const char *path, const char *mode);

/* ---- inspection ----

   A probe sees every stage of a forward pass as it is computed, for tests,
   the self-check and a porter hunting a divergence. stage is one of
   "vision.embeddings" (after pre_layrnorm: the encoder's input),
   "vision.layer" (each encoder layer's output; layer = 0, 1, ...),
   "vision.pooled" (post_layernorm of the class token), "vision.features",
   and the same four for "text." ("text.embeddings" is token + position
   embeddings; the texts of one clip_encode_text batch come packed as
   consecutive rows, each up to its first <|endoftext|>; "text.pooled" has
   one row per text). layer is -1 except for the layers. x is rows x cols,
   valid during the call only. fn = NULL (the default) turns it off.
   Without a probe the last layer's out_proj and MLP run only on the rows
   that are pooled; with one, on every row, so that the probe sees them
   all. The features are the same bits either way. */
CLIP_API void clip_model_set_probe(clip_model *m, clip_probe fn, void *ctx);

/* ---- self-check ----

   Runs the built-in tiny model (generated with the project's tools, its
   reference values from the float64 reference) through every stage:
   tokenizer ids, a built-in JPEG decoded and preprocessed, each layer of
   both towers, the features and the zero-shot logits. report (may be
   NULL) gets one line of text per stage. Returns 0 when every stage agrees
   within its tolerance, -1 otherwise, with the first stage that diverged
   (and by how much) in err. */
CLIP_API int clip_selftest(void (*report)(void *ctx, const char *line), void *ctx, char *err);

/* ---- similarity ---- */

/* x / |x| in place (the norm summed in double); a zero vector stays zero. */
CLIP_API void clip_normalize(float *x, int n);
/* Cosine similarity of two feature vectors of length n. */
CLIP_API float clip_cosine(const float *a, const float *b, int n);
/* Zero-shot classification: logits[j] = exp(logit_scale) * cosine(image,
   text j), probs = softmax(logits). probs may be NULL. */
CLIP_API void clip_zero_shot(const clip_model *m, const float *image_features, const float *text_features, int n_texts,
                             float *logits, float *probs);

#ifdef __cplusplus
}
#endif
#endif
