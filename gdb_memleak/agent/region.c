/* The region: its anchor for GDB, the nameless file (or private memory) it is mapped from, its layout at start
 * and the bump allocation of shard and stack tables inside it. Part of recorder.c. */

EXPORT struct ml_anchor memleak_agent = {ML_MAGIC, ML_VERSION, 0, 0, OFF_NONE, 0};

/* Page-aligned bump allocation in the region (shard and stack tables). */
static uint64_t region_alloc(uint64_t bytes) {
    bytes = (bytes + 4095) & ~4095ULL;
    uint64_t off = atomic_fetch_add(&H->dyn_used, bytes);
    if (off + bytes > H->region_size) return 0;
    return off;
}

static int region_shared;      /* the region is a file mapped MAP_SHARED: released pages are punched out of it */
static uint64_t dropped_off;   /* where the filter of dropped blocks' addresses is (ML_DROPPED_BITS bits) */

static void region_release(uint64_t off, uint64_t bytes) {
    bytes = (bytes + 4095) & ~4095ULL;
    int saved = errno;
    /* a shared file keeps its pages after MADV_DONTNEED: MADV_REMOVE frees them (a file system that cannot punch
     * holes keeps them; the bump allocator never reuses the range, so it only costs memory) */
    if (!region_shared || madvise(base + off, bytes, MADV_REMOVE) != 0) madvise(base + off, bytes, MADV_DONTNEED);
    errno = saved;
}


/* A nameless file of `*size` bytes for the region, CLOEXEC, or -1: a memfd (the raw system call: older C libraries
 * lack the wrapper), else an O_TMPFILE created 0600 in /dev/shm or /tmp (it never has a name either). `*size` is
 * first bounded by RLIMIT_FSIZE (ftruncate beyond it raises SIGXFSZ in the program); an O_TMPFILE, by half its
 * file system's free space (a full tmpfs would kill the program with SIGBUS at a page fault), unless `exact`. */
static int region_file(uint64_t *size, int exact) {
    uint64_t want = *size;
    struct rlimit limit;
    if (getrlimit(RLIMIT_FSIZE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
        while (want >= ML_REGION_MIN && want > (uint64_t)limit.rlim_cur) want >>= 1;
    if (want < ML_REGION_MIN || (exact && want != *size)) return -1;
    int fd = -1;
#ifdef SYS_memfd_create
    fd = (int)syscall(SYS_memfd_create, "gdb-memleak", 1u /* MFD_CLOEXEC */);
#endif
    if (fd >= 0) {
        if (ftruncate(fd, (off_t)want) == 0) {
            *size = want;
            return fd;
        }
        close(fd);
    }
#ifdef O_TMPFILE
    static const char *const dirs[] = {"/dev/shm", "/tmp"};
    for (unsigned i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        fd = open(dirs[i], O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0) continue;
        struct statfs fs;
        uint64_t fits = want;
        if (fstatfs(fd, &fs) == 0)
            while (fits >= ML_REGION_MIN && fits > (uint64_t)fs.f_bavail * (uint64_t)fs.f_bsize / 2) fits >>= 1;
        if (fits >= ML_REGION_MIN && (!exact || fits == want) && ftruncate(fd, (off_t)fits) == 0) {
            *size = fits;
            return fd;
        }
        close(fd);
    }
#endif
    return -1;
}

/* Maps `*size` bytes (fewer if the file or the kernel allows no more) of a nameless file, MAP_SHARED;
 * MAP_FAILED if no such file can be had. The descriptor is closed: the mapping keeps the file. */
static void *map_file(uint64_t *size) {
    uint64_t want = *size;
    int fd = region_file(&want, 0);
    if (fd < 0) return MAP_FAILED;
    void *m = MAP_FAILED;
    for (; want >= ML_REGION_MIN; want >>= 1) {
        m = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
        if (m != MAP_FAILED) break;
    }
    close(fd);
    if (m != MAP_FAILED) *size = want;
    return m;
}

static void lay_out(void *m, uint64_t size);

/* Maps and lays out the region; 0 and errno set when no memory can be had (a small `ulimit -v`). */
static int map_region(void) {
    int saved_errno = errno; /* the program sees the errno its own calls left */
    uint64_t size = ML_REGION_BYTES;
    void *m = cfg_fault & FAULT_REGION ? MAP_FAILED : map_file(&size);
    region_shared = m != MAP_FAILED;
    if (m == MAP_FAILED && !(cfg_fault & FAULT_REGION)) {
        /* no memfd, no O_TMPFILE (a seccomp filter, an old kernel): private anonymous memory */
        for (size = ML_REGION_BYTES; size >= ML_REGION_MIN; size >>= 1) {
            m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (m != MAP_FAILED) break;
        }
    }
    if (m == MAP_FAILED) {
        if (cfg_fault & FAULT_REGION) errno = ENOMEM;
        return 0;
    }
#ifdef MADV_HUGEPAGE
    madvise(m, size, MADV_HUGEPAGE); /* big tables: one fault and one TLB entry per 2 MiB, not per 4 KiB */
#endif
#ifdef PR_SET_VMA
    if (!region_shared) prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)m, 4096, (unsigned long)"gdb-memleak");
#endif
    errno = saved_errno;
    lay_out(m, size);
    H = m;
    base = m;
    dump_start();
    return 1;
}

