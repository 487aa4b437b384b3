/* The recorder's process state and small helpers: the real functions, the region pointer, settings, per-thread
 * state, clocks, spinlocks and the address hash. Part of recorder.c (one translation unit: every part sees these). */

#define EXPORT __attribute__((visibility("default")))
#define HIDDEN __attribute__((visibility("hidden")))
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---- state ------------------------------------------------------------------------------------------------ */

struct real_fns {
    void *(*malloc)(size_t);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void (*free)(void *);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    int (*execve)(const char *, char *const[], char *const[]);
    int (*execvpe)(const char *, char *const[], char *const[]);
    int (*posix_spawn)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
                       char *const[], char *const[]);
    int (*posix_spawnp)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
                        char *const[], char *const[]);
    pid_t (*fork_raw)(void);    /* glibc's _Fork: a fork that runs no fork handlers */
};
static struct real_fns R;
static void *cxx_real[A_COUNT]; /* real C++ operators, resolved on first use (libstdc++ may load late) */

static struct ml_header *H;
static char *base;              /* == (char *)H */
static atomic_int init_state;   /* 0 none, 1 running, 2 done, 3 held (gate.c) */
static atomic_int recording_off; /* OFF_*, nonzero once the recorder stopped: the hooks only forward */
static int cfg_fault;           /* GDB_MEMLEAK_AGENT_FAULT (tests): a failure to simulate, FAULT_* bits */
#define FAULT_REGION 1
#define FAULT_KEY 2
#define FAULT_CHECK 4
#define FAULT_FORK_COPY 8
static int (*unw_bt)(void **, int);
static uint64_t cfg_depth = ML_DEFAULT_DEPTH;
static int cfg_test_stop;
static int attach_mode;         /* loaded by dlopen into a running process: records only between attach and detach */
static const char *saved_preload;   /* our library's path as it was in LD_PRELOAD */
static const char *saved_env[8];    /* our GDB_MEMLEAK_AGENT_* entries, re-added for exec'd programs */
static int saved_env_count;

/* Per-thread state, without a TLS segment of our own: one would enlarge the DTV that ld.so callocs for every new
 * thread (valgrind would see other sizes). A pthread key (keys below 32 live in the thread descriptor: no
 * allocation) holds busy (bit 0: inside the recorder, allocations go to the arena), the nesting depth of hooked
 * C++ operators (bits 1-15: their inner C calls belong to them) and the cached kernel tid (bits 16-47). */
static pthread_key_t tkey;
static atomic_int tkey_ready;        /* release-stored once tkey is made: other threads may read it at any time */
static atomic_uintptr_t init_owner;  /* the thread running the set-up (pthread_self), stored once it won it */
#define TS_BUSY ((uintptr_t)1)
#define TS_NEST ((uintptr_t)2)
#define TS_NEST_MASK ((uintptr_t)0xfffe)

static uintptr_t dtv_extra_bytes;         /* what our dlopen's TLS modules add to each thread's DTV */
static uintptr_t ldso_start, ldso_end;    /* ld.so's mapped range: its callocs of DTVs are recognised by caller */

/* ---- small helpers ---------------------------------------------------------------------------------------- */

static inline uintptr_t ts_get(void) {
    if (UNLIKELY(!atomic_load_explicit(&tkey_ready, memory_order_acquire)))
        return atomic_load_explicit(&init_state, memory_order_acquire) == 1
               && atomic_load_explicit(&init_owner, memory_order_relaxed) == (uintptr_t)pthread_self() ? TS_BUSY : 0;
    return (uintptr_t)pthread_getspecific(tkey);
}

static inline void ts_set(uintptr_t v) {
    if (LIKELY(atomic_load_explicit(&tkey_ready, memory_order_relaxed))) pthread_setspecific(tkey, (void *)v);
}

static inline int is_busy(void) { return (int)(ts_get() & TS_BUSY); }
static inline int is_nested(void) { return (ts_get() & TS_NEST_MASK) != 0; }

static inline int busy_enter(void) {
    uintptr_t v = ts_get();
    if (!(v & TS_BUSY)) ts_set(v | TS_BUSY);
    return (int)(v & TS_BUSY);
}

static inline void busy_leave(int was_busy) {
    if (!was_busy) ts_set(ts_get() & ~TS_BUSY);
}

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Block times: the coarse clock (same epoch as CLOCK_MONOTONIC, a few ms resolution) reads no hardware counter;
 * the precise one cost 15% of the hot path here (a VM's TSC reads are slow). */
static inline uint64_t coarse_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint32_t my_tid(void) {
    uintptr_t v = ts_get();
    uint32_t tid = (uint32_t)(v >> 16);
    if (UNLIKELY(!tid)) {
        tid = (uint32_t)syscall(SYS_gettid);
        ts_set((v & 0xffff) | ((uintptr_t)tid << 16));
    }
    return tid;
}

/* One step of waiting for another thread: pauses at first (a shard's critical section is short), then sleeps
 * growing to 1 ms, so that a long wait (a fork copying a big table, a preempted holder, the first call's set-up)
 * costs the waiting threads no CPU. The raw system call: nanosleep() is a cancellation point, inside malloc. */
static void backoff(unsigned *round) {
    if (*round < 256) {
        ++*round;
        __builtin_ia32_pause();
        return;
    }
    unsigned shift = *round - 256;
    if (shift < 7) ++*round;
    struct timespec pause = {0, 8000L << shift};
    int saved = errno;
    syscall(SYS_nanosleep, &pause, NULL);
    errno = saved;
}

static __attribute__((noinline)) void spin_lock_wait(atomic_int *l) {
    unsigned round = 0;
    do {
        while (atomic_load_explicit(l, memory_order_relaxed)) backoff(&round);
    } while (atomic_exchange_explicit(l, 1, memory_order_acquire));
}

static inline void spin_lock(atomic_int *l) {
    if (UNLIKELY(atomic_exchange_explicit(l, 1, memory_order_acquire))) spin_lock_wait(l);
}

static inline void spin_unlock(atomic_int *l) { atomic_store_explicit(l, 0, memory_order_release); }

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}
