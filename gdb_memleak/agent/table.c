/* The block table: per-shard indexes of records, the filter of dropped blocks, the freed ring, the live figures
 * and timeline, and record_alloc / record_free (inlined into each hook). Part of recorder.c. */

/* ---- the no-op functions GDB breaks on ------------------------------------------------------------------- */

EXPORT __attribute__((noinline, noipa, used)) void memleak_agent_error(struct ml_error *error) {
    __asm__ volatile("" : : "r"(error) : "memory");
}

EXPORT __attribute__((noinline, noipa, used)) void memleak_agent_break_alloc(struct ml_record *record) {
    __asm__ volatile("" : : "r"(record) : "memory");
}

static inline struct ml_shard *shard_of(uint64_t h) {
    return (struct ml_shard *)(base + H->shards_off) + (h >> 58);
}

/* ---- the block table -------------------------------------------------------------------------------------- */

static inline struct ml_index_entry *index_of(struct ml_shard *s) { return (struct ml_index_entry *)(base + s->table_off); }
static inline struct ml_record *record_at(uint64_t n) { return (struct ml_record *)(base + H->records_off) + n; }

static struct ml_index_entry *find_entry(struct ml_shard *s, uint64_t addr, uint64_t h) {
    struct ml_index_entry *t = index_of(s);
    uint64_t mask = s->capacity - 1;
    for (uint64_t j = h & mask;; j = (j + 1) & mask) {
        if (t[j].addr == addr) return &t[j];
        if (!t[j].addr) return NULL;
    }
}

static struct ml_record *find_record(struct ml_shard *s, uint64_t addr, uint64_t h) {
    struct ml_index_entry *e = find_entry(s, addr, h);
    return e ? record_at(e->record) : NULL;
}

static void shard_grow(struct ml_shard *s) {
    uint64_t cap = s->capacity * 2;
    uint64_t off = region_alloc(cap * sizeof(struct ml_index_entry));
    if (!off) return;
    struct ml_index_entry *old = index_of(s), *fresh = (struct ml_index_entry *)(base + off);
    for (uint64_t i = 0; i < s->capacity; i++) {
        if (!old[i].addr) continue;
        uint64_t h = mix64(old[i].addr);
        for (uint64_t j = h & (cap - 1);; j = (j + 1) & (cap - 1))
            if (!fresh[j].addr) { fresh[j] = old[i]; break; }
    }
    uint64_t old_off = s->table_off, old_cap = s->capacity;
    __atomic_store_n(&s->capacity, cap, __ATOMIC_RELEASE);
    __atomic_store_n(&s->table_off, off, __ATOMIC_RELEASE);
    region_release(old_off, old_cap * sizeof(struct ml_index_entry));
}

/* A record for a new block, from the shard's free records, else its chunk of the area (UINT64_MAX: area full). */
static uint64_t record_take(struct ml_shard *s) {
    if (s->free_records) {
        uint64_t n = s->free_records - 1;
        s->free_records = record_at(n)->seq;
        return n;
    }
    if (s->chunk_next == s->chunk_end) {
        if (atomic_load_explicit(&H->records_used, memory_order_relaxed) >= H->records_capacity) return UINT64_MAX;
        uint64_t at = atomic_fetch_add(&H->records_used, ML_CHUNK);
        if (at + ML_CHUNK > H->records_capacity) return UINT64_MAX;
        dump_records_used(at + ML_CHUNK);
        s->chunk_next = at;
        s->chunk_end = at + ML_CHUNK;
    }
    return s->chunk_next++;
}

/* Linear probing with backward-shift deletion: no tombstones. The record goes back to the shard's free list. */
static void delete_entry(struct ml_shard *s, struct ml_index_entry *victim) {
    struct ml_index_entry *t = index_of(s);
    uint64_t mask = s->capacity - 1;
    uint64_t i = (uint64_t)(victim - t);
    struct ml_record *record = record_at(victim->record);
    memset(record, 0, sizeof *record);
    record->seq = s->free_records;
    s->free_records = victim->record + 1;
    for (uint64_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        if (!t[j].addr) break;
        uint64_t home = mix64(t[j].addr) & mask;
        /* can t[j] move to i? yes unless its home lies cyclically in (i, j] */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            t[i] = t[j];
            i = j;
        }
    }
    t[i].addr = 0;
    t[i].record = 0;
    s->used--;
}

/* The index entry a lookup of `h` starts at, fetched into the cache while the stack is captured: in a table of a
 * million blocks that first probe is a cache miss, the main cost of an allocation (a stale table or capacity, read
 * without the lock, only makes the prefetch useless: a prefetch never faults). */
