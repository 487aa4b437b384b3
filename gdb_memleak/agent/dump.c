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
 * is marked again (dump_apply); blank memory left in its place (detach, a failed fork copy) is never dumped. */

#define DUMP_STEP (2ULL << 20) /* least step, and alignment of step ends: whole huge pages stay in one mapping */

static _Atomic uint64_t dump_pool_end, dump_records_end; /* region offsets up to which each area is dumped */

#ifndef MADV_DONTDUMP /* before Linux 3.4: cores hold the region whole */
#define MADV_DONTDUMP (-1)
#define MADV_DODUMP (-1)
#endif

static void dump_advise(uint64_t off, uint64_t len, int advice) {
    if (!len || advice < 0) return;
    int saved = errno;
    madvise(base + off, len, advice);
    errno = saved;
}

/* The start of the region a core holds whole: header, shard arrays, names, error ring, timeline. */
static uint64_t dump_head(void) {
    return (H->timeline_off + H->timeline_capacity * sizeof(struct ml_point) + 4095) & ~4095ULL;
}

/* The region's marks as the areas' ends say: all of it excluded, then the head and each area's dumped part. */
static void dump_apply(void) {
    dump_advise(0, H->region_size, MADV_DONTDUMP);
    dump_advise(0, dump_head(), MADV_DODUMP);
    dump_advise(H->pool_off, atomic_load(&dump_pool_end) - H->pool_off, MADV_DODUMP);
    dump_advise(H->records_off, atomic_load(&dump_records_end) - H->records_off, MADV_DODUMP);
}

/* A region just laid out: nothing of its areas used yet. */
static void dump_start(void) {
    atomic_store(&dump_pool_end, H->pool_off);
    atomic_store(&dump_records_end, H->records_off);
    dump_apply();
}

/* The area [area_off, area_end) is dumped up to *mark; make it reach `used` (a region offset), a step ahead.
 * Concurrent callers may mark overlapping ranges (harmless); the mark moves only once its range is marked, so a
 * thread that sees the mark past its data knows that data is in any later core. */
static __attribute__((noinline)) void dump_extend(_Atomic uint64_t *mark, uint64_t area_off, uint64_t area_end,
                                                  uint64_t used) {
    if (used > area_end) used = area_end;
    uint64_t at = atomic_load(mark);
    while (used > at) {
        uint64_t step = (at - area_off) / 4 > DUMP_STEP ? (at - area_off) / 4 : DUMP_STEP;
        uint64_t to = (((uint64_t)(uintptr_t)base + used + step) & ~(DUMP_STEP - 1)) - (uint64_t)(uintptr_t)base;
        if (to > area_end) to = area_end;
        dump_advise(at, to - at, MADV_DODUMP);
        if (atomic_compare_exchange_weak(mark, &at, to)) return; /* else `at` is the mark another thread set */
    }
}

/* Before words [.., words) of the pool are written. */
static inline void dump_pool_words(uint64_t words) {
    uint64_t used = H->pool_off + words * 8;
    if (UNLIKELY(used > atomic_load_explicit(&dump_pool_end, memory_order_relaxed)))
        dump_extend(&dump_pool_end, H->pool_off, H->pool_off + H->pool_capacity_words * 8, used);
}

/* Before records [.., records) of the record area are written. */
static inline void dump_records(uint64_t records) {
    uint64_t used = H->records_off + records * sizeof(struct ml_record);
    if (UNLIKELY(used > atomic_load_explicit(&dump_records_end, memory_order_relaxed)))
        dump_extend(&dump_records_end, H->records_off, H->records_off + H->records_capacity * sizeof(struct ml_record),
                    used);
}
