/*
 * call_target.c - a program GDB makes calls into by hand (tests/gdb/test_handcall.py).
 *
 * Usage: call_target ROUNDS
 *   Prints "ready <pid>"; a worker thread sums doubles in SSE/AVX registers (its result, printed at the end, must
 *   equal a native run's whatever is injected meanwhile) and another allocates; main sleeps 20 ms per round.
 *   `bump(a, b)` adds 1 to `bumped` and returns a + b; `fault()` dereferences NULL; `say(text)` copies a string
 *   into `said`. At the end prints "bumped <n> said <text> sum <result>".
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile long bumped;
char said[64];
static volatile int stop;
static double total;

long bump(long a, long b) { bumped++; return a + b; }
long say(const char *text) { strncpy(said, text, sizeof said - 1); return (long)strlen(said); }
long fault(void) { return *(volatile long *)0; }

static void *summer(void *arg) {
    (void)arg;
    double acc[4] = {0, 0, 0, 0};
    for (long i = 1; i <= 1000000000; i++) {
        acc[i & 3] += 1.0 / (double)i;
        if (stop) break;
    }
    total = acc[0] + acc[1] + acc[2] + acc[3];
    return NULL;
}

static void *allocator(void *arg) {
    (void)arg;
    while (!stop) {
        void *p = malloc(100);
        __asm__ volatile("" : : "r"(p) : "memory");
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? strtol(argv[1], NULL, 10) : 50;
    pthread_t a, b;
    pthread_create(&a, NULL, summer, NULL);
    pthread_create(&b, NULL, allocator, NULL);
    printf("ready %d\n", 0 + (int)getpid());
    fflush(stdout);
    struct timespec pause = {0, 20 * 1000 * 1000};
    for (long i = 0; i < rounds; i++) nanosleep(&pause, NULL);
    pthread_join(a, NULL);
    stop = 1;
    pthread_join(b, NULL);
    printf("bumped %ld said %s sum %.12f\n", bumped, said[0] ? said : "-", total);
    return 0;
}
