/* The recorder's region as GDB reads it: constants, record layouts and the header. Part of recorder.c.
 *
 * gdb_memleak/core/agent_format.py mirrors every struct here (keep ML_VERSION in step);
 * tests/agent/test_recorder_layout.py compiles this header alone and compares each field's offset and size with
 * the reader's formats. Names: a "record" is one block's 64 bytes in the record area, an "index entry" the
 * 16-byte {address, record number} pair in a shard's index. A core dump holds only the parts GDB reads (dump.c):
 * a new part GDB reads goes into dump.c's head or gets a dump area of its own. */
#pragma once
#include <stdatomic.h>
#include <stdint.h>

#define ML_MAGIC 0x314b41454c4d4447ULL /* "GDMLEAK1" little-endian */
#define ML_VERSION 3
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
enum { ERR_DOUBLE = 1, ERR_INVALID = 2, ERR_MISMATCHED = 3 };
enum { UNW_NONE = 0, UNW_LIBUNWIND = 1, UNW_BACKTRACE = 2 };

/* ---- the region's records (mirrored by core/agent_format.py) ---------------------------------------------- */

/* A block's record: live, freed and remembered for double-free reports, or free (addr 0, state ST_EMPTY; `seq`
 * then links the shard's list of free records). Records never move: they sit in one area (`records_off`, handed
 * out to shards ML_CHUNK at a time), found through each shard's index of {addr, record number} entries, so a
 * growing index copies 16 bytes a block, not 64, and GDB reads the live blocks as one dense array. */
struct ml_record {
    uint64_t addr;               /* 0: a free record */
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

struct ml_index_entry {                /* the index: where the record of the block at `addr` is (addr 0: empty entry) */
    uint64_t addr;
    uint64_t record;             /* record number in the record area */
};

struct ml_shard {                /* 128 bytes: its own cache lines */
    atomic_int lock;
    uint32_t pad0;
    uint64_t table_off;          /* offset of its index (struct ml_index_entry array) in the region */
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
    uint64_t nshards, shards_off, shard_size, record_size;
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
    _Atomic uint64_t untracked_frees;    /* releases of blocks the table never knew (complete == 0): performed */
    volatile uint64_t complete;          /* 1: every live block is known (preloaded), an unknown release is an
                                          * invalid free; 0 (attached): it is counted in untracked_frees */
    uint64_t pad[2];
};

/* Why the recorder does not record (0: it does), in the anchor for GDB (core/agent_format.py STOPPED_REASONS says
 * them): the program then runs on untracked, as it would without the recorder; it is never killed. OFF_DETACHED:
 * memleak_agent_detach was called (attach.c); OFF_REDIRECT: an attach could not write a GOT slot; OFF_INFLIGHT:
 * an attach found a call from the previous one still inside the recorder (inflight.c). */
enum { OFF_NONE, OFF_REGION, OFF_KEY, OFF_CHECK, OFF_FORK_COPY, OFF_ATFORK, OFF_DETACHED, OFF_REDIRECT, OFF_INFLIGHT };

/* What GDB looks up in the ELF symbol table: where the region is, or why there is none. */
struct ml_anchor {
    uint64_t magic;
    uint64_t version;
    uint64_t region;        /* address of struct ml_header, 0 until the first hooked call (and when not recording) */
    uint64_t region_size;
    uint64_t stopped;       /* OFF_*: why this process records nothing */
    uint64_t stopped_errno; /* the failed call's errno, 0 if none */
};
