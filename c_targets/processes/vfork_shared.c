/*
 * vfork_shared.c - a vfork child runs in its parent's memory until it execs or exits: what it allocates and frees
 * is the parent's heap (as dash does between vfork and exec). The child frees one of the parent's blocks and
 * allocates one the parent frees after the child is gone. Natively nothing is wrong: no heap error, no leak.
 * (valgrind turns vfork into fork, so it would see the parent free a pointer it never allocated.)
 */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

int main(void)
{
    char *parents = malloc(48);
    char *childs = NULL;
    ESCAPE(parents);
    pid_t child = vfork();
    if (child == 0) {
        free(parents);       /* the parent's block, freed in the shared heap */
        childs = malloc(24); /* a block of the shared heap, seen by the parent */
        ESCAPE(childs);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    free(childs);
    return 0;
}
