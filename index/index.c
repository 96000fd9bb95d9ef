/* index.c - an index of a collection of images (see index.h, and README.md
   "Collections" for the folder's format). Reads top to bottom as:
   the update (walk, compare, embed, save), search, merge; then the
   machinery: the folder's files (.npy, the tables, index.json), the journal
   that keeps an interrupted run's work, and the crash-safe save.

   Crash safety, in short. The four files of an index are only ever
   replaced whole: each is written under a ".new" name and flushed, then a
   "commit" marker is created (the moment the new index exists), the files
   are renamed into place and the marker removed. Whoever opens the folder
   next finishes an interrupted rename (the marker says to) or drops stray
   ".new" files (no marker: the old index stands). Images embedded during a
   run go to journal.bin as they finish, one checksummed record each; a
   killed run leaves them there, and the next run saves them first. */
#include "index.h"

#include "../platform/platform.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The folder's files. */
static const char *const F_EMB = "embeddings.npy", *const F_FILES = "files.tsv", *const F_FAILED = "failed.tsv",
                         *const F_META = "index.json", *const F_JOURNAL = "journal.bin", *const F_COMMIT = "commit",
                         *const F_LOCK = "lock";

#define IMAGES_PER_BATCH 16 /* decoded in parallel, then encoded together */
#define MAX_DEPTH 256       /* folders deeper than this are a loop the system could not tell us about */

/* One file of the index: a row of files.tsv (with its vector) or of failed.tsv. */
typedef struct {
    char *path;       /* as given or found (owned) */
    uint64_t size;    /* bytes, when it was indexed */
    int64_t mtime;    /* modification time, ns since 1970 */
    char *reason;     /* failed files: why (owned); NULL for rows */
    const unsigned char *vec; /* rows: dim little-endian float32, in a mapping (old index or journal) */
    size_t jrec;      /* rows embedded by this run: offset of the vector in the journal, else 0 */
    int drop;         /* 1: not carried into the next save */
} entry;

typedef struct {
    entry *v;
    size_t n, cap;
} entry_list;

/* An index folder in memory: what update, merge and search share. */
struct clip_index {
    char *dir;
    uint64_t fingerprint;  /* of the model that built it (clip_model_fingerprint) */
    int dim;               /* projection_dim: floats per row */
    char *model_name;      /* the weights file's name, for messages */
    char *shard;           /* "K/N" for a shard, else NULL */
    uint64_t model_size;   /* the weights file's size and time when it was hashed (0: unknown): */
    int64_t model_mtime;   /* a file that still has them need not be hashed again */
    entry_list rows;       /* embedded files, sorted by path; rows.v[i] is embeddings row i (not when lazy) */
    entry_list failed;     /* files that could not be read, sorted by path (not when lazy) */
    clip_file npy;         /* embeddings.npy, mapped */
    size_t n_rows;         /* rows of embeddings.npy */
    const unsigned char *emb; /* its row 0: n_rows x dim little-endian float32 */
    clip_file journal_map; /* journal.bin while saving */
    /* opened for searching (lazy): files.tsv is mapped and checked line by
       line, and a row's path is decoded when it is asked for */
    int lazy;
    clip_file table;       /* files.tsv */
    size_t *line;          /* where each row's line starts in it */
    char **path_cache;     /* decoded paths, NULL until asked for */
};

/* ------------------------------------------------------------------------
   Small helpers */

static char *dup_str(const char *s, size_t n)
{
    char *p = (char *)clip_malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

/* dir + "/" + name (clip_malloc'ed) */
static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    int slash = a > 0 && dir[a - 1] != '/'
#ifdef _WIN32
                && dir[a - 1] != '\\'
#endif
        ;
    char *p = a + b + 2 > a ? (char *)clip_malloc(a + b + 2) : NULL;
    if (!p) return NULL;
    memcpy(p, dir, a);
    if (slash) p[a++] = '/';
    memcpy(p + a, name, b + 1);
    return p;
}

