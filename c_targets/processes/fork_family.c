/*
 * fork_family.c - three processes: the parent forks a child, which forks a grandchild. Each process leaks its
 * own block; the child frees a block it inherited from the parent (its copy of the table knows it).
 * Checked per process against valgrind --trace-children=yes.
 */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

static __attribute__((noinline)) void leak(size_t size)
{
    void *p = malloc(size);
    ESCAPE(p);
}

int main(void)
{
    char *inherited = malloc(10);
    ESCAPE(inherited);
    pid_t child = fork();
    if (child == 0) {
        leak(100);
        free(inherited);
        pid_t grandchild = fork();
        if (grandchild == 0) {
            leak(200);
            exit(0);
        }
        waitpid(grandchild, NULL, 0);
        exit(0);
    }
    waitpid(child, NULL, 0);
    leak(30);
    free(inherited);
    return 0;
}
