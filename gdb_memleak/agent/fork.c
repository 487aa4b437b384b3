/* Fork: the child's own copy of the table, the fork handlers and glibc's _Fork. Part of recorder.c. */

/* ---- fork ------------------------------------------------------------------------------------------------- */

/* A forked child gets its own copy of the table (per-process reports, as the breakpoint engine keeps them).
 * Private anonymous memory is copied by the kernel; a shared file is not. So, with every lock held, prepare copies
 * the table's used extents into a new nameless file (pwrite: no page of the region the table does not use is
 * touched), the child maps that file over the region at the same address (GDB's anchor stays right) and the
 * parent closes it. Without a file (descriptor limit, no memfd), the copy goes to private anonymous memory the
 * child moves over the region. Cost: one copy of the table in use per fork, made by the parent as it forks.
 * vfork and posix_spawn share the parent's memory and run no fork handlers: nothing to copy, as before. */
static int fork_fd = -1;     /* the child's copy, prepare -> child (maps it) / parent (closes it) */
static char *fork_anon;      /* or this, when no file could be had */
static int fork_copy_errno;  /* why neither could be had or installed (the child says it to GDB) */

static int copy_extent_to_fd(uint64_t off, uint64_t len) {
    while (len) {
        ssize_t n = pwrite(fork_fd, base + off, len, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        off += (uint64_t)n;
        len -= (uint64_t)n;
    }
    return 0;
}

/* Every range of the region the table uses; the rest (released tables, the pool's and rings' unused tails, old
 * stack tables nobody probes in a one-thread child) is zero in the copy, as it reads in the region. */
static int copy_used(int (*copy)(uint64_t, uint64_t)) {
    int bad = copy(0, H->errors_off); /* header, shard arrays, allocator names */
    uint64_t errors = atomic_load(&H->error_count);
    bad |= copy(H->errors_off, (errors < H->errors_capacity ? errors : H->errors_capacity) * H->error_size);
    for (int i = 0; i < ML_SHARDS; i++) {
        struct ml_shard *s = (struct ml_shard *)(base + H->shards_off) + i;
        uint64_t freed = s->freed_head < ML_FREED_PER_SHARD ? s->freed_head : ML_FREED_PER_SHARD;
        bad |= copy(s->freed_ring_off, freed * 16);
        bad |= copy(s->table_off, s->capacity * sizeof(struct ml_index_entry));
    }
    uint64_t records = atomic_load(&H->records_used);
    bad |= copy(H->records_off, (records < H->records_capacity ? records : H->records_capacity) * sizeof(struct ml_record));
    for (int i = 0; i < ML_STACK_SHARDS; i++) {
        struct ml_stack_shard *s = (struct ml_stack_shard *)(base + H->stack_shards_off) + i;
        bad |= copy(s->table_off, (s->capacity + 1) * 8);
    }
    if (atomic_load(&H->blocks_dropped)) bad |= copy(dropped_off, ML_DROPPED_BITS / 8);
    uint64_t points = atomic_load(&H->timeline_count);
    bad |= copy(H->timeline_off, (points < H->timeline_capacity ? points : H->timeline_capacity) * sizeof(struct ml_point));
    uint64_t words = atomic_load(&H->pool_used_words);
    bad |= copy(H->pool_off, (words < H->pool_capacity_words ? words : H->pool_capacity_words) * 8);
    return bad;
}

static int copy_extent_to_anon(uint64_t off, uint64_t len) {
    memcpy(fork_anon + off, base + off, len);
    return 0;
}

static void fork_copy_make(void) {
    fork_copy_errno = 0;
    if (!H || !region_shared || (cfg_fault & FAULT_FORK_COPY)) return;
    int saved = errno;
    uint64_t size = H->region_size;
    fork_fd = region_file(&size, 1);
    if (fork_fd >= 0 && copy_used(copy_extent_to_fd) != 0) {
        close(fork_fd);
        fork_fd = -1;
    }
    if (fork_fd < 0) {
        char *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m != MAP_FAILED) {
            fork_anon = m;
            copy_used(copy_extent_to_anon);
        }
    }
    fork_copy_errno = fork_fd >= 0 || fork_anon ? 0 : errno;
    errno = saved;
}