static int host_little_endian(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static float get_f32(const unsigned char *p)
{
    uint32_t u = get32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* FNV-1a, 64-bit: shards, journal checksums. Stable on every platform. */
static uint64_t fnv64(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    size_t i;
    for (i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

int clip_index_shard_of(const char *path, int n)
{
    return (int)(fnv64((const unsigned char *)path, strlen(path)) % (uint64_t)n) + 1;
}

static int list_push(entry_list *l, const entry *e)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 256;
        entry *nv = nc > SIZE_MAX / sizeof(entry) ? NULL : (entry *)clip_realloc(l->v, nc * sizeof(entry));
        if (!nv) return -1;
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = *e;
    return 0;
}

static void list_free(entry_list *l)
{
    size_t i;
    for (i = 0; i < l->n; i++) {
        clip_free(l->v[i].path);
        clip_free(l->v[i].reason);
    }
    clip_free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->path, ((const entry *)b)->path);
}

/* The entry with this path in a sorted list, or NULL. */
static entry *find(const entry_list *l, const char *path)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(l->v[mid].path, path);
        if (c == 0) return &l->v[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void sort_entries(entry_list *l, int (*cmp)(const void *, const void *))
{
    if (l->n > 1) qsort(l->v, l->n, sizeof(entry), cmp);
}

/* path order, then jrec (an order number while merging) */
static int by_path_then_order(const void *a, const void *b)
{
    const entry *x = (const entry *)a, *y = (const entry *)b;
    int c = strcmp(x->path, y->path);
    return c ? c : (x->jrec > y->jrec) - (x->jrec < y->jrec);
}

/* In lists sorted by path_then_order: of the entries of one path not yet
   dropped, across both lists, keep the one with the highest jrec. */
static void drop_repeats(entry_list *rows, entry_list *failed)
{
    entry_list *l[2];
    size_t k, i;
    l[0] = rows;
    l[1] = failed;
    for (k = 0; k < 2; k++)
        for (i = 0; i < l[k]->n; i++) {
            entry *e = &l[k]->v[i], *o;
            size_t j;
            if (e->drop) continue;
            for (j = i + 1; j < l[k]->n && !strcmp(l[k]->v[j].path, e->path); j++)
                if (!l[k]->v[j].drop) e->drop = 1; /* a later one of the same path */
            o = e->drop ? NULL : find(l[1 - k], e->path);
            if (o) { /* the same path in the other list: the later record wins */
                size_t a = (size_t)(o - l[1 - k]->v), b;
                for (b = a; b > 0 && !strcmp(l[1 - k]->v[b - 1].path, e->path); b--) {}
                for (; b < l[1 - k]->n && !strcmp(l[1 - k]->v[b].path, e->path); b++)
                    if (!l[1 - k]->v[b].drop && l[1 - k]->v[b].jrec > e->jrec) e->drop = 1;
            }
        }
    for (k = 0; k < 2; k++)
        for (i = 0; i < l[k]->n; i++) l[k]->v[i].jrec = 0;
}

/* Mark every entry with this path in a sorted list as dropped. */
static void drop_path(entry_list *l, const char *path)
{
    entry *e = find(l, path);
    size_t at, i;
    if (!e) return;
    at = (size_t)(e - l->v);
    for (i = at; i > 0 && !strcmp(l->v[i - 1].path, path); i--) l->v[i - 1].drop = 1;
    for (i = at; i < l->n && !strcmp(l->v[i].path, path); i++) l->v[i].drop = 1;
}

/* A library message without its "clip: PATH: " lead, for failed.tsv. */
static const char *bare_reason(const char *msg, const char *path)
{
    size_t n = strlen(path);
    if (!strncmp(msg, "clip: ", 6)) msg += 6;
    if (!strncmp(msg, path, n) && msg[n] == ':' && msg[n + 1] == ' ') msg += n + 2;
    return msg;
}

/* ------------------------------------------------------------------------
   Walking the paths: every file under them, in a deterministic order */

typedef struct {
    uint64_t dev, ino;
} dir_id;

typedef struct {
    entry_list found;       /* files (reason NULL) and paths that could not be read (reason set) */
    dir_id *seen;           /* open-addressing set of the folders walked; ino 0 = empty slot */
    size_t seen_n, seen_cap;
    uint64_t skip_dev, skip_ino; /* the index folder itself */
    size_t loops;
} walk_state;

static size_t dir_slot(const dir_id *set, size_t cap, dir_id id)
{
    size_t i = (size_t)((id.dev * 0x9E3779B97F4A7C15ull ^ id.ino) * 0xC2B2AE3D27D4EB4Full >> 17) % cap;
    while (set[i].ino && (set[i].dev != id.dev || set[i].ino != id.ino)) i = (i + 1) % cap;
    return i;
}

/* 1 if the folder was seen already, else records it and returns 0; -1 out of memory. */
static int seen_before(walk_state *w, const clip_path_info *st)
{
    dir_id id;
    size_t i;
    id.dev = st->dev;
    id.ino = st->ino;
    if (st->ino == 0) return 0; /* no identities on this system: MAX_DEPTH bounds loops */
    if (2 * (w->seen_n + 1) > w->seen_cap) {
        size_t nc = w->seen_cap ? w->seen_cap * 2 : 1024, k;
        dir_id *ns = (dir_id *)clip_calloc(nc, sizeof(dir_id));
        if (!ns) return -1;
        for (k = 0; k < w->seen_cap; k++)
            if (w->seen[k].ino) ns[dir_slot(ns, nc, w->seen[k])] = w->seen[k];
        clip_free(w->seen);
        w->seen = ns;
        w->seen_cap = nc;
    }
    i = dir_slot(w->seen, w->seen_cap, id);
    if (w->seen[i].ino) return 1;
    w->seen[i] = id;
    w->seen_n++;
    return 0;
}

static int add_found(walk_state *w, const char *path, const clip_path_info *st, const char *reason)
{
    entry e;
    memset(&e, 0, sizeof e);
    e.path = dup_str(path, strlen(path));
    if (st) {
        e.size = st->size;
        e.mtime = st->mtime_ns;
    }
    e.reason = reason ? dup_str(reason, strlen(reason)) : NULL;
    if (!e.path || (reason && !e.reason) || list_push(&w->found, &e)) {
        clip_free(e.path);
        clip_free(e.reason);
        return -1;
    }
    return 0;
}

/* Walk one path: a file is taken, a folder is walked (names starting with
   "." skipped, symbolic links followed, each folder once). Unreadable
   things become failed entries; only running out of memory is an error. */
static int walk(walk_state *w, const char *path, int depth, char *err)
{
    char msg[CLIP_ERR_SIZE];
    clip_path_info st;
    char **names;
    size_t n, i;
    int rc = 0;
    if (clip_path_stat(path, &st, msg)) {
        if (add_found(w, path, NULL, bare_reason(msg, path))) return clip_error(err, "clip index: out of memory");
        return 0;
    }
    if (st.kind == CLIP_PATH_FILE) {
        if (add_found(w, path, &st, NULL)) return clip_error(err, "clip index: out of memory");
        return 0;
    }
    if (st.kind != CLIP_PATH_DIR) {
        if (add_found(w, path, &st, "not a regular file")) return clip_error(err, "clip index: out of memory");
        return 0;
    }
    if (st.ino && st.dev == w->skip_dev && st.ino == w->skip_ino) return 0; /* the index itself */
    switch (depth >= MAX_DEPTH ? 1 : seen_before(w, &st)) {
    case 1:
        w->loops++;
        return 0;
    case -1:
        return clip_error(err, "clip index: out of memory");
    }
    if (clip_list_dir(path, &names, &n, msg)) {
        if (add_found(w, path, &st, bare_reason(msg, path))) return clip_error(err, "clip index: out of memory");
        return 0;
    }
    for (i = 0; i < n; i++) {
        char *child;
        if (rc || names[i][0] == '.') {
            clip_free(names[i]);
            continue;
        }
        child = join(path, names[i]);
        rc = child ? walk(w, child, depth + 1, err) : clip_error(err, "clip index: out of memory");
        clip_free(child);
        clip_free(names[i]);
    }
    clip_free(names);
    return rc;
}

/* ------------------------------------------------------------------------
   Reading an index folder */

static void index_free(clip_index *ix)
{
    size_t i;
    if (!ix) return;
    list_free(&ix->rows);
    list_free(&ix->failed);
    if (ix->path_cache)
        for (i = 0; i < ix->n_rows; i++) clip_free(ix->path_cache[i]);
    clip_free(ix->path_cache);
    clip_free(ix->line);
    clip_file_close(&ix->table);
    clip_file_close(&ix->npy);
    clip_file_close(&ix->journal_map);
    clip_free(ix->dir);
    clip_free(ix->model_name);
    clip_free(ix->shard);
    clip_free(ix);
}

void clip_index_close(clip_index *ix)
{
    index_free(ix);
}

static int npy_parse(const unsigned char *d, size_t size, size_t *rows, size_t *cols, size_t *offset,
                     const char *name, char *err);
static int read_meta(clip_index *ix, const char *path, char *err);
static int read_table(entry_list *l, const char *path, int with_reason, char *err);
static int scan_table(clip_index *ix, const char *path, char *err);

/* The file a reader should use: name, or name.new when an interrupted save
   left a commit marker and the new file (the newer index wins). */
static char *current_file(const char *dir, const char *name, int committing)
{
    char *p = join(dir, name), *pn;
    clip_path_info st;
    char msg[CLIP_ERR_SIZE];
    size_t n;
    if (!p || !committing) return p;
    n = strlen(p);
    pn = (char *)clip_malloc(n + 5);
    if (!pn) {
        clip_free(p);
        return NULL;
    }
    memcpy(pn, p, n);
    memcpy(pn + n, ".new", 5);
    if (clip_path_stat(pn, &st, msg) == 0) {
        clip_free(p);
        return pn;
    }
    clip_free(pn);
    return p;
}

static int exists(const char *path)
{
    clip_path_info st;
    char msg[CLIP_ERR_SIZE];
    return clip_path_stat(path, &st, msg) == 0;
}

/* Read the index in dir (ix->lazy: only what a search needs). Returns 1
   when dir holds no index (no index.json). */
static int index_read(clip_index *ix, const char *dir, char *err)
{
    char *commit = join(dir, F_COMMIT), *meta, *files, *failed, *emb;
    int committing = commit && exists(commit), rc = -1;
    size_t rows = 0, cols = 0, off = 0, i;
    clip_free(commit);
    meta = current_file(dir, F_META, committing);
    files = current_file(dir, F_FILES, committing);
    failed = current_file(dir, F_FAILED, committing);
    emb = current_file(dir, F_EMB, committing);
    if (!meta || !files || !failed || !emb) {
        clip_error(err, "clip index: out of memory");
        goto done;
    }
    if (!exists(meta)) {
        rc = 1;
        goto done;
    }
    if (read_meta(ix, meta, err)) goto done;
    if (ix->lazy ? scan_table(ix, files, err)
                 : read_table(&ix->rows, files, 0, err) || read_table(&ix->failed, failed, 1, err))
        goto done;
    if (!ix->lazy) ix->n_rows = ix->rows.n;
    if (clip_file_open(&ix->npy, emb, err)) goto done;
    if (npy_parse(ix->npy.data, ix->npy.size, &rows, &cols, &off, emb, err)) goto done;
    if (cols != (size_t)ix->dim || rows != ix->n_rows) {
        clip_error(err, "clip index: %s holds (%llu, %llu) floats, but %s lists %llu files of dimension %d: the index "
                        "is damaged; index into a new folder",
                   emb, (unsigned long long)rows, (unsigned long long)cols, files, (unsigned long long)ix->n_rows,
                   ix->dim);
        goto done;
    }
    ix->emb = ix->npy.data + off;
    for (i = 0; i < ix->rows.n; i++) ix->rows.v[i].vec = ix->emb + i * cols * 4;
    rc = 0;
done:
    clip_free(meta);
    clip_free(files);
    clip_free(failed);
    clip_free(emb);
    return rc;
}

static int recover(const char *dir, char *err);

/* An index folder as a clip_index, its files mapped lazily (search) or read
   whole. A writer (which holds the folder's lock) first rolls a half-saved
   state forward or back, and may find no index there yet: it gets an empty
   one and 1. A reader is refused where there is no index. 0 when an index
   was read; -1 on errors (*out stays NULL). */
static int open_index(const char *dir, int lazy, int writer, clip_index **out, char *err)
{
    clip_index *ix = (clip_index *)clip_calloc(1, sizeof(clip_index));
    int rc;
    *out = NULL;
    if (!ix || !(ix->dir = dup_str(dir, strlen(dir)))) {
        index_free(ix);
        return clip_error(err, "clip index: out of memory");
    }
    ix->lazy = lazy;
    rc = writer && recover(dir, err) ? -1 : index_read(ix, dir, err);
    if (rc == 1 && !writer)
        rc = clip_error(err, "clip: %s is not an index (no %s); make one with clip index MODEL %s PATH...", dir, F_META,
                        dir);
    if (rc < 0) {
        index_free(ix);
        return -1;
    }
    *out = ix;
    return rc;
}

/* Drop the rows, failures and descriptions an index holds (to be read or
   made again). */
static void forget_contents(clip_index *ix)
{
    list_free(&ix->rows);
    list_free(&ix->failed);
    clip_free(ix->model_name);
    clip_free(ix->shard);
    ix->model_name = ix->shard = NULL;
}

clip_index *clip_index_open(const char *dir, char *err)
{
    clip_index *ix;
    return open_index(dir, 1, 0, &ix, err) ? NULL : ix;
}

clip_index *clip_index_open_all(const char *dir, char *err)
{
    clip_index *ix;
    return open_index(dir, 0, 0, &ix, err) ? NULL : ix;
}

size_t clip_index_rows(const clip_index *ix)
{
    return ix->n_rows;
}

int clip_index_dim(const clip_index *ix)
{
    return ix->dim;
}

static char *get_field(const char *s, const char *end);

const char *clip_index_path(const clip_index *ix, size_t row)
{
    if (row >= ix->n_rows) return NULL;
    if (!ix->lazy) return ix->rows.v[row].path;
    if (!ix->path_cache[row]) {
        const char *line = (const char *)ix->table.data + ix->line[row];
        const char *tab = (const char *)memchr(line, '\t', ix->line[row + 1] - ix->line[row]);
        ix->path_cache[row] = tab ? get_field(line, tab) : NULL; /* NULL: a bad escape */
    }
    return ix->path_cache[row];
}

int clip_index_check_model(const clip_index *ix, const clip_model *m, const char *model_path, char *err)
{
    clip_path_info st;
    char msg[CLIP_ERR_SIZE];
    uint64_t fp;
    /* the very file that was hashed, unchanged since: its recorded fingerprint holds */
    if (model_path && ix->model_size && clip_path_stat(model_path, &st, msg) == 0 && st.size == ix->model_size &&
        st.mtime_ns == ix->model_mtime && clip_model_config(m)->projection_dim == ix->dim)
        return 0;
    fp = clip_model_fingerprint(m);
    if (fp != ix->fingerprint || clip_model_config(m)->projection_dim != ix->dim)
        return clip_error(err, "clip: %s was built with another model (%s, fingerprint %016llx; this one is "
                               "%016llx): use that model, or index into a new folder with this one",
                          ix->dir, ix->model_name ? ix->model_name : "?", (unsigned long long)ix->fingerprint,
                          (unsigned long long)fp);
    return 0;
}

/* ------------------------------------------------------------------------
   Search: a score for every row, then the best k */

static float dot_row(const float *q, const unsigned char *row, int n, int le)
{
    float part[16], s = 0.0f;
    int i, u;
    for (u = 0; u < 16; u++) part[u] = 0.0f;
    if (le) {
        /* sixteen partial sums: vector-wide without -ffast-math */
        const float *r = (const float *)(const void *)row;
        for (i = 0; i + 16 <= n; i += 16)
            for (u = 0; u < 16; u++) part[u] += q[i + u] * r[i + u];
        for (; i < n; i++) part[0] += q[i] * r[i];
    } else {
        for (i = 0; i + 16 <= n; i += 16)
            for (u = 0; u < 16; u++) part[u] += q[i + u] * get_f32(row + 4 * (size_t)(i + u));
        for (; i < n; i++) part[0] += q[i] * get_f32(row + 4 * (size_t)i);
    }
    for (u = 0; u < 16; u++) s += part[u];
    return s;
}

/* heap order: the worst of the kept k on top (lower score, then higher row) */
static int worse(const float *sc, size_t a, size_t b)
{
    return sc[a] < sc[b] || (sc[a] == sc[b] && a > b);
}

static void sift_down(size_t *h, size_t n, size_t i, const float *sc)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i, t;
        if (l < n && worse(sc, h[l], h[m])) m = l;
        if (r < n && worse(sc, h[r], h[m])) m = r;
        if (m == i) return;
        t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

int clip_index_search(const clip_index *ix, const float *query, int k, size_t *rows, float *scores, char *err)
{
    size_t n = ix->n_rows, kk, i;
    long long r;
    float *q, *sc;
    size_t *heap;
    int le = host_little_endian() && ix->npy.data && ((uintptr_t)ix->npy.data % 4) == 0, dim = ix->dim;
    if (k < 1) return clip_error(err, "clip search: --top must be at least 1");
    kk = (size_t)k < n ? (size_t)k : n;
    q = (float *)clip_malloc((size_t)dim * sizeof(float));
    sc = (float *)clip_malloc((n ? n : 1) * sizeof(float));
    heap = (size_t *)clip_malloc((kk ? kk : 1) * sizeof(size_t));
    if (!q || !sc || !heap) {
        clip_free(q);
        clip_free(sc);
        clip_free(heap);
        return clip_error(err, "clip search: out of memory for %llu scores", (unsigned long long)n);
    }
    memcpy(q, query, (size_t)dim * sizeof(float));
    clip_normalize(q, dim);
    /* rows are unit vectors, so the dot product is the cosine */
    OMP("omp parallel for schedule(static) if (n > 4096)")
    for (r = 0; r < (long long)n; r++) sc[r] = dot_row(q, ix->emb + (size_t)r * dim * 4, dim, le);
    /* the best kk: a heap of the kept ones, worst on top */
    for (i = 0; i < n; i++) {
        if (i < kk) {
            size_t j = i;
            heap[j] = i;
            while (j > 0 && worse(sc, heap[j], heap[(j - 1) / 2])) {
                size_t t = heap[j];
                heap[j] = heap[(j - 1) / 2];
                heap[(j - 1) / 2] = t;
                j = (j - 1) / 2;
            }
        } else if (worse(sc, heap[0], i)) {
            heap[0] = i;
            sift_down(heap, kk, 0, sc);
        }
    }
    /* pop worst-first into the tail: best first */
    for (i = kk; i > 0; i--) {
        rows[i - 1] = heap[0];
        scores[i - 1] = sc[heap[0]];
        heap[0] = heap[i - 1];
        sift_down(heap, i - 1, 0, sc);
    }
    clip_free(q);
    clip_free(sc);
    clip_free(heap);
    return (int)kk;
}

/* ------------------------------------------------------------------------
   Writing: the .npy format, the tables, index.json */

/* numpy's format 1.0: magic, version, header length, a Python dict literal
   padded with spaces to a multiple of 64 bytes (so the data is aligned). */
static size_t npy_header(unsigned char *h, size_t rows, size_t cols)
{
    char dict[160];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%llu, %llu), }",
                     (unsigned long long)rows, (unsigned long long)cols);
    size_t total = 10 + (size_t)n + 1, len;
    total = (total + 63) / 64 * 64;
    len = total - 10;
    memcpy(h, "\x93NUMPY\x01\x00", 8);
    h[8] = (unsigned char)(len & 255);
    h[9] = (unsigned char)(len >> 8);
    memcpy(h + 10, dict, (size_t)n);
    memset(h + 10 + n, ' ', len - (size_t)n - 1);
    h[total - 1] = '\n';
    return total;
}

