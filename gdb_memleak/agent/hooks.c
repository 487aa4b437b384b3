/* The interposed allocator functions (the list: hooked.def). Part of recorder.c: record_alloc, record_free and
 * capture_stack are inlined into each hook. */

/* ---- the hooks -------------------------------------------------------------------------------------------- */

#define RET() __builtin_return_address(0)

EXPORT void *malloc(size_t size) {
    if (UNLIKELY(is_busy())) return arena_alloc(size, 16);
    ensure_init();
    CALL_COUNTED(call);
    if (forward_only(call)) return R.malloc(size);
    void *p = R.malloc(size);
    record_alloc(p, size, A_MALLOC, RET());
    return p;
}

EXPORT void *calloc(size_t n, size_t m) {
    if (UNLIKELY(is_busy())) {
        size_t total;
        if (__builtin_mul_overflow(n, m, &total)) return NULL;
        return arena_alloc(total, 16); /* the arena is never reused: already zero */
    }
    ensure_init();
    CALL_COUNTED(call);
    if (forward_only(call)) return R.calloc(n, m);
    void *p = R.calloc(n, m);
    size_t total;
    if (__builtin_mul_overflow(n, m, &total)) total = 0;
    uintptr_t ret = (uintptr_t)RET();
    if (UNLIKELY(m == 16 && ret >= ldso_start && ret < ldso_end && total > dtv_extra_bytes))
        total -= dtv_extra_bytes; /* a thread's DTV (dtv_t is 16 bytes), longer only because we loaded libunwind */
    record_alloc(p, total, A_CALLOC, (void *)ret);
    return p;
}

/* The loader frees its list of new objects right after writing the _dl_find_object segments (every dlopen that
 * adds objects): the moment to see whether it wrote into the segment our dlopen took. */
static __attribute__((noinline)) void loader_freed(void *ret) {
    struct dlfo_header *seg = __atomic_load_n(&dlfo_taken, __ATOMIC_ACQUIRE);
    if (!seg || __atomic_load_n(&seg->size, __ATOMIC_RELAXED) == dlfo_size_then)
        return;
    if (__atomic_exchange_n(&dlfo_taken, NULL, __ATOMIC_ACQ_REL) == seg)
        record_alloc((void *)~dlfo_block_not, dlfo_block_bytes, A_MALLOC, ret);
}

EXPORT void free(void *p) {
    if (!p || in_arena(p)) return;
    if (UNLIKELY(is_busy())) { if (R.free) R.free(p); return; }
    ensure_init();
    CALL_COUNTED(call);
    if (forward_only(call)) { R.free(p); return; }
    if (record_free(p, A_FREE, RET())) R.free(p);
    if (UNLIKELY(__atomic_load_n(&dlfo_taken, __ATOMIC_RELAXED) != NULL)
        && (uintptr_t)RET() - ldso_start < ldso_end - ldso_start)
        loader_freed(RET());
}

static void *realloc_common(void *p, size_t size, unsigned allocator, void *ret,
                            void *(*real)(void *, size_t, size_t), size_t n, size_t m) {
    if (!p) {
        void *q = real(NULL, n, m);
        record_alloc(q, size, allocator, ret);
        return q;
    }
    if (in_arena(p)) { /* a block from before the real allocator was found: move it out */
        void *q = real(NULL, n, m);
        if (q) memcpy(q, p, arena_size(p) < size ? arena_size(p) : size);
        record_alloc(q, size, allocator, ret);
        return q;
    }
    if (!is_live(p)) { /* reported at the call: glibc may abort before it returns */
        if (!record_free(p, allocator, ret)) {
            /* skipped (returns NULL): valgrind, which never performs it either, still counts the allocation */
            struct ml_shard *s = shard_of(mix64((uint64_t)(uintptr_t)p));
            int was_busy = busy_enter();
            spin_lock(&s->lock);
            s->allocs++;
            s->bytes_allocated += size;
            spin_unlock(&s->lock);
            busy_leave(was_busy);
            return NULL;
        }
        void *q = real(p, n, m);
        record_alloc(q, size, allocator, ret);
        return q;
    }
    /* release first: once the real realloc returns, another thread may be handed the old address */
    record_free(p, allocator, ret);
    void *q = real(p, n, m);
    if (!q) {
        if (size != 0) { unfree(p); atomic_fetch_add(&H->failed_allocs, 1); }
        return NULL; /* realloc(p, 0) returning NULL freed p (glibc) */
    }
    record_alloc(q, size, allocator, ret);
    return q;
}

