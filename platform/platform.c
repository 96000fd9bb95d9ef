/* platform.c - the host-facing layer of clip.c (see platform.h): the
   allocation hook, the error formatter, UTF-8 file names, whole-file reads,
   memory mapping, and what clip index needs (folders, file times, durable
   writes, renames, locks). The only file with #ifdefs for operating systems. */
#if !defined(_WIN32) && (!defined(CLIP_NO_MMAP) || defined(__unix__) || defined(__APPLE__))
#define _POSIX_C_SOURCE 200809L /* mmap, stat's nanosecond times, fsync, directories under -std=c99 */
#define _FILE_OFFSET_BITS 64    /* 32-bit hosts: see a file's true size, and refuse it clearly */
#endif
#include "platform.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if !defined(_WIN32) && !defined(CLIP_NO_MMAP)
#define CLIP_HAVE_MMAP 1
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif
#if !defined(_WIN32) && (defined(__unix__) || defined(__APPLE__))
#define CLIP_HAVE_POSIX_FS 1 /* directories, stat, fsync, rename, locks */
#include <dirent.h>
#include <fcntl.h>
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

void clip_file_prefetch(const char *path)
{
#if defined(CLIP_HAVE_POSIX_FS) && defined(POSIX_FADV_WILLNEED)
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
        close(fd);
    }
#else
    (void)path;
#endif
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

int clip_file_read(clip_file *f, const char *path, char *err)
{
    f->mapped = 0;
    f->size = 0;
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

/* ------------------------------------------------------------------------
   Directories and durable files (clip index). POSIX and Windows; elsewhere
   (bare metal) each call says that the platform has no file system API. */

#define NO_FS_API "this platform has no directory API (clip.c was built without POSIX or Windows)"

#ifdef _WIN32
/* UTF-16 -> UTF-8 (clip_malloc'ed) */
static char *narrow(const wchar_t *w)
{
    int n = WideCharToMultiByte(CP_UTF8, 0, w, -1, NULL, 0, NULL, NULL);
    char *s = n > 0 ? (char *)clip_malloc((size_t)n) : NULL;
    if (s && WideCharToMultiByte(CP_UTF8, 0, w, -1, s, n, NULL, NULL) <= 0) {
        clip_free(s);
        s = NULL;
    }
    return s;
}

static int win_error(char *err, const char *path)
{
    char msg[160];
    DWORD code = GetLastError(), n;
    n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, code, 0, msg, sizeof msg, NULL);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r' || msg[n - 1] == '.')) msg[--n] = 0;
    if (n == 0) snprintf(msg, sizeof msg, "Windows error %lu", (unsigned long)code);
    return clip_error(err, "%s: %s", path, msg);
}
#endif

int clip_path_stat(const char *path, clip_path_info *info, char *err)
{
    memset(info, 0, sizeof *info);
#if defined(CLIP_HAVE_POSIX_FS)
    {
        struct stat st;
        if (stat(path, &st) != 0) {
            int gone = errno == ENOENT || errno == ENOTDIR;
            clip_error(err, "%s: %s", path, strerror(errno));
            return gone ? 1 : -1;
        }
        info->kind = S_ISREG(st.st_mode) ? CLIP_PATH_FILE : S_ISDIR(st.st_mode) ? CLIP_PATH_DIR : CLIP_PATH_OTHER;
        info->size = (uint64_t)st.st_size;
#ifdef __APPLE__
        info->mtime_ns = (int64_t)st.st_mtimespec.tv_sec * 1000000000 + st.st_mtimespec.tv_nsec;
#else
        info->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
#endif
        info->dev = (uint64_t)st.st_dev;
        info->ino = (uint64_t)st.st_ino;
        return 0;
    }
#elif defined(_WIN32)
    {
        wchar_t *w = widen(path);
        WIN32_FILE_ATTRIBUTE_DATA a;
        BOOL ok = w && GetFileAttributesExW(w, GetFileExInfoStandard, &a);
        clip_free(w);
        if (!ok) {
            DWORD code = GetLastError();
            win_error(err, path);
            return code == ERROR_FILE_NOT_FOUND || code == ERROR_PATH_NOT_FOUND ? 1 : -1;
        }
        info->kind = (a.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) ? CLIP_PATH_DIR : CLIP_PATH_FILE;
        info->size = (uint64_t)a.nFileSizeHigh << 32 | a.nFileSizeLow;
        /* 100 ns ticks since 1601 -> ns since 1970 */
        info->mtime_ns = ((int64_t)((uint64_t)a.ftLastWriteTime.dwHighDateTime << 32 | a.ftLastWriteTime.dwLowDateTime) -
                          116444736000000000LL) * 100;
        return 0;
    }
#else
    (void)path;
    return clip_error(err, NO_FS_API);
#endif
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Append a copy of name to the growing list; 0, or -1 out of memory. */
static int push_name(char ***names, size_t *n, size_t *cap, const char *name, size_t len)
{
    char *copy;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        char **nn = nc > SIZE_MAX / sizeof(char *) ? NULL : (char **)clip_realloc(*names, nc * sizeof(char *));
        if (!nn) return -1;
        *names = nn;
        *cap = nc;
    }
    copy = (char *)clip_malloc(len + 1);
    if (!copy) return -1;
    memcpy(copy, name, len);
    copy[len] = 0;
    (*names)[(*n)++] = copy;
    return 0;
}