/* Skip spaces; match a literal. */
static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* The shape tuple "(rows, cols)" after 'shape': in a header dict. */
static int parse_shape(const char *p, const char *end, size_t *rows, size_t *cols)
{
    size_t v[2];
    int k;
    p = skip_ws(p, end);
    if (p >= end || *p++ != '(') return -1;
    for (k = 0; k < 2; k++) {
        int digits = 0;
        v[k] = 0;
        p = skip_ws(p, end);
        while (p < end && *p >= '0' && *p <= '9') {
            if (v[k] > (SIZE_MAX - 9) / 10) return -1;
            v[k] = v[k] * 10 + (size_t)(*p++ - '0');
            digits++;
        }
        if (!digits) return -1;
        p = skip_ws(p, end);
        if (p < end && *p == 'L') p++; /* Python 2 longs */
        if (k == 0 && (p >= end || *p++ != ',')) return -1;
    }
    p = skip_ws(p, end);
    if (p < end && *p == ',') p = skip_ws(p + 1, end);
    if (p >= end || *p != ')') return -1;
    *rows = v[0];
    *cols = v[1];
    return 0;
}

/* The value after 'key': in a header dict, or NULL. */
static const char *dict_value(const char *h, const char *end, const char *key)
{
    size_t kl = strlen(key);
    const char *p;
    for (p = h; p + kl + 2 <= end; p++)
        if ((*p == '\'' || *p == '"') && !memcmp(p + 1, key, kl) && p[kl + 1] == *p) {
            p = skip_ws(p + kl + 2, end);
            if (p < end && *p == ':') return skip_ws(p + 1, end);
            return NULL;
        }
    return NULL;
}

/* Check a .npy file holds a little-endian float32 2-D C-order array that
   fills the file exactly; its shape and where its data starts. */
