/* Memory for the recorder's own reentrant calls: the bump arena, the loader pages, and the loader's block our dlopen
 * of libunwind took from the program. Part of recorder.c. */

/* ---- the dynamic loader's bookkeeping block our dlopen took from the program -------------------------------
 *
 * glibc 2.35+ keeps two chains of _dl_find_object segments, written alternately by each dlopen that adds objects;
 * a chain gets its first segment (malloc, 2,304 bytes: 63 entries, 128-byte aligned inside) the first time it is
 * written. Natively a program's first two such dlopens allocate one segment each. Our dlopen of libunwind takes
 * the first one (served by the arena, unseen), so the program's second dlopen finds that chain already allocated
 * and allocates nothing. The block is the program's from the moment the loader writes into it again (that is
 * when the program would have allocated it): it is then recorded as a malloc at that point, where it lies, with
 * the program's stack (it is never freed: its only pointer is the loader's, to its aligned interior, as natively).
 * Found among the arena blocks our dlopen allocated by its shape: at its first 128-byte boundary, a segment
 * header {previous = NULL, to_free = the block, size, allocated}. Its address is kept complemented: a pointer to it in
 * our memory would make it reachable for GDB's scan (valgrind sees it possibly lost: only the interior pointer). */

struct dlfo_header { void *previous, *to_free; size_t size, allocated; };
static uintptr_t loader_pages_lo, loader_pages_span; /* see loader_page */
static struct { uintptr_t block_not; size_t bytes; } loader_blocks[64]; /* ~address, size */
static atomic_int loader_logging, loader_block_count;
static struct dlfo_header *dlfo_taken;   /* the segment inside the block, while the program has not used it */
static uintptr_t dlfo_block_not;        /* ~address */
static size_t dlfo_block_bytes, dlfo_size_then;

static void note_loader_block(void *p, size_t size) {
    if (!atomic_load_explicit(&loader_logging, memory_order_relaxed)) return;
    int n = atomic_fetch_add(&loader_block_count, 1);
    if (n < (int)(sizeof loader_blocks / sizeof loader_blocks[0])) {
        loader_blocks[n].block_not = ~(uintptr_t)p;
        loader_blocks[n].bytes = size;
    }
}

static void find_taken_segment(void) {
    int n = atomic_load(&loader_block_count);
    if (n > (int)(sizeof loader_blocks / sizeof loader_blocks[0])) n = sizeof loader_blocks / sizeof loader_blocks[0];
    for (int i = 0; i < n; i++) {
        uintptr_t start = ~loader_blocks[i].block_not, end = start + loader_blocks[i].bytes;
        if (start - loader_pages_lo >= loader_pages_span) continue; /* only a block on a page of its own */
        uintptr_t at = (start + 127) & ~(uintptr_t)127;
        if (at + sizeof(struct dlfo_header) > end) continue;
        struct dlfo_header *seg = (struct dlfo_header *)at;
        if (seg->to_free != (void *)start || seg->previous || !seg->size || seg->size > seg->allocated
            || seg->allocated > (end - at) / sizeof(void *))
            continue;
        dlfo_block_not = ~start;
        dlfo_block_bytes = loader_blocks[i].bytes;
        dlfo_size_then = seg->size;
        __atomic_store_n(&dlfo_taken, seg, __ATOMIC_RELEASE);
        return;
    }
}

/* ---- the bump arena for calls the real allocator cannot serve (before dlsym, inside the recorder) --------- */

static char arena[ML_ARENA_BYTES] __attribute__((aligned(64)));
static atomic_size_t arena_used;
static struct dump_area dump_arena = {.step = 64 << 10}; /* a core holds the arena up to its use (dump.c) */

/* Before the arena's first `used` bytes are written (nothing to do before dump_arena_start has marked it). */
static inline void dump_arena_used(size_t used) {
    if (dump_arena.start && arena + used > dump_arena.start)
        dump_reach(&dump_arena, (uint64_t)(arena + used - dump_arena.start));
}

/* The arena's whole pages, marked once (the constructor): dumped up to what is used, the rest never. */
static void dump_arena_start(void) {
    char *lo = (char *)(((uintptr_t)arena + 4095) & ~(uintptr_t)4095);
    dump_arena.size = (((uintptr_t)(arena + sizeof arena)) & ~(uintptr_t)4095) - (uintptr_t)lo;
    atomic_store(&dump_arena.end, 0);
    dump_arena.start = lo;
    dump_area_apply(&dump_arena);
    dump_arena_used(atomic_load(&arena_used));
}

static int in_arena(const void *p) {
    return ((const char *)p >= arena && (const char *)p < arena + sizeof arena)
        || (uintptr_t)p - loader_pages_lo < loader_pages_span;
}

/* A page of its own, between inaccessible ones, for a block the loader allocates during our dlopen that may be
 * its _dl_find_object segment: that block may become the program's (above), and GDB takes no root from a mapping
 * that holds a block, so it must not share one with the arena (libunwind's link map in there links the program's
 * later ones). At most 8, from one reserved range (one comparison in in_arena). */
#define LOADER_PAGES 8
static void *loader_page(size_t size) {
    static int used;
    if (size < 2048 || size + 16 > 4096 || used >= LOADER_PAGES) return NULL;
    if (!loader_pages_lo) {
        void *m = mmap(NULL, (2 * LOADER_PAGES + 1) * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return NULL;
        loader_pages_lo = (uintptr_t)m;
        loader_pages_span = (2 * LOADER_PAGES + 1) * 4096;
    }
    char *page = (char *)loader_pages_lo + (2 * used + 1) * 4096;
    if (mprotect(page, 4096, PROT_READ | PROT_WRITE) != 0) return NULL;
    used++;
    ((size_t *)(page + 16))[-1] = size;
    return page + 16;
}

static void *arena_alloc(size_t size, size_t align) {
    if (align < 16) align = 16;
    if (UNLIKELY(atomic_load_explicit(&loader_logging, memory_order_relaxed)) && align == 16) {
        void *page = loader_page(size);
        if (page) {
            note_loader_block(page, size);
            return page;
        }
    }
    size_t need = size + align + 16;
    size_t at = atomic_fetch_add(&arena_used, (need + 15) & ~(size_t)15);
    if (at + need > sizeof arena) { /* exhausted: raw pages, never released (only the recorder's own calls) */
        char *m = mmap(NULL, size + align + 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return NULL;
        return m + align;
    }
    dump_arena_used(at + need);
    uintptr_t p = ((uintptr_t)(arena + at + 16) + align - 1) & ~(uintptr_t)(align - 1);
    ((size_t *)p)[-1] = size;
    return (void *)p;
}

static size_t arena_size(const void *p) { return ((const size_t *)p)[-1]; }
