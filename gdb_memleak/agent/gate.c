/* The gate: holding every allocator call still while GDB reads glibc's heap at an attach. Part of recorder.c.
 *
 * When tracking starts on a running process, GDB walks glibc's arenas to learn the blocks live before (their
 * records come in through memleak_agent_adopt). The walk needs glibc's heap at rest and no hook half-way through
 * (a block freed in glibc but still in the table, or allocated but not yet recorded), while the process keeps
 * running between GDB's calls. GDB calls memleak_agent_hold (by hand): the hooks' first check, `ensure_init`,
 * finds init_state INIT_HELD instead of 2 and waits in memleak_agent_gate, before touching anything; calls
 * already inside finish while hold sleeps. At the stop that follows, GDB checks that every thread is either
 * outside the allocator or waiting in memleak_agent_gate (by their frames), walks, adopts, and calls
 * memleak_agent_release. The hot path pays nothing: it already loads init_state. */

#define INIT_HELD 3
#define HOLD_SETTLE_NS (2 * 1000 * 1000) /* calls already inside an allocator finish in microseconds */

/* Where a held thread waits (GDB recognises it by this function in the thread's frames). */
EXPORT __attribute__((noinline, used)) void memleak_agent_gate(void) {
    unsigned round = 0;
    while (atomic_load_explicit(&init_state, memory_order_acquire) == INIT_HELD) backoff(&round);
}

/* Close the gate (if recording) and give the calls already inside time to leave: 0, or -1 when the recorder is
 * not recording (nothing to hold: its hooks only forward). Called again while held, it only waits again. */
EXPORT __attribute__((noinline, used)) int memleak_agent_hold(void) {
    if (atomic_load(&recording_off)) return -1;
    int expected = 2;
    if (!atomic_compare_exchange_strong(&init_state, &expected, INIT_HELD) && expected != INIT_HELD) return -1;
    struct timespec settle = {0, HOLD_SETTLE_NS};
    nanosleep(&settle, NULL);
    return 0;
}

/* Open the gate: the held calls go on. */
EXPORT __attribute__((noinline, used)) void memleak_agent_release(void) {
    int expected = INIT_HELD;
    atomic_compare_exchange_strong(&init_state, &expected, 2);
}
