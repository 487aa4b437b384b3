/*
 * forked_child.c - a forked child's own table in its core (compiled by tests/gdb/test_core_file.py).
 *
 * The parent makes a block a global holds, then forks; the child (its own copy of the recorder's table) loses a
 * block of its own, keeps another through the global, and aborts: its core holds its table, the parent's block
 * included. The parent waits for it and exits 0. Findings are the child's, at its abort.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=40/1 indirect=0/0 possible=0/0 reachable=300/2

char *parents;
char *childs;

__attribute__((noinline)) void lose(void)
{
    char *p = malloc(40); // expect: leak bytes=40 kind=definite
    memset(p, 'c', 40);
    ESCAPE(p);
}

__attribute__((noinline)) void scrub_stack(void)
{
    volatile char dirt[4096];
    memset((char *)dirt, 0, sizeof dirt);
}

int main(void)
{
    parents = malloc(100); // expect: leak bytes=100 kind=reachable
    pid_t child = fork();
    if (child == 0) {
        lose();
        childs = malloc(200); // expect: leak bytes=200 kind=reachable
        scrub_stack();
        abort();
    }
    int status;
    waitpid(child, &status, 0);
    free(parents);
    return 0;
}