int clip_list_dir(const char *path, char ***names, size_t *count, char *err)
{
    size_t n = 0, cap = 0, i;
    char **list = NULL;
    int rc = 0;
    *names = NULL;
    *count = 0;
#if defined(CLIP_HAVE_POSIX_FS)
    {
        DIR *d = opendir(path);
        struct dirent *e;
        if (!d) return clip_error(err, "%s: %s", path, strerror(errno));
        for (;;) {
            errno = 0;
            e = readdir(d);
            if (!e) {
                if (errno) rc = clip_error(err, "%s: %s", path, strerror(errno));
                break;
            }
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            if (push_name(&list, &n, &cap, e->d_name, strlen(e->d_name))) {
                rc = clip_error(err, "%s: out of memory listing the directory", path);
                break;
            }
        }
        closedir(d);
    }
#elif defined(_WIN32)
    {
        size_t len = strlen(path);
        char *pattern = (char *)clip_malloc(len + 3);
        wchar_t *w = NULL;
        WIN32_FIND_DATAW fd;
        HANDLE h = INVALID_HANDLE_VALUE;
        if (pattern) {
            memcpy(pattern, path, len);
            strcpy(pattern + len, len && (path[len - 1] == '/' || path[len - 1] == '\\') ? "*" : "/*");
            w = widen(pattern);
        }
        if (w) h = FindFirstFileW(w, &fd);
        clip_free(pattern);
        clip_free(w);
        if (h == INVALID_HANDLE_VALUE) return win_error(err, path);
        do {
            char *u;
            if (!wcscmp(fd.cFileName, L".") || !wcscmp(fd.cFileName, L"..")) continue;
            u = narrow(fd.cFileName);
            if (!u || push_name(&list, &n, &cap, u, strlen(u))) {
                clip_free(u);
                rc = clip_error(err, "%s: out of memory listing the directory", path);
                break;
            }
            clip_free(u);
        } while (FindNextFileW(h, &fd));
        FindClose(h);
    }
#else
    (void)path;
    (void)cap;
    (void)push_name;
    rc = clip_error(err, NO_FS_API);
#endif
    if (rc) {
        for (i = 0; i < n; i++) clip_free(list[i]);
        clip_free(list);
        return -1;
    }
    if (n > 1) qsort(list, n, sizeof(char *), by_name);
    *names = list;
    *count = n;
    return 0;
}

int clip_make_dir(const char *path, char *err)
{
    clip_path_info info;
#if defined(CLIP_HAVE_POSIX_FS)
    if (mkdir(path, 0777) == 0) return 0;
    if (errno != EEXIST) return clip_error(err, "%s: cannot create the folder: %s", path, strerror(errno));
#elif defined(_WIN32)
    wchar_t *w = widen(path);
    BOOL ok = w && CreateDirectoryW(w, NULL);
    DWORD code = GetLastError();
    clip_free(w);
    if (ok) return 0;
    if (code != ERROR_ALREADY_EXISTS) return win_error(err, path);
#else
    (void)path;
    return clip_error(err, NO_FS_API);
#endif
    if (clip_path_stat(path, &info, err) != 0) return -1;
    if (info.kind != CLIP_PATH_DIR) return clip_error(err, "%s exists and is not a folder", path);
    return 0;
}

