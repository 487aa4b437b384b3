/*
 * ctor_leak.c - a user shared library whose constructor leaks 500 bytes (built twice, see the Makefile):
 *
 *   bin/libctor_leak.so   this file with -DCTOR_LIBRARY: the constructor runs from the loader (_dl_init)
 *   bin/ctor_leak         this file's main, linked to libctor_leak.so (rpath $ORIGIN)
 *
 * The block is allocated under ld.so's _dl_init/call_init, as libstdc++'s emergency pool is: a default
 * suppression for the runtime's own one-off block must not hide it. valgrind: 500 bytes definitely lost.
 */
#include <stdlib.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=500/1 indirect=0/0 possible=0/0 reachable=0/0

void ctor_leak_touch(void);

#ifdef CTOR_LIBRARY
__attribute__((constructor)) static void ctor_leak_init(void)
{
    char *p = malloc(500); // expect: leak bytes=500 kind=definite
    p[0] = 1;
    ESCAPE(p);
}

void ctor_leak_touch(void)
{
}
#else
int main(void)
{
    ctor_leak_touch();
    return 0;
}
#endif
