/* gdb-memleak's in-process recorder: an LD_PRELOAD library hooking the allocator family.
 *
 * Why: the breakpoint engine costs two GDB stops (~200 us each) per allocation. This library records every call in
 * the program itself, into one anonymous memory region that GDB reads in bulk (/proc/PID/mem) when it needs the
 * table: a live-block table, counters, a deduplicated stack table and the heap errors. The program stops only for
 * what needs the debugger: a heap error (memleak_agent_error), `break-alloc N` (memleak_agent_break_alloc).
 *
 * The layout of the region is described by `struct ml_header`; gdb_memleak/core/agent_format.py mirrors it (keep
 * ML_VERSION in step). GDB finds the region through the exported object `memleak_agent` (never by calling code).
 *
 * Rules this file keeps:
 *  - nothing is allocated through the hooked functions: recorder memory comes from mmap, early or recursive calls
 *    (dlsym, dlopen of libunwind, glibc backtrace) are served from a static bump arena recognised at free;
 *  - no global lock on the hot path: the block table is 64 shards (spinlock each, chosen by address hash: an index
 *    of {address, record} entries per shard, records in one area handed out a page at a time), the
 *    stack table is lock-striped with a per-thread cache in front, counters that must be global are atomics;
 *  - fork-safe (pthread_atfork takes every lock), vfork-safe (the child writes the shared table under the same
 *    locks: its heap *is* the parent's), exec re-adds the preload only for the exec'd program;
 *  - the region is a memfd ("/memfd:gdb-memleak (deleted)" in /proc/PID/maps), else an unlinked O_TMPFILE created
 *    0600, else private anonymous memory: nothing has a name, so nothing is left in /dev/shm or /tmp, even after
 *    SIGKILL. Its descriptor is CLOEXEC and closed once mapped: the program's descriptors are its own.
 *    The file is mapped MAP_SHARED (MAP_PRIVATE would put every page twice in memory: the file's zero page and
 *    the private copy), so a forked child must not keep it: at fork the table is copied into a new file that
 *    the child maps over the region (see "fork" below).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
#define HIDDEN __attribute__((visibility("hidden")))
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

#define ML_MAGIC 0x314b41454c4d4447ULL /* "GDMLEAK1" little-endian */
#define ML_VERSION 2
#define ML_SHARDS 64
#define ML_STACK_SHARDS 64
#define ML_MAX_DEPTH 64
#define ML_DEFAULT_DEPTH 16
#define ML_TIMELINE 4096          /* live bytes/blocks over time (HTML report): points, halved when full */
#define ML_TIMELINE_INTERVAL_NS 2000000ULL /* between points at first; doubles at every halving */
#define ML_ERRORS 4096            /* error ring; older errors are dropped (counted) */
#define ML_FREED_PER_SHARD 2048   /* freed blocks remembered per shard, for double-free reports (64 x 2048) */
#define ML_REGION_BYTES (64ULL << 30) /* reserved address space (MAP_NORESERVE): pages are used as touched */
#define ML_POOL_BYTES (4ULL << 30)    /* stack records */
#define ML_RECORDS_BYTES (16ULL << 30) /* block records (64 bytes each) */
#define ML_CHUNK 64               /* records a shard takes at a time from the record area (one 4 KiB page) */
#define ML_REGION_MIN (256ULL << 20)
#define ML_ARENA_BYTES (4u << 20)
#define ML_DROPPED_BITS (1ULL << 23) /* a filter of the addresses of blocks not recorded (record area full): 1 MiB */

enum { ST_EMPTY = 0, ST_LIVE = 1, ST_FREED = 2 };
enum { FAM_MALLOC = 0, FAM_NEW = 1, FAM_NEW_ARRAY = 2 };
enum { ERR_DOUBLE = 1, ERR_INVALID = 2, ERR_MISMATCHED = 3 };
enum { UNW_NONE = 0, UNW_LIBUNWIND = 1, UNW_BACKTRACE = 2 };

/* Allocator ids; names (as reports show them) and families in ML_NAMES / ml_family below, same order. */
enum {
    A_MALLOC, A_CALLOC, A_REALLOC, A_FREE, A_REALLOCARRAY, A_POSIX_MEMALIGN, A_ALIGNED_ALLOC, A_MEMALIGN, A_VALLOC,
    A_PVALLOC,
    A_NEW, A_NEW_NOTHROW, A_NEW_ALIGNED, A_NEW_ALIGNED_NOTHROW,
    A_NEWA, A_NEWA_NOTHROW, A_NEWA_ALIGNED, A_NEWA_ALIGNED_NOTHROW,
    A_DELETE, A_DELETE_SIZED, A_DELETE_ALIGNED, A_DELETE_SIZED_ALIGNED, A_DELETE_NOTHROW, A_DELETE_ALIGNED_NOTHROW,
    A_DELETEA, A_DELETEA_SIZED, A_DELETEA_ALIGNED, A_DELETEA_SIZED_ALIGNED, A_DELETEA_NOTHROW,
    A_DELETEA_ALIGNED_NOTHROW,
    A_COUNT
};
/* name\0family-digit per allocator: the reader builds its id -> (label, family) table from this. */
static const char ML_NAMES[] =
    "malloc\0" "0\0" "calloc\0" "0\0" "realloc\0" "0\0" "free\0" "0\0" "reallocarray\0" "0\0" "posix_memalign\0" "0\0"
    "aligned_alloc\0" "0\0" "memalign\0" "0\0" "valloc\0" "0\0" "pvalloc\0" "0\0"
    "new\0" "1\0" "new(nothrow)\0" "1\0" "new(aligned)\0" "1\0" "new(nothrow)(aligned)\0" "1\0"
    "new[]\0" "2\0" "new[](nothrow)\0" "2\0" "new[](aligned)\0" "2\0" "new[](nothrow)(aligned)\0" "2\0"
    "delete\0" "1\0" "delete(sized)\0" "1\0" "delete(aligned)\0" "1\0" "delete(aligned)(sized)\0" "1\0"
    "delete(nothrow)\0" "1\0" "delete(nothrow)(aligned)\0" "1\0"
    "delete[]\0" "2\0" "delete[](sized)\0" "2\0" "delete[](aligned)\0" "2\0" "delete[](aligned)(sized)\0" "2\0"
    "delete[](nothrow)\0" "2\0" "delete[](nothrow)(aligned)\0" "2\0";

