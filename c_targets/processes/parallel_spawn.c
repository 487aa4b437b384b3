/*
 * parallel_spawn.c - what `make -j2` and `sh -c 'cmd & cmd; wait'` do: two forked workers run at the same time,
 * each starting short-lived children the way a shell does (vfork, then exec), while the other worker's children
 * exit. A stop GDB presents while one worker sleeps in vfork (its child not yet exec'd) must not hang the run.
 * Each worker leaks 16 * (its number + 1) bytes; the parent leaks 8. Every exec'd child is /bin/true.
 */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")
#define WORKERS 2
#define CHILDREN 15

static void worker(int number)
{
    char *leaked = malloc(16 * (number + 1));
    ESCAPE(leaked);
    for (int i = 0; i < CHILDREN; i++) {
        char *scratch = malloc(64);  /* freed: the worker's own heap churns between children */
        ESCAPE(scratch);
        pid_t child = vfork();
        if (child == 0) {
            execl("/bin/true", "true", (char *)NULL);
            _exit(127);
        }
        waitpid(child, NULL, 0);
        free(scratch);
    }
    exit(0);
}

int main(void)
{
    char *leaked = malloc(8);
    ESCAPE(leaked);
    pid_t workers[WORKERS];
    for (int n = 0; n < WORKERS; n++) {
        workers[n] = fork();
        if (workers[n] == 0)
            worker(n);
    }
    for (int n = 0; n < WORKERS; n++)
        waitpid(workers[n], NULL, 0);
    return 0;
}