static inline void prefetch_entry(struct ml_shard *s, uint64_t h) {
    uint64_t cap = __atomic_load_n(&s->capacity, __ATOMIC_RELAXED);
    __builtin_prefetch(index_of(s) + (h & (cap - 1)), 1, 3);
}

/* The record of the block at `addr`: its existing one (a block whose free was never seen), else a new one; NULL
 * when the record area is full. */
static struct ml_record *insert_record(struct ml_shard *s, uint64_t addr, uint64_t h) {
    if ((s->used + 1) * 10 > s->capacity * 7) shard_grow(s);
    if (s->used + 1 >= s->capacity) return find_record(s, addr, h); /* could not grow: a new block is dropped */
    struct ml_index_entry *t = index_of(s);
    uint64_t mask = s->capacity - 1;
    for (uint64_t j = h & mask;; j = (j + 1) & mask) {
        if (t[j].addr == addr) return record_at(t[j].record);
        if (!t[j].addr) {
            uint64_t n = record_take(s);
            if (n == UINT64_MAX) return NULL;
            t[j].addr = addr;
            t[j].record = n;
            s->used++;
            return record_at(n);
        }
    }
}

/* Blocks not recorded once the record area (or a shard's index) is full: their addresses go into a filter (two bits
 * each), so that their release is not called an invalid free; a free of any other unknown address still is (a
 * filter answers "maybe" wrongly only as it fills). */
static inline uint64_t *dropped_bits(void) { return (uint64_t *)(base + dropped_off); }
static inline uint64_t dropped_bit(uint64_t h, int k) { return (k ? h >> 32 : h) & (ML_DROPPED_BITS - 1); }

static void note_dropped(uint64_t h) {
    for (int k = 0; k < 2; k++) {
        uint64_t bit = dropped_bit(h, k);
        atomic_fetch_or_explicit((_Atomic uint64_t *)&dropped_bits()[bit / 64], 1ULL << (bit % 64),
                                 memory_order_relaxed);
    }
}

static int maybe_dropped(uint64_t h) {
    if (!atomic_load_explicit(&H->blocks_dropped, memory_order_relaxed)) return 0;
    for (int k = 0; k < 2; k++) {
        uint64_t bit = dropped_bit(h, k);
        if (!(__atomic_load_n(&dropped_bits()[bit / 64], __ATOMIC_RELAXED) & (1ULL << (bit % 64)))) return 0;
    }
    return 1;
}

/* Remember a freed block (bounded per shard, oldest forgotten first). */
static void remember_freed(struct ml_shard *s, struct ml_record *record) {
    uint64_t *ring = (uint64_t *)(base + s->freed_ring_off);
    uint64_t k = (s->freed_head++ % ML_FREED_PER_SHARD) * 2;
    if (s->freed_head > ML_FREED_PER_SHARD) {
        uint64_t old_addr = ring[k], old_seq = ring[k + 1];
        struct ml_index_entry *old = find_entry(s, old_addr, mix64(old_addr));
        if (old) {
            struct ml_record *freed = record_at(old->record);
            if (freed->state == ST_FREED && freed->seq == old_seq && freed != record) delete_entry(s, old);
        }
    }
    ring[k] = record->addr;
    ring[k + 1] = record->seq;
}

/* Record the due timeline point (the caller holds timeline_lock); when the points fill their area, each pair
 * becomes its later point carrying both peaks and the interval doubles: bounded memory, the whole run covered, no
 * peak dropped (as core/timeline.py does for the breakpoint engine). */
static void timeline_record(uint64_t t, int64_t blocks, int64_t bytes) {
    struct ml_point *p = (struct ml_point *)(base + H->timeline_off);
    uint64_t n = atomic_load_explicit(&H->timeline_count, memory_order_relaxed);
    int64_t hi_bytes = atomic_load_explicit(&H->timeline_hi_bytes, memory_order_relaxed);
    int64_t hi_blocks = atomic_load_explicit(&H->timeline_hi_blocks, memory_order_relaxed);
    p[n] = (struct ml_point){t, bytes, blocks, hi_bytes > bytes ? hi_bytes : bytes,
                             hi_blocks > blocks ? hi_blocks : blocks};
    atomic_store_explicit(&H->timeline_hi_bytes, bytes, memory_order_relaxed);
    atomic_store_explicit(&H->timeline_hi_blocks, blocks, memory_order_relaxed);
    if (++n >= H->timeline_capacity) {
        uint64_t half = n / 2;
        for (uint64_t i = 0; i < half; i++) {
            struct ml_point a = p[2 * i], b = p[2 * i + 1];
            p[i] = (struct ml_point){b.t_ns, b.bytes, b.blocks, a.peak_bytes > b.peak_bytes ? a.peak_bytes : b.peak_bytes,
                                     a.peak_blocks > b.peak_blocks ? a.peak_blocks : b.peak_blocks};
        }
        if (n % 2) p[half++] = p[n - 1];
        n = half;
        H->timeline_interval_ns *= 2;
    }
    atomic_store_explicit(&H->timeline_count, n, memory_order_release);
    atomic_store_explicit(&H->timeline_due_ns, t + H->timeline_interval_ns, memory_order_relaxed);
}

