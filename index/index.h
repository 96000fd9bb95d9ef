/* index.h - an index of a collection of images: their CLIP features in one
   numpy file, beside tables of the files they came from, kept up to date
   incrementally and written so that a crash never tears it (clip index,
   clip search). README.md ("Collections") documents the folder's format.

   Like the rest of the library it never prints or exits: errors come back
   in err (CLIP_ERR_SIZE bytes), progress through a callback. */
#ifndef CLIP_INDEX_H
#define CLIP_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "../clip.h"

#define CLIP_INDEX_VERSION 1 /* of the folder's format (index.json "version") */

/* ---- building and updating ---- */

typedef struct {
    size_t total;     /* files this run looks at */
    size_t todo;      /* of which new or changed: to embed */
    size_t done;      /* of the todo, finished (embedded or failed) */
    size_t failed;    /* of the done, failed */
    double seconds;   /* since the embedding started */
    int finished;     /* 1 on the last call */
} clip_index_progress;

typedef struct {
    int shard_k, shard_n;  /* index only slice shard_k (1..shard_n) of the files; shard_n = 0: all */
    int prune;             /* drop the rows of files that no longer exist */
    int retry_failed;      /* try unchanged files that failed before again */
    double checkpoint_s;   /* flush the journal to the disk at least this often (seconds; 0: every batch) */
    void (*progress)(void *ctx, const clip_index_progress *p); /* after every batch, or NULL */
    void *ctx;
} clip_index_options;

typedef struct {
    size_t rows;       /* rows (embedded files) in the index now */
    size_t failed;     /* files in failed.tsv now */
    size_t embedded;   /* files embedded by this run */
    size_t unchanged;  /* files seen unchanged (kept as they were) */
    size_t new_failed; /* files that failed in this run */
    size_t pruned;     /* rows dropped because the file is gone (--prune) */
    size_t missing;    /* files gone but kept (no --prune) */
    size_t recovered;  /* rows an interrupted run had embedded, saved now */
    size_t loops;      /* folders skipped because they were seen already (symbolic link loops) */
    double seconds;    /* embedding time */
} clip_index_summary;

/* Create or update the index folder dir from files and folders (walked
   recursively, hidden names skipped, in byte order). paths may be empty: the
   files already in the index are checked again. model_path is the weights
   file m was loaded from: its name is recorded, and its size and time (see
   clip_index_check_model); the model's fingerprint guards against mixing
   models. */
int clip_index_update(clip_model *m, const char *model_path, const char *dir, const char *const *paths,
                      size_t n_paths, const clip_index_options *opt, clip_index_summary *sum, char *err);

/* Merge shard indexes (same model) into the index folder out: the rows a
   single run over all the shards' files would have. */
int clip_index_merge(const char *out, const char *const *shards, size_t n_shards, clip_index_summary *sum,
                     char *err);

/* Which slice (1..n) of n a path belongs to (clip index --shard). */
int clip_index_shard_of(const char *path, int n);

/* ---- reading and searching ---- */

typedef struct clip_index clip_index;
/* Open an index read-only for searching: the embeddings are mapped, not
   read; files.tsv is mapped and each line checked for its fields, and a
   row's path is decoded when clip_index_path asks for it. */
clip_index *clip_index_open(const char *dir, char *err);
/* The same, reading and checking every row of both tables (their order,
   every path) as clip index and --merge do. */
clip_index *clip_index_open_all(const char *dir, char *err);
void clip_index_close(clip_index *ix);
size_t clip_index_rows(const clip_index *ix);
int clip_index_dim(const clip_index *ix);
/* The row's file path (NUL-terminated; may hold any byte but NUL), or NULL
   when the row is out of range or its path is damaged (a bad escape). */
const char *clip_index_path(const clip_index *ix, size_t row);
/* 0 when m is the model that built the index, else -1 with a message. When
   model_path (may be NULL) is the weights file the index recorded, with the
   same size and modification time, the recorded fingerprint is trusted;
   otherwise the whole file is hashed (clip_model_fingerprint). */
int clip_index_check_model(const clip_index *ix, const clip_model *m, const char *model_path, char *err);
/* The k rows most similar to query (dim floats, any length: it is
   normalized here) by cosine, best first, ties by row. Returns how many
   (min(k, rows)) or -1. */
int clip_index_search(const clip_index *ix, const float *query, int k, size_t *rows, float *scores, char *err);

/* ---- numpy files ---- */

/* Write a float32 (rows, cols) array as a .npy file, whole: to a temporary
   name, then renamed into place. */
int clip_npy_write(const char *path, const float *data, size_t rows, size_t cols, char *err);

#endif