/* In the child: its copy replaces the region (the parent's file); whether it did. */
static int fork_copy_install(void) {
    if (!H || !region_shared) return 1; /* private memory: the kernel copied it */
    int saved = errno, installed = 0;
    uint64_t size = H->region_size;
    if (fork_fd >= 0) {
        installed = mmap(base, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE | MAP_FIXED, fork_fd, 0)
                    == base;
        fork_copy_errno = installed ? 0 : errno;
        close(fork_fd);
#ifdef MADV_HUGEPAGE
        if (installed) madvise(base, size, MADV_HUGEPAGE); /* a new mapping: asked again, as for the parent's */
#endif
    } else if (fork_anon) {
#ifdef MADV_HUGEPAGE
        madvise(fork_anon, size, MADV_HUGEPAGE); /* moved with the pages: the child's region asks as the parent's */
#endif
        installed = mremap(fork_anon, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, base) == base;
        fork_copy_errno = installed ? 0 : errno;
        if (installed) region_shared = 0;
#ifdef PR_SET_VMA
        if (installed) prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)base, 4096, (unsigned long)"gdb-memleak");
#endif
    }
    fork_fd = -1;
    fork_anon = NULL;
    errno = saved;
    return installed;
}

/* In a child without its copy: the parent's file must go from its memory before anything writes there. Blank
 * private memory takes its place (code a signal handler interrupted, forking, may still run on into it), else
 * nothing; either way the child records no more. */
static void fork_copy_missing(void) {
    int saved = errno;
    uint64_t size = H->region_size;
    if (mmap(base, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0)
        != base)
        munmap(base, size);
    else
        dump_advise(base, size, MADV_DONTDUMP); /* blank: nothing in it for a core */
    stop_recording(OFF_FORK_COPY, fork_copy_errno);
    errno = saved;
}

static void fork_copy_drop(void) { /* in the parent */
    int saved = errno;
    if (fork_fd >= 0) close(fork_fd);
    if (fork_anon) munmap(fork_anon, H->region_size);
    fork_fd = -1;
    fork_anon = NULL;
    errno = saved;
}

static int fork_locked; /* the fork being made took every lock (see atfork_prepare) */
static int fork_call = CALL_FORWARD; /* the fork being made, a call counted from prepare to parent (inflight.c) */

static void lock_all(void) {
    for (int i = 0; i < ML_STACK_SHARDS; i++) spin_lock(&((struct ml_stack_shard *)(base + H->stack_shards_off))[i].lock);
    for (int i = 0; i < ML_SHARDS; i++) spin_lock(&((struct ml_shard *)(base + H->shards_off))[i].lock);
    spin_lock(&H->timeline_lock); /* no point half written in the copy, no lock held forever in the child */
}

/* Before a fork: every lock, then the child's copy. Not the locks when this thread is inside the recorder (a signal
 * handler interrupted it and forks, through fork() or _Fork): it may hold one, and would wait for itself. */
static void atfork_prepare(void) {
    fork_locked = 0;
    fork_call = call_enter();
    if (!H || fork_call == CALL_FORWARD) return;
    fork_locked = !is_busy();
    if (fork_locked) lock_all();
    fork_copy_make();
}

static void unlock_all(void) {
    spin_unlock(&H->timeline_lock);
    for (int i = 0; i < ML_SHARDS; i++) spin_unlock(&((struct ml_shard *)(base + H->shards_off))[i].lock);
    for (int i = 0; i < ML_STACK_SHARDS; i++) spin_unlock(&((struct ml_stack_shard *)(base + H->stack_shards_off))[i].lock);
}

static void atfork_parent(void) {
    if (H && fork_call != CALL_FORWARD) {
        fork_copy_drop();
        if (fork_locked) unlock_all();
    }
    call_leave(&fork_call);
}

static void atfork_child(void) {
    ts_set(ts_get() & 0xffff); /* a new process: its tid is new too */
    calls_forget();
    if (!H || fork_call == CALL_FORWARD) return;
    if (!fork_copy_install()) {
        fork_copy_missing();
        return;
    }
    H->pid = (uint64_t)getpid();
    dump_apply(); /* a new mapping over the region: its core marks are made again */
    if (fork_locked) unlock_all();
}

/* glibc's _Fork forks without running fork handlers (a fork from a signal handler): the copy is still made, as
 * by the handlers. */
EXPORT pid_t _Fork(void) {
    ensure_init();
    if (!R.fork_raw) {
        errno = ENOSYS;
        return -1;
    }
    atfork_prepare();
    pid_t pid = R.fork_raw();
    if (pid == 0) atfork_child();
    else atfork_parent();
    return pid;
}
