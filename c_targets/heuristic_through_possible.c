/*
 * heuristic_through_possible.c - a block a heuristic accepts, reached only
 * through a possibly lost block.
 *
 * `holder` (32 bytes) is reached only through an interior pointer no
 * heuristic accepts (its first word is 'xxxxxxxx'): possibly lost.  It
 * holds the only pointer to `sized`, a length-prefixed block, 8 bytes in,
 * which the `length64` heuristic accepts.  A pointer found in a possibly
 * lost block makes its target possibly lost whatever kind of pointer it
 * is, so `sized` is possibly lost too; but valgrind remembers the
 * heuristic that judged it and its LEAK SUMMARY counts it under "of which
 * reachable via heuristic: length64" although nothing is still reachable.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=0/0 indirect=0/0 possible=72/2 reachable=0/0 length64=40/1

char *inside_holder;

static __attribute__((noinline)) void hold_through_possible(void)
{
    uint64_t *sized = malloc(40); // expect: leak bytes=40 blocks=1 kind=possible
    memset(sized, 0, 40);
    sized[0] = 32;
    char *holder = malloc(32); // expect: leak bytes=32 blocks=1 kind=possible
    memset(holder, 'x', 32);
    ((uint64_t **)holder)[2] = sized + 1;
    inside_holder = holder + 8;
    holder = NULL;
    sized = NULL;
    ESCAPE(holder);
    ESCAPE(sized);
}

static __attribute__((noinline)) void scribble(void)
{
    volatile char junk[4096];
    memset((char *)junk, 0, sizeof junk);
    ESCAPE(junk);
}

int main(void)
{
    hold_through_possible();
    scribble();
    return 0;
}
