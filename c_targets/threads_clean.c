/*
 * threads_clean.c - a threaded program that frees everything it allocates.
 *
 * pthread_create still allocates each thread's DTV (272 bytes, calloc'ed by the loader's _dl_allocate_tls) and
 * glibc keeps it with the cached stack of a joined thread: valgrind with --run-libc-freeres=no reports those
 * blocks possibly lost (the summary below); its default run frees them in libc freeres and LeakSanitizer ignores
 * TLS, so by default (built-in suppressions on) the program must get a clean bill and exit 0.
 */
#include <pthread.h>
#include <stdlib.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect: clean
// expect-exit: code=0
// expect-summary: definite=0/0 indirect=0/0 possible=544/2 reachable=0/0

static void *worker(void *arg)
{
    for (long i = 0; i < 100; i++) {
        char *p = malloc(16 + (size_t)i + (size_t)(long)arg);
        ESCAPE(p);
        free(p);
    }
    return NULL;
}

int main(void)
{
    pthread_t tids[2];
    for (long i = 0; i < 2; i++)
        if (pthread_create(&tids[i], NULL, worker, (void *)i) != 0) // expect: leak bytes=544 blocks=2 kind=possible suppressed
            return 1;
    for (int i = 0; i < 2; i++)
        pthread_join(tids[i], NULL);
    return 0;
}
