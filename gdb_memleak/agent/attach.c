/* Attach mode: the recorder dlopen()ed (RTLD_NOW | RTLD_LOCAL) into a running process by GDB, which then calls
 * these entry points with plain integer arguments. Part of recorder.c.
 *
 * Loaded that way, the constructor only finds the real functions (global scope) and records nothing (recording_off
 * = OFF_DETACHED, the anchor's region 0 and stopped 0: never started); nothing in the environment is touched. */

/* Whether this library was dlopen()ed rather than preloaded: the global scope's malloc is not ours. */
static int loaded_by_dlopen(void) {
    Dl_info global, own;
    void *f = dlsym(RTLD_DEFAULT, "malloc");
    return f && dladdr(f, &global) && dladdr((void *)loaded_by_dlopen, &own) && global.dli_fbase != own.dli_fbase;
}

static int atfork_registered, unwinder_ready;

static uintptr_t cxx_runtime_base; /* libstdc++'s load address, when loaded */

static int in_cxx_runtime(const void *pc) {
    Dl_info info;
    return cxx_runtime_base && pc && dladdr(pc, &info) && (uintptr_t)info.dli_fbase == cxx_runtime_base;
}

/* A release of another family that is no error: attached, a C++ operator that began natively (its slot read just
 * before the redirect) makes its inner malloc or free through libstdc++'s redirected slot, so one half of the
 * block's life was seen as a C call from libstdc++. Only on the mismatch path (dladdr is slow). */
static int operator_half_native(const struct ml_record *block, void *ret) {
    if (!attach_mode) return 0;
    if (in_cxx_runtime(ret)) return 1;
    if (!block->stack || ml_family(block->allocator) != 0) return 0;
    return in_cxx_runtime((void *)((const uint64_t *)(base + H->pool_off))[block->stack + 1]);
}

static void attach_mode_init(void) {
    Dl_info info;
    attach_mode = 1;
    if (dladdr((void *)loaded_by_dlopen, &info)) self_base = (uintptr_t)info.dli_fbase;
    resolve_real();
    atomic_store(&recording_off, OFF_DETACHED);
    atomic_store_explicit(&init_state, 2, memory_order_release);
}

/* The set-up init_recorder does at a first call, once per attach (the key, fork handlers, unwinder: once). */
static int attach_setup(int *err) {
    if (!atomic_load(&tkey_ready)) {
        if ((*err = pthread_key_create(&tkey, NULL)) != 0) return OFF_KEY;
        atomic_store_explicit(&tkey_ready, 1, memory_order_release);
    }
    if (!build_redirects()) return OFF_REDIRECT;
    if (!map_region()) return *err = errno, OFF_REGION;
    if (!region_sound()) return OFF_CHECK;
    if (!atfork_registered) {
        if ((*err = pthread_atfork(atfork_prepare, atfork_parent, atfork_child)) != 0) return OFF_ATFORK;
        atfork_registered = 1;
    }
    if (!cxx_runtime_base) {
        Dl_info info;
        void *lib = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_NOLOAD), *f = lib ? dlsym(lib, "_Znwm") : NULL;
        if (f && dladdr(f, &info)) cxx_runtime_base = (uintptr_t)info.dli_fbase;
        if (lib) dlclose(lib);
    }
    if (!unwinder_ready) {
        init_unwinder();
        struct link_map *unwind = NULL;
        void *lib = dlopen("libunwind.so.8", RTLD_LAZY | RTLD_NOLOAD);
        if (lib && dlinfo(lib, RTLD_DI_LINKMAP, &unwind) == 0 && unwind) unwind_base = unwind->l_addr;
        if (lib) dlclose(lib);
        unwinder_ready = 1;
    } else {
        H->unwinder = unw_bt ? UNW_LIBUNWIND : UNW_BACKTRACE;
    }
    return OFF_NONE;
}

static void drop_region(void) {
    munmap(base, H->region_size);
    H = NULL;
    base = NULL;
    region_shared = 0;
}

/* The region goes (recording_off set): unmapped, with its file's pages, once no call that saw recording on is
 * inside (inflight.c). If one stays (the calling thread's own, interrupted; a thread stopped in one), the address
 * range stays as private memory laid out as an empty table, put in place in one mremap: that call finishes
 * writing there, never into unmapped memory, and `H` stays set: the next attach waits for it again. */
