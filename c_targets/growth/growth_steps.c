/*
 * growth_steps.c - a long-running loop cut into STEPS steps, each ending in step_done() (where a test stops, checks
 * what increased and ranks what keeps growing, then continues), with three allocation sites:
 *
 *  - leak_one: LEAK_SIZE bytes leaked at every step (the pointer is dropped): definitely lost. Between two stops its
 *    loss record increases by exactly LEAK_SIZE bytes and 1 block; it grows at every step, so the growth ranking
 *    names it (first once the cache has stopped).
 *  - cache_put: an ENTRY_SIZE-byte entry kept in a global table at each of the first CACHE_CAP steps, none after:
 *    still reachable, +ENTRY_SIZE bytes and +1 block at those steps, unchanged after; it grows, then plateaus and
 *    drops out of the ranking.
 *  - churn: SCRATCH blocks of SCRATCH_SIZE bytes each step, the previous step's freed: still reachable, its loss
 *    record never changes after the first step, and it never grows.
 *
 * At the end the scratch blocks are freed; the leaks and the cache remain. The tests read the #defines below.
 * Built by tests/gdb/test_growth_steps.py (a target of its own: not in the corpus every CLI test runs).
 */
#include <stdlib.h>
#include <string.h>

#define STEPS 8
#define LEAK_SIZE 24
#define CACHE_CAP 3
#define ENTRY_SIZE 256
#define SCRATCH 3
#define SCRATCH_SIZE 48

// expect-exit: code=0
// expect-summary: definite=192/8 indirect=0/0 possible=0/0 reachable=768/3

static char *cache[CACHE_CAP];
static int cached;
static char *scratch[SCRATCH];

__attribute__((noinline)) void step_done(int step) { __asm__ volatile("" : : "r"(step) : "memory"); }

static __attribute__((noinline)) void leak_one(int step)
{
    char *p = malloc(LEAK_SIZE); // expect: leak bytes=192 blocks=8 kind=definite
    memset(p, step, LEAK_SIZE);  /* used, then the only pointer to it is gone */
}

static __attribute__((noinline)) void cache_put(int step)
{
    if (cached == CACHE_CAP)
        return;
    cache[cached] = malloc(ENTRY_SIZE); // expect: leak bytes=768 blocks=3 kind=reachable
    memset(cache[cached++], step, ENTRY_SIZE);
}

static __attribute__((noinline)) void churn(int step)
{
    for (int i = 0; i < SCRATCH; i++) {
        free(scratch[i]);
        scratch[i] = malloc(SCRATCH_SIZE);
        memset(scratch[i], step, SCRATCH_SIZE);
    }
}

int main(void)
{
    for (int step = 1; step <= STEPS; step++) {
        leak_one(step);
        cache_put(step);
        churn(step);
        step_done(step);
    }
    for (int i = 0; i < SCRATCH; i++)
        free(scratch[i]);
    return 0;
}