static int npy_parse(const unsigned char *d, size_t size, size_t *rows, size_t *cols, size_t *offset,
                     const char *name, char *err)
{
    size_t hl, off;
    const char *h, *end, *v;
    if (size < 10 || memcmp(d, "\x93NUMPY", 6))
        return clip_error(err, "clip index: %s is not a numpy .npy file (no \\x93NUMPY magic)", name);
    if (d[6] == 1) {
        hl = (size_t)d[8] | (size_t)d[9] << 8;
        off = 10;
    } else if ((d[6] == 2 || d[6] == 3) && size >= 12) {
        hl = get32(d + 8);
        off = 12;
    } else {
        return clip_error(err, "clip index: %s: .npy format version %d.%d is not one this build reads (1-3)", name,
                          d[6], d[7]);
    }
    if (hl > size - off)
        return clip_error(err, "clip index: %s: the .npy header (%llu bytes) runs past the end of the file", name,
                          (unsigned long long)hl);
    h = (const char *)d + off;
    end = h + hl;
    off += hl;
    v = dict_value(h, end, "descr");
    if (!v || (size_t)(end - v) < 5 || (memcmp(v, "'<f4'", 5) && memcmp(v, "\"<f4\"", 5)))
        return clip_error(err, "clip index: %s: the array is not little-endian float32 ('<f4'); write it with "
                               "numpy.save(path, x.astype('<f4'))", name);
    v = dict_value(h, end, "fortran_order");
    if (!v || (size_t)(end - v) < 5 || memcmp(v, "False", 5))
        return clip_error(err, "clip index: %s: the array is in Fortran order; save a C-ordered array", name);
    v = dict_value(h, end, "shape");
    if (!v || parse_shape(v, end, rows, cols))
        return clip_error(err, "clip index: %s: the .npy header has no 2-D shape (rows, dim)", name);
    if (*cols == 0 || *cols > 65536 || *rows > (SIZE_MAX - off) / 4 / *cols ||
        *rows * *cols * 4 != size - off)
        return clip_error(err, "clip index: %s: shape (%llu, %llu) does not match the file's %llu data bytes: the "
                               "file is truncated or damaged; index into a new folder",
                          name, (unsigned long long)*rows, (unsigned long long)*cols, (unsigned long long)(size - off));
    if (off % 4) return clip_error(err, "clip index: %s: the data is not 4-byte aligned", name);
    *offset = off;
    return 0;
}

/* A path or reason in a table: tab, newline, carriage return and backslash
   escaped (\t \n \r \\), every other byte as it is. */
static void put_field(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '\t': fputs("\\t", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\\': fputs("\\\\", f); break;
        default: fputc(*s, f);
        }
    }
}

/* mtime as seconds with nine decimals (exact) */
static void put_time(FILE *f, int64_t ns)
{
    uint64_t a = ns < 0 ? (uint64_t)0 - (uint64_t)ns : (uint64_t)ns;
    fprintf(f, "%s%llu.%09llu", ns < 0 ? "-" : "", (unsigned long long)(a / 1000000000u),
            (unsigned long long)(a % 1000000000u));
}

static void write_table(FILE *f, const entry_list *l, int with_reason)
{
    size_t i;
    fputs(with_reason ? "path\tsize\tmtime\treason\n" : "path\tsize\tmtime\n", f);
    for (i = 0; i < l->n; i++) {
        const entry *e = &l->v[i];
        if (e->drop) continue;
        put_field(f, e->path);
        fprintf(f, "\t%llu\t", (unsigned long long)e->size);
        put_time(f, e->mtime);
        if (with_reason) {
            fputc('\t', f);
            put_field(f, e->reason ? e->reason : "");
        }
        fputc('\n', f);
    }
}

/* Undo put_field over [s, end) into a new string; NULL on a bad escape or a NUL byte. */
static char *get_field(const char *s, const char *end)
{
    char *out = (char *)clip_malloc((size_t)(end - s) + 1), *o = out;
    if (!out) return NULL;
    while (s < end) {
        char c = *s++;
        if (c == 0) break;
        if (c == '\\') {
            if (s >= end) break;
            c = *s++;
            c = c == 't' ? '\t' : c == 'n' ? '\n' : c == 'r' ? '\r' : c == '\\' ? '\\' : 0;
            if (!c) break;
        }
        *o++ = c;
    }
    if (s < end || o == out) { /* stopped early, or empty */
        clip_free(out);
        return NULL;
    }
    *o = 0;
    return out;
}

static int parse_u64(const char *s, const char *end, uint64_t *v)
{
    *v = 0;
    if (s >= end) return -1;
    for (; s < end; s++) {
        if (*s < '0' || *s > '9' || *v > (UINT64_MAX - 9) / 10) return -1;
        *v = *v * 10 + (uint64_t)(*s - '0');
    }
    return 0;
}

static int parse_time(const char *s, const char *end, int64_t *ns)
{
    int neg = s < end && *s == '-';
    const char *dot = (const char *)memchr(s, '.', (size_t)(end - s));
    uint64_t sec, frac;
    if (neg) s++;
    if (!dot || end - dot != 10 || parse_u64(s, dot, &sec) || parse_u64(dot + 1, end, &frac) ||
        sec > (uint64_t)INT64_MAX / 1000000000u - 1)
        return -1;
    *ns = (int64_t)(sec * 1000000000u + frac);
    if (neg) *ns = -*ns;
    return 0;
}

/* Read files.tsv or failed.tsv (must be sorted by path, without repeats). */
static int read_table(entry_list *l, const char *path, int with_reason, char *err)
{
    const char *header = with_reason ? "path\tsize\tmtime\treason\n" : "path\tsize\tmtime\n";
    size_t size, hl = strlen(header), line = 1;
    unsigned char *buf = clip_read_file(path, &size, err);
    const char *p, *end;
    if (!buf) return -1;
    p = (const char *)buf;
    end = p + size;
    if (size < hl || memcmp(p, header, hl)) {
        clip_free(buf);
        return clip_error(err, "clip index: %s does not start with the header line of an index table; the index is "
                               "damaged or not clip's", path);
    }
    for (p += hl; p < end; line++) {
        const char *nl = (const char *)memchr(p, '\n', (size_t)(end - p)), *f[6];
        int nf = 0;
        entry e;
        memset(&e, 0, sizeof e);
        if (!nl) break; /* a last line without its newline: torn */
        f[nf++] = p;
        for (; p < nl && nf < 5; p++)
            if (*p == '\t') f[nf++] = p + 1;
        f[nf] = nl + 1;
        if (nf != (with_reason ? 4 : 3) || !(e.path = get_field(f[0], f[1] - 1)) ||
            parse_u64(f[1], f[2] - 1, &e.size) || parse_time(f[2], f[3] - 1, &e.mtime) ||
            (with_reason && !(e.reason = get_field(f[3], f[4] - 1))) ||
            (l->n && strcmp(l->v[l->n - 1].path, e.path) >= 0) || list_push(l, &e)) {
            clip_free(e.path);
            clip_free(e.reason);
            clip_free(buf);
            return clip_error(err, "clip index: %s, line %llu: not a valid row (path, size, mtime%s, sorted by path); "
                                   "the index is damaged",
                              path, (unsigned long long)line + 1, with_reason ? ", reason" : "");
        }
        p = nl + 1;
    }
    clip_free(buf);
    if (p != end) return clip_error(err, "clip index: %s: the last line is cut short; the index is damaged", path);
    return 0;
}

/* files.tsv for a search: mapped, every line checked for its three fields,
   its size and its time (a row's path is decoded when it is asked for). */
static int scan_table(clip_index *ix, const char *path, char *err)
{
    static const char header[] = "path\tsize\tmtime\n";
    const char *d, *p, *end;
    size_t hl = sizeof header - 1, cap = 0, n = 0;
    if (clip_file_open(&ix->table, path, err)) return -1;
    d = (const char *)ix->table.data;
    end = d + ix->table.size;
    if (ix->table.size < hl || memcmp(d, header, hl))
        return clip_error(err, "clip index: %s does not start with the header line of an index table; the index is "
                               "damaged or not clip's", path);
    for (p = d + hl; p < end; n++) {
        const char *nl = (const char *)memchr(p, '\n', (size_t)(end - p)), *t1, *t2;
        int64_t mt;
        uint64_t sz;
        if (!nl) return clip_error(err, "clip index: %s: the last line is cut short; the index is damaged", path);
        t1 = (const char *)memchr(p, '\t', (size_t)(nl - p));
        t2 = t1 ? (const char *)memchr(t1 + 1, '\t', (size_t)(nl - t1 - 1)) : NULL;
        if (!t1 || t1 == p || !t2 || memchr(t2 + 1, '\t', (size_t)(nl - t2 - 1)) || parse_u64(t1 + 1, t2, &sz) ||
            parse_time(t2 + 1, nl, &mt))
            return clip_error(err, "clip index: %s, line %llu: not a valid row (path, size, mtime); the index is "
                                   "damaged", path, (unsigned long long)n + 2);
        if (n + 1 >= cap) {
            size_t nc = cap ? cap * 2 : 1024, *nv;
            nv = nc > SIZE_MAX / sizeof(size_t) ? NULL : (size_t *)clip_realloc(ix->line, nc * sizeof(size_t));
            if (!nv) return clip_error(err, "clip index: out of memory");
            ix->line = nv;
            cap = nc;
        }
        ix->line[n] = (size_t)(p - d);
        p = nl + 1;
    }
    if (!ix->line && !(ix->line = (size_t *)clip_malloc(sizeof(size_t))))
        return clip_error(err, "clip index: out of memory");
    ix->line[n] = (size_t)(p - d);
    ix->n_rows = n;
    ix->path_cache = (char **)clip_calloc(n ? n : 1, sizeof(char *));
    return ix->path_cache ? 0 : clip_error(err, "clip index: out of memory");
}

