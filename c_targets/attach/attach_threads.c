/*
 * attach_threads.c - a server-like process to attach to while its threads allocate.
 *
 * Usage: attach_threads THREADS COUNTED
 *   Prints "ready <pid>", then every thread churns (malloc/calloc/realloc/free of 16..4096 bytes, a ring of 64
 *   blocks held: blocks allocated before an attach are freed after it). Before starting, main leaks LEAKED_BLOCKS
 *   blocks of LEAKED_SIZE bytes (pointers dropped: definitely lost) and keeps KEPT_BLOCKS of KEPT_SIZE in a global
 *   array (still reachable).
 *   When `phase` becomes 1 (SIGUSR1, or a debugger writing it), every thread makes exactly COUNTED allocations of
 *   COUNTED_SIZE + its index bytes, frees every other one and keeps the rest in `counted` (still reachable), then
 *   stops churning; main prints "done" and waits for SIGTERM (or `phase` 2) to free everything and exit 0.
 *   Totals a tool must find for the counted part: THREADS*COUNTED allocations of those sizes, half of them live.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")
#define RING 64
#define MAX_THREADS 16
#define LEAKED_BLOCKS 5
#define LEAKED_SIZE 200
#define KEPT_BLOCKS 7
#define KEPT_SIZE 300
#define COUNTED_SIZE 5000

volatile sig_atomic_t phase;
static int threads, counted_per_thread;
static volatile int finished[MAX_THREADS];
void **counted[MAX_THREADS];
void *kept[KEPT_BLOCKS];
volatile unsigned long iterations[MAX_THREADS];

static void on_usr1(int sig) { (void)sig; if (phase == 0) phase = 1; }
static void on_term(int sig) { (void)sig; phase = 2; }

static unsigned next_random(unsigned *state) { return *state = *state * 1103515245u + 12345u; }

static void *worker(void *arg) {
    long index = (long)arg;
    unsigned seed = (unsigned)index * 7919u + 1;
    void *ring[RING] = {0};
    unsigned long i = 0;
    while (phase == 0) {
        unsigned r = next_random(&seed);
        size_t size = 16 + (r >> 8) % 4081;
        void **slot = &ring[i % RING];
        switch (r % 4) {
        case 0: free(*slot); *slot = malloc(size); break;
        case 1: free(*slot); *slot = calloc(1, size); break;
        case 2: *slot = realloc(*slot, size); break;
        default: { void *p = malloc(size); ESCAPE(p); free(p); } break;
        }
        iterations[index] = ++i;
    }
    void **mine = counted[index];
    for (int k = 0; k < counted_per_thread; k++) {
        mine[k] = malloc(COUNTED_SIZE + (size_t)index);
        ESCAPE(mine[k]);
        if (k % 2) {
            free(mine[k]);
            mine[k] = NULL;
        }
    }
    for (int k = 0; k < RING; k++) free(ring[k]);
    finished[index] = 1;
    while (phase != 2) {
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    for (int k = 0; k < counted_per_thread; k++) free(mine[k]);
    return NULL;
}

int main(int argc, char **argv) {
    threads = argc > 1 ? atoi(argv[1]) : 4;
    counted_per_thread = argc > 2 ? atoi(argv[2]) : 1000;
    if (threads < 1 || threads > MAX_THREADS || counted_per_thread < 1) return 2;
    signal(SIGUSR1, on_usr1);
    signal(SIGTERM, on_term);
    for (int k = 0; k < LEAKED_BLOCKS; k++) {
        void *p = malloc(LEAKED_SIZE);
        memset(p, k, LEAKED_SIZE);
        ESCAPE(p);
    }
    for (int k = 0; k < KEPT_BLOCKS; k++) kept[k] = malloc(KEPT_SIZE);
    for (int t = 0; t < threads; t++) counted[t] = calloc((size_t)counted_per_thread, sizeof(void *));
    pthread_t tids[MAX_THREADS];
    for (long t = 0; t < threads; t++) pthread_create(&tids[t], NULL, worker, (void *)t);
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    for (;;) {
        int all = 1;
        for (int t = 0; t < threads; t++) all &= finished[t];
        if (all) break;
        struct timespec pause = {0, 5 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    printf("done\n");
    fflush(stdout);
    while (phase != 2) {
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    for (int t = 0; t < threads; t++) pthread_join(tids[t], NULL);
    for (int t = 0; t < threads; t++) free(counted[t]);
    for (int k = 0; k < KEPT_BLOCKS; k++) free(kept[k]);
    printf("finished\n");
    return 0;
}
