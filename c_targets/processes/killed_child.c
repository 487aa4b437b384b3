/*
 * killed_child.c - a forked worker the parent kills (SIGKILL) just before it returns from main, never waiting for
 * it: the worker's end reaches GDB while the parent is stopped at its exit. Each process still gets its report
 * (the worker "killed by SIGKILL"), and the run's exit status is the parent's own (0), not the worker's.
 */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

int main(void)
{
    pid_t worker = fork();
    if (worker == 0) {
        void *volatile mine = malloc(77);
        (void)mine;
        sleep(30);
        _exit(5);
    }
    void *volatile ours = malloc(33);
    (void)ours;
    sleep(1);
    kill(worker, SIGKILL);
    return 0;
}
