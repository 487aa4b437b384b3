/*
 * live_ticker.c - a program that runs a while, for live reports (gdb-memleak --report-every, SIGUSR1).
 *
 * "live_ticker TICKS MS": every MS milliseconds, leaks one 32-byte block and replaces one block of a 4-slot ring
 * (64 bytes each, freed when replaced: still reachable at exit). Every signal but SIGUSR1 is blocked, as a
 * server's threads block them: a report must stop the program without sending it a signal it would have to
 * take. SIGUSR1 keeps its default action (the program dies of it): the CLI's SIGUSR1 must never reach it.
 * Prints "ticker PID" first and "ticked N" last on stdout.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

// expect-args: 3 1
// expect-exit: code=0

static void *ring[4];

static __attribute__((noinline)) void leak_a_block(int i)
{
    char *p = malloc(32); // expect: leak bytes=96 blocks=3 kind=definite
    memset(p, i, 32);
}

static __attribute__((noinline)) void turn_the_ring(int i)
{
    free(ring[i % 4]);
    ring[i % 4] = malloc(64); // expect: leak bytes=192 blocks=3 kind=reachable
}

int main(int argc, char **argv)
{
    int ticks = argc > 1 ? atoi(argv[1]) : 3;
    long ms = argc > 2 ? atol(argv[2]) : 1;
    sigset_t all;
    sigfillset(&all);
    sigdelset(&all, SIGUSR1);
    sigprocmask(SIG_BLOCK, &all, NULL);
    printf("ticker %d\n", (int)getpid());
    fflush(stdout);
    struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
    for (int i = 0; i < ticks; i++) {
        leak_a_block(i);
        turn_the_ring(i);
        nanosleep(&pause, NULL);
    }
    printf("ticked %d\n", ticks);
    return 0;
}