static void write_meta(FILE *f, const clip_index *ix, size_t rows, size_t failed)
{
    fprintf(f, "{\n  \"format\": \"clip.c index\",\n  \"version\": %d,\n  \"fingerprint\": \"%016llx\",\n"
               "  \"model\": ",
            CLIP_INDEX_VERSION, (unsigned long long)ix->fingerprint);
    fputc('"', f);
    {
        const char *s;
        for (s = ix->model_name ? ix->model_name : ""; *s; s++) {
            if (*s == '"' || *s == '\\')
                fprintf(f, "\\%c", *s);
            else if ((unsigned char)*s < 0x20)
                fprintf(f, "\\u%04x", (unsigned char)*s);
            else
                fputc(*s, f);
        }
    }
    fprintf(f, "\",\n  \"dim\": %d,\n  \"rows\": %llu,\n  \"failed\": %llu", ix->dim, (unsigned long long)rows,
            (unsigned long long)failed);
    if (ix->model_size) {
        fprintf(f, ",\n  \"model_size\": %llu,\n  \"model_mtime\": \"", (unsigned long long)ix->model_size);
        put_time(f, ix->model_mtime);
        fputc('"', f);
    }
    if (ix->shard) fprintf(f, ",\n  \"shard\": \"%s\"", ix->shard);
    fputs("\n}\n", f);
}

/* The string or number after "key": in index.json; value/len point into buf. */
static const char *json_field(const char *buf, size_t n, const char *key, size_t *len)
{
    const char *end = buf + n, *v = dict_value(buf, end, key), *q;
    if (!v) return NULL;
    if (*v == '"') {
        for (q = v + 1; q < end && *q != '"'; q++)
            if (*q == '\\') q++;
        if (q >= end) return NULL;
        *len = (size_t)(q - v - 1);
        return v + 1;
    }
    for (q = v; q < end && ((*q >= '0' && *q <= '9') || *q == '-'); q++) {}
    *len = (size_t)(q - v);
    return *len ? v : NULL;
}

static int read_meta(clip_index *ix, const char *path, char *err)
{
    size_t n, len;
    unsigned char *buf = clip_read_file(path, &n, err);
    const char *b = (const char *)buf, *v;
    uint64_t u;
    int rc = -1;
    if (!buf) return -1;
    if (!(v = json_field(b, n, "format", &len)) || len != 12 || memcmp(v, "clip.c index", 12)) {
        clip_error(err, "clip index: %s is not a clip.c index description", path);
    } else if (!(v = json_field(b, n, "version", &len)) || parse_u64(v, v + len, &u) || u != CLIP_INDEX_VERSION) {
        clip_error(err, "clip index: %s: index format version %.*s; this build reads version %d", path,
                   v ? (int)(len < 20 ? len : 20) : 1, v ? v : "?", CLIP_INDEX_VERSION);
    } else if (!(v = json_field(b, n, "fingerprint", &len)) || len != 16) {
        clip_error(err, "clip index: %s: no model fingerprint", path);
    } else {
        char hex[17];
        char *endp;
        memcpy(hex, v, 16);
        hex[16] = 0;
        ix->fingerprint = (uint64_t)strtoull(hex, &endp, 16);
        if (*endp) {
            clip_error(err, "clip index: %s: the model fingerprint is not hexadecimal", path);
        } else if (!(v = json_field(b, n, "dim", &len)) || parse_u64(v, v + len, &u) || u < 1 || u > 65536) {
            clip_error(err, "clip index: %s: no valid \"dim\"", path);
        } else {
            ix->dim = (int)u;
            v = json_field(b, n, "model", &len);
            ix->model_name = v ? dup_str(v, len) : NULL;
            v = json_field(b, n, "shard", &len);
            ix->shard = v ? dup_str(v, len) : NULL;
            /* optional: without them the model is hashed at every check */
            v = json_field(b, n, "model_size", &len);
            if (!v || parse_u64(v, v + len, &ix->model_size)) ix->model_size = 0;
            v = json_field(b, n, "model_mtime", &len);
            if (!v || parse_time(v, v + len, &ix->model_mtime)) ix->model_size = 0;
            rc = 0;
        }
    }
    clip_free(buf);
    return rc;
}

/* ------------------------------------------------------------------------
   The journal: an interrupted run's work. A header (magic, version, dim,
   fingerprint), then records: body length, FNV-1a of the body, body = kind
   (1 row, 2 failed), size, mtime, path length, path, then dim floats (rows)
   or the reason's length and bytes (failed). A record cut short or with a
   wrong checksum ends it (the run was killed while writing it). */

#define JOURNAL_HEADER 24
#define JOURNAL_MAGIC "CLIPJRN1"

typedef struct {
    FILE *f;
    char *path;
    size_t size;       /* bytes written so far */
    double last_sync;  /* clip_seconds() of the last fsync */
    unsigned char *buf;
    size_t cap;
} journal;

static int journal_create(journal *j, const clip_index *ix, char *err)
{
    unsigned char h[JOURNAL_HEADER];
    memset(j, 0, sizeof *j);
    j->path = join(ix->dir, F_JOURNAL);
    if (!j->path) return clip_error(err, "clip index: out of memory");
    j->f = clip_fopen(j->path, "wb");
    if (!j->f) return clip_error(err, "clip index: %s: %s", j->path, strerror(errno));
    memcpy(h, JOURNAL_MAGIC, 8);
    put32(h + 8, 1);
    put32(h + 12, (uint32_t)ix->dim);
    put64(h + 16, ix->fingerprint);
    if (fwrite(h, 1, sizeof h, j->f) != sizeof h) return clip_error(err, "clip index: %s: write error", j->path);
    j->size = sizeof h;
    j->last_sync = clip_seconds();
    return clip_sync_file(j->f, j->path, err);
}

static void journal_close(journal *j)
{
    if (j->f) fclose(j->f);
    clip_free(j->path);
    clip_free(j->buf);
    memset(j, 0, sizeof *j);
}

/* Append one record; *vec_off gets where its vector starts in the file. */
static int journal_add(journal *j, const entry *e, const float *vec, int dim, size_t *vec_off, char *err)
{
    size_t pl = strlen(e->path), rl = e->reason ? strlen(e->reason) : 0;
    size_t body = 1 + 8 + 8 + 4 + pl + (vec ? (size_t)dim * 4 : 4 + rl), need = 8 + body, i;
    unsigned char *p;
    if (need > j->cap) {
        unsigned char *nb = (unsigned char *)clip_realloc(j->buf, need);
        if (!nb) return clip_error(err, "clip index: out of memory");
        j->buf = nb;
        j->cap = need;
    }
    p = j->buf + 8;
    *p++ = vec ? 1 : 2;
    put64(p, e->size);
    put64(p + 8, (uint64_t)e->mtime);
    put32(p + 16, (uint32_t)pl);
    memcpy(p + 20, e->path, pl);
    p += 20 + pl;
    if (vec) {
        *vec_off = j->size + (size_t)(p - j->buf);
        for (i = 0; i < (size_t)dim; i++) {
            uint32_t u;
            memcpy(&u, &vec[i], 4);
            put32(p + 4 * i, u);
        }
    } else {
        put32(p, (uint32_t)rl);
        memcpy(p + 4, e->reason, rl);
    }
    put32(j->buf, (uint32_t)body);
    put32(j->buf + 4, (uint32_t)fnv64(j->buf + 8, body));
    if (fwrite(j->buf, 1, need, j->f) != need || fflush(j->f) != 0)
        return clip_error(err, "clip index: %s: write error: %s", j->path, strerror(errno));
    j->size += need;
    return 0;
}

/* Fold the records of dir's journal into ix: each replaces the entry with
   its path. *added counts them. The journal stays mapped in ix. */
