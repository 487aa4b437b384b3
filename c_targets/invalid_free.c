/*
 * invalid_free.c - free() of a pointer into the middle of a block.
 *
 * p + 16 was never returned by an allocator.  Natively glibc aborts
 * inside free().  Under a checker the program continues and the
 * 64-byte block itself is leaked.
 */
#include <stdlib.h>
#include <string.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: signal=SIGABRT
// expect-summary: definite=64/1 indirect=0/0 possible=0/0 reachable=0/0
// expect-cli-exit: code=0   (the CLI skips the bad free, as valgrind does, so the program runs on)

int main(void)
{
    char *p = malloc(64); // expect: leak bytes=64 kind=definite
    memset(p, 0, 64);
    ESCAPE(p);
    char *mid = p + 16;
    __asm__ volatile("" : "+r"(mid)); /* hide the offset from gcc's warning */
    free(mid); // expect: invalid_free
    return 0;
}
