/* What a core dump holds of the region. Part of recorder.c.
 *
 * The region reserves 64 GiB of address space. Both the kernel's core dump and GDB's `gcore` write a mapping whole
 * (the kernel even faults in every page of a shared one) unless it is marked VM_DONTDUMP (MADV_DONTDUMP; "dd" in
 * /proc/PID/smaps, which gcore reads): unmarked, a 10-block program's core was 11 GB. So a core holds exactly what
 * GDB reads from it (core/agent_format.py read_snapshot): the header, shard array, allocator names, error ring
 * and timeline at the region's start, and the used parts of the stack pool and of the record area. The rest is
 * never dumped: the shard indexes and stack hash tables (the recorder's own look-ups), the rings of freed and
 * dropped addresses, and the unused tails of the pool and record area. As the pool and the record area fill,
 * their used part is marked MADV_DODUMP ahead of use, in steps that grow with it (a few dozen calls up to
 * millions of blocks): a core's size follows the table's. A mapping laid over the region (a forked child's copy)
 * is marked again (dump_apply); blank memory left in its place (detach, a failed fork copy) is never dumped.
 * The recorder's arena (arena.c: 4 MiB of its .bss, mostly never used) is dumped the same way, up to its use. */

#ifndef MADV_DONTDUMP /* before Linux 3.4: cores hold the region whole */
#define MADV_DONTDUMP (-1)
#define MADV_DODUMP (-1)
#endif

/* An area that fills from its start: [start, start + size), dumped up to `end` bytes, in steps of at least `step`
 * (and ending on a multiple of it: with 2 MiB, whole huge pages stay in one mapping). */
struct dump_area {
    char *start;
    uint64_t size, step;
    _Atomic uint64_t end;
};

static struct dump_area dump_pool = {.step = 2ULL << 20}, dump_records = {.step = 2ULL << 20};

static void dump_advise(char *at, uint64_t len, int advice) {
    if (!len || advice < 0) return;
    int saved = errno;
    madvise(at, len, advice);
    errno = saved;
}

/* `a` is dumped up to its mark, the rest of it is not (`start` and `size` on page boundaries). */
static void dump_area_apply(struct dump_area *a) {
    uint64_t end = atomic_load(&a->end);
    dump_advise(a->start, end, MADV_DODUMP);
    dump_advise(a->start + end, a->size - end, MADV_DONTDUMP);
}

/* Make `a` dumped up to `used` bytes, a step ahead (a quarter of what it holds, at least `step`). Concurrent callers
 * may mark overlapping ranges (harmless); the mark moves only once its range is marked, so a thread that sees the
 * mark past its data knows that data is in any later core. */
static __attribute__((noinline)) void dump_extend(struct dump_area *a, uint64_t used) {
    if (used > a->size) used = a->size;
    uint64_t at = atomic_load(&a->end);
    while (used > at) {
        uint64_t step = at / 4 > a->step ? at / 4 : a->step;
        uint64_t to = (((uint64_t)(uintptr_t)a->start + used + step) & ~(a->step - 1)) - (uint64_t)(uintptr_t)a->start;
        if (to > a->size) to = a->size;
        dump_advise(a->start + at, to - at, MADV_DODUMP);
        if (atomic_compare_exchange_weak(&a->end, &at, to)) return; /* else `at` is the mark another thread set */
    }
}

static inline void dump_reach(struct dump_area *a, uint64_t used) {
    if (UNLIKELY(used > atomic_load_explicit(&a->end, memory_order_relaxed))) dump_extend(a, used);
}

/* The start of the region a core holds whole: header, shard arrays, names, error ring, timeline. */
static uint64_t dump_head(void) {
    return (H->timeline_off + H->timeline_capacity * sizeof(struct ml_point) + 4095) & ~4095ULL;
}

/* The region's marks as the areas' ends say: the head dumped, the pool and record area up to their marks, the rest
 * (indexes, rings, what lies past the record area) never. */
static void dump_apply(void) {
    dump_advise(base, H->region_size, MADV_DONTDUMP);
    dump_advise(base, dump_head(), MADV_DODUMP);
    dump_area_apply(&dump_pool);
    dump_area_apply(&dump_records);
}

/* A region just laid out: nothing of its areas used yet. */
static void dump_start(void) {
    dump_pool.start = base + H->pool_off;
    dump_pool.size = H->pool_capacity_words * 8;
    dump_records.start = base + H->records_off;
    dump_records.size = H->records_capacity * sizeof(struct ml_record);
    atomic_store(&dump_pool.end, 0);
    atomic_store(&dump_records.end, 0);
    dump_apply();
}

/* Before words [.., words) of the pool are written. */
static inline void dump_pool_words(uint64_t words) { dump_reach(&dump_pool, words * 8); }

/* Before records [.., records) of the record area are written. */
static inline void dump_records_used(uint64_t records) { dump_reach(&dump_records, records * sizeof(struct ml_record)); }