static void *real_realloc2(void *p, size_t n, size_t m) { (void)m; return R.realloc(p, n); }
/* glibc's reallocarray calls realloc through the PLT (this library's hook): do what it does over the real one */
static void *real_reallocarray3(void *p, size_t n, size_t m) {
    size_t total;
    if (__builtin_mul_overflow(n, m, &total)) { errno = ENOMEM; return NULL; }
    return R.realloc(p, total);
}

EXPORT void *realloc(void *p, size_t size) {
    if (UNLIKELY(is_busy())) {
        if (p && !in_arena(p)) return R.realloc ? R.realloc(p, size) : NULL;
        void *q = arena_alloc(size, 16);
        if (p && q) memcpy(q, p, arena_size(p) < size ? arena_size(p) : size);
        return q;
    }
    ensure_init();
    CALL_COUNTED(call);
    if (forward_only(call)) return R.realloc(p, size);
    return realloc_common(p, size, A_REALLOC, RET(), real_realloc2, size, 0);
}

EXPORT void *reallocarray(void *p, size_t n, size_t m) {
    size_t total;
    if (__builtin_mul_overflow(n, m, &total)) { errno = ENOMEM; return NULL; }
    if (UNLIKELY(is_busy())) return realloc(p, total);
    ensure_init();
    CALL_COUNTED(call);
    if (forward_only(call)) return real_reallocarray3(p, n, m);
    return realloc_common(p, total, A_REALLOCARRAY, RET(), real_reallocarray3, n, m);
}

EXPORT int posix_memalign(void **out, size_t align, size_t size) {
    if (UNLIKELY(is_busy())) {
        void *p = arena_alloc(size, align);
        if (!p) return ENOMEM;
        *out = p;
        return 0;
    }
    ensure_init();
    CALL_COUNTED(call);
    if (forward_only(call)) return R.posix_memalign(out, align, size);
    int rc = R.posix_memalign(out, align, size);
    record_alloc(rc == 0 ? *out : NULL, size, A_POSIX_MEMALIGN, RET());
    return rc;
}

#define ALIGNED_HOOK(name, id)                                                                                 \
    EXPORT void *name(size_t align, size_t size) {                                                             \
        if (UNLIKELY(is_busy())) return arena_alloc(size, align);                                                 \
        ensure_init();                                                                                         \
        CALL_COUNTED(call);                                                                                    \
        if (forward_only(call)) return R.name(align, size);                                                    \
        void *p = R.name(align, size);                                                                         \
        record_alloc(p, size, id, RET());                                                                      \
        return p;                                                                                              \
    }

#define PAGE_HOOK(name, id)                                                                                    \
    EXPORT void *name(size_t size) {                                                                           \
        if (UNLIKELY(is_busy())) return arena_alloc(size, 4096);                                                  \
        ensure_init();                                                                                         \
        CALL_COUNTED(call);                                                                                    \
        if (forward_only(call)) return R.name(size);                                                           \
        void *p = R.name(size);                                                                                \
        record_alloc(p, size, id, RET());                                                                      \
        return p;                                                                                              \
    }

/* ---- C++ operators: forward to libstdc++'s (new_handler, exceptions), the outermost call owns the block ---- */

typedef struct nothrow_t_ nothrow_t_;

/* The operators over the C allocator, for a program whose libstdc++ the recorder cannot find (below). */
static void *op_new(size_t n) { return R.malloc(n ? n : 1); }
static void *op_new_nothrow(size_t n, const nothrow_t_ *t) { (void)t; return op_new(n); }
static void *op_new_aligned(size_t n, size_t a) {
    void *p = NULL;
    return R.posix_memalign(&p, a < sizeof(void *) ? sizeof(void *) : a, n ? n : 1) == 0 ? p : NULL;
}
static void *op_new_aligned_nothrow(size_t n, size_t a, const nothrow_t_ *t) { (void)t; return op_new_aligned(n, a); }
static void op_delete(void *p) { R.free(p); }
static void op_delete_sized(void *p, size_t n) { (void)n; R.free(p); }
static void op_delete_sized_aligned(void *p, size_t n, size_t a) { (void)n; (void)a; R.free(p); }
static void op_delete_nothrow(void *p, const nothrow_t_ *t) { (void)t; R.free(p); }
static void op_delete_aligned_nothrow(void *p, size_t a, const nothrow_t_ *t) { (void)a; (void)t; R.free(p); }

