/* Stacks: capture (libunwind or glibc backtrace), the deduplicated pool and its lock-striped tables, and the pipe
 * libunwind opens moved out of the program's descriptor numbers. Part of recorder.c. */

static inline struct ml_stack_shard *stack_shard_of(uint64_t h) {
    return (struct ml_stack_shard *)(base + H->stack_shards_off) + (h >> 58);
}

/* ---- stacks ----------------------------------------------------------------------------------------------- */

static inline uint64_t hash_pcs(void *const *pcs, int n) {
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (uint64_t)n;
    for (int i = 0; i < n; i++) {
        h = (h ^ (uint64_t)(uintptr_t)pcs[i]) * 0x9e3779b97f4a7c15ULL;
        h = (h << 29) | (h >> 35);
    }
    return mix64(h) | 1;
}

static inline int same_stack(uint32_t id, void *const *pcs, int n) {
    const uint64_t *rec = (const uint64_t *)(base + H->pool_off) + id;
    if (rec[0] != (uint64_t)n) return 0;
    return memcmp(rec + 1, pcs, (size_t)n * 8) == 0;
}

/* Stack tables: word 0 is the capacity, then entries (tag << 32 | id). Lookups take no lock: entries are only
 * added (release-stored after their pool record), and a grown table is published whole; old tables are kept, so a
 * reader still probing one stays safe. */
static void stack_table_grow(struct ml_stack_shard *s) {
    uint64_t cap = s->capacity * 2;
    uint64_t off = region_alloc((cap + 1) * 8);
    if (!off) return;
    uint64_t *old = (uint64_t *)(base + s->table_off) + 1, *fresh = (uint64_t *)(base + off) + 1;
    fresh[-1] = cap;
    for (uint64_t i = 0; i < s->capacity; i++) {
        uint64_t e = old[i];
        if (!e) continue;
        uint32_t id = (uint32_t)e;
        const uint64_t *rec = (const uint64_t *)(base + H->pool_off) + id;
        uint64_t h = hash_pcs((void *const *)(rec + 1), (int)rec[0]);
        for (uint64_t j = h & (cap - 1);; j = (j + 1) & (cap - 1))
            if (!fresh[j]) { fresh[j] = e; break; }
    }
    s->capacity = cap;
    __atomic_store_n(&s->table_off, off, __ATOMIC_RELEASE);
}

static uint32_t probe_stack(struct ml_stack_shard *s, uint64_t h, void *const *pcs, int n) {
    const uint64_t *t = (const uint64_t *)(base + __atomic_load_n(&s->table_off, __ATOMIC_ACQUIRE));
    uint64_t mask = t[0] - 1, tag = h >> 32;
    for (uint64_t j = h & mask;; j = (j + 1) & mask) {
        uint64_t e = __atomic_load_n(&t[1 + j], __ATOMIC_ACQUIRE);
        if (!e) return 0;
        if ((e >> 32) == tag && same_stack((uint32_t)e, pcs, n)) return (uint32_t)e;
    }
}

/* The id of this stack in the pool, stored once. */
static uint32_t intern_stack(void *const *pcs, int n) {
    uint64_t h = hash_pcs(pcs, n);
    struct ml_stack_shard *s = stack_shard_of(h);
    uint32_t tag = (uint32_t)(h >> 32), id = probe_stack(s, h, pcs, n);
    if (LIKELY(id)) return id;
    spin_lock(&s->lock);
    uint64_t *table = (uint64_t *)(base + s->table_off) + 1, mask = s->capacity - 1;
    uint64_t j = h & mask;
    for (;; j = (j + 1) & mask) {
        uint64_t e = table[j];
        if (!e) break;
        if ((uint32_t)(e >> 32) == tag && same_stack((uint32_t)e, pcs, n)) { id = (uint32_t)e; break; }
    }
    if (!id) {
        uint64_t at = atomic_fetch_add(&H->pool_used_words, (uint64_t)n + 1);
        if (at + (uint64_t)n + 1 > H->pool_capacity_words || at + n + 1 > UINT32_MAX) {
            atomic_fetch_add(&H->stacks_dropped, 1);
        } else {
            dump_pool_words(at + (uint64_t)n + 1);
            uint64_t *rec = (uint64_t *)(base + H->pool_off) + at;
            memcpy(rec + 1, pcs, (size_t)n * 8);
            rec[0] = (uint64_t)n;
            id = (uint32_t)at;
            __atomic_store_n(&table[j], ((uint64_t)tag << 32) | id, __ATOMIC_RELEASE);
            if (++s->used * 10 > s->capacity * 7) stack_table_grow(s);
        }
    }
    spin_unlock(&s->lock);
    return id;
}

/* Raw return addresses, innermost first: pcs[0] is the return address into the allocator's caller, as the
 * breakpoint engine records it (the reader symbolizes pc - 1). */
static inline __attribute__((always_inline)) uint32_t capture_stack(void *ret) {
    void *buf[ML_MAX_DEPTH + 8];
    int depth = (int)cfg_depth, n = 0;
    if (depth > ML_MAX_DEPTH) depth = ML_MAX_DEPTH;
    if (depth < 1) depth = 1;
    void **pcs = buf;
    if (depth > 1 && atomic_load_explicit(&init_state, memory_order_acquire) >= 2 && H->unwinder) {
        int saved = errno; /* libunwind's address checks (a read and a write on its pipe) may set it */
        int got = unw_bt ? unw_bt(buf, depth + 6) : backtrace(buf, depth + 6);
        errno = saved;
        for (int i = 0; i < got && i < 8; i++) {
            if (buf[i] == ret) { pcs = buf + i; n = got - i; break; }
        }
    }
    if (!n) { buf[0] = ret; pcs = buf; n = 1; }
    if (n > depth) n = depth;
    return intern_stack(pcs, n);
}

/* libunwind opens a pipe (to check an address before it reads it, on frames without unwind information): two
 * descriptors the program would see at its lowest free numbers (its first open() would get 5, not 3), and that
 * libunwind reopens there after the program closed them (closefrom(3)), then reads and writes them. Pipes made
 * inside the recorder (libunwind's, from capture_stack or init) are moved to the top of the select() range
 * (below min(RLIMIT_NOFILE, 1024)), where a program's own numbers seldom reach; the program's calls go through.
 * (Refusing the pipe instead makes every walk that reaches _start fail its check: two system calls per event.) */
static int move_fd_high(int fd) {
    struct rlimit limit;
    uint64_t top = 1024;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < top) top = limit.rlim_cur;
    if (top <= 64) return fd;
    int high = fcntl(fd, F_DUPFD_CLOEXEC, (int)top - 8);
    if (high < 0) return fd;
    close(fd);
    return high;
}

EXPORT int pipe2(int fds[2], int flags) {
    int ret = (int)syscall(SYS_pipe2, fds, flags);
    if (ret == 0 && UNLIKELY(is_busy())) {
        int saved = errno;
        fds[0] = move_fd_high(fds[0]);
        fds[1] = move_fd_high(fds[1]);
        errno = saved;
    }
    return ret;
}
