/*
 * bad_free_burst.c - a long run of allocations, then three invalid frees in a row.
 *
 * The three bad frees come within a few milliseconds of each other at the end of a run of
 * 4,000 malloc/free pairs: on the HTML timeline their marks fall at nearly the same x, where
 * their labels must not overlap.  Natively glibc aborts at the first; under a checker each is
 * reported and skipped, and the program runs on.
 */
#include <stdlib.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: signal=SIGABRT
// expect-summary: definite=0/0 indirect=0/0 possible=0/0 reachable=0/0
// expect-cli-exit: code=0   (the CLI skips the bad frees, as valgrind does, so the program runs on)

static char not_heap[3][32];

int main(void)
{
    for (int i = 0; i < 4000; i++) {
        char *p = malloc(16 + i % 64);
        ESCAPE(p);
        free(p);
    }
    char *a = not_heap[0], *b = not_heap[1], *c = not_heap[2];
    __asm__ volatile("" : "+r"(a), "+r"(b), "+r"(c)); /* hide them from gcc's warning */
    free(a); // expect: invalid_free
    free(b); // expect: invalid_free
    free(c); // expect: invalid_free
    return 0;
}