static uint8_t ml_family(unsigned allocator) {
    if (allocator <= A_PVALLOC) return FAM_MALLOC;
    if (allocator <= A_NEW_ALIGNED_NOTHROW) return FAM_NEW;
    if (allocator <= A_NEWA_ALIGNED_NOTHROW) return FAM_NEW_ARRAY;
    if (allocator <= A_DELETE_ALIGNED_NOTHROW) return FAM_NEW;
    return FAM_NEW_ARRAY;
}

/* ---- the region's records (mirrored by core/agent_format.py) ---------------------------------------------- */

/* A block's record: live, freed and remembered for double-free reports, or free (addr 0, state ST_EMPTY; `seq`
 * then links the shard's list of free records). Records never move: they sit in one area (`records_off`, handed
 * out to shards ML_CHUNK at a time), found through each shard's index of {addr, record number} entries, so a
 * growing index copies 16 bytes a block, not 64, and GDB reads the live blocks as one dense array. */
struct ml_slot {
    uint64_t addr;               /* 0: empty slot */
    uint64_t size;
    uint64_t seq;                /* allocation number, from 1 */
    uint64_t time_ns;            /* CLOCK_MONOTONIC at the allocation */
    uint32_t stack;              /* stack id (word offset in the pool; 0 = none) */
    uint32_t tid;
    uint16_t allocator;
    uint8_t state;               /* ST_LIVE / ST_FREED */
    uint8_t pad0;
    uint32_t free_stack;
    uint64_t free_time_ns;
    uint32_t free_tid;
    uint32_t pad1;
};

struct ml_entry {                /* the index: where the record of the block at `addr` is (addr 0: empty entry) */
    uint64_t addr;
    uint64_t record;             /* record number in the record area */
};

struct ml_shard {                /* 128 bytes: its own cache lines */
    atomic_int lock;
    uint32_t pad0;
    uint64_t table_off;          /* offset of its index (struct ml_entry array) in the region */
    uint64_t capacity;           /* index entries (power of two) */
    uint64_t used;               /* occupied entries (live + freed blocks) */
    uint64_t allocs, frees, bytes_allocated;
    uint64_t freed_ring_off;     /* ML_FREED_PER_SHARD x {addr, seq} */
    uint64_t freed_head;         /* frees pushed so far */
    uint64_t free_records;       /* list of free records: record number + 1, 0 = empty */
    uint64_t chunk_next, chunk_end; /* records of the area this shard has taken and not used yet */
    uint64_t pad[4];
};

struct ml_stack_shard {
    atomic_int lock;
    uint32_t pad0;
    uint64_t table_off;          /* uint64 entries: hash tag << 32 | stack id */
    uint64_t capacity;
    uint64_t used;
    uint64_t pad[4];
};

struct ml_error {                /* 128 bytes */
    uint64_t type;               /* ERR_* */
    uint64_t addr;
    uint64_t tid;
    uint64_t time_ns;
    uint64_t stack;              /* the bad release's stack */
    uint64_t allocator;          /* the bad release's allocator id */
    uint64_t alloc_stack;        /* the block's allocation stack (double / mismatched) */
    uint64_t free_stack;         /* where it was freed before (double) */
    uint64_t block_size;         /* UINT64_MAX: unknown */
    uint64_t alloc_allocator;    /* UINT64_MAX: unknown */
    volatile uint64_t skip;      /* GDB writes 1: do not perform the bad release (on-error skip) */
    uint64_t seq;                /* error number, from 1 */
    uint64_t pad[4];
};

/* One timeline point: the live figures at t_ns and their highest values since the previous point. */
struct ml_point {
    uint64_t t_ns;
    int64_t bytes, blocks, peak_bytes, peak_blocks;
};

struct ml_header {
    uint64_t magic, version, header_size, region_size;
    uint64_t nshards, shards_off, shard_size, slot_size;
    uint64_t stack_shards, stack_shards_off, pool_off, pool_capacity_words;
    _Atomic uint64_t pool_used_words;
    uint64_t errors_off, errors_capacity, error_size;
    _Atomic uint64_t error_count;
    uint64_t names_off, names_size, allocator_count;
    _Atomic uint64_t seq;
    _Atomic int64_t live_blocks, live_bytes;
    _Atomic int64_t peak_blocks, peak_bytes;
    _Atomic uint64_t failed_allocs;
    volatile uint64_t break_seq;         /* GDB writes N: memleak_agent_break_alloc is called at allocation N */
    volatile uint64_t skip_bad_frees;    /* default of ml_error.skip (GDB or GDB_MEMLEAK_AGENT_ON_ERROR=skip) */
    uint64_t start_ns, depth, pid, unwinder;
    _Atomic uint64_t dyn_used;           /* bump offset for shard tables */
    _Atomic uint64_t stacks_dropped;     /* stacks not stored (pool full) */
    uint64_t freed_per_shard;
    uint64_t timeline_off, timeline_capacity;
    _Atomic uint64_t timeline_count;
    uint64_t timeline_interval_ns;
    _Atomic uint64_t timeline_due_ns;
    _Atomic int64_t timeline_hi_bytes, timeline_hi_blocks; /* highest live figures since the last point */
    atomic_int timeline_lock;            /* whoever holds it records the due point; the others go on */
    uint32_t pad_timeline;
    uint64_t records_off, records_capacity;
    _Atomic uint64_t records_used;       /* records handed out to shards (may pass the capacity: read the minimum) */
    _Atomic uint64_t blocks_dropped;     /* allocations not recorded (record area full) */
    uint64_t pad[4];
};

/* Why the recorder does not record (0: it does), in the anchor for GDB (core/agent_format.py STOPPED_REASONS says
 * them): the program then runs on untracked, as it would without the recorder; it is never killed. */