static int journal_fold(clip_index *ix, size_t *added, char *err)
{
    char *path = join(ix->dir, F_JOURNAL);
    const unsigned char *d;
    size_t n, off = JOURNAL_HEADER, n_rows, n_failed, seq = 0;
    int rc = 0;
    *added = 0;
    if (!path) return clip_error(err, "clip index: out of memory");
    if (!exists(path) || clip_file_open(&ix->journal_map, path, err)) {
        rc = exists(path) ? -1 : 0;
        clip_free(path);
        return rc;
    }
    d = ix->journal_map.data;
    n = ix->journal_map.size;
    if (n < JOURNAL_HEADER || memcmp(d, JOURNAL_MAGIC, 8) || get32(d + 8) != 1) {
        /* not ours, or cut before its header was whole: nothing in it */
        clip_free(path);
        return 0;
    }
    if (get32(d + 12) != (uint32_t)ix->dim || get64(d + 16) != ix->fingerprint) {
        clip_error(err, "clip index: %s holds the work of another model (fingerprint %016llx); remove it to start "
                        "over with this one", path, (unsigned long long)get64(d + 16));
        clip_free(path);
        return -1;
    }
    /* the index's own entries, sorted, are the first n_rows / n_failed */
    n_rows = ix->rows.n;
    n_failed = ix->failed.n;
    while (off + 8 <= n && rc == 0) {
        size_t body = get32(d + off), pl, rest;
        const unsigned char *p = d + off + 8;
        entry e;
        entry_list *target, old;
        if (body > n - off - 8 || body < 21 || (uint32_t)fnv64(p, body) != get32(d + off + 4)) break;
        pl = get32(p + 17);
        if (pl == 0 || pl > body - 21) break;
        rest = body - 21 - pl;
        memset(&e, 0, sizeof e);
        e.size = get64(p + 1);
        e.mtime = (int64_t)get64(p + 9);
        if (p[0] == 1 && rest == (size_t)ix->dim * 4) {
            e.vec = p + 21 + pl;
            target = &ix->rows;
        } else if (p[0] == 2 && rest >= 4 && get32(p + 21 + pl) == rest - 4) {
            e.reason = dup_str((const char *)p + 25 + pl, rest - 4);
            if (!e.reason) rc = clip_error(err, "clip index: out of memory");
            target = &ix->failed;
        } else {
            break;
        }
        e.path = dup_str((const char *)p + 21, pl);
        if (!e.path || memchr(e.path, 0, pl)) {
            clip_free(e.path);
            clip_free(e.reason);
            if (!rc && !e.path) rc = clip_error(err, "clip index: out of memory");
            break;
        }
        /* a record replaces the index's entry for its path, in either list */
        old = ix->rows;
        old.n = n_rows;
        drop_path(&old, e.path);
        old = ix->failed;
        old.n = n_failed;
        drop_path(&old, e.path);
        e.jrec = ++seq; /* journal order, for repeats below */
        if (list_push(target, &e)) {
            clip_free(e.path);
            clip_free(e.reason);
            rc = clip_error(err, "clip index: out of memory");
            break;
        }
        (*added)++;
        off += 8 + body;
    }
    clip_free(path);
    /* sorted once; a path the journal holds twice keeps its newest record */
    sort_entries(&ix->rows, by_path_then_order);
    sort_entries(&ix->failed, by_path_then_order);
    drop_repeats(&ix->rows, &ix->failed);
    return rc;
}

/* ------------------------------------------------------------------------
   Saving: every file whole under .new, the commit marker, the renames */

static int write_new(const char *dir, const char *name, clip_index *ix, int which, char *err);

/* Finish (commit marker present) or undo (absent) an interrupted save. */
static int recover(const char *dir, char *err)
{
    static const char *const *names[] = {&F_EMB, &F_FILES, &F_FAILED, &F_META};
    char *commit = join(dir, F_COMMIT);
    int committing, i, rc = 0;
    if (!commit) return clip_error(err, "clip index: out of memory");
    committing = exists(commit);
    for (i = 0; i < 4 && rc == 0; i++) {
        char *fin = join(dir, *names[i]), *tmp = fin ? (char *)clip_malloc(strlen(fin) + 5) : NULL;
        if (!tmp) {
            clip_free(fin);
            rc = clip_error(err, "clip index: out of memory");
            break;
        }
        sprintf(tmp, "%s.new", fin);
        if (exists(tmp)) {
            if (committing)
                rc = clip_replace_file(tmp, fin, err);
            else
                clip_remove_file(tmp);
        }
        clip_free(fin);
        clip_free(tmp);
    }
    if (rc == 0 && committing) {
        clip_sync_dir(dir);
        clip_remove_file(commit);
        clip_sync_dir(dir);
    }
    clip_free(commit);
    return rc;
}

/* Save ix (entries without drop) into its folder, crash-safe, then open the
   result again so ix describes the saved index. */
static int save(clip_index *ix, int remove_journal, char *err)
{
    static const char *const *names[] = {&F_EMB, &F_FILES, &F_FAILED, &F_META};
    char *commit = join(ix->dir, F_COMMIT), *journal = join(ix->dir, F_JOURNAL), *tmp = NULL;
    int i, rc = -1;
    FILE *f;
    if (!commit || !journal) {
        clip_error(err, "clip index: out of memory");
        goto done;
    }
    for (i = 0; i < 4; i++)
        if (write_new(ix->dir, *names[i], ix, i, err)) goto done;
    /* the .new files are whole and on the disk: the new index exists once the marker does */
    clip_file_close(&ix->npy);
    clip_file_close(&ix->journal_map);
    tmp = (char *)clip_malloc(strlen(commit) + 5);
    if (!tmp) {
        clip_error(err, "clip index: out of memory");
        goto done;
    }
    sprintf(tmp, "%s.new", commit);
    f = clip_fopen(tmp, "wb");
    if (!f) {
        clip_error(err, "clip index: %s: %s", tmp, strerror(errno));
        goto done;
    }
    fputs("the .new files are the index: rename them into place\n", f);
    if (clip_sync_file(f, tmp, err)) {
        fclose(f);
        goto done;
    }
    fclose(f);
    clip_sync_dir(ix->dir);
    if (clip_replace_file(tmp, commit, err)) goto done;
    clip_sync_dir(ix->dir);
    if (recover(ix->dir, err)) goto done;
    if (remove_journal) clip_remove_file(journal);
    clip_sync_dir(ix->dir);
    /* read back what was saved (ix's entries and mappings are replaced) */
    forget_contents(ix);
    {
        uint64_t fp = ix->fingerprint;
        if (index_read(ix, ix->dir, err)) goto done;
        if (ix->fingerprint != fp) {
            clip_error(err, "clip index: %s changed while it was being saved", ix->dir);
            goto done;
        }
    }
    rc = 0;
done:
    clip_free(commit);
    clip_free(journal);
    clip_free(tmp);
    return rc;
}

/* Write one of the four files as NAME.new and flush it to the disk.
   which: 0 embeddings, 1 files, 2 failed, 3 index.json. */
static int write_new(const char *dir, const char *name, clip_index *ix, int which, char *err)
{
    char *fin = join(dir, name), *tmp = fin ? (char *)clip_malloc(strlen(fin) + 5) : NULL;
    size_t rows = 0, failed = 0, i;
    FILE *f;
    int rc = -1;
    if (!tmp) {
        clip_free(fin);
        return clip_error(err, "clip index: out of memory");
    }
    sprintf(tmp, "%s.new", fin);
    for (i = 0; i < ix->rows.n; i++) rows += !ix->rows.v[i].drop;
    for (i = 0; i < ix->failed.n; i++) failed += !ix->failed.v[i].drop;
    f = clip_fopen(tmp, "wb");
    if (!f) {
        clip_error(err, "clip index: %s: %s", tmp, strerror(errno));
        goto done;
    }
    if (which == 0) {
        unsigned char h[128];
        size_t hl = npy_header(h, rows, (size_t)ix->dim), row = (size_t)ix->dim * 4;
        fwrite(h, 1, hl, f);
        for (i = 0; i < ix->rows.n; i++)
            if (!ix->rows.v[i].drop) fwrite(ix->rows.v[i].vec, 1, row, f);
    } else if (which == 1) {
        write_table(f, &ix->rows, 0);
    } else if (which == 2) {
        write_table(f, &ix->failed, 1);
    } else {
        write_meta(f, ix, rows, failed);
    }
    if (ferror(f)) {
        clip_error(err, "clip index: %s: write error (disk full?)", tmp);
        fclose(f);
        goto done;
    }
    if (clip_sync_file(f, tmp, err)) {
        fclose(f);
        goto done;
    }
    if (fclose(f) != 0) {
        clip_error(err, "clip index: %s: write error", tmp);
        goto done;
    }
    rc = 0;
done:
    clip_free(fin);
    clip_free(tmp);
    return rc;
}

/* ------------------------------------------------------------------------
   The update */

/* Embed a batch of files; each gets its row into the journal, or its reason
   for failing. The batch runs in two phases, every thread decoding (one
   file each) and then every thread in the matmuls, rather than decoding
   the next batch on one core while the other runs the transformer: with
   both phases using all cores there is nothing idle to overlap, and
   preprocessing a 12 MP JPEG costs the same order of time as encoding it
   with ViT-B/32 (60 and 100 ms on one core here), so a fixed split of
   the cores would leave one side waiting on the other whenever the mix
   of image sizes changes. bench/bench_index.py measures the whole job and
   the cores it keeps busy: 1.92 of 2 on 300 JPEGs, a third of them 12 MP,
   so overlapping the phases could win 4% at most. */
