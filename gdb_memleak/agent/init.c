/* Initialisation at the first hooked call: the region, the per-thread key, the real functions, fork handlers and
 * the unwinder. Part of recorder.c. */

/* ---- initialisation --------------------------------------------------------------------------------------- */

static int is_own(const void *f);

/* The real function: the next definition after ours when preloaded; attached, the global scope's (what the
 * program's calls bound to), never our own. */
static void *resolve(const char *name) {
    if (!attach_mode) return dlsym(RTLD_NEXT, name);
    void *f = dlsym(RTLD_DEFAULT, name);
    return is_own(f) ? NULL : f;
}

static void atfork_prepare(void);
static void init_unwinder(void);
static void atfork_parent(void);
static void atfork_child(void);
static void resolve_real(void) {
    R.malloc = resolve("malloc");
    R.calloc = resolve("calloc");
    R.realloc = resolve("realloc");
    R.free = resolve("free");
    R.posix_memalign = resolve("posix_memalign");
    R.aligned_alloc = resolve("aligned_alloc");
    R.memalign = resolve("memalign");
    R.valloc = resolve("valloc");
    R.pvalloc = resolve("pvalloc");
    R.execve = resolve("execve");
    R.execvpe = resolve("execvpe");
    R.posix_spawn = resolve("posix_spawn");
    R.posix_spawnp = resolve("posix_spawnp");
    R.fork_raw = (pid_t (*)(void))resolve("_Fork");
}

struct tls_census { int tls_modules; uintptr_t probe, start, end; };

static int census_cb(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct tls_census *c = data;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_TLS) c->tls_modules++;
        if (ph->p_type != PT_LOAD) continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (a < lo) lo = a;
        if (a + ph->p_memsz > hi) hi = a + ph->p_memsz;
    }
    if (c->probe >= lo && c->probe < hi) { c->start = lo; c->end = hi; }
    return 0;
}

static void init_unwinder(void) {
    /* libunwind has a TLS segment: loading it makes ld.so's DTV of every later thread one slot (16 bytes) longer.
     * Blocks the program alone would not have are reported at the size it would have had. */
    struct tls_census before = {0, (uintptr_t)dlsym(RTLD_DEFAULT, "_dl_allocate_tls"), 0, 0};
    dl_iterate_phdr(census_cb, &before);
    ldso_start = before.start;
    ldso_end = before.end;
    atomic_store(&loader_logging, 1);
    void *lib = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
    atomic_store(&loader_logging, 0);
    if (lib && ldso_end) find_taken_segment();
    if (lib) {
        /* the default global cache takes a lock that blocks signals (two syscalls per backtrace): per thread */
        int (*set_policy)(void *, int) = (int (*)(void *, int))dlsym(lib, "_ULx86_64_set_caching_policy");
        void **space = dlsym(lib, "_ULx86_64_local_addr_space");
        if (set_policy && space) set_policy(*space, 2 /* UNW_CACHE_PER_THREAD */);
    }
    struct tls_census after = {0, 0, 0, 0};
    dl_iterate_phdr(census_cb, &after);
    if (before.start && after.tls_modules > before.tls_modules) {
        dtv_extra_bytes = (uintptr_t)(after.tls_modules - before.tls_modules) * 16;
    }
    if (lib) unw_bt = (int (*)(void **, int))dlsym(lib, "unw_backtrace");
    if (unw_bt) {
        H->unwinder = UNW_LIBUNWIND;
    } else {
        void *probe[2];
        backtrace(probe, 2); /* first use may dlopen libgcc_s: do it now, in the arena */
        H->unwinder = UNW_BACKTRACE;
    }
}

static int read_fault(void) {
    const char *v = getenv("GDB_MEMLEAK_AGENT_FAULT"), *end;
    int fault = 0;
    for (; v && *v; v = *end ? end + 1 : end) {
        end = v + strcspn(v, ",");
        size_t n = (size_t)(end - v);
        if (n == 6 && !memcmp(v, "region", 6)) fault |= FAULT_REGION;
        if (n == 3 && !memcmp(v, "key", 3)) fault |= FAULT_KEY;
        if (n == 5 && !memcmp(v, "check", 5)) fault |= FAULT_CHECK;
        if (n == 9 && !memcmp(v, "fork-copy", 9)) fault |= FAULT_FORK_COPY;
    }
    return fault;
}

/* The set-up, by the one thread that won it: the real functions always (the hooks forward to them), then the
 * per-thread key, the region and the fork handlers; the first of these to fail stops the recording (the program
 * runs on untracked; GDB says why), the region is published last. */
static void init_recorder(void) {
    int saved_errno = errno;
    cfg_fault = read_fault();
    int reason = OFF_NONE, err = 0;
    err = cfg_fault & FAULT_KEY ? EAGAIN : pthread_key_create(&tkey, NULL);
    if (err == 0) {
        atomic_store_explicit(&tkey_ready, 1, memory_order_release);
        ts_set(TS_BUSY);
    } else {
        reason = OFF_KEY;
    }
    resolve_real();
    if (!reason && !map_region()) reason = OFF_REGION, err = errno;
    if (!reason && !region_sound()) reason = OFF_CHECK;
    if (!reason && (err = pthread_atfork(atfork_prepare, atfork_parent, atfork_child)) != 0) reason = OFF_ATFORK;
    if (reason) {
        if (H) munmap(H, H->region_size);
        H = NULL;
        base = NULL;
        stop_recording(reason, err);
    } else {
        memleak_agent.region_size = H->region_size;
        __atomic_store_n(&memleak_agent.region, (uint64_t)(uintptr_t)H, __ATOMIC_RELEASE);
        /* now, not in our constructor: libraries initialised before ours (libstdc++'s emergency pool) allocate
         * too, and their stacks must be whole (suppressions match the loader frames) */
        init_unwinder();
    }
    ts_set(0);
    errno = saved_errno;
}

/* First hooked call (or the constructor). Reentrant calls made while the set-up runs (dlsym's own calloc) are
 * served by the arena: its thread counts as busy; other threads wait (sleeping: it may take milliseconds). */
static void ensure_init(void) {
    int state = atomic_load_explicit(&init_state, memory_order_acquire);
    if (LIKELY(state == 2)) return;
    if (state == INIT_HELD) {  /* GDB is reading glibc's heap (gate.c); a call made inside a hook goes on */
        if (!(ts_get() & (TS_NEST_MASK | TS_BUSY))) memleak_agent_gate();
        return;
    }
    int expected = 0;
    if (atomic_compare_exchange_strong(&init_state, &expected, 1)) {
        atomic_store_explicit(&init_owner, (uintptr_t)pthread_self(), memory_order_relaxed);
        init_recorder();
        atomic_store_explicit(&init_state, 2, memory_order_release);
        return;
    }
    unsigned round = 0;
    while (atomic_load_explicit(&init_state, memory_order_acquire) != 2) backoff(&round);
}
