/*
 * invalid_free_where.c - bad frees of pointers of every origin; each error says what the pointer is, as
 * valgrind's "Address 0x... is 8 bytes inside a block of size 32 alloc'd" does:
 *   inside a live block, inside a freed block, on the main thread's stack, in a global (static data).
 * (An invalid realloc is in tests/gdb/test_verdicts.py.)
 * Natively glibc aborts at the first; under a checker each bad call is skipped and the program runs on.
 */
#include <stdlib.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")
#define HIDE(p) __asm__ volatile("" : "+r"(p)) /* hide the offset from gcc's warnings */

// expect-exit: signal=SIGABRT
// expect-cli-exit: code=0
// expect-summary: definite=0/0 indirect=0/0 possible=0/0 reachable=0/0

static long table[8];

int main(void)
{
    char *live = malloc(32);
    ESCAPE(live);
    char *inside = live + 8;
    HIDE(inside);
    free(inside); // expect: invalid_free

    char *gone = malloc(48);
    ESCAPE(gone);
    free(gone);
    char *stale = gone + 16;
    HIDE(stale);
    free(stale); // expect: invalid_free

    long local[4] = {0};
    long *on_stack = &local[1];
    HIDE(on_stack);
    free(on_stack); // expect: invalid_free

    long *global = &table[2];
    HIDE(global);
    free(global); // expect: invalid_free

    free(live);
    return 0;
}
