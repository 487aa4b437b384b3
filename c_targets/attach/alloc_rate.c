/*
 * alloc_rate.c - an allocation-heavy loop that says how fast it runs, for bench/attach_speed.py.
 *
 * Usage: alloc_rate SECONDS
 *   Prints "ready <pid>", then loops malloc(16..271)/free for SECONDS seconds; every 50 ms a line
 *   "<CLOCK_MONOTONIC seconds> <iterations so far>" (stdout, flushed), so a reader on the same clock (Python's
 *   time.monotonic) can take the rate over any window: before, during and after an attach. Exits 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 5.0;
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    double start = now(), next = start + 0.05;
    unsigned long i = 0;
    for (;;) {
        for (int k = 0; k < 256; k++, i++) {
            void *p = malloc(16 + (i & 255));
            ESCAPE(p);
            free(p);
        }
        double t = now();
        if (t >= next) {
            printf("%.4f %lu\n", t, i);
            fflush(stdout);
            next = t + 0.05;
            if (t - start >= seconds) break;
        }
    }
    return 0;
}
