/* platform.h - everything of clip.c that touches the host: memory, error
   messages, files (UTF-8 names, whole-file reads, memory mapping, folders,
   durable writes) and the OpenMP switch. clip.c, tokenizer.c, image.c, the
   decoders and index/ include this and clip.h and nothing else of the
   project's; a port to a new machine starts here (platform.c).

   Internal to the library: not installed, not part of the stable API. */
#ifndef CLIP_PLATFORM_H
#define CLIP_PLATFORM_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../clip.h"

/* OMP("omp parallel for ...") is an OpenMP pragma when the compiler runs
   with -fopenmp and nothing otherwise, so every file builds either way. */
#ifdef _OPENMP
#include <omp.h>
#define OMP(directive) _Pragma(directive)
#else
#define OMP(directive)
#endif

/* ---- memory ----
   Every allocation of the library goes through clip_malloc, clip_realloc
   and clip_free (clip.h: the allocation hook a port replaces). */
/* count * size zeroed bytes, or NULL (also when the product overflows) */
void *clip_calloc(size_t count, size_t size);

/* ---- errors ----
   The one formatter of the library's messages: writes the printf-style
   message into err (CLIP_ERR_SIZE bytes; err may be NULL) and returns -1,
   so a failing function can end with `return clip_error(err, ...)`. */
int clip_error(char *err, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
int clip_verror(char *err, const char *fmt, va_list ap);

/* ---- files ----
   Names are UTF-8 everywhere (clip_fopen, in clip.h, opens them). */

/* All of a stream in memory (clip_malloc'ed, *size bytes; an empty stream
   gives a valid 1-byte buffer), or NULL with a message naming `name`. */
unsigned char *clip_read_stream(FILE *f, size_t *size, const char *name, char *err);
/* All of a file in memory, as clip_read_stream. */
unsigned char *clip_read_file(const char *path, size_t *size, char *err);

/* A whole file, read-only: mapped where the platform can (mmap,
   MapViewOfFile; not with -DCLIP_NO_MMAP), read into memory otherwise. */
typedef struct {
    const unsigned char *data; /* size bytes */
    size_t size;
    int mapped;                /* 1: unmap on close; 0: clip_free */
} clip_file;
int clip_file_open(clip_file *f, const char *path, char *err);
/* The same, always read into memory (never mapped). */
int clip_file_read(clip_file *f, const char *path, char *err);
void clip_file_close(clip_file *f);
/* A hint that the program will read the file soon: the system may start
   reading it in the background (posix_fadvise WILLNEED). Does nothing where
   that is not available, or when the file cannot be opened. */
void clip_file_prefetch(const char *path);

/* ---- directories and durable files ----
   What clip index needs of the host: messages name the path but carry no
   "clip: " prefix (the caller adds its context). Every call fails with a
   message on a platform without a file system API. */
enum { CLIP_PATH_OTHER = 0, CLIP_PATH_FILE = 1, CLIP_PATH_DIR = 2 };
typedef struct {
    int kind;          /* CLIP_PATH_* (symbolic links followed) */
    uint64_t size;     /* bytes */
    int64_t mtime_ns;  /* last modification, nanoseconds since 1970 */
    uint64_t dev, ino; /* the file's identity where the system has one (0 on Windows) */
} clip_path_info;
/* 0; 1 when the path does not exist; -1 on another error (both with a message). */
int clip_path_stat(const char *path, clip_path_info *info, char *err);
/* The names in a folder but "." and "..", sorted by their bytes; free each
   and the array with clip_free. */
int clip_list_dir(const char *path, char ***names, size_t *count, char *err);
/* Create a folder; an existing folder is fine. */
int clip_make_dir(const char *path, char *err);
/* Rename from over to, atomically (readers see the old file or the new). */
int clip_replace_file(const char *from, const char *to, char *err);
int clip_remove_file(const char *path);
/* Flush a stream to the disk (fflush, then fsync). */
int clip_sync_file(FILE *f, const char *name, char *err);
/* Make renames in a folder durable, where the system allows. */
void clip_sync_dir(const char *path);
/* An exclusive lock on a file, released by clip_unlock_file or when the
   process ends in any way (no stale locks after a crash). */
typedef struct clip_lock clip_lock;
int clip_lock_file(const char *path, clip_lock **lock, char *err);
void clip_unlock_file(clip_lock *lock);
int clip_is_terminal(FILE *f);
/* A monotonic clock in seconds (progress and rates). */
double clip_seconds(void);

/* The command line as UTF-8 (Windows passes it in the ANSI code page; the
   UTF-16 original is converted), with standard input and output in binary
   mode. Elsewhere nothing changes. For the CLI's main(). */
void clip_utf8_args(int argc, char **argv);

#endif
