/* live_steady N SECONDS: N live blocks (16..255 bytes, held by one array: still reachable), then a steady loop of
 * malloc/free pairs for SECONDS, timing every iteration: each gap above 5 ms is a stall (a live report stops the
 * program). Prints "ready" once the blocks are made, and at the end
 * "stalls COUNT longest_ms TOTAL_ms iterations ITERATIONS". bench/live_report_pause.py runs it. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
    double seconds = argc > 2 ? strtod(argv[2], NULL) : 5;
    void **all = malloc(sizeof *all * (size_t)n);
    for (long i = 0; i < n; i++)
        all[i] = malloc((size_t)(16 + (i * 37) % 240));
    printf("ready\n");
    fflush(stdout);
    long stalls = 0, iterations = 0;
    double longest = 0, total = 0, start = now(), last = start;
    while (last - start < seconds) {
        void *p = malloc(64);
        ESCAPE(p);
        free(p);
        double t = now(), gap = t - last;
        if (gap > 0.005) {
            stalls++;
            total += gap;
            if (gap > longest) longest = gap;
        }
        last = t;
        iterations++;
    }
    printf("stalls %ld %.1f %.1f iterations %ld\n", stalls, longest * 1e3, total * 1e3, iterations);
    ESCAPE(all);
    return 0;
}
