/*
 * attach_loop.c - a long-running program to attach to: prints "ready <pid>", then for N rounds allocates a
 * block, frees the previous one and sleeps 20 ms; frees the last block and prints "finished" at the end.
 * Attach tests attach in the middle, track a while, detach, and check it still finishes normally.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect: clean
// expect-exit: code=0
// expect-args: 40

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? strtol(argv[1], NULL, 10) : 40;
    struct timespec pause = {0, 20 * 1000 * 1000};
    char *previous = NULL;

    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    for (long i = 0; i < rounds; i++) {
        char *block = malloc(64 + (size_t)(i % 8) * 16);
        ESCAPE(block);
        free(previous);
        previous = block;
        nanosleep(&pause, NULL);
    }
    free(previous);
    printf("finished %ld\n", rounds);
    return 0;
}