/* After every change of the live figures: keep their highest values, and record a point when one is due (a load
 * and a compare on the hot path; racing threads may lose a peak update, never corrupt a point). */
static inline void timeline_tick(uint64_t t, int64_t blocks, int64_t bytes) {
    if (bytes > atomic_load_explicit(&H->timeline_hi_bytes, memory_order_relaxed))
        atomic_store_explicit(&H->timeline_hi_bytes, bytes, memory_order_relaxed);
    if (blocks > atomic_load_explicit(&H->timeline_hi_blocks, memory_order_relaxed))
        atomic_store_explicit(&H->timeline_hi_blocks, blocks, memory_order_relaxed);
    if (LIKELY(t < atomic_load_explicit(&H->timeline_due_ns, memory_order_relaxed))) return;
    if (atomic_exchange_explicit(&H->timeline_lock, 1, memory_order_acquire)) return;
    if (t >= atomic_load_explicit(&H->timeline_due_ns, memory_order_relaxed)) timeline_record(t, blocks, bytes);
    atomic_store_explicit(&H->timeline_lock, 0, memory_order_release);
}

static inline void add_live(int64_t blocks, int64_t bytes, uint64_t t) {
    int64_t lb = atomic_fetch_add_explicit(&H->live_blocks, blocks, memory_order_relaxed) + blocks;
    int64_t ly = atomic_fetch_add_explicit(&H->live_bytes, bytes, memory_order_relaxed) + bytes;
    if (blocks > 0) {
        int64_t p = atomic_load_explicit(&H->peak_blocks, memory_order_relaxed);
        while (lb > p && !atomic_compare_exchange_weak(&H->peak_blocks, &p, lb)) {}
        p = atomic_load_explicit(&H->peak_bytes, memory_order_relaxed);
        while (ly > p && !atomic_compare_exchange_weak(&H->peak_bytes, &p, ly)) {}
    }
    timeline_tick(t, lb, ly);
}

/* Inlined into each hook, as capture_stack is into it: every frame between the unwinder and the program is one more
 * step of every backtrace (10% of a malloc/free pair). */
static inline __attribute__((always_inline)) void record_alloc(void *ptr, size_t size, unsigned allocator,
                                                               void *ret) {
    if (UNLIKELY(!ptr)) {
        atomic_fetch_add_explicit(&H->failed_allocs, 1, memory_order_relaxed);
        return;
    }
    int was_busy = busy_enter();
    uint64_t addr = (uint64_t)(uintptr_t)ptr, h = mix64(addr);
    struct ml_shard *s = shard_of(h);
    prefetch_entry(s, h);
    uint32_t stack = capture_stack(ret);
    uint64_t seq = atomic_fetch_add(&H->seq, 1) + 1;
    uint64_t t = coarse_ns();
    int64_t stale = -1;
    spin_lock(&s->lock);
    struct ml_record *record = insert_record(s, addr, h);
    if (UNLIKELY(!record)) { /* the record area is full: counted in the totals, not in the table */
        s->allocs++;
        s->bytes_allocated += size;
        note_dropped(h);
        spin_unlock(&s->lock);
        atomic_fetch_add_explicit(&H->blocks_dropped, 1, memory_order_relaxed);
        busy_leave(was_busy);
        return;
    }
    if (record->addr == addr && record->state == ST_LIVE) stale = (int64_t)record->size; /* its free was never seen */
    record->size = size;
    record->seq = seq;
    record->time_ns = t;
    record->stack = stack;
    record->tid = my_tid();
    record->allocator = (uint16_t)allocator;
    record->free_stack = 0;
    record->free_time_ns = 0;
    record->free_tid = 0;
    record->state = ST_LIVE;
    record->addr = addr;
    s->allocs++;
    s->bytes_allocated += size;
    struct ml_record copy = *record;
    spin_unlock(&s->lock);
    if (stale >= 0) add_live(-1, -stale, t);
    add_live(1, (int64_t)size, t);
    if (UNLIKELY(H->break_seq == seq)) memleak_agent_break_alloc(&copy);
    busy_leave(was_busy);
}

