/*
 * threads.c - allocation from several threads at once.
 *
 * 4 threads each do 2000 malloc/free pairs of varying sizes and leak
 * exactly one 64-byte block.  pthread_create itself makes allocations
 * inside libc (thread TLS/DTV); those are system allocations and are
 * not declared here.
 */
#include <pthread.h>
#include <stdlib.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=256/4 indirect=0/0 possible=1088/4 reachable=0/0

#define NTHREADS 4
#define NPAIRS 2000

static void *worker(void *arg)
{
    long id = (long)arg;

    for (long i = 0; i < NPAIRS; i++) {
        char *p = malloc(1 + (size_t)((i * 37 + id * 11) % 500));
        p[0] = (char)i;
        ESCAPE(p);
        free(p);
    }

    void *keep = malloc(64); // expect: leak bytes=256 blocks=4 kind=definite
    ESCAPE(keep);
    return NULL;
}

int main(void)
{
    pthread_t tids[NTHREADS];

    for (long i = 0; i < NTHREADS; i++)
        /* glibc keeps each joined thread's TLS (DTV, 272 bytes, calloc'ed by the loader) for reuse:
           valgrind --run-libc-freeres=no reports it possibly lost (the summary above, defaults off); its default
           run frees it in libc freeres, and gdb-memleak's default suppressions hide it. */
        if (pthread_create(&tids[i], NULL, worker, (void *)i) != 0) // expect: leak bytes=1088 blocks=4 kind=possible suppressed
            return 1;
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(tids[i], NULL);
    return 0;
}
