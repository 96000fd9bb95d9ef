/* main.c - `clip selftest` on a bare-metal Cortex-M4 (the MPS2 AN386 board,
   emulated by QEMU; `make baremetal-selftest`).

   The library is built with -DCLIP_NO_MAIN -DCLIP_NO_MMAP
   -DCLIP_CUSTOM_ALLOC: no command line, no file mapping, and every
   allocation comes here, to an arena over the board's PSRAM (board.h).
   The self-check's data (the model, a JPEG, the reference values) comes
   decoded, from selftest_data.S, as read-only data in the code memory that
   stands for flash; the checks run on it there (clip_selftest_run), so
   the weights are used in place and the arena holds only what the library
   allocates: activations, tokenizer tables, the decoded image. Each
   stage's line goes to the host's console over semihosting, then the
   arena's peak, and the board stops with status 0 when every stage
   passed, 1 when one failed.

   ARENA_BYTES (default: all of the PSRAM) caps the arena, to show that a
   board with too little RAM gets the library's out-of-memory message and
   a clean failure, not a fault. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../clip.h"
#include "../selftest/selftest.h"
#include "board.h"

/* selftest_data.S: the decoded data, in flash */
extern const unsigned char selftest_flash_data[], selftest_flash_end[];

/* ------------------------------------------------------------------------
   The arena: first fit over a list of blocks laid end to end

   Each block starts with a header of its size (header included, a
   multiple of ALIGN) and whether it is in use. Blocks cover the arena
   from its start to `top`; above top nothing was ever handed out. Free
   neighbours are merged when the search passes over them and when a block
   is freed or grown, and a free block that reaches top gives its space
   back to it, so the high-water mark is the RAM the program really needs. */

#define ALIGN 8 /* doubles and floats; the Cortex-M4 needs no more */

typedef struct {
    uint32_t size; /* bytes, header included */
    uint32_t used;
} block;

#define HEADER ((uint32_t)sizeof(block))
#define MIN_SPLIT (HEADER + ALIGN) /* the least worth cutting off as a free block */

#ifdef ARENA_BYTES
static const size_t arena_cap = (size_t)ARENA_BYTES;
#else
static const size_t arena_cap = (size_t)-1;
#endif

static unsigned char *base, *top, *end;
static size_t live_bytes, peak_live, peak_top;
static long live_blocks, calls, bad_frees;

static void arena_init(void)
{
    size_t size;
    base = board_arena(&size);
    if (size > arena_cap) size = arena_cap;
    size -= size % ALIGN;
    top = base;
    end = base + size;
}

static block *next_of(block *b)
{
    return (block *)(void *)((unsigned char *)b + b->size);
}

/* Merges the free blocks that follow b into b. */
static void absorb_free(block *b)
{
    block *n = next_of(b);
    while ((unsigned char *)n < top && !n->used) {
        b->size += n->size;
        n = next_of(n);
    }
}

/* A free block that ends at top goes back to the untouched space, and so
   does a free block before it (found by a walk: headers have no back links). */
static void give_back(block *b)
{
    if ((unsigned char *)next_of(b) != top) return;
    top = (unsigned char *)b;
    for (b = (block *)(void *)base; (unsigned char *)b < top; b = next_of(b)) {
        if (b->used) continue;
        absorb_free(b);
        if ((unsigned char *)next_of(b) == top) {
            top = (unsigned char *)b;
            break;
        }
    }
}

/* Block size for n bytes of payload, or 0 when that cannot fit anywhere. */
static uint32_t need_for(size_t n)
{
    if (n == 0) n = 1; /* as malloc(0): a unique pointer */
    if (n > (size_t)(end - base)) return 0;
    return (uint32_t)(HEADER + (n + ALIGN - 1) / ALIGN * ALIGN);
}

/* Makes b a used block of exactly `need` bytes when the rest is worth a block of its own. */
static void split(block *b, uint32_t need)
{
    if (b->size - need >= MIN_SPLIT) {
        block *rest = (block *)(void *)((unsigned char *)b + need);
        rest->size = b->size - need;
        rest->used = 0;
        b->size = need;
        absorb_free(rest);
        give_back(rest);
    }
}