enum { OFF_NONE, OFF_REGION, OFF_KEY, OFF_CHECK, OFF_FORK_COPY, OFF_ATFORK };

/* What GDB looks up in the ELF symbol table: where the region is, or why there is none. */
struct ml_anchor {
    uint64_t magic;
    uint64_t version;
    uint64_t region;        /* address of struct ml_header, 0 until the first hooked call (and when not recording) */
    uint64_t region_size;
    uint64_t stopped;       /* OFF_*: why this process records nothing */
    uint64_t stopped_errno; /* the failed call's errno, 0 if none */
};
EXPORT struct ml_anchor memleak_agent = {ML_MAGIC, ML_VERSION, 0, 0, OFF_NONE, 0};

/* ---- the no-op functions GDB breaks on ------------------------------------------------------------------- */

EXPORT __attribute__((noinline, noipa, used)) void memleak_agent_error(struct ml_error *error) {
    __asm__ volatile("" : : "r"(error) : "memory");
}

EXPORT __attribute__((noinline, noipa, used)) void memleak_agent_break_alloc(struct ml_slot *slot) {
    __asm__ volatile("" : : "r"(slot) : "memory");
}

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
static atomic_int init_state;   /* 0 none, 1 running, 2 done */
static atomic_int recording_off; /* OFF_*, nonzero once the recorder stopped: the hooks only forward */
static int cfg_fault;           /* GDB_MEMLEAK_AGENT_FAULT (tests): a failure to simulate, FAULT_* bits */
#define FAULT_REGION 1
#define FAULT_KEY 2
#define FAULT_CHECK 4
#define FAULT_FORK_COPY 8
static int (*unw_bt)(void **, int);
static uint64_t cfg_depth = ML_DEFAULT_DEPTH;
static int cfg_test_stop;
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

/* ---- the dynamic loader's bookkeeping block our dlopen took from the program -------------------------------
 *
 * glibc 2.35+ keeps two chains of _dl_find_object segments, written alternately by each dlopen that adds objects;
 * a chain gets its first segment (malloc, 2,304 bytes: 63 entries, 128-byte aligned inside) the first time it is
 * written. Natively a program's first two such dlopens allocate one segment each. Our dlopen of libunwind takes
 * the first one (served by the arena, unseen), so the program's second dlopen finds that chain already allocated
 * and allocates nothing. The block is the program's from the moment the loader writes into it again (that is
 * when the program would have allocated it): it is then recorded as a malloc at that point, where it lies, with
 * the program's stack (it is never freed: its only pointer is the loader's, to its aligned interior, as natively).
 * Found among the arena blocks our dlopen allocated by its shape: at its first 128-byte boundary, a segment
 * header {previous = NULL, to_free = the block, size, allocated}. Its address is kept complemented: a pointer to it in
 * our memory would make it reachable for GDB's scan (valgrind sees it possibly lost: only the interior pointer). */

struct dlfo_header { void *previous, *to_free; size_t size, allocated; };
static uintptr_t loader_pages_lo, loader_pages_span; /* see loader_page */
static struct { uintptr_t block_not; size_t bytes; } loader_blocks[64]; /* ~address, size */
static atomic_int loader_logging, loader_block_count;
static struct dlfo_header *dlfo_taken;   /* the segment inside the block, while the program has not used it */
static uintptr_t dlfo_block_not;        /* ~address */
static size_t dlfo_block_bytes, dlfo_size_then;

static void note_loader_block(void *p, size_t size) {
    if (!atomic_load_explicit(&loader_logging, memory_order_relaxed)) return;
    int n = atomic_fetch_add(&loader_block_count, 1);
    if (n < (int)(sizeof loader_blocks / sizeof loader_blocks[0])) {
        loader_blocks[n].block_not = ~(uintptr_t)p;
        loader_blocks[n].bytes = size;
    }
}

static void find_taken_segment(void) {
    int n = atomic_load(&loader_block_count);
    if (n > (int)(sizeof loader_blocks / sizeof loader_blocks[0])) n = sizeof loader_blocks / sizeof loader_blocks[0];
    for (int i = 0; i < n; i++) {
        uintptr_t start = ~loader_blocks[i].block_not, end = start + loader_blocks[i].bytes;
        if (start - loader_pages_lo >= loader_pages_span) continue; /* only a block on a page of its own */
        uintptr_t at = (start + 127) & ~(uintptr_t)127;
        if (at + sizeof(struct dlfo_header) > end) continue;
        struct dlfo_header *seg = (struct dlfo_header *)at;
        if (seg->to_free != (void *)start || seg->previous || !seg->size || seg->size > seg->allocated
            || seg->allocated > (end - at) / sizeof(void *))
            continue;
        dlfo_block_not = ~start;
        dlfo_block_bytes = loader_blocks[i].bytes;
        dlfo_size_then = seg->size;
        __atomic_store_n(&dlfo_taken, seg, __ATOMIC_RELEASE);
        return;
    }
}

/* ---- the bump arena for calls the real allocator cannot serve (before dlsym, inside the recorder) --------- */

static char arena[ML_ARENA_BYTES] __attribute__((aligned(64)));
static atomic_size_t arena_used;

static int in_arena(const void *p) {
    return ((const char *)p >= arena && (const char *)p < arena + sizeof arena)
        || (uintptr_t)p - loader_pages_lo < loader_pages_span;
}

/* A page of its own, between inaccessible ones, for a block the loader allocates during our dlopen that may be
 * its _dl_find_object segment: that block may become the program's (above), and GDB takes no root from a mapping
 * that holds a block, so it must not share one with the arena (libunwind's link map in there links the program's
 * later ones). At most 8, from one reserved range (one comparison in in_arena). */