/* Report a bad release; returns whether the release should still be performed. */
static int report_error(int type, uint64_t addr, unsigned allocator, void *ret, const struct ml_record *block) {
    uint64_t n = atomic_fetch_add(&H->error_count, 1);
    struct ml_error *e = (struct ml_error *)(base + H->errors_off) + (n % ML_ERRORS);
    memset(e, 0, sizeof *e);
    e->type = (uint64_t)type;
    e->addr = addr;
    e->tid = my_tid();
    e->time_ns = now_ns();
    e->stack = capture_stack(ret);
    e->allocator = allocator;
    e->alloc_stack = block ? block->stack : 0;
    e->free_stack = block && type == ERR_DOUBLE ? block->free_stack : 0;
    e->block_size = block ? block->size : UINT64_MAX;
    e->alloc_allocator = block ? block->allocator : UINT64_MAX;
    e->skip = type == ERR_MISMATCHED ? 0 : H->skip_bad_frees;
    e->seq = n + 1;
    memleak_agent_error(e);
    /* a mismatched release still releases (valgrind); GDB's on-error skip only applies to the others */
    return type == ERR_MISMATCHED || !e->skip;
}

static int operator_half_native(const struct ml_record *block, void *ret);

/* Attached: allocations numbered up to this one were made while the slots were being redirected, when a call of
 * the same thread could still go natively (another allocator's slot not yet written): the address of a block
 * freed through a hook may have been handed out again unseen. A release of such a block known freed, or of
 * another family, is counted untracked, not reported. */
static _Atomic uint64_t transition_seq;
static inline int in_attach_transition(uint64_t seq) {
    return seq <= atomic_load_explicit(&transition_seq, memory_order_relaxed);
}

/* Record a release of `ptr`; returns whether the real release should be performed. */
static inline __attribute__((always_inline)) int record_free(void *ptr, unsigned allocator, void *ret) {
    int was_busy = busy_enter();
    uint64_t addr = (uint64_t)(uintptr_t)ptr, h = mix64(addr);
    struct ml_shard *s = shard_of(h);
    prefetch_entry(s, h);
    uint32_t stack = capture_stack(ret);
    uint64_t t = coarse_ns();
    spin_lock(&s->lock);
    struct ml_record *record = find_record(s, addr, h);
    int perform = 1;
    if (record && record->state == ST_LIVE) {
        uint64_t size = record->size;
        int mismatched = ml_family(record->allocator) != ml_family(allocator)
                         && ml_family(record->allocator) != ML_FAMILY_ANY;
        record->state = ST_FREED;
        record->free_stack = stack;
        record->free_time_ns = t;
        record->free_tid = my_tid();
        s->frees++;
        struct ml_record copy = *record;
        remember_freed(s, record);
        spin_unlock(&s->lock);
        add_live(-1, -(int64_t)size, t);
        if (UNLIKELY(mismatched) && !in_attach_transition(copy.seq) && !operator_half_native(&copy, ret))
            report_error(ERR_MISMATCHED, addr, allocator, ret, &copy);
    } else {
        struct ml_record copy;
        int known = record != NULL, untracked = !H->complete && (!known || in_attach_transition(record->seq));
        if (known) copy = *record;
        if (!untracked) s->frees++; /* valgrind counts the bad free too */
        spin_unlock(&s->lock);
        if (untracked) /* attached: a block from before the attach (or one glibc made without a GOT call) */
            atomic_fetch_add_explicit(&H->untracked_frees, 1, memory_order_relaxed);
        else if (known || !maybe_dropped(h)) /* a block the full table could not record is released silently */
            perform = report_error(known ? ERR_DOUBLE : ERR_INVALID, addr, allocator, ret, known ? &copy : NULL);
    }
    busy_leave(was_busy);
    return perform;
}

/* Before a realloc: is `ptr` a live block? (A bad one is reported as the breakpoint engine does, at the call.) */
static int is_live(void *ptr) {
    uint64_t addr = (uint64_t)(uintptr_t)ptr, h = mix64(addr);
    struct ml_shard *s = shard_of(h);
    int was_busy = busy_enter(); /* whoever holds a lock is busy: a fork from a signal handler then takes none */
    spin_lock(&s->lock);
    struct ml_record *record = find_record(s, addr, h);
    int live = record && record->state == ST_LIVE;
    spin_unlock(&s->lock);
    busy_leave(was_busy);
    return live;
}

/* Undo the free half of a realloc that failed (the block stays live). */
static void unfree(void *ptr) {
    uint64_t addr = (uint64_t)(uintptr_t)ptr, h = mix64(addr);
    struct ml_shard *s = shard_of(h);
    int was_busy = busy_enter();
    spin_lock(&s->lock);
    struct ml_record *record = find_record(s, addr, h);
    uint64_t size = 0;
    if (record && record->state == ST_FREED) {
        record->state = ST_LIVE;
        record->free_stack = 0;
        s->frees--;
        size = record->size;
    }
    spin_unlock(&s->lock);
    if (record) add_live(1, (int64_t)size, coarse_ns());
    busy_leave(was_busy);
}
