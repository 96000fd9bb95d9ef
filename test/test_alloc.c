/* The allocation hook, used the way an embedded port uses it: this program
   is built with -DCLIP_CUSTOM_ALLOC and defines clip_malloc, clip_realloc
   and clip_free over a fixed arena of its own (no heap at all), then runs
   the self-check. It passes when the self-check passes, every block is
   freed at the end, and the arena was big enough; it prints the peak. */
#include <stdio.h>
#include <string.h>

#include "clip.h"

#define ARENA_SIZE (64u << 20)
#define ALIGN 64 /* the weights and activations want float alignment; 64 keeps vectors happy */

/* A bump allocator with a size word before each block. free() of the last
   block gives its space back, so the usual allocate-use-free patterns stay
   small; other frees only count. */
static unsigned char arena[ARENA_SIZE];
static size_t top, peak;
static long live, calls;

static size_t block_size(const void *p)
{
    size_t n;
    memcpy(&n, (const unsigned char *)p - ALIGN, sizeof n);
    return n;
}

void *clip_malloc(size_t n)
{
    size_t need = ALIGN + (n + ALIGN - 1) / ALIGN * ALIGN;
    unsigned char *p;
    calls++;
    if (n > ARENA_SIZE || need > ARENA_SIZE - top) return NULL;
    p = arena + top + ALIGN;
    memcpy(p - ALIGN, &n, sizeof n);
    top += need;
    if (top > peak) peak = top;
    live++;
    return p;
}

void clip_free(void *p)
{
    if (!p) return;
    live--;
    if ((unsigned char *)p + (block_size(p) + ALIGN - 1) / ALIGN * ALIGN == arena + top)
        top = (size_t)((unsigned char *)p - ALIGN - arena);
}

void *clip_realloc(void *p, size_t n)
{
    void *q;
    if (!p) return clip_malloc(n);
    q = clip_malloc(n);
    if (!q) return NULL;
    memcpy(q, p, block_size(p) < n ? block_size(p) : n);
    clip_free(p);
    return q;
}

static void print_line(void *ctx, const char *line)
{
    (void)ctx;
    printf("  %s\n", line);
}

int main(void)
{
    char err[CLIP_ERR_SIZE];
    int rc = clip_selftest(print_line, NULL, err), failed = 0;
    if (rc) {
        printf("FAIL self-check through the arena allocator: %s\n", err);
        failed = 1;
    } else {
        printf("ok   self-check through the arena allocator (%ld allocations, peak %.1f KiB of %u MiB)\n", calls,
               peak / 1024.0, ARENA_SIZE >> 20);
    }
    if (calls == 0) {
        printf("FAIL the library never called the hook\n");
        failed = 1;
    }
    if (live != 0) {
        printf("FAIL %ld blocks still allocated at the end (a leak, or a block freed outside the hook)\n", live);
        failed = 1;
    } else {
        printf("ok   every block allocated through the hook was freed through it\n");
    }
    return failed;
}
