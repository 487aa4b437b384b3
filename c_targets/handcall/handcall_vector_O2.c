/*
 * handcall_vector_O2.c - a loop keeping doubles in vector registers, for tests calling a function by hand in the
 * middle of it (tests/gdb/test_handcall.py): the printed result must equal the native run's.
 * Each pass recomputes the same sums; passes repeat until scramble() (called by hand) sets `finish`, or argv[1]
 * passes ran (the native run: 1). scramble() clobbers vector registers itself (double arithmetic, memset's AVX).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// expect: clean
// expect-exit: code=0
// expect-args: 1

volatile long iteration;
volatile int finish;

__attribute__((noinline)) long scramble(long x)
{
    static char buffer[4096];
    double a = (double)x, b = 1.5;
    for (int i = 0; i < 100; i++) {
        a = a * 1.0001 + b;
        b = b / 1.01 + a * 1e-9;
    }
    memset(buffer, (int)x, sizeof buffer);
    finish = 1;
    return (long)a + buffer[17];
}

int main(int argc, char **argv)
{
    long passes = argc > 1 ? strtol(argv[1], NULL, 10) : 1;
    double s0, s1, s2, s3;
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    do {
        s0 = 0.0, s1 = 1.0, s2 = 0.5, s3 = 0.25;
        for (long i = 0; i < 20000000; i++) {
            double x = (double)(i & 1023) * 0.001;
            s0 += x * 1.000001;
            s1 = s1 * 0.9999999 + x;
            s2 += s1 * 1e-9 - x * 0.5;
            s3 = s3 * 0.5 + s2 * 1e-12;
            iteration = i;
        }
    } while (!finish && (passes <= 0 || --passes > 0));
    printf("result %.17g %.17g %.17g %.17g\n", s0, s1, s2, s3);
    return 0;
}
