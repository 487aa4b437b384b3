/*
 * fork_aged.c - a block allocated 1.5 s before a fork. The forked child inherits it (its copy of the parent's
 * table) and must see it 1.5 s old, on the clock its parent's tracking started: its age (`leaks --older-than`,
 * `memleak block`) and the times of the child's timeline count from the start of the program, not from the fork.
 * The child stops in child_checkpoint() with its own block just made; tests/gdb/test_fork_clock.py drives it.
 */
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

__attribute__((noinline)) void child_checkpoint(void *young)
{
    ESCAPE(young);
}

int main(void)
{
    char *old = malloc(64);
    ESCAPE(old);
    struct timespec pause = {1, 500000000};
    nanosleep(&pause, NULL);
    pid_t child = fork();
    if (child == 0) {
        char *young = malloc(32);
        child_checkpoint(young);
        free(young);
        free(old);
        exit(0);
    }
    waitpid(child, NULL, 0);
    free(old);
    return 0;
}
