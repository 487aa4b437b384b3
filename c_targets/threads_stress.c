/*
 * threads_stress.c - 8 threads making 10,000 allocations each, all at once.
 *
 * Each worker cycles 10,000 allocation calls (malloc, calloc and realloc
 * in turn) over 16 slots of its own, freeing a slot's block before a
 * malloc or calloc reuses it, and frees every slot at the end: 80,000
 * allocations and about 53,000 free calls across 8 threads (valgrind
 * counts 80,000 frees: a realloc is a free plus an allocation, free(NULL)
 * is not counted), nothing lost.  Under gdb-memleak that is about 213,000
 * breakpoint stops (a minute or more).  Each worker
 * also leaks exactly 3 blocks of 40 bytes from one line (definitely lost:
 * the pointers only ever live in that worker's registers and stack).
 *
 * Threads get an explicit 256 KiB stack so the outcome does not depend on
 * `ulimit -s`: all 8 stacks fit glibc's stack cache, so (as in threads.c)
 * glibc keeps each joined thread's DTV (272 bytes, calloc'ed by the loader
 * in _dl_allocate_tls under pthread_create) and valgrind reports it
 * possibly lost at the pthread_create line.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=960/24 indirect=0/0 possible=2176/8 reachable=0/0

#define NTHREADS 8
#define NALLOCS 10000
#define NSLOTS 16
#define NLEAKS 3

static __attribute__((noinline)) void leak_some(long id)
{
    for (int i = 0; i < NLEAKS; i++) {
        char *p = malloc(40); // expect: leak bytes=960 blocks=24 kind=definite
        memset(p, (int)id, 40);
        ESCAPE(p);
    }
}

static void *worker(void *arg)
{
    long id = (long)arg;
    char *slots[NSLOTS] = {0};

    for (long i = 0; i < NALLOCS; i++) {
        int s = (int)((i * 7 + id) % NSLOTS);
        size_t size = 1 + (size_t)((i * 37 + id * 11) % 300);
        switch (i % 3) {
        case 0:
            free(slots[s]);
            slots[s] = malloc(size);
            break;
        case 1:
            free(slots[s]);
            slots[s] = calloc(1 + size % 7, 8);
            break;
        default:  /* realloc(NULL, n) when the slot is empty: an allocation too */
            slots[s] = realloc(slots[s], size * 2);
            break;
        }
        slots[s][0] = (char)i;
        if (i == NALLOCS / 2)
            leak_some(id);
    }
    for (int s = 0; s < NSLOTS; s++)
        free(slots[s]);
    memset(slots, 0, sizeof slots);
    ESCAPE(slots);
    return NULL;
}

int main(void)
{
    pthread_t tids[NTHREADS];
    pthread_attr_t attr;

    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 << 10);
    for (long i = 0; i < NTHREADS; i++)
        if (pthread_create(&tids[i], &attr, worker, (void *)i) != 0) // expect: leak bytes=2176 blocks=8 kind=possible suppressed
            return 1;
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(tids[i], NULL);
    pthread_attr_destroy(&attr);
    return 0;
}