static int embed_batch(clip_model *m, clip_index *ix, journal *j, entry **batch, int n, float *feats,
                       entry_list *added, size_t *n_failed, char *err)
{
    const char *paths[IMAGES_PER_BATCH];
    char msgs[IMAGES_PER_BATCH * CLIP_ERR_SIZE];
    int ok[IMAGES_PER_BATCH], i, dim = ix->dim;
    for (i = 0; i < n; i++) paths[i] = batch[i]->path;
    if (clip_encode_files(m, paths, n, feats, ok, msgs, err)) return -1;
    for (i = 0; i < n; i++) {
        entry e = *batch[i];
        float *v = ok[i] ? feats + (size_t)i * dim : NULL;
        const char *why = ok[i] ? NULL : bare_reason(msgs + (size_t)i * CLIP_ERR_SIZE, paths[i]);
        size_t off = 0;
        e.path = dup_str(paths[i], strlen(paths[i]));
        e.reason = why ? dup_str(why, strlen(why)) : NULL;
        if (!e.path || (why && !e.reason) || list_push(added, &e)) {
            clip_free(e.path);
            clip_free(e.reason);
            return clip_error(err, "clip index: out of memory");
        }
        if (v) clip_normalize(v, dim); /* rows are unit vectors: a dot product is the cosine */
        if (journal_add(j, &e, v, dim, &off, err)) return -1;
        added->v[added->n - 1].jrec = off;
        *n_failed += !ok[i];
    }
    return 0;
}

/* Merge the run's new entries into ix's lists (dropping what they replace),
   sorted again. Vectors of new rows point into the journal, mapped now. */
static int fold_added(clip_index *ix, entry_list *added, char *err)
{
    size_t i;
    if (added->n) {
        char *jp = join(ix->dir, F_JOURNAL);
        int rc = jp ? clip_file_open(&ix->journal_map, jp, err) : clip_error(err, "clip index: out of memory");
        clip_free(jp);
        if (rc) return -1;
    }
    for (i = 0; i < added->n; i++) {
        entry *e = &added->v[i];
        drop_path(&ix->rows, e->path);
        drop_path(&ix->failed, e->path);
        if (!e->reason) {
            if (e->jrec + (size_t)ix->dim * 4 > ix->journal_map.size)
                return clip_error(err, "clip index: the journal is shorter than what was written to it");
            e->vec = ix->journal_map.data + e->jrec;
        }
    }
    for (i = 0; i < added->n; i++) {
        if (list_push(added->v[i].reason ? &ix->failed : &ix->rows, &added->v[i]))
            return clip_error(err, "clip index: out of memory");
        added->v[i].path = added->v[i].reason = NULL; /* moved */
    }
    sort_entries(&ix->rows, by_path);
    sort_entries(&ix->failed, by_path);
    return 0;
}

/* Create the folder if needed and take its lock (one writer at a time). */
static int lock_folder(const char *dir, clip_lock **lock, char *err)
{
    char msg[CLIP_ERR_SIZE], *path;
    int r;
    *lock = NULL;
    if (clip_make_dir(dir, msg)) return clip_error(err, "clip index: %s", msg);
    if (!(path = join(dir, F_LOCK))) return clip_error(err, "clip index: out of memory");
    r = clip_lock_file(path, lock, msg);
    clip_free(path);
    return r ? clip_error(err, "clip index: %s", msg) : 0;
}

int clip_index_update(clip_model *m, const char *model_path, const char *dir, const char *const *paths,
                      size_t n_paths, const clip_index_options *opt, clip_index_summary *sum, char *err)
{
    clip_index *ix = NULL;
    clip_lock *lock = NULL;
    walk_state w;
    journal j;
    entry_list added;
    entry **todo = NULL;
    float *feats = NULL;
    size_t n_todo = 0, i, recovered = 0;
    int rc = -1, r, is_new;
    clip_path_info dst;
    memset(sum, 0, sizeof *sum);
    memset(&w, 0, sizeof w);
    memset(&j, 0, sizeof j);
    memset(&added, 0, sizeof added);
    if (lock_folder(dir, &lock, err)) return -1;
    r = open_index(dir, 0, 1, &ix, err);
    if (r < 0) goto done;
    is_new = r == 1;
    if (is_new) {
        ix->fingerprint = clip_model_fingerprint(m);
        ix->dim = clip_model_config(m)->projection_dim;
        ix->model_size = 0;
    } else if (clip_index_check_model(ix, m, model_path, err)) {
        goto done;
    }
    {
        /* the name and the file's size and time it is used under now */
        const char *base = strrchr(model_path, '/');
        clip_path_info st;
        char msg[CLIP_ERR_SIZE];
        clip_free(ix->model_name);
        ix->model_name = dup_str(base ? base + 1 : model_path, strlen(base ? base + 1 : model_path));
        if (clip_path_stat(model_path, &st, msg) == 0) {
            ix->model_size = st.size;
            ix->model_mtime = st.mtime_ns;
        }
    }
    clip_free(ix->shard);
    ix->shard = NULL;
    if (opt->shard_n > 1) {
        char s[32];
        sprintf(s, "%d/%d", opt->shard_k, opt->shard_n);
        ix->shard = dup_str(s, strlen(s));
    }
    /* an interrupted run's rows: save them before anything else */
    if (journal_fold(ix, &recovered, err)) goto done;
    if (recovered) {
        if (save(ix, 1, err)) goto done;
        sum->recovered = recovered;
    } else {
        clip_file_close(&ix->journal_map);
    }

    /* what is there now */
    if (clip_path_stat(dir, &dst, err) == 0) {
        w.skip_dev = dst.dev;
        w.skip_ino = dst.ino;
    }
    if (n_paths == 0) {
        /* no paths: the files the index knows, checked again */
        for (i = 0; i < ix->rows.n + ix->failed.n; i++) {
            const entry *e = i < ix->rows.n ? &ix->rows.v[i] : &ix->failed.v[i - ix->rows.n];
            clip_path_info st;
            char msg[CLIP_ERR_SIZE];
            if (clip_path_stat(e->path, &st, msg) == 0 && add_found(&w, e->path, &st, st.kind == CLIP_PATH_FILE ?
                                                                                    NULL : "not a regular file")) {
                clip_error(err, "clip index: out of memory");
                goto done;
            }
        }
    } else {
        for (i = 0; i < n_paths; i++)
            if (walk(&w, paths[i], 0, err)) goto done;
    }
    sum->loops = w.loops;
    /* sorted, each path once (it may have been given twice) */
    sort_entries(&w.found, by_path);
    for (i = 0; i + 1 < w.found.n; i++)
        if (!strcmp(w.found.v[i].path, w.found.v[i + 1].path)) w.found.v[i].drop = 1;
    todo = (entry **)clip_malloc((w.found.n ? w.found.n : 1) * sizeof(entry *));
    if (!todo) {
        clip_error(err, "clip index: out of memory");
        goto done;
    }
    for (i = 0; i < w.found.n; i++) {
        entry *e = &w.found.v[i], *row, *bad;
        if (e->drop || (opt->shard_n > 1 && clip_index_shard_of(e->path, opt->shard_n) != opt->shard_k)) continue;
        row = find(&ix->rows, e->path);
        bad = find(&ix->failed, e->path);
        if (e->reason && bad && !strcmp(bad->reason, e->reason) && !opt->retry_failed) {
            sum->unchanged++; /* the same failure as last time */
        } else if (e->reason) { /* could not even be looked at: a failed entry as it is */
            entry copy = *e;
            copy.path = dup_str(e->path, strlen(e->path));
            copy.reason = dup_str(e->reason, strlen(e->reason));
            if (!copy.path || !copy.reason || list_push(&added, &copy)) {
                clip_free(copy.path);
                clip_free(copy.reason);
                clip_error(err, "clip index: out of memory");
                goto done;
            }
            sum->new_failed++;
        } else if (row && row->size == e->size && row->mtime == e->mtime) {
            sum->unchanged++;
        } else if (bad && !opt->retry_failed && bad->size == e->size && bad->mtime == e->mtime) {
            sum->unchanged++;
        } else {
            todo[n_todo++] = e;
        }
    }
    /* files gone from the disk */
    for (i = 0; i < ix->rows.n + ix->failed.n; i++) {
        entry *e = i < ix->rows.n ? &ix->rows.v[i] : &ix->failed.v[i - ix->rows.n];
        clip_path_info st;
        char msg[CLIP_ERR_SIZE];
        if (e->drop || find(&w.found, e->path)) continue;
        if (clip_path_stat(e->path, &st, msg) == 1) {
            if (opt->prune) {
                e->drop = 1;
                sum->pruned++;
            } else {
                sum->missing++;
            }
        }
    }

    /* embed what is new or changed, batch by batch, each row journaled */
    if (n_todo || added.n) {
        clip_index_progress p;
        double t0 = clip_seconds();
        feats = (float *)clip_malloc((size_t)IMAGES_PER_BATCH * ix->dim * sizeof(float));
        if (!feats) {
            clip_error(err, "clip index: out of memory");
            goto done;
        }
        if (journal_create(&j, ix, err)) goto done;
        for (i = 0; i < added.n; i++) { /* the unreadable paths found while walking */
            size_t off;
            if (journal_add(&j, &added.v[i], NULL, ix->dim, &off, err)) goto done;
        }
        memset(&p, 0, sizeof p);
        p.total = w.found.n;
        p.todo = n_todo;
        if (opt->progress && n_todo) opt->progress(opt->ctx, &p);
        for (i = 0; i < n_todo; i += IMAGES_PER_BATCH) {
            int n = n_todo - i < IMAGES_PER_BATCH ? (int)(n_todo - i) : IMAGES_PER_BATCH, k;
            /* the disk reads the next batch while this one is decoded and encoded */
            for (k = 0; i + (size_t)n + (size_t)k < n_todo && k < IMAGES_PER_BATCH; k++)
                clip_file_prefetch(todo[i + (size_t)n + (size_t)k]->path);
            if (embed_batch(m, ix, &j, todo + i, n, feats, &added, &p.failed, err)) goto done;
            p.done = i + (size_t)n;
            p.seconds = clip_seconds() - t0;
            if (clip_seconds() - j.last_sync >= opt->checkpoint_s) {
                if (clip_sync_file(j.f, j.path, err)) goto done;
                j.last_sync = clip_seconds();
            }
            p.finished = p.done == n_todo;
            if (opt->progress && !p.finished) opt->progress(opt->ctx, &p);
        }
        sum->seconds = clip_seconds() - t0;
        if (clip_sync_file(j.f, j.path, err)) goto done;
        fclose(j.f);
        j.f = NULL;
        sum->embedded = n_todo - p.failed;
        sum->new_failed += p.failed;
        p.finished = 1;
        if (opt->progress) opt->progress(opt->ctx, &p);
    }
    if (fold_added(ix, &added, err)) goto done;
    /* save, unless nothing at all changed */
    if (added.n || sum->pruned || is_new) {
        if (save(ix, 1, err)) goto done;
    } else {
        char *jp = join(dir, F_JOURNAL);
        if (jp) clip_remove_file(jp);
        clip_free(jp);
    }
    sum->rows = ix->rows.n;
    sum->failed = ix->failed.n;
    rc = 0;
done:
    journal_close(&j);
    list_free(&w.found);
    list_free(&added);
    clip_free(w.seen);
    clip_free(todo);
    clip_free(feats);
    index_free(ix);
    clip_unlock_file(lock);
    return rc;
}