static void count_use(long blocks, long bytes)
{
    live_blocks += blocks;
    live_bytes += (size_t)bytes;
    if (live_bytes > peak_live) peak_live = live_bytes;
    if ((size_t)(top - base) > peak_top) peak_top = (size_t)(top - base);
}

void *clip_malloc(size_t n)
{
    uint32_t need = need_for(n);
    block *b;
    calls++;
    if (!need) return NULL;
    for (b = (block *)(void *)base; (unsigned char *)b < top; b = next_of(b)) {
        if (b->used) continue;
        absorb_free(b);
        if ((unsigned char *)next_of(b) == top) { /* the last block: merge it into top */
            top = (unsigned char *)b;
            break;
        }
        if (b->size >= need) {
            b->used = 1;
            split(b, need);
            count_use(1, (long)b->size);
            return b + 1;
        }
    }
    if ((size_t)(end - top) < need) return NULL;
    b = (block *)(void *)top;
    b->size = need;
    b->used = 1;
    top += need;
    count_use(1, (long)need);
    return b + 1;
}

/* The header of p, or NULL when p is not a block in use of this arena. */
static block *block_of(void *p)
{
    block *b = (block *)p - 1;
    if ((unsigned char *)b < base || (unsigned char *)b >= top || ((uintptr_t)p & (ALIGN - 1)) || !b->used) {
        bad_frees++;
        return NULL;
    }
    return b;
}

void clip_free(void *p)
{
    block *b;
    if (!p || !(b = block_of(p))) return;
    count_use(-1, -(long)b->size);
    b->used = 0;
    absorb_free(b);
    give_back(b);
}

void *clip_realloc(void *p, size_t n)
{
    uint32_t need = need_for(n), old;
    block *b;
    void *q;
    if (!p) return clip_malloc(n);
    calls++;
    if (!(b = block_of(p)) || !need) return NULL;
    old = b->size;
    if (b->size < need) absorb_free(b); /* grow in place over free neighbours */
    if (b->size < need && (unsigned char *)next_of(b) == top && (size_t)(end - top) >= need - b->size) {
        top += need - b->size; /* the last block grows into the untouched space */
        b->size = need;
    }
    if (b->size >= need) {
        split(b, need);
        count_use(0, (long)b->size - (long)old);
        return p;
    }
    /* elsewhere: the block keeps its (possibly merged) size until freed */
    count_use(0, (long)b->size - (long)old);
    q = clip_malloc(n);
    calls--;
    if (!q) return NULL;
    memcpy(q, p, b->size - HEADER < n ? b->size - HEADER : n);
    clip_free(p);
    return q;
}

/* ------------------------------------------------------------------------
   The arena's own check

   Random malloc, realloc and free over a few dozen blocks, each filled
   with its own pattern: a block that moved without its bytes, or two
   blocks that overlap, show as a wrong byte. A small arena may refuse a
   request (NULL, and realloc must then leave the old block as it was). At
   the end every block is freed and the arena must be empty again.
   Returns 0 or -1, with a report line. */

#define SLOTS 48
#define STEPS 3000

static uint32_t rng = 12345u;
static uint32_t rnd(uint32_t n)
{
    rng = rng * 1664525u + 1013904223u; /* Numerical Recipes' LCG: any sequence will do */
    return (rng >> 8) % n;
}

static void fill(unsigned char *p, size_t n, uint32_t seed)
{
    size_t k;
    for (k = 0; k < n; k++) p[k] = (unsigned char)(seed + k * 31u);
}

static int same(const unsigned char *p, size_t n, uint32_t seed)
{
    size_t k;
    for (k = 0; k < n; k++)
        if (p[k] != (unsigned char)(seed + k * 31u)) return 0;
    return 1;
}