int clip_replace_file(const char *from, const char *to, char *err)
{
#if defined(CLIP_HAVE_POSIX_FS)
    if (rename(from, to) != 0) return clip_error(err, "cannot rename %s to %s: %s", from, to, strerror(errno));
    return 0;
#elif defined(_WIN32)
    wchar_t *wf = widen(from), *wt = widen(to);
    BOOL ok = wf && wt && MoveFileExW(wf, wt, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH);
    clip_free(wf);
    clip_free(wt);
    return ok ? 0 : win_error(err, to);
#else
    (void)from;
    (void)to;
    return clip_error(err, NO_FS_API);
#endif
}

int clip_remove_file(const char *path)
{
#ifdef _WIN32
    wchar_t *w = widen(path);
    BOOL ok = w && DeleteFileW(w);
    clip_free(w);
    return ok ? 0 : -1;
#else
    return remove(path);
#endif
}

int clip_sync_file(FILE *f, const char *name, char *err)
{
    if (fflush(f) != 0 || ferror(f)) return clip_error(err, "%s: write error: %s", name, strerror(errno));
#if defined(CLIP_HAVE_POSIX_FS)
    if (fsync(fileno(f)) != 0 && errno != EINVAL) return clip_error(err, "%s: fsync: %s", name, strerror(errno));
#elif defined(_WIN32)
    if (_commit(_fileno(f)) != 0) return clip_error(err, "%s: cannot flush to disk", name);
#endif
    return 0;
}

void clip_sync_dir(const char *path)
{
#if defined(CLIP_HAVE_POSIX_FS)
    /* makes renames inside the folder durable; not every file system allows it */
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
#else
    (void)path; /* Windows: MOVEFILE_WRITE_THROUGH did it */
#endif
}

struct clip_lock {
#if defined(CLIP_HAVE_POSIX_FS)
    int fd;
#elif defined(_WIN32)
    HANDLE h;
#endif
    int unused;
};

/* The lock is a file held open (POSIX: a write lock on it; Windows: opened
   unshared); the system drops it when the process ends, however it ends. */
int clip_lock_file(const char *path, clip_lock **out, char *err)
{
    clip_lock *l = (clip_lock *)clip_calloc(1, sizeof(clip_lock));
    *out = NULL;
    if (!l) return clip_error(err, "out of memory");
#if defined(CLIP_HAVE_POSIX_FS)
    {
        struct flock fl;
        l->fd = open(path, O_RDWR | O_CREAT, 0666);
        if (l->fd < 0) {
            clip_error(err, "%s: %s", path, strerror(errno));
            clip_free(l);
            return -1;
        }
        memset(&fl, 0, sizeof fl);
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        if (fcntl(l->fd, F_SETLK, &fl) != 0) {
            int busy = errno == EACCES || errno == EAGAIN;
            clip_error(err, busy ? "%s is locked: another clip is writing this index" : "%s: cannot lock: %s", path,
                       strerror(errno));
            close(l->fd);
            clip_free(l);
            return -1;
        }
    }
#elif defined(_WIN32)
    {
        wchar_t *w = widen(path);
        l->h = w ? CreateFileW(w, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL)
                 : INVALID_HANDLE_VALUE;
        clip_free(w);
        if (l->h == INVALID_HANDLE_VALUE) {
            clip_error(err, "%s is locked or cannot be opened: another clip may be writing this index", path);
            clip_free(l);
            return -1;
        }
    }
#else
    (void)path;
    clip_free(l);
    return clip_error(err, NO_FS_API);
#endif
    *out = l;
    return 0;
}

void clip_unlock_file(clip_lock *l)
{
    if (!l) return;
#if defined(CLIP_HAVE_POSIX_FS)
    close(l->fd);
#elif defined(_WIN32)
    CloseHandle(l->h);
#endif
    clip_free(l);
}

int clip_is_terminal(FILE *f)
{
#if defined(CLIP_HAVE_POSIX_FS)
    return isatty(fileno(f));
#elif defined(_WIN32)
    return _isatty(_fileno(f));
#else
    (void)f;
    return 0;
#endif
}

double clip_seconds(void)
{
#if defined(CLIP_HAVE_POSIX_FS)
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0) return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
#elif defined(_WIN32)
    LARGE_INTEGER c, f;
    if (QueryPerformanceCounter(&c) && QueryPerformanceFrequency(&f)) return (double)c.QuadPart / (double)f.QuadPart;
#endif
    return (double)clock() / CLOCKS_PER_SEC;
}
