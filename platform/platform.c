/* platform.c - the host-facing layer of clip.c (see platform.h): the
   allocation hook, the error formatter, UTF-8 file names, whole-file reads
   and memory mapping. The only file with #ifdefs for operating systems. */
#if !defined(_WIN32) && !defined(CLIP_NO_MMAP)
#define _POSIX_C_SOURCE 200112L /* mmap, fstat under -std=c99 */
#define _FILE_OFFSET_BITS 64    /* 32-bit hosts: see a file's true size, and refuse it clearly */
#endif
#include "platform.h"

#include <errno.h>
#include <stdint.h>
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
#include <fcntl.h>   /* _O_BINARY: stdin and stdout carry bytes, not text */
#include <io.h>
#include <shellapi.h>
#if !defined(CLIP_NO_MMAP)
#define CLIP_HAVE_WINMAP 1
#endif
#endif

/* ------------------------------------------------------------------------
   Memory */

#ifndef CLIP_CUSTOM_ALLOC
void *clip_malloc(size_t n)
{
    return malloc(n ? n : 1);
}

void *clip_realloc(void *p, size_t n)
{
    return realloc(p, n ? n : 1);
}

void clip_free(void *p)
{
    free(p);
}
#endif

void *clip_calloc(size_t count, size_t size)
{
    void *p;
    if (size && count > SIZE_MAX / size) return NULL;
    p = clip_malloc(count * size);
    if (p) memset(p, 0, count * size);
    return p;
}

/* ------------------------------------------------------------------------
   Errors */

int clip_verror(char *err, const char *fmt, va_list ap)
{
    if (err) vsnprintf(err, CLIP_ERR_SIZE, fmt, ap);
    return -1;
}

int clip_error(char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    clip_verror(err, fmt, ap);
    va_end(ap);
    return -1;
}

/* ------------------------------------------------------------------------
   File names: UTF-8 on every platform */

#ifdef _WIN32
/* A UTF-8 string as UTF-16 (clip_malloc'ed), or NULL when it is not valid
   UTF-8 or memory runs out. Windows' narrow file calls read the ANSI code
   page; the wide ones take every name. */
static wchar_t *widen(const char *s)
{
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
    wchar_t *w = n > 0 ? (wchar_t *)clip_malloc((size_t)n * sizeof(wchar_t)) : NULL;
    if (w && MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n) <= 0) {
        clip_free(w);
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
    clip_free(wpath);
    clip_free(wmode);
    return f;
#else
    return fopen(path, mode);
#endif
}

void clip_utf8_args(int argc, char **argv)
{
#ifdef _WIN32
    /* the UTF-16 command line, converted; the strings live as long as the process */
    int wargc, i;
    wchar_t **wargv = CommandLineToArgvW(GetCommandLineW(), &wargc);
    if (wargv && wargc == argc) {
        for (i = 0; i < argc; i++) {
            int n = WideCharToMultiByte(CP_UTF8, 0, wargv[i], -1, NULL, 0, NULL, NULL);
            char *u = n > 0 ? (char *)clip_malloc((size_t)n) : NULL;
            if (u && WideCharToMultiByte(CP_UTF8, 0, wargv[i], -1, u, n, NULL, NULL) > 0) argv[i] = u;
        }
    }
    _setmode(_fileno(stdin), _O_BINARY);
    _setmode(_fileno(stdout), _O_BINARY);
#else
    (void)argc;
    (void)argv;
#endif
}

/* ------------------------------------------------------------------------
   Whole files */

unsigned char *clip_read_stream(FILE *f, size_t *size, const char *name, char *err)
{
    unsigned char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        size_t got;
        if (len == cap) {
            unsigned char *nb;
            size_t ncap = cap ? cap * 2 : 1 << 16;
            if (ncap < cap) {
                clip_error(err, "clip: %s: too large for this platform's address space", name);
                break;
            }
            nb = (unsigned char *)clip_realloc(buf, ncap);
            if (!nb) {
                clip_error(err, "clip: %s: out of memory reading the file (%llu bytes so far)", name,
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
                clip_error(err, "clip: %s: read error", name);
                break;
            }
            *size = len;
            return buf;
        }
    }
    clip_free(buf);
    return NULL;
}

unsigned char *clip_read_file(const char *path, size_t *size, char *err)
{
    FILE *f = clip_fopen(path, "rb");
    unsigned char *buf;
    if (!f) {
        clip_error(err, "clip: %s: %s", path, strerror(errno));
        return NULL;
    }
    buf = clip_read_stream(f, size, path, err);
    fclose(f);
    return buf;
}

/* Map the file; 0 with f->data set, 1 when mapping is not possible here
   (the caller reads it instead), -1 on an error worth reporting. */
static int map_file(clip_file *f, const char *path, char *err)
{
#if defined(CLIP_HAVE_MMAP)
    int fd = open(path, O_RDONLY);
    struct stat st;
    void *p;
    if (fd < 0) return clip_error(err, "clip: %s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0) {
        clip_error(err, "clip: %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
        clip_error(err, "clip: %s: %llu bytes do not fit this platform's address space; use a 64-bit build", path,
                   (unsigned long long)st.st_size);
        close(fd);
        return -1;
    }
    p = st.st_size > 0 ? mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    close(fd);
    if (p == MAP_FAILED) return 1; /* empty, a pipe, an odd file system: read it */
    f->data = (const unsigned char *)p;
    f->size = (size_t)st.st_size;
    f->mapped = 1;
    return 0;
#elif defined(CLIP_HAVE_WINMAP)
    /* any failure falls through to reading, which reports it */
    wchar_t *wpath = widen(path);
    HANDLE fh = wpath ? CreateFileW(wpath, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL,
                                    NULL)
                      : INVALID_HANDLE_VALUE;
    LARGE_INTEGER size;
    int rc = 1;
    (void)err;
    clip_free(wpath);
    if (fh == INVALID_HANDLE_VALUE) return 1;
    if (GetFileSizeEx(fh, &size) && size.QuadPart > 0 &&
        (unsigned long long)size.QuadPart <= (unsigned long long)SIZE_MAX) {
        HANDLE mh = CreateFileMappingW(fh, NULL, PAGE_READONLY, 0, 0, NULL);
        if (mh) {
            void *p = MapViewOfFile(mh, FILE_MAP_READ, 0, 0, 0);
            CloseHandle(mh); /* the view keeps the mapping */
            if (p) {
                f->data = (const unsigned char *)p;
                f->size = (size_t)size.QuadPart;
                f->mapped = 1;
                rc = 0;
            }
        }
    }
    CloseHandle(fh);
    return rc;
#else
    (void)f;
    (void)path;
    (void)err;
    return 1;
#endif
}

int clip_file_open(clip_file *f, const char *path, char *err)
{
    int rc;
    f->data = NULL;
    f->size = 0;
    f->mapped = 0;
    rc = map_file(f, path, err);
    if (rc <= 0) return rc;
    f->data = clip_read_file(path, &f->size, err);
    return f->data ? 0 : -1;
}

void clip_file_close(clip_file *f)
{
    if (!f->data) return;
#if defined(CLIP_HAVE_MMAP)
    if (f->mapped) munmap((void *)(uintptr_t)f->data, f->size);
#elif defined(CLIP_HAVE_WINMAP)
    if (f->mapped) UnmapViewOfFile(f->data);
#endif
    if (!f->mapped) clip_free((void *)(uintptr_t)f->data);
    f->data = NULL;
    f->size = 0;
}
