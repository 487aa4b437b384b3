/*
 * fork_tables.c - three processes whose tables must stay apart: the parent fills its table past several growths,
 * forks a child that frees half of the inherited blocks and allocates its own, which forks a grandchild with
 * glibc's _Fork (no fork handlers run) that frees a quarter more. The parent frees and allocates only after its
 * child has finished: were the recorder's memory shared, the child's frees would be missing from the parent's
 * table. Block sizes tell the processes apart: 16 inherited, 24 child, 40 grandchild, 32 parent.
 * With an argument (a file size limit in bytes), the parent lowers RLIMIT_FSIZE before forking: the child's copy
 * can then no longer be a file and goes to private memory.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")
#define N 20000

pid_t _Fork(void);

static void *keep[N];

static void allocate(int count, size_t size)
{
    for (int i = 0; i < count; i++) {
        void *p = malloc(size);
        ESCAPE(p);
    }
}

static void release(int from, int to)
{
    for (int i = from; i < to; i++)
        free(keep[i]);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        struct rlimit limit = {strtoul(argv[1], NULL, 10), RLIM_INFINITY};
        setrlimit(RLIMIT_FSIZE, &limit);
    }
    for (int i = 0; i < N; i++)
        keep[i] = malloc(16);
    pid_t child = fork();
    if (child == 0) {
        release(0, N / 2);
        allocate(3000, 24);
        pid_t grandchild = _Fork();
        if (grandchild == 0) {
            release(N / 2, N / 2 + N / 4);
            allocate(500, 40);
            exit(0);
        }
        waitpid(grandchild, NULL, 0);
        exit(0);
    }
    waitpid(child, NULL, 0);
    allocate(1000, 32);
    release(N - N / 4, N);
    return 0;
}
