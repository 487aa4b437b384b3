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
 * Rules these files keep:
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
 *    the child maps over the region (fork.c).
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
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>


/* The parts, by concern, in one translation unit: the hooks inline record_alloc, record_free and capture_stack. */
#include "layout.h"        /* the region's layout, shared with core/agent_format.py */
#include "allocators.h"    /* allocator ids, names, families, symbols: from hooked.def, the one list */
#include "state.h"         /* process and per-thread state, helpers */
#include "dump.c"          /* what a core dump holds of the region and the arena */
#include "arena.c"         /* the recorder's own memory */
#include "region.c"        /* mapping and laying out the region */
#include "gate.c"          /* holding every hooked call while GDB reads glibc's heap (attach) */
#include "init.c"          /* first-call initialisation */
#include "inflight.c"      /* attach mode: the calls inside, counted, waited for before the region goes */
#include "stacks.c"        /* stack capture and the stack pool */
#include "table.c"         /* records, shard indexes, counters, errors */
#include "fork.c"          /* fork handling */
#include "hooks.c"         /* the interposed functions */
#include "got.c"           /* attach mode: GOT slots redirected to the hooks, dlopen's new objects too */
#include "attach.c"        /* attach mode: memleak_agent_attach / adopt / detach */
#include "environment.c"   /* settings, preload propagation to exec'd programs */
