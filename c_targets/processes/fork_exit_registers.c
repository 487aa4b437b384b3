/*
 * fork_exit_registers.c - a forked child's last pointer to its block sits in a caller-saved register when it
 * calls _exit: dead there (valgrind, checking after exit_group, reports the child's 222 bytes definitely lost).
 * The parent frees everything.
 */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
    pid_t child = fork();
    if (child == 0) {
        char *volatile p = malloc(222);
        p = NULL;
        _exit(0);
    }
    waitpid(child, NULL, 0);
    return 0;
}
