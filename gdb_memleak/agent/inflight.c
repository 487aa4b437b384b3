/* Attach mode: the hooked calls inside the recorder, counted, so that the table's memory goes only once no call
 * that saw recording on can still touch it. Part of recorder.c.
 *
 * Why: a detach gives the GOT slots back, but a thread already inside a hook runs on in it, through `H` and `base`,
 * for as long as the scheduler lets it (tens of milliseconds on a loaded machine). Had the next attach mapped its
 * region meanwhile and unmapped the old one, that thread took a shard lock in unmapped memory (SIGSEGV in the
 * program), or mixed the old region's shard with the new one's table. So every recording call is counted from
 * before its check of recording_off to its return; detach and attach wait for the count to drain before the region
 * goes or `H` changes. Preloaded, nothing is counted (the region never goes): one predictable branch.
 *
 * The count is striped by thread (64-byte lines of this library's .bss, never unmapped): a call costs two
 * uncontended atomic additions. The order that makes it sound (x86's locked add is a full barrier; the C11 one
 * asked for is seq_cst): a call adds, then reads recording_off; a detach stores recording_off, then reads the
 * stripes. A call that read recording on was counted before the store, so the detach sees it; a call counted after
 * reads recording off and only forwards. Each stripe must be seen at zero once after the store. */

#define CALL_STRIPES 16
#define CALL_FORWARD (-2)   /* recording is off: the hook only forwards */
#define CALL_UNCOUNTED (-1) /* preloaded: recording, no window to count in */
#define DRAIN_NS (1000ULL * 1000 * 1000) /* calls inside take microseconds; a preempted thread, a time slice */

static struct { _Alignas(64) atomic_long calls; } calls_inside[CALL_STRIPES];

/* This thread's stripe: its thread pointer (threads' descriptors lie at least a page apart), hashed. */
static inline int call_stripe(void) {
    uintptr_t tp;
    __asm__("mov %%fs:0, %0" : "=r"(tp));
    return (int)(((tp >> 12) * 0x9e3779b97f4a7c15ULL) >> 60) & (CALL_STRIPES - 1);
}

/* At a hook's start: CALL_FORWARD when recording is off, else its stripe (counted) or CALL_UNCOUNTED. */
static inline int call_enter(void) {
    if (LIKELY(!attach_mode))
        return UNLIKELY(atomic_load_explicit(&recording_off, memory_order_relaxed)) ? CALL_FORWARD : CALL_UNCOUNTED;
    int stripe = call_stripe();
    atomic_fetch_add(&calls_inside[stripe].calls, 1);
    if (LIKELY(!atomic_load(&recording_off))) return stripe;
    atomic_fetch_sub_explicit(&calls_inside[stripe].calls, 1, memory_order_release);
    return CALL_FORWARD;
}

static inline void call_leave(const int *call) {
    if (*call >= 0) atomic_fetch_sub_explicit(&calls_inside[*call].calls, 1, memory_order_release);
}

/* Declares `name`, the hook's call: counted until the hook returns (or a C++ exception leaves it). */
#define CALL_COUNTED(name) int name __attribute__((cleanup(call_leave))) = call_enter()

/* The hook only forwards the call: the recorder stopped (as its call saw it: never read again, an attach may
 * have turned recording on since), or the call is nested in a hooked C++ operator (the operator records it). */
static inline int forward_only(int call) { return UNLIKELY(call == CALL_FORWARD) || is_nested(); }

/* After recording_off was set: whether every call counted before has left (waiting at most DRAIN_NS). A stripe
 * below zero never counts as drained: a forked child forgot a call that then left (calls_forget). */
static int calls_drained(void) {
    uint64_t deadline = now_ns() + DRAIN_NS;
    for (int i = 0; i < CALL_STRIPES; i++) {
        unsigned round = 0;
        while (atomic_load(&calls_inside[i].calls) != 0) {
            if (now_ns() > deadline) return 0;
            backoff(&round);
        }
    }
    return 1;
}

/* In a forked child: the calls counted were the parent's threads' (the forking thread's own ends with the fork;
 * one a signal handler interrupted, forking, leaves later and leaves its stripe below zero: the fail-safe way). */
static void calls_forget(void) {
    for (int i = 0; i < CALL_STRIPES; i++) atomic_store_explicit(&calls_inside[i].calls, 0, memory_order_relaxed);
}
