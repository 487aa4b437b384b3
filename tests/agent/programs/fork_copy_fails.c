/*
 * fork_copy_fails.c - a fork whose copy of the recorder's table cannot be made: the parent holds 10,000 blocks of
 * 16 bytes, then lowers RLIMIT_FSIZE (no file for the copy) and RLIMIT_AS to a little above what it uses (no
 * private memory the size of the region either) and forks. The child frees every inherited block and allocates
 * 2,000 of 24 bytes; the parent waits for it, then allocates 1,000 of 32 bytes. The parent's table must hold
 * exactly its own history (10,000 x 16 + 1,000 x 32): a child writing into it would free the 16s and add the 24s.
 * Prints the child's exit status (0: it ran to its end).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")
#define N 10000

static void *keep[N];

static unsigned long vm_size_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmSize:", 7) == 0)
            kb = strtoul(line + 7, NULL, 10);
    if (f)
        fclose(f);
    return kb * 1024;
}

int main(void)
{
    for (int i = 0; i < N; i++)
        keep[i] = malloc(16);
    struct rlimit files = {1 << 20, RLIM_INFINITY};
    struct rlimit space = {vm_size_bytes() + (64ul << 20), RLIM_INFINITY};
    if (setrlimit(RLIMIT_FSIZE, &files) != 0 || setrlimit(RLIMIT_AS, &space) != 0) {
        perror("setrlimit");
        return 2;
    }
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        for (int i = 0; i < N; i++)
            free(keep[i]);
        for (int i = 0; i < 2000; i++) {
            void *p = malloc(24);
            ESCAPE(p);
        }
        exit(0);
    }
    int status = -1;
    waitpid(child, &status, 0);
    for (int i = 0; i < 1000; i++) {
        void *p = malloc(32);
        ESCAPE(p);
    }
    printf("child %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}