/* ------------------------------------------------------------------------
   Merging shards */

/* Copy every entry of src into dst (paths and reasons duplicated; vectors
   still point into src's mapping), numbering them in *order. */
static int gather(entry_list *dst, const entry_list *src, size_t *order)
{
    size_t i;
    for (i = 0; i < src->n; i++) {
        entry e = src->v[i];
        e.path = dup_str(e.path, strlen(e.path));
        e.reason = e.reason ? dup_str(e.reason, strlen(e.reason)) : NULL;
        e.jrec = (*order)++;
        e.drop = 0;
        if (!e.path || (src->v[i].reason && !e.reason) || list_push(dst, &e)) {
            clip_free(e.path);
            clip_free(e.reason);
            return -1;
        }
    }
    return 0;
}

int clip_index_merge(const char *out, const char *const *shards, size_t n_shards, clip_index_summary *sum,
                     char *err)
{
    clip_index **in = (clip_index **)clip_calloc(n_shards ? n_shards : 1, sizeof(clip_index *));
    clip_index *ix = NULL;
    clip_lock *lock = NULL;
    clip_path_info ost;
    size_t s, i, order = 0;
    int rc = -1, r;
    char msg[CLIP_ERR_SIZE];
    memset(sum, 0, sizeof *sum);
    if (!in) return clip_error(err, "clip index: out of memory");
    if (n_shards == 0) {
        clip_free(in);
        return clip_error(err, "clip index --merge: no shard folders given");
    }
    if (lock_folder(out, &lock, err)) {
        clip_free(in);
        return -1;
    }
    if (clip_path_stat(out, &ost, msg)) ost.ino = 0;
    for (s = 0; s < n_shards; s++) {
        clip_path_info st;
        char *jp;
        if (open_index(shards[s], 0, 0, &in[s], err)) goto done;
        if (ost.ino && clip_path_stat(shards[s], &st, msg) == 0 && st.dev == ost.dev && st.ino == ost.ino) {
            clip_error(err, "clip index --merge: the output folder %s is also one of the shards; merge into a new "
                            "folder", out);
            goto done;
        }
        if (s && (in[s]->fingerprint != in[0]->fingerprint || in[s]->dim != in[0]->dim)) {
            clip_error(err, "clip index --merge: %s was built with another model than %s (fingerprints %016llx and "
                            "%016llx); only shards of one model merge",
                       shards[s], shards[0], (unsigned long long)in[s]->fingerprint,
                       (unsigned long long)in[0]->fingerprint);
            goto done;
        }
        jp = join(shards[s], F_JOURNAL);
        r = jp && exists(jp);
        clip_free(jp);
        if (r) {
            clip_error(err, "clip index --merge: %s has work an interrupted run left unsaved (%s); run clip index "
                            "on it again first", shards[s], F_JOURNAL);
            goto done;
        }
    }
    r = open_index(out, 0, 1, &ix, err);
    if (r < 0) goto done;
    if (r == 0 && (ix->fingerprint != in[0]->fingerprint || ix->dim != in[0]->dim)) {
        clip_error(err, "clip index --merge: %s holds an index of another model; merge into a new folder", out);
        goto done;
    }
    /* the merged index replaces whatever out held */
    forget_contents(ix);
    ix->fingerprint = in[0]->fingerprint;
    ix->dim = in[0]->dim;
    ix->model_name = in[0]->model_name ? dup_str(in[0]->model_name, strlen(in[0]->model_name)) : NULL;
    ix->model_size = in[0]->model_size;
    ix->model_mtime = in[0]->model_mtime;
    for (s = 0; s < n_shards; s++)
        if (gather(&ix->rows, &in[s]->rows, &order) || gather(&ix->failed, &in[s]->failed, &order)) {
            clip_error(err, "clip index: out of memory");
            goto done;
        }
    sort_entries(&ix->rows, by_path_then_order);
    sort_entries(&ix->failed, by_path_then_order);
    /* a path in several shards (they overlapped): the first shard's row wins,
       and a row wins over a failure */
    for (i = 0; i + 1 < ix->rows.n; i++)
        if (!strcmp(ix->rows.v[i].path, ix->rows.v[i + 1].path)) ix->rows.v[i + 1].drop = 1;
    for (i = 0; i < ix->failed.n; i++)
        if ((i && !strcmp(ix->failed.v[i - 1].path, ix->failed.v[i].path)) || find(&ix->rows, ix->failed.v[i].path))
            ix->failed.v[i].drop = 1;
    if (save(ix, 1, err)) goto done;
    sum->rows = ix->rows.n;
    sum->failed = ix->failed.n;
    rc = 0;
done:
    for (s = 0; s < n_shards; s++) index_free(in[s]);
    clip_free(in);
    index_free(ix);
    clip_unlock_file(lock);
    return rc;
}

/* ------------------------------------------------------------------------
   A features matrix as one .npy file (clip embed --npy) */

int clip_npy_write(const char *path, const float *data, size_t rows, size_t cols, char *err)
{
    unsigned char h[128], w[4];
    size_t hl = npy_header(h, rows, cols), i, n = strlen(path);
    char *tmp = (char *)clip_malloc(n + 5);
    FILE *f;
    int ok;
    if (!tmp) return clip_error(err, "clip: out of memory");
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".new", 5);
    f = clip_fopen(tmp, "wb");
    if (!f) {
        clip_error(err, "clip: %s: %s", tmp, strerror(errno));
        clip_free(tmp);
        return -1;
    }
    ok = fwrite(h, 1, hl, f) == hl;
    if (host_little_endian()) {
        ok = ok && (rows * cols == 0 || fwrite(data, sizeof(float), rows * cols, f) == rows * cols);
    } else {
        for (i = 0; ok && i < rows * cols; i++) {
            uint32_t u;
            memcpy(&u, &data[i], 4);
            put32(w, u);
            ok = fwrite(w, 1, 4, f) == 4;
        }
    }
    ok = ok && clip_sync_file(f, tmp, err) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || clip_replace_file(tmp, path, err)) {
        clip_remove_file(tmp);
        if (ok) { /* the rename's message has no prefix */
            char msg[CLIP_ERR_SIZE];
            memcpy(msg, err, CLIP_ERR_SIZE);
            clip_error(err, "clip: %s", msg);
        } else {
            clip_error(err, "clip: %s: write error (disk full?)", path);
        }
        clip_free(tmp);
        return -1;
    }
    clip_free(tmp);
    return 0;
}
