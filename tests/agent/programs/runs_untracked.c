/*
 * runs_untracked.c - an ordinary program for a recorder that cannot record (its memory cannot be mapped, its thread
 * key cannot be made, a check fails): it must run to its end as it does alone, output and exit status included.
 * It leaks 7 blocks of 48 bytes, frees the rest, forks a child that does the same, and exits with status 3.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

static int work(void)
{
    int sum = 0;
    for (int i = 0; i < 1000; i++) {
        char *p = malloc(48);
        memset(p, i, 48);
        sum += p[7];
        if (i % 150 == 0)
            ESCAPE(p); /* kept: 7 blocks leak */
        else
            free(p);
    }
    return sum;
}

int main(void)
{
    int sum = work();
    fflush(stdout);
    pid_t child = fork();
    if (child == 0)
        _exit(work() == sum ? 5 : 6);
    int status = 0;
    waitpid(child, &status, 0);
    printf("sum %d, child %d\n", sum, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 3;
}
