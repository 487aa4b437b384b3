/*
 * crash_segv.c - a leak followed by a crash.
 *
 * Leaks a 100-byte block, then writes through a NULL pointer and dies
 * with SIGSEGV.  The leak must still be found at the crash.
 */
#include <stdlib.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: signal=SIGSEGV
// expect-summary: definite=0/0 indirect=0/0 possible=0/0 reachable=100/1

int main(void)
{
    char *p = malloc(100); // expect: leak bytes=100 kind=reachable
    ESCAPE(p);

    volatile int *volatile bad = NULL;
    *bad = 42;
    return 0;
}