/* Lays out an empty table in the `size` bytes at `m` (zero pages), without making it the region (the globals
 * H and base are shadowed here: attach.c lays out memory that replaces the region in one step). */
static void lay_out(void *m, uint64_t size) {
    struct ml_header *H = m;
    char *base = m;
    uint64_t off = 4096;
    H->magic = ML_MAGIC;
    H->version = ML_VERSION;
    H->header_size = sizeof(struct ml_header);
    H->region_size = size;
    H->nshards = ML_SHARDS;
    H->shard_size = sizeof(struct ml_shard);
    H->record_size = sizeof(struct ml_record);
    H->shards_off = off;
    off += ML_SHARDS * sizeof(struct ml_shard);
    H->stack_shards = ML_STACK_SHARDS;
    H->stack_shards_off = off;
    off += ML_STACK_SHARDS * sizeof(struct ml_stack_shard);
    H->names_off = off;
    H->names_size = sizeof ML_NAMES;
    H->allocator_count = A_COUNT;
    memcpy(base + off, ML_NAMES, sizeof ML_NAMES);
    off = (off + sizeof ML_NAMES + 4095) & ~4095ULL;
    H->errors_off = off;
    H->errors_capacity = ML_ERRORS;
    H->error_size = sizeof(struct ml_error);
    off += ML_ERRORS * sizeof(struct ml_error);
    H->timeline_off = off;
    H->timeline_capacity = ML_TIMELINE;
    H->timeline_interval_ns = ML_TIMELINE_INTERVAL_NS;
    off += ML_TIMELINE * sizeof(struct ml_point);
    H->freed_per_shard = ML_FREED_PER_SHARD;
    dropped_off = off;
    off += ML_DROPPED_BITS / 8;
    for (int i = 0; i < ML_SHARDS; i++) {
        struct ml_shard *s = (struct ml_shard *)(base + H->shards_off) + i;
        s->freed_ring_off = off;
        off += ML_FREED_PER_SHARD * 16;
    }
    off = (off + 4095) & ~4095ULL;
    H->pool_off = off;
    H->pool_capacity_words = ML_POOL_BYTES / 8;
    if (H->pool_capacity_words * 8 > size / 4) H->pool_capacity_words = size / 4 / 8;
    atomic_store(&H->pool_used_words, 1); /* stack id 0 means "none" */
    off += H->pool_capacity_words * 8;
    H->records_off = off;
    H->records_capacity = ML_RECORDS_BYTES / sizeof(struct ml_record);
    if (H->records_capacity * sizeof(struct ml_record) > size / 4) H->records_capacity = size / 4 / sizeof(struct ml_record);
    off += H->records_capacity * sizeof(struct ml_record);
    atomic_store(&H->dyn_used, off);
    for (int i = 0; i < ML_SHARDS; i++) {
        struct ml_shard *s = (struct ml_shard *)(base + H->shards_off) + i;
        s->capacity = 256;
        s->table_off = atomic_fetch_add(&H->dyn_used, s->capacity * sizeof(struct ml_index_entry));
    }
    for (int i = 0; i < ML_STACK_SHARDS; i++) {
        struct ml_stack_shard *s = (struct ml_stack_shard *)(base + H->stack_shards_off) + i;
        s->capacity = 512;
        s->table_off = atomic_fetch_add(&H->dyn_used, ((s->capacity + 1) * 8 + 4095) & ~4095ULL);
        ((uint64_t *)(base + s->table_off))[0] = s->capacity;
    }
    H->start_ns = now_ns();
    H->depth = cfg_depth;
    H->pid = (uint64_t)getpid();
    H->complete = !attach_mode;
}

/* The laid-out region holds what the table needs: every part inside it, every shard with its first table. */
static int region_sound(void) {
    if (cfg_fault & FAULT_CHECK) return 0;
    int sound = atomic_load(&H->dyn_used) <= H->region_size && H->records_capacity >= ML_CHUNK
                && H->pool_capacity_words > ML_MAX_DEPTH + 1 && H->records_off < H->region_size;
    for (int i = 0; i < ML_SHARDS; i++) sound &= ((struct ml_shard *)(base + H->shards_off))[i].table_off != 0;
    for (int i = 0; i < ML_STACK_SHARDS; i++)
        sound &= ((struct ml_stack_shard *)(base + H->stack_shards_off))[i].table_off != 0;
    return sound;
}

/* This process records nothing from now on, and GDB reads why (the anchor's region is 0). The region, if any, is
 * given back; the hooks only forward to the real functions. */
static void stop_recording(int reason, int err) {
    memleak_agent.stopped_errno = (uint64_t)err;
    memleak_agent.stopped = (uint64_t)reason;
    __atomic_store_n(&memleak_agent.region, 0, __ATOMIC_RELEASE);
    atomic_store(&recording_off, reason);
}