#define LOADER_PAGES 8
static void *loader_page(size_t size) {
    static int used;
    if (size < 2048 || size + 16 > 4096 || used >= LOADER_PAGES) return NULL;
    if (!loader_pages_lo) {
        void *m = mmap(NULL, (2 * LOADER_PAGES + 1) * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return NULL;
        loader_pages_lo = (uintptr_t)m;
        loader_pages_span = (2 * LOADER_PAGES + 1) * 4096;
    }
    char *page = (char *)loader_pages_lo + (2 * used + 1) * 4096;
    if (mprotect(page, 4096, PROT_READ | PROT_WRITE) != 0) return NULL;
    used++;
    ((size_t *)(page + 16))[-1] = size;
    return page + 16;
}

static void *arena_alloc(size_t size, size_t align) {
    if (align < 16) align = 16;
    if (UNLIKELY(atomic_load_explicit(&loader_logging, memory_order_relaxed)) && align == 16) {
        void *page = loader_page(size);
        if (page) {
            note_loader_block(page, size);
            return page;
        }
    }
    size_t need = size + align + 16;
    size_t at = atomic_fetch_add(&arena_used, (need + 15) & ~(size_t)15);
    if (at + need > sizeof arena) { /* exhausted: raw pages, never released (only the recorder's own calls) */
        char *m = mmap(NULL, size + align + 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return NULL;
        return m + align;
    }
    uintptr_t p = ((uintptr_t)(arena + at + 16) + align - 1) & ~(uintptr_t)(align - 1);
    ((size_t *)p)[-1] = size;
    return (void *)p;
}

static size_t arena_size(const void *p) { return ((const size_t *)p)[-1]; }

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

static inline struct ml_shard *shard_of(uint64_t h) {
    return (struct ml_shard *)(base + H->shards_off) + (h >> 58);
}

static inline struct ml_stack_shard *stack_shard_of(uint64_t h) {
    return (struct ml_stack_shard *)(base + H->stack_shards_off) + (h >> 58);
}

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

/* ---- initialisation --------------------------------------------------------------------------------------- */

static void *resolve(const char *name) { return dlsym(RTLD_NEXT, name); }

static void atfork_prepare(void);
static void init_unwinder(void);
static void atfork_parent(void);
static void atfork_child(void);

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
    H = m;
    base = m;
    uint64_t off = 4096;
    H->magic = ML_MAGIC;
    H->version = ML_VERSION;
    H->header_size = sizeof(struct ml_header);
    H->region_size = size;
    H->nshards = ML_SHARDS;
    H->shard_size = sizeof(struct ml_shard);
    H->slot_size = sizeof(struct ml_slot);
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
    H->records_capacity = ML_RECORDS_BYTES / sizeof(struct ml_slot);
    if (H->records_capacity * sizeof(struct ml_slot) > size / 4) H->records_capacity = size / 4 / sizeof(struct ml_slot);
    off += H->records_capacity * sizeof(struct ml_slot);
    atomic_store(&H->dyn_used, off);
    for (int i = 0; i < ML_SHARDS; i++) {
        struct ml_shard *s = (struct ml_shard *)(base + H->shards_off) + i;
        s->capacity = 256;
        s->table_off = region_alloc(s->capacity * sizeof(struct ml_entry));
    }
    for (int i = 0; i < ML_STACK_SHARDS; i++) {
        struct ml_stack_shard *s = (struct ml_stack_shard *)(base + H->stack_shards_off) + i;
        s->capacity = 512;
        s->table_off = region_alloc((s->capacity + 1) * 8);
        ((uint64_t *)(base + s->table_off))[0] = s->capacity;
    }
    H->start_ns = now_ns();
    H->depth = cfg_depth;
    H->pid = (uint64_t)getpid();
    return 1;
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
    if (LIKELY(atomic_load_explicit(&init_state, memory_order_acquire) == 2)) return;
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

/* The hook only forwards the call: the recorder stopped, or the call is nested in a hooked C++ operator (the
 * operator records the block). */
static inline int forward_only(void) {
    return UNLIKELY(atomic_load_explicit(&recording_off, memory_order_relaxed)) || is_nested();
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
    if (depth > 1 && atomic_load_explicit(&init_state, memory_order_acquire) == 2 && H->unwinder) {
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

/* ---- the block table -------------------------------------------------------------------------------------- */

static inline struct ml_entry *index_of(struct ml_shard *s) { return (struct ml_entry *)(base + s->table_off); }
static inline struct ml_slot *record_at(uint64_t n) { return (struct ml_slot *)(base + H->records_off) + n; }

static struct ml_entry *find_entry(struct ml_shard *s, uint64_t addr, uint64_t h) {
    struct ml_entry *t = index_of(s);
    uint64_t mask = s->capacity - 1;
    for (uint64_t j = h & mask;; j = (j + 1) & mask) {
        if (t[j].addr == addr) return &t[j];
        if (!t[j].addr) return NULL;
    }
}

static struct ml_slot *find_slot(struct ml_shard *s, uint64_t addr, uint64_t h) {
    struct ml_entry *e = find_entry(s, addr, h);
    return e ? record_at(e->record) : NULL;
}

static void shard_grow(struct ml_shard *s) {
    uint64_t cap = s->capacity * 2;
    uint64_t off = region_alloc(cap * sizeof(struct ml_entry));
    if (!off) return;
    struct ml_entry *old = index_of(s), *fresh = (struct ml_entry *)(base + off);
    for (uint64_t i = 0; i < s->capacity; i++) {
        if (!old[i].addr) continue;
        uint64_t h = mix64(old[i].addr);
        for (uint64_t j = h & (cap - 1);; j = (j + 1) & (cap - 1))
            if (!fresh[j].addr) { fresh[j] = old[i]; break; }
    }
    uint64_t old_off = s->table_off, old_cap = s->capacity;
    __atomic_store_n(&s->capacity, cap, __ATOMIC_RELEASE);
    __atomic_store_n(&s->table_off, off, __ATOMIC_RELEASE);
    region_release(old_off, old_cap * sizeof(struct ml_entry));
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
        s->chunk_next = at;
        s->chunk_end = at + ML_CHUNK;
    }
    return s->chunk_next++;
}

/* Linear probing with backward-shift deletion: no tombstones. The record goes back to the shard's free list. */
static void delete_entry(struct ml_shard *s, struct ml_entry *victim) {
    struct ml_entry *t = index_of(s);
    uint64_t mask = s->capacity - 1;
    uint64_t i = (uint64_t)(victim - t);
    struct ml_slot *record = record_at(victim->record);
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
static inline void prefetch_slot(struct ml_shard *s, uint64_t h) {
    uint64_t cap = __atomic_load_n(&s->capacity, __ATOMIC_RELAXED);
    __builtin_prefetch(index_of(s) + (h & (cap - 1)), 1, 3);
}

/* The record of the block at `addr`: its existing one (a block whose free was never seen), else a new one; NULL
 * when the record area is full. */
static struct ml_slot *insert_slot(struct ml_shard *s, uint64_t addr, uint64_t h) {
    if ((s->used + 1) * 10 > s->capacity * 7) shard_grow(s);
    if (s->used + 1 >= s->capacity) return find_slot(s, addr, h); /* could not grow: a new block is dropped */
    struct ml_entry *t = index_of(s);
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
static void remember_freed(struct ml_shard *s, struct ml_slot *slot) {
    uint64_t *ring = (uint64_t *)(base + s->freed_ring_off);
    uint64_t k = (s->freed_head++ % ML_FREED_PER_SHARD) * 2;
    if (s->freed_head > ML_FREED_PER_SHARD) {
        uint64_t old_addr = ring[k], old_seq = ring[k + 1];
        struct ml_entry *old = find_entry(s, old_addr, mix64(old_addr));
        if (old) {
            struct ml_slot *record = record_at(old->record);
            if (record->state == ST_FREED && record->seq == old_seq && record != slot) delete_entry(s, old);
        }
    }
    ring[k] = slot->addr;
    ring[k + 1] = slot->seq;
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
    prefetch_slot(s, h);
    uint32_t stack = capture_stack(ret);
    uint64_t seq = atomic_fetch_add(&H->seq, 1) + 1;
    uint64_t t = coarse_ns();
    int64_t stale = -1;
    spin_lock(&s->lock);
    struct ml_slot *slot = insert_slot(s, addr, h);
    if (UNLIKELY(!slot)) { /* the record area is full: counted in the totals, not in the table */
        s->allocs++;
        s->bytes_allocated += size;
        note_dropped(h);
        spin_unlock(&s->lock);
        atomic_fetch_add_explicit(&H->blocks_dropped, 1, memory_order_relaxed);
        busy_leave(was_busy);
        return;
    }
    if (slot->addr == addr && slot->state == ST_LIVE) stale = (int64_t)slot->size; /* its free was never seen */
    slot->size = size;
    slot->seq = seq;
    slot->time_ns = t;
    slot->stack = stack;
    slot->tid = my_tid();
    slot->allocator = (uint16_t)allocator;
    slot->free_stack = 0;
    slot->free_time_ns = 0;
    slot->free_tid = 0;
    slot->state = ST_LIVE;
    slot->addr = addr;
    s->allocs++;
    s->bytes_allocated += size;
    struct ml_slot copy = *slot;
    spin_unlock(&s->lock);
    if (stale >= 0) add_live(-1, -stale, t);
    add_live(1, (int64_t)size, t);
    if (UNLIKELY(H->break_seq == seq)) memleak_agent_break_alloc(&copy);
    busy_leave(was_busy);
}

/* Report a bad release; returns whether the release should still be performed. */
static int report_error(int type, uint64_t addr, unsigned allocator, void *ret, const struct ml_slot *block) {
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

/* Record a release of `ptr`; returns whether the real release should be performed. */
static inline __attribute__((always_inline)) int record_free(void *ptr, unsigned allocator, void *ret) {
    int was_busy = busy_enter();
    uint64_t addr = (uint64_t)(uintptr_t)ptr, h = mix64(addr);
    struct ml_shard *s = shard_of(h);
    prefetch_slot(s, h);
    uint32_t stack = capture_stack(ret);
    uint64_t t = coarse_ns();
    spin_lock(&s->lock);
    struct ml_slot *slot = find_slot(s, addr, h);
    int perform = 1;
    if (slot && slot->state == ST_LIVE) {
        uint64_t size = slot->size;
        int mismatched = ml_family(slot->allocator) != ml_family(allocator);
        slot->state = ST_FREED;
        slot->free_stack = stack;
        slot->free_time_ns = t;
        slot->free_tid = my_tid();
        s->frees++;
        struct ml_slot copy = *slot;
        remember_freed(s, slot);
        spin_unlock(&s->lock);
        add_live(-1, -(int64_t)size, t);
        if (UNLIKELY(mismatched)) report_error(ERR_MISMATCHED, addr, allocator, ret, &copy);
    } else {
        struct ml_slot copy;
        int known = slot != NULL;
        if (known) copy = *slot;
        s->frees++; /* valgrind counts the bad free too */
        spin_unlock(&s->lock);
        if (known || !maybe_dropped(h)) /* a block the full table could not record is released silently */
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
    struct ml_slot *slot = find_slot(s, addr, h);
    int live = slot && slot->state == ST_LIVE;
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
    struct ml_slot *slot = find_slot(s, addr, h);
    uint64_t size = 0;
    if (slot && slot->state == ST_FREED) {
        slot->state = ST_LIVE;
        slot->free_stack = 0;
        s->frees--;
        size = slot->size;
    }
    spin_unlock(&s->lock);
    if (slot) add_live(1, (int64_t)size, coarse_ns());
    busy_leave(was_busy);
}

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
        bad |= copy(s->table_off, s->capacity * sizeof(struct ml_entry));
    }
    uint64_t records = atomic_load(&H->records_used);
    bad |= copy(H->records_off, (records < H->records_capacity ? records : H->records_capacity) * sizeof(struct ml_slot));
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

static void lock_all(void) {
    for (int i = 0; i < ML_STACK_SHARDS; i++) spin_lock(&((struct ml_stack_shard *)(base + H->stack_shards_off))[i].lock);
    for (int i = 0; i < ML_SHARDS; i++) spin_lock(&((struct ml_shard *)(base + H->shards_off))[i].lock);
    spin_lock(&H->timeline_lock); /* no point half written in the copy, no lock held forever in the child */
}

/* Before a fork: every lock, then the child's copy. Not the locks when this thread is inside the recorder (a signal
 * handler interrupted it and forks, through fork() or _Fork): it may hold one, and would wait for itself. */
static void atfork_prepare(void) {
    fork_locked = 0;
    if (!H || atomic_load(&recording_off)) return;
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
    if (!H || atomic_load(&recording_off)) return;
    fork_copy_drop();
    if (fork_locked) unlock_all();
}

static void atfork_child(void) {
    ts_set(ts_get() & 0xffff); /* a new process: its tid is new too */
    if (!H || atomic_load(&recording_off)) return;
    if (!fork_copy_install()) {
        fork_copy_missing();
        return;
    }
    H->pid = (uint64_t)getpid();
    if (fork_locked) unlock_all();
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

/* ---- the hooks -------------------------------------------------------------------------------------------- */

#define RET() __builtin_return_address(0)

EXPORT void *malloc(size_t size) {
    if (UNLIKELY(is_busy())) return arena_alloc(size, 16);
    ensure_init();
    if (forward_only()) return R.malloc(size);
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
    if (forward_only()) return R.calloc(n, m);
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
    if (forward_only()) { R.free(p); return; }
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
    if (forward_only()) return R.realloc(p, size);
    return realloc_common(p, size, A_REALLOC, RET(), real_realloc2, size, 0);
}

EXPORT void *reallocarray(void *p, size_t n, size_t m) {
    size_t total;
    if (__builtin_mul_overflow(n, m, &total)) { errno = ENOMEM; return NULL; }
    if (UNLIKELY(is_busy())) return realloc(p, total);
    ensure_init();
    if (forward_only()) return real_reallocarray3(p, n, m);
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
    if (forward_only()) return R.posix_memalign(out, align, size);
    int rc = R.posix_memalign(out, align, size);
    record_alloc(rc == 0 ? *out : NULL, size, A_POSIX_MEMALIGN, RET());
    return rc;
}

#define ALIGNED_HOOK(name, id)                                                                                 \
    EXPORT void *name(size_t align, size_t size) {                                                             \
        if (UNLIKELY(is_busy())) return arena_alloc(size, align);                                                 \
        ensure_init();                                                                                         \
        if (forward_only()) return R.name(align, size);                                                                \
        void *p = R.name(align, size);                                                                         \
        record_alloc(p, size, id, RET());                                                                      \
        return p;                                                                                              \
    }
ALIGNED_HOOK(aligned_alloc, A_ALIGNED_ALLOC)
ALIGNED_HOOK(memalign, A_MEMALIGN)

#define PAGE_HOOK(name, id)                                                                                    \
    EXPORT void *name(size_t size) {                                                                           \
        if (UNLIKELY(is_busy())) return arena_alloc(size, 4096);                                                  \
        ensure_init();                                                                                         \
        if (forward_only()) return R.name(size);                                                                       \
        void *p = R.name(size);                                                                                \
        record_alloc(p, size, id, RET());                                                                      \
        return p;                                                                                              \
    }
PAGE_HOOK(valloc, A_VALLOC)
PAGE_HOOK(pvalloc, A_PVALLOC)

/* ---- C++ operators: forward to libstdc++'s (new_handler, exceptions), the outermost call owns the block ---- */

static const char *const CXX_NAMES[A_COUNT] = {
    [A_NEW] = "_Znwm", [A_NEW_NOTHROW] = "_ZnwmRKSt9nothrow_t", [A_NEW_ALIGNED] = "_ZnwmSt11align_val_t",
    [A_NEW_ALIGNED_NOTHROW] = "_ZnwmSt11align_val_tRKSt9nothrow_t",
    [A_NEWA] = "_Znam", [A_NEWA_NOTHROW] = "_ZnamRKSt9nothrow_t", [A_NEWA_ALIGNED] = "_ZnamSt11align_val_t",
    [A_NEWA_ALIGNED_NOTHROW] = "_ZnamSt11align_val_tRKSt9nothrow_t",
    [A_DELETE] = "_ZdlPv", [A_DELETE_SIZED] = "_ZdlPvm", [A_DELETE_ALIGNED] = "_ZdlPvSt11align_val_t",
    [A_DELETE_SIZED_ALIGNED] = "_ZdlPvmSt11align_val_t", [A_DELETE_NOTHROW] = "_ZdlPvRKSt9nothrow_t",
    [A_DELETE_ALIGNED_NOTHROW] = "_ZdlPvSt11align_val_tRKSt9nothrow_t",
    [A_DELETEA] = "_ZdaPv", [A_DELETEA_SIZED] = "_ZdaPvm", [A_DELETEA_ALIGNED] = "_ZdaPvSt11align_val_t",
    [A_DELETEA_SIZED_ALIGNED] = "_ZdaPvmSt11align_val_t", [A_DELETEA_NOTHROW] = "_ZdaPvRKSt9nothrow_t",
    [A_DELETEA_ALIGNED_NOTHROW] = "_ZdaPvSt11align_val_tRKSt9nothrow_t",
};

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
        f = resolve(CXX_NAMES[id]);
        if (!f) {
            void *lib = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_NOLOAD);
            if (lib) f = dlsym(lib, CXX_NAMES[id]);
        }
        busy_leave(was_busy);
        if (!f) f = CXX_FALLBACK[id];
        __atomic_store_n(&cxx_real[id], f, __ATOMIC_RELEASE);
    }
    return f;
}

/* A C++ hook only forwards: the recorder stopped, or the call is inside the recorder or another hooked operator. */
static inline int cxx_forward_only(void) {
    return UNLIKELY(atomic_load_explicit(&recording_off, memory_order_relaxed)) || (ts_get() & (TS_NEST_MASK | TS_BUSY));
}

static void nest_leave(int *unused) { (void)unused; ts_set(ts_get() - TS_NEST); }
static int nest_enter(void) { ts_set(ts_get() + TS_NEST); return 0; }
#define NESTED int nest_guard __attribute__((cleanup(nest_leave))) = nest_enter(); (void)nest_guard

#define NEW_HOOK(sym, id, params, args, size)                                                                  \
    EXPORT void *sym params {                                                                                  \
        ensure_init();                                                                                         \
        void *ret = RET();                                                                                     \
        if (cxx_forward_only()) return ((void *(*) params)cxx(id))args;                                       \
        void *p;                                                                                               \
        {                                                                                                      \
            NESTED;                                                                                            \
            p = ((void *(*) params)cxx(id))args;                                                               \
        }                                                                                                      \
        record_alloc(p, size, id, ret);                                                                        \
        return p;                                                                                              \
    }

NEW_HOOK(_Znwm, A_NEW, (size_t n), (n), n)
NEW_HOOK(_ZnwmRKSt9nothrow_t, A_NEW_NOTHROW, (size_t n, const nothrow_t_ *t), (n, t), n)
NEW_HOOK(_ZnwmSt11align_val_t, A_NEW_ALIGNED, (size_t n, size_t a), (n, a), n)
NEW_HOOK(_ZnwmSt11align_val_tRKSt9nothrow_t, A_NEW_ALIGNED_NOTHROW, (size_t n, size_t a, const nothrow_t_ *t),
         (n, a, t), n)
NEW_HOOK(_Znam, A_NEWA, (size_t n), (n), n)
NEW_HOOK(_ZnamRKSt9nothrow_t, A_NEWA_NOTHROW, (size_t n, const nothrow_t_ *t), (n, t), n)
NEW_HOOK(_ZnamSt11align_val_t, A_NEWA_ALIGNED, (size_t n, size_t a), (n, a), n)
NEW_HOOK(_ZnamSt11align_val_tRKSt9nothrow_t, A_NEWA_ALIGNED_NOTHROW, (size_t n, size_t a, const nothrow_t_ *t),
         (n, a, t), n)

#define DELETE_HOOK(sym, id, params, args)                                                                     \
    EXPORT void sym params {                                                                                   \
        if (!p || in_arena(p)) return;                                                                         \
        ensure_init();                                                                                         \
        if (cxx_forward_only()) { ((void (*) params)cxx(id))args; return; }                                   \
        if (!record_free(p, id, RET())) return;                                                                \
        NESTED;                                                                                                \
        ((void (*) params)cxx(id))args;                                                                        \
    }

DELETE_HOOK(_ZdlPv, A_DELETE, (void *p), (p))
DELETE_HOOK(_ZdlPvm, A_DELETE_SIZED, (void *p, size_t n), (p, n))
DELETE_HOOK(_ZdlPvSt11align_val_t, A_DELETE_ALIGNED, (void *p, size_t a), (p, a))
DELETE_HOOK(_ZdlPvmSt11align_val_t, A_DELETE_SIZED_ALIGNED, (void *p, size_t n, size_t a), (p, n, a))
DELETE_HOOK(_ZdlPvRKSt9nothrow_t, A_DELETE_NOTHROW, (void *p, const nothrow_t_ *t), (p, t))
DELETE_HOOK(_ZdlPvSt11align_val_tRKSt9nothrow_t, A_DELETE_ALIGNED_NOTHROW, (void *p, size_t a, const nothrow_t_ *t),
            (p, a, t))
DELETE_HOOK(_ZdaPv, A_DELETEA, (void *p), (p))
DELETE_HOOK(_ZdaPvm, A_DELETEA_SIZED, (void *p, size_t n), (p, n))
DELETE_HOOK(_ZdaPvSt11align_val_t, A_DELETEA_ALIGNED, (void *p, size_t a), (p, a))
DELETE_HOOK(_ZdaPvmSt11align_val_t, A_DELETEA_SIZED_ALIGNED, (void *p, size_t n, size_t a), (p, n, a))
DELETE_HOOK(_ZdaPvRKSt9nothrow_t, A_DELETEA_NOTHROW, (void *p, const nothrow_t_ *t), (p, t))
DELETE_HOOK(_ZdaPvSt11align_val_tRKSt9nothrow_t, A_DELETEA_ALIGNED_NOTHROW,
            (void *p, size_t a, const nothrow_t_ *t), (p, a, t))

/* ---- environment: hide the preload from the program, give it back to the programs it execs --------------- */

#define ENV_PREFIX "GDB_MEMLEAK_AGENT_"

static int starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

/* Our path is the first LD_PRELOAD entry ending in librecorder.so (the engine puts it first). */
static int is_ours(const char *entry, size_t len) {
    static const char tail[] = "librecorder.so";
    return len >= sizeof tail - 1 && memcmp(entry + len - (sizeof tail - 1), tail, sizeof tail - 1) == 0;
}

static char preload_rest[4096]; /* the user's own LD_PRELOAD, without ours */
static char preload_entry[4096 + 16];

static void hide_environment(void) {
    extern char **environ;
    if (!environ) return;
    char **w = environ;
    for (char **r = environ; *r; r++) {
        char *e = *r;
        if (starts_with(e, ENV_PREFIX)) {
            if (saved_env_count < 8) saved_env[saved_env_count++] = e;
            continue;
        }
        if (starts_with(e, "LD_PRELOAD=") && !saved_preload) {
            const char *v = e + 11, *sep;
            size_t len;
            for (; *v; v += len) {
                while (*v == ':' || *v == ' ') v++;
                sep = v + strcspn(v, ": ");
                len = (size_t)(sep - v);
                if (len && is_ours(v, len)) break;
                if (!len) break;
            }
            if (*v && len) {
                static char ours[4096];
                if (len < sizeof ours) {
                    memcpy(ours, v, len);
                    ours[len] = 0;
                    saved_preload = ours;
                }
                /* rebuild the rest */
                size_t before = (size_t)(v - (e + 11));
                const char *after = v + len;
                while (*after == ':' || *after == ' ') after++;
                size_t n = 0;
                if (before && before < sizeof preload_rest) { memcpy(preload_rest, e + 11, before); n = before; }
                while (n && (preload_rest[n - 1] == ':' || preload_rest[n - 1] == ' ')) n--;
                if (*after) {
                    if (n && n < sizeof preload_rest - 1) preload_rest[n++] = ':';
                    size_t alen = strlen(after);
                    if (n + alen < sizeof preload_rest) { memcpy(preload_rest + n, after, alen); n += alen; }
                }
                preload_rest[n] = 0;
                if (n) {
                    memcpy(preload_entry, "LD_PRELOAD=", 11);
                    memcpy(preload_entry + 11, preload_rest, n + 1);
                    *w++ = preload_entry;
                }
                continue;
            }
        }
        *w++ = e;
    }
    *w = NULL;
}

/* envp plus our preload and settings, in pages from mmap (the exec replaces them; a failed exec unmaps). */
static char **with_preload(char *const envp[], size_t *mapped) {
    *mapped = 0;
    if (!saved_preload) return (char **)envp;
    size_t count = 0;
    if (envp)
        for (; envp[count]; count++) {}
    size_t bytes = (count + saved_env_count + 2) * sizeof(char *) + 16384;
    char **out = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (out == MAP_FAILED) return (char **)envp;
    *mapped = bytes;
    char *text = (char *)(out + count + saved_env_count + 2), *end = (char *)out + bytes;
    size_t k = 0;
    int placed = 0;
    for (size_t i = 0; i < count; i++) {
        if (starts_with(envp[i], ENV_PREFIX)) continue;
        if (starts_with(envp[i], "LD_PRELOAD=") && !placed) {
            size_t need = strlen(saved_preload) + strlen(envp[i]) + 2;
            if (text + need < end) {
                char *s = text;
                text += need;
                strcpy(s, "LD_PRELOAD=");
                strcat(s, saved_preload);
                if (envp[i][11]) { strcat(s, ":"); strcat(s, envp[i] + 11); }
                out[k++] = s;
                placed = 1;
                continue;
            }
        }
        out[k++] = envp[i];
    }
    if (!placed) {
        size_t need = strlen(saved_preload) + 12;
        if (text + need < end) {
            strcpy(text, "LD_PRELOAD=");
            strcat(text, saved_preload);
            out[k++] = text;
        }
    }
    for (int i = 0; i < saved_env_count; i++) out[k++] = (char *)saved_env[i];
    out[k] = NULL;
    return out;
}

/* The exec family: the program's child image gets the preload (and our settings) back. */
#define EXEC_HOOK(name, params, envp, call)                                                                     \
    EXPORT int name params {                                                                                   \
        ensure_init();                                                                                         \
        size_t mapped;                                                                                         \
        char **env = with_preload(envp, &mapped);                                                              \
        int rc = call;                                                                                         \
        int err = errno;                                                                                       \
        if (mapped) munmap(env, mapped);                                                                       \
        errno = err;                                                                                           \
        return rc;                                                                                             \
    }

EXEC_HOOK(execve, (const char *path, char *const argv[], char *const envp[]), envp, R.execve(path, argv, env))
EXEC_HOOK(execvpe, (const char *file, char *const argv[], char *const envp[]), envp, R.execvpe(file, argv, env))
EXEC_HOOK(posix_spawn, (pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                        const posix_spawnattr_t *attr, char *const argv[], char *const envp[]),
          envp, R.posix_spawn(pid, path, fa, attr, argv, env))
EXEC_HOOK(posix_spawnp, (pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                         const posix_spawnattr_t *attr, char *const argv[], char *const envp[]),
          envp, R.posix_spawnp(pid, file, fa, attr, argv, env))

extern char **environ;
EXPORT int execv(const char *path, char *const argv[]) { return execve(path, argv, environ); }
EXPORT int execvp(const char *file, char *const argv[]) { return execvpe(file, argv, environ); }

#define COLLECT_ARGS(first, ap, argv)                                                                          \
    size_t argc_ = 1;                                                                                          \
    va_start(ap, first);                                                                                       \
    while (va_arg(ap, char *)) argc_++;                                                                        \
    va_end(ap);                                                                                                \
    char *argv[argc_ + 1];                                                                                     \
    argv[0] = (char *)first;                                                                                   \
    va_start(ap, first);                                                                                       \
    for (size_t i_ = 1; i_ <= argc_; i_++) argv[i_] = va_arg(ap, char *);

EXPORT int execl(const char *path, const char *arg, ...) {
    va_list ap;
    COLLECT_ARGS(arg, ap, argv)
    va_end(ap);
    return execve(path, argv, environ);
}

EXPORT int execlp(const char *file, const char *arg, ...) {
    va_list ap;
    COLLECT_ARGS(arg, ap, argv)
    va_end(ap);
    return execvpe(file, argv, environ);
}

EXPORT int execle(const char *path, const char *arg, ...) {
    va_list ap;
    COLLECT_ARGS(arg, ap, argv)
    char *const *envp = va_arg(ap, char *const *);
    va_end(ap);
    return execve(path, argv, envp);
}

/* ---- start-up --------------------------------------------------------------------------------------------- */

static void test_stop_at_exit(void) {
    /* Tests without GDB: after every exit handler and destructor, stop so the test reads /proc/PID/mem. */
    raise(SIGSTOP);
}

__attribute__((constructor(101))) static void recorder_init(void) {
    const char *v = getenv(ENV_PREFIX "DEPTH");
    if (v && *v) {
        long d = strtol(v, NULL, 10);
        if (d >= 1 && d <= ML_MAX_DEPTH) cfg_depth = (uint64_t)d;
    }
    const char *onerr = getenv(ENV_PREFIX "ON_ERROR");
    cfg_test_stop = getenv(ENV_PREFIX "TEST_STOP") != NULL;
    ensure_init();
    if (!atomic_load(&recording_off)) {
        H->depth = cfg_depth;
        if (onerr && strcmp(onerr, "skip") == 0) H->skip_bad_frees = 1;
        const char *brk = getenv(ENV_PREFIX "BREAK_ALLOC"); /* `memleak break-alloc N` set before the run */
        if (brk && *brk) H->break_seq = strtoull(brk, NULL, 10);
    }
    hide_environment();
    if (cfg_test_stop) atexit(test_stop_at_exit);
}
