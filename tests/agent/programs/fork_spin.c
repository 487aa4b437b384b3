/*
 * fork_spin.c - what other threads cost while a fork copies a big recorder table: the main thread holds a million
 * blocks, three threads allocate and free without pause, and the main thread forks (the recorder copies its table
 * for the child, holding its locks, for a few tenths of a second). Prints the fork's wall time and the CPU time the
 * other threads used meanwhile: threads waiting for the recorder's locks should sleep, not spin.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BLOCKS 1000000
#define WORKERS 3

static atomic_int stop, running;

static double seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *churn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&running, 1);
    void *keep[16] = {0};
    for (unsigned i = 0; !atomic_load_explicit(&stop, memory_order_relaxed); i++) {
        free(keep[i % 16]);
        keep[i % 16] = malloc(24 + i % 7);
    }
    for (int k = 0; k < 16; k++)
        free(keep[k]);
    return NULL;
}

/* CPU time of every thread but this one */
static double others_cpu(void) { return seconds(CLOCK_PROCESS_CPUTIME_ID) - seconds(CLOCK_THREAD_CPUTIME_ID); }

int main(void)
{
    void **blocks = malloc(BLOCKS * sizeof *blocks);
    for (int i = 0; i < BLOCKS; i++)
        blocks[i] = malloc(16);
    pthread_t threads[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        pthread_create(&threads[i], NULL, churn, NULL);
    while (atomic_load(&running) < WORKERS)
        usleep(1000);
    usleep(20000);
    double cpu0 = others_cpu(), wall0 = seconds(CLOCK_MONOTONIC);
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    double wall = seconds(CLOCK_MONOTONIC) - wall0, cpu = others_cpu() - cpu0;
    atomic_store(&stop, 1);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(threads[i], NULL);
    waitpid(child, NULL, 0);
    for (int i = 0; i < BLOCKS; i++)
        free(blocks[i]);
    free(blocks);
    printf("fork %.6f s, other threads' cpu %.6f s\n", wall, cpu);
    return 0;
}
