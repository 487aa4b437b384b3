/*
 * signal_fork.c - fork() from a signal handler that may interrupt the allocator: a profiling timer fires every
 * 200 us of CPU time while the only thread allocates and frees; its handler forks a child that exits at once and
 * waits for it. Natively (one thread: glibc's malloc takes no lock) this never hangs; a recorder whose fork handler
 * waits for a lock the interrupted call holds would. Prints the number of forks made: exactly FORKS, as the
 * handler forks only while fewer were made (a tick that came during the last fork's handler, or between the loop's
 * end and the timer's stop, made one more on a loaded machine: "forks 301", natively too).
 * Usage: signal_fork [FORKS]   (default 300)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t forks, wanted;

static void on_tick(int sig)
{
    (void)sig;
    if (forks >= wanted)
        return;
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    if (child > 0) {
        waitpid(child, NULL, 0);
        forks++;
    }
}

int main(int argc, char **argv)
{
    wanted = argc > 1 ? atoi(argv[1]) : 300;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_tick;
    action.sa_flags = SA_RESTART;
    sigaction(SIGPROF, &action, NULL);
    struct itimerval every = {{0, 200}, {0, 200}};
    setitimer(ITIMER_PROF, &every, NULL);
    void *keep[64] = {0};
    for (unsigned long i = 0; forks < wanted; i++) {
        unsigned k = (unsigned)(i * 2654435761u) % 64;
        free(keep[k]);
        keep[k] = malloc(16 + k * 8);
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_PROF, &off, NULL);
    for (int k = 0; k < 64; k++)
        free(keep[k]);
    printf("forks %d\n", (int)forks);
    return 0;
}
