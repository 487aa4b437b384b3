/* threads_churn T N: T threads, each making N malloc/free pairs (sizes 16..79) through one helper. Nothing leaks.
 * Used by bench/recorder_vs_peers.py (b): the recorder's hot path under contention. */
#include <pthread.h>
#include <stdlib.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

static long pairs;

static __attribute__((noinline)) void churn_once(long i)
{
    void *p = malloc(16 + (size_t)(i % 64));
    ESCAPE(p);
    free(p);
}

static void *worker(void *arg)
{
    (void)arg;
    for (long i = 0; i < pairs; i++)
        churn_once(i);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 8;
    pairs = argc > 2 ? strtol(argv[2], NULL, 10) : 125000;
    pthread_t tid[256];
    if (threads < 1 || threads > 256)
        return 2;
    for (int t = 0; t < threads; t++)
        pthread_create(&tid[t], NULL, worker, NULL);
    for (int t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
    return 0;
}
