/* platform.h - everything of clip.c that touches the host: memory, error
   messages, files (UTF-8 names, whole-file reads, memory mapping) and the
   OpenMP switch. clip.c, tokenizer.c, image.c and the decoders include this
   and clip.h and nothing else of the project's; a port to a new machine
   starts here (platform.c).

   Internal to the library: not installed, not part of the stable API. */
#ifndef CLIP_PLATFORM_H
#define CLIP_PLATFORM_H

#include <stdarg.h>
#include <stddef.h>
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
void clip_file_close(clip_file *f);

/* The command line as UTF-8 (Windows passes it in the ANSI code page; the
   UTF-16 original is converted), with standard input and output in binary
   mode. Elsewhere nothing changes. For the CLI's main(). */
void clip_utf8_args(int argc, char **argv);

#endif