static void *const CXX_FALLBACK[A_COUNT] = {
    [A_NEW] = op_new, [A_NEW_NOTHROW] = op_new_nothrow, [A_NEW_ALIGNED] = op_new_aligned,
    [A_NEW_ALIGNED_NOTHROW] = op_new_aligned_nothrow,
    [A_NEWA] = op_new, [A_NEWA_NOTHROW] = op_new_nothrow, [A_NEWA_ALIGNED] = op_new_aligned,
    [A_NEWA_ALIGNED_NOTHROW] = op_new_aligned_nothrow,
    [A_DELETE] = op_delete, [A_DELETE_SIZED] = op_delete_sized, [A_DELETE_ALIGNED] = op_delete_sized,
    [A_DELETE_SIZED_ALIGNED] = op_delete_sized_aligned, [A_DELETE_NOTHROW] = op_delete_nothrow,
    [A_DELETE_ALIGNED_NOTHROW] = op_delete_aligned_nothrow,
    [A_DELETEA] = op_delete, [A_DELETEA_SIZED] = op_delete_sized, [A_DELETEA_ALIGNED] = op_delete_sized,
    [A_DELETEA_SIZED_ALIGNED] = op_delete_sized_aligned, [A_DELETEA_NOTHROW] = op_delete_nothrow,
    [A_DELETEA_ALIGNED_NOTHROW] = op_delete_aligned_nothrow,
};

/* The real operator: the next definition after ours, else libstdc++'s where it was loaded outside the global scope
 * (a C program dlopening a C++ plugin RTLD_LOCAL: the plugin's calls come to our hooks, the next definition is not
 * visible from here), else one over the C allocator (no new_handler, no exception): never a dead program. */
static void *cxx(unsigned id) {
    void *f = __atomic_load_n(&cxx_real[id], __ATOMIC_ACQUIRE);
    if (UNLIKELY(!f)) {
        int was_busy = busy_enter();
        f = resolve(ML_SYMBOLS[id]);
        if (!f) {
            void *lib = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_NOLOAD);
            if (lib) f = dlsym(lib, ML_SYMBOLS[id]);
        }
        busy_leave(was_busy);
        if (!f) f = CXX_FALLBACK[id];
        __atomic_store_n(&cxx_real[id], f, __ATOMIC_RELEASE);
    }
    return f;
}

/* A C++ hook only forwards: the recorder stopped, or the call is inside the recorder or another hooked operator. */
static inline int cxx_forward_only(int call) {
    return UNLIKELY(call == CALL_FORWARD) || (ts_get() & (TS_NEST_MASK | TS_BUSY));
}

static void nest_leave(int *unused) { (void)unused; ts_set(ts_get() - TS_NEST); }
static int nest_enter(void) { ts_set(ts_get() + TS_NEST); return 0; }
#define NESTED int nest_guard __attribute__((cleanup(nest_leave))) = nest_enter(); (void)nest_guard

#define NEW_HOOK(sym, id, params, args)                                                                        \
    EXPORT void *sym params {                                                                                  \
        ensure_init();                                                                                         \
        void *ret = RET();                                                                                     \
        CALL_COUNTED(call);                                                                                    \
        if (cxx_forward_only(call)) return ((void *(*) params)cxx(id))args;                                   \
        void *p;                                                                                               \
        {                                                                                                      \
            NESTED;                                                                                            \
            p = ((void *(*) params)cxx(id))args;                                                               \
        }                                                                                                      \
        record_alloc(p, n, id, ret); /* every operator new names its size n */                                 \
        return p;                                                                                              \
    }

#define DELETE_HOOK(sym, id, params, args)                                                                     \
    EXPORT void sym params {                                                                                   \
        if (!p || in_arena(p)) return;                                                                         \
        ensure_init();                                                                                         \
        CALL_COUNTED(call);                                                                                    \
        if (cxx_forward_only(call)) { ((void (*) params)cxx(id))args; return; }                               \
        if (!record_free(p, id, RET())) return;                                                                \
        NESTED;                                                                                                \
        ((void (*) params)cxx(id))args;                                                                        \
    }

/* Every hook hooked.def does not mark OWN (those are written out above): one macro per kind. */
#define HOOK_OWN(sym, id, params, args)
#define HOOK_ALIGNED(sym, id, params, args) ALIGNED_HOOK(sym, id)
#define HOOK_PAGE(sym, id, params, args) PAGE_HOOK(sym, id)
#define HOOK_NEW(sym, id, params, args) NEW_HOOK(sym, id, params, args)
#define HOOK_DELETE(sym, id, params, args) DELETE_HOOK(sym, id, params, args)
#define HOOK_NONE(sym, id, params, args)
#define ALLOCATOR(id, label, family, symbol, hook, params, args) HOOK_##hook(symbol, id, params, args)
#include "hooked.def"
#undef ALLOCATOR
