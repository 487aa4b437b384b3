/*
 * handcall_signal.c - one thread, blocked in read(2) on stdin, with a SIGUSR1 handler that counts, for the test
 * where a signal sent to the process arrives while a function called by hand runs (tests/gdb/test_handcall.py):
 * spin(ms) busy-waits that long (no system call a signal could interrupt) and returns 7; main prints how many
 * SIGUSR1 it handled once it has read a line.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t handled;

static void on_usr1(int sig)
{
    (void)sig;
    handled++;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

long spin(long ms)
{
    double end = now() + (double)ms / 1e3;
    while (now() < end)
        ;
    return 7;
}

int main(void)
{
    char line[64] = {0};
    struct sigaction action = {0};
    action.sa_handler = on_usr1;
    action.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &action, NULL);
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    ssize_t got = read(0, line, sizeof line - 1);
    printf("handled %d read %zd\n", (int)handled, got);
    return 0;
}
