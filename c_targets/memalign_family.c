/*
 * memalign_family.c - the rest of the C allocator family: reallocarray, posix_memalign (the block is returned
 * through its first argument), aligned_alloc, memalign, valloc. Each leaks one block at its own line; a failing
 * posix_memalign (bad alignment) allocates nothing. (pvalloc is hooked too, but valgrind aborts on it.)
 */
#include <malloc.h>
#include <stdlib.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=246/5 indirect=0/0 possible=0/0 reachable=0/0

int main(void)
{
    void *grown = reallocarray(NULL, 3, 8); // expect: leak bytes=24 kind=definite
    ESCAPE(grown);
    void *aligned;
    if (posix_memalign(&aligned, 64, 100) != 0) // expect: leak bytes=100 kind=definite
        return 1;
    ESCAPE(aligned);
    aligned = NULL;
    void *rejected = NULL;
    if (posix_memalign(&rejected, 3, 10) == 0) /* alignment 3 is invalid: EINVAL, no block */
        return 1;
    void *a = aligned_alloc(32, 64); // expect: leak bytes=64 kind=definite
    ESCAPE(a);
    void *m = memalign(16, 48); // expect: leak bytes=48 kind=definite
    ESCAPE(m);
    void *v = valloc(10); // expect: leak bytes=10 kind=definite
    ESCAPE(v);
    void *freed = memalign(128, 256);
    ESCAPE(freed);
    free(freed);
    a = m = v = grown = NULL;
    ESCAPE(a);
    return 0;
}
