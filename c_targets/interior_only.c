/*
 * interior_only.c - a block reachable only through an interior pointer.
 *
 * make_mid() allocates 32 bytes and keeps only p + 8 in the global `mid`;
 * the start pointer is dropped.  Valgrind calls such a block "possibly
 * lost".  The block is filled with 'x' so that its first word is not a
 * plausible array count or string length: valgrind's leak heuristics
 * (newarray, length64, on by default) must not promote it to "reachable".
 */
#include <stdlib.h>
#include <string.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=0/0 indirect=0/0 possible=32/1 reachable=0/0

char *mid;

static __attribute__((noinline)) void make_mid(void)
{
    char *p = malloc(32); // expect: leak bytes=32 blocks=1 kind=possible
    memset(p, 'x', 32);
    mid = p + 8;
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
    make_mid();
    scribble();
    return 0;
}