static void release_region(void) {
    if (!H) return;
    uint64_t size = H->region_size;
    if (calls_drained()) {
        drop_region();
        return;
    }
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return; /* the table stays (the hooks no longer write it) */
    lay_out(m, size);
    if (mremap(m, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, base) != base) { /* one step: never a blank table */
        munmap(m, size);
        return;
    }
    region_shared = 0;
    dump_advise(base, size, MADV_DONTDUMP); /* blank: nothing in it for a core */
}

/* Starts recording: settings (what GDB_MEMLEAK_AGENT_* gives a preloaded recorder), the region, then every loaded
 * object's allocator calls redirected. depth: frames per stack (1..64; 0: the default 16); flags: bit 0 = on-error
 * skip (bad releases not performed); break_seq: allocation number to call memleak_agent_break_alloc at (0: none).
 * Returns 0 (recording; called again while attached, it redirects objects loaded since and changes nothing
 * else), an OFF_* reason (nothing redirected, recording off, the anchor says why), or -1 when this library is
 * the preloaded recorder (it records from the start: nothing to attach). Never aborts the process. */
EXPORT int memleak_agent_attach(uint64_t depth, uint64_t flags, uint64_t break_seq) {
    if (!attach_mode) return -1;
    if (!atomic_load(&recording_off)) return walk_objects(0) ? 0 : OFF_REDIRECT;
    int saved_errno = errno, err = 0;
    cfg_depth = depth >= 1 && depth <= ML_MAX_DEPTH ? depth : ML_DEFAULT_DEPTH;
    int reason = OFF_NONE;
    if (H && !calls_drained()) reason = OFF_INFLIGHT; /* `H` must not change under a call inside the last region */
    else if (H) drop_region();
    if (!reason) reason = attach_setup(&err);
    if (!reason) {
        H->depth = cfg_depth;
        H->skip_bad_frees = flags & 1;
        H->break_seq = break_seq;
        memleak_agent.stopped = OFF_NONE;
        memleak_agent.stopped_errno = 0;
        memleak_agent.region_size = H->region_size;
        __atomic_store_n(&memleak_agent.region, (uint64_t)(uintptr_t)H, __ATOMIC_RELEASE);
        atomic_store(&transition_seq, UINT64_MAX);
        atomic_store(&recording_off, OFF_NONE); /* hooks ready before the first slot points at them */
        if (!walk_objects(0)) reason = OFF_REDIRECT;
        atomic_store(&transition_seq, atomic_load(&H->seq));
    }
    if (reason) {
        walk_objects(1);
        stop_recording(reason, err);
        if (reason != OFF_INFLIGHT) release_region();
    }
    errno = saved_errno;
    return reason;
}

/* Enters n blocks live before the attach ((address, size) pairs) as ordinary live blocks: no stack, allocator
 * "allocated before tracking started" (any release matches). An address the table holds live is skipped (its
 * record wins). Returns how many were entered, -1 when not recording. */
EXPORT int memleak_agent_adopt(const uint64_t *pairs, uint64_t n) {
    if (!attach_mode || atomic_load(&recording_off) || !H) return -1;
    int entered = 0;
    int was_busy = busy_enter();
    for (uint64_t i = 0; i < n; i++) {
        uint64_t addr = pairs[2 * i], size = pairs[2 * i + 1], h = mix64(addr);
        if (!addr) continue;
        struct ml_shard *s = shard_of(h);
        spin_lock(&s->lock);
        struct ml_record *record = insert_record(s, addr, h);
        if (!record || (record->addr == addr && record->state == ST_LIVE)) {
            spin_unlock(&s->lock);
            continue;
        }
        *record = (struct ml_record){.addr = addr, .size = size, .time_ns = H->start_ns,
                                     .allocator = A_ADOPTED, .state = ST_LIVE};
        spin_unlock(&s->lock);
        add_live(1, (int64_t)size, coarse_ns());
        entered++;
    }
    busy_leave(was_busy);
    return entered;
}

/* Gives every written slot back, stops recording (calls through function pointers taken meanwhile pass straight
 * through) and releases the table's memory once the calls inside have left (release_region: at most a second);
 * the library stays loaded for a later attach, which starts empty. */
EXPORT void memleak_agent_detach(void) {
    if (!attach_mode || atomic_load(&recording_off)) return;
    int saved_errno = errno;
    walk_objects(1);
    stop_recording(OFF_DETACHED, 0);
    release_region();
    errno = saved_errno;
}
