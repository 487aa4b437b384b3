/*
 * churn.c - allocator throughput benchmark.
 *
 * "churn N" performs N malloc/free pairs (sizes 16..79) through one
 * helper function.  No output, nothing leaked.  Default N is 1000.
 */
#include <stdlib.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect: clean
// expect-args: 1000
// expect-exit: code=0

static __attribute__((noinline)) void churn_once(long i)
{
    void *p = malloc(16 + (size_t)(i % 64));
    ESCAPE(p);
    free(p);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1000;

    for (long i = 0; i < n; i++)
        churn_once(i);
    return 0;
}