static int arena_check(char *line)
{
    unsigned char *ptr[SLOTS] = {0}, *q;
    size_t size[SLOTS] = {0};
    uint32_t seed[SLOTS] = {0};
    int step, i, bad = -1, refused = 0;
    for (step = 0; step < STEPS && bad < 0; step++) {
        size_t n = rnd(8) ? rnd(3000) : rnd(70000); /* mostly small, now and then large */
        i = (int)rnd(SLOTS);
        if (ptr[i] && !same(ptr[i], size[i], seed[i])) {
            bad = step;
        } else if (ptr[i] && rnd(2)) {
            clip_free(ptr[i]);
            ptr[i] = NULL;
        } else {
            q = ptr[i] ? (unsigned char *)clip_realloc(ptr[i], n) : (unsigned char *)clip_malloc(n);
            if (!q) {
                refused++;
                continue;
            }
            if (ptr[i] && !same(q, size[i] < n ? size[i] : n, seed[i])) bad = step;
            ptr[i] = q;
            size[i] = n;
            seed[i] = (uint32_t)step;
            fill(q, n, seed[i]);
        }
    }
    for (i = 0; i < SLOTS; i++) {
        if (ptr[i] && !same(ptr[i], size[i], seed[i]) && bad < 0) bad = STEPS;
        clip_free(ptr[i]);
    }
    if (bad >= 0 || top != base || live_blocks || bad_frees) {
        sprintf(line, "FAIL arena: %s (step %d of %d, %ld blocks left, %ld bad frees)\n",
                bad >= 0 ? "a block's bytes changed" : "not empty after freeing every block", bad, STEPS,
                live_blocks, bad_frees);
        return -1;
    }
    sprintf(line, "ok   arena: %d random malloc/realloc/free calls kept every block's bytes (%d refused: "
            "arena full), %lu bytes at most\n", STEPS, refused, (unsigned long)peak_top);
    peak_top = peak_live = 0; /* the self-check's numbers are its own */
    calls = 0;
    return 0;
}

/* ------------------------------------------------------------------------
   The self-check */

static void report(void *ctx, const char *line)
{
    (void)ctx;
    board_write(line);
    board_write("\n");
}

/* Says where the weights are; -1 unless they lie in the flash region. */
static int weights_in_flash(const unsigned char *data)
{
    char line[200];
    size_t flash_size, size;
    const unsigned char *flash = board_flash(&flash_size);
    const unsigned char *w = clip_selftest_weights(data, &size);
    uintptr_t lo = (uintptr_t)flash, hi = lo + flash_size - 1;
    int in = (uintptr_t)w >= lo && (uintptr_t)w + size - 1 <= hi;
    sprintf(line, "%sweights: %lu bytes at 0x%08lx-0x%08lx, %s the flash region 0x%08lx-0x%08lx%s\n",
            in ? "" : "FAIL ", (unsigned long)size, (unsigned long)(uintptr_t)w,
            (unsigned long)((uintptr_t)w + size - 1), in ? "in" : "outside", (unsigned long)lo, (unsigned long)hi,
            in ? ": used in place" : "");
    board_write(line);
    return in ? 0 : -1;
}

int main(void)
{
    char err[CLIP_ERR_SIZE], line[200];
    int rc;
    arena_init();
    sprintf(line, "clip selftest on bare metal (Cortex-M4, MPS2 AN386), arena of %lu bytes at 0x%08lx\n",
            (unsigned long)(end - base), (unsigned long)(uintptr_t)base);
    board_write(line);
    if (arena_check(line)) {
        board_write(line);
        return 1;
    }
    board_write(line);
    if (weights_in_flash(selftest_flash_data)) return 1;
    rc = clip_selftest_run(selftest_flash_data, (size_t)(selftest_flash_end - selftest_flash_data), report, NULL,
                           err);
    if (rc) {
        board_write("clip: selftest: ");
        board_write(err);
        board_write("\n");
    }
    sprintf(line, "arena: peak %lu bytes (high-water mark), %lu bytes live at most, %ld calls; stack: %lu bytes\n",
            (unsigned long)peak_top, (unsigned long)peak_live, calls, (unsigned long)board_stack_used());
    board_write(line);
    if (live_blocks || bad_frees) {
        sprintf(line, "FAIL arena: %ld blocks still allocated at the end, %ld frees of blocks not in use\n",
                live_blocks, bad_frees);
        board_write(line);
        return 1;
    }
    return rc ? 1 : 0;
}
