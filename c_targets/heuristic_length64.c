/*
 * heuristic_length64.c - a length-prefixed block held past its length
 * word, as sqlite's memory allocator keeps its blocks.
 *
 * sqlite3MemMalloc allocates n + 8 bytes, stores n in the first 8 and
 * hands out the block's start + 8: the only pointer to the block is an
 * interior one.  valgrind's `length64` heuristic (on by default) accepts
 * a pointer at + 8 when the first word equals the block's size - 8, and
 * counts the block still reachable ("of which reachable via heuristic:
 * length64"); with --leak-check-heuristics=none it is possibly lost.
 * (`newarray` would accept it too: length64 is tried first.)
 *
 * `skewed` points 8 bytes into a block whose first word is 0: no
 * heuristic accepts a zero length or count, it stays possibly lost.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=0/0 indirect=0/0 possible=24/1 reachable=56/1 length64=56/1

char *sized;
char *skewed;

static __attribute__((noinline)) char *length_prefixed(uint64_t n)
{
    uint64_t *p = malloc(n + 8); // expect: leak bytes=56 blocks=1 kind=reachable
    memset(p, 0, n + 8);
    p[0] = n;
    return (char *)(p + 1);
}

static __attribute__((noinline)) void hold_skewed(void)
{
    char *p = malloc(24); // expect: leak bytes=24 blocks=1 kind=possible
    memset(p, 0, 24);
    skewed = p + 8;
    p = NULL;
    ESCAPE(p);
}

static __attribute__((noinline)) void scribble(void)
{
    volatile char junk[4096];
    memset((char *)junk, 0, sizeof junk);
    ESCAPE(junk);
}

int main(void)
{
    sized = length_prefixed(48);
    hold_skewed();
    scribble();
    return 0;
}
