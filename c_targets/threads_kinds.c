/*
 * threads_kinds.c - three threads, each leaking one block of each of two kinds.
 *
 * Each worker drops the pointer to a 48-byte block (definitely lost) and
 * stores a 32-byte block in the global array `kept` (still reachable).
 * main creates all three threads before joining any, so each gets its own
 * stack and TLS.  glibc keeps each joined thread's TLS (the DTV, 272 bytes,
 * calloc'ed by the loader in _dl_allocate_tls) for reuse; the cached thread
 * descriptor points 16 bytes into it, so valgrind reports it "possibly lost".
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=144/3 indirect=0/0 possible=816/3 reachable=96/3

#define NTHREADS 3

void *kept[NTHREADS];

static __attribute__((noinline)) void drop(long id)
{
    char *p = malloc(48); // expect: leak bytes=144 blocks=3 kind=definite
    memset(p, (int)id, 48);
    ESCAPE(p);
    p = NULL;
    ESCAPE(p);
}

static __attribute__((noinline)) void keep(long id)
{
    kept[id] = malloc(32); // expect: leak bytes=96 blocks=3 kind=reachable
    memset(kept[id], (int)id, 32);
}

static void *worker(void *arg)
{
    long id = (long)arg;
    drop(id);
    keep(id);
    return NULL;
}

int main(void)
{
    pthread_t tids[NTHREADS];

    for (long i = 0; i < NTHREADS; i++)
        if (pthread_create(&tids[i], NULL, worker, (void *)i) != 0) // expect: leak bytes=816 blocks=3 kind=possible suppressed
            return 1;
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(tids[i], NULL);
    return 0;
}
