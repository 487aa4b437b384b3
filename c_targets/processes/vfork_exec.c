/*
 * vfork_exec.c - the parent vforks a child that execs this same program with an argument; the new image leaks
 * two blocks (one of them at startup, like any image). The parent frees everything.
 * The child's image before exec is reported on its own (exit {"exec": ...}); valgrind has no summary for it.
 */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

int main(int argc, char **argv)
{
    char *kept = malloc(33);
    ESCAPE(kept);
    if (argc > 1) {  /* the exec'd image */
        char *leaked = malloc(44);
        ESCAPE(leaked);
        return 0;
    }
    pid_t child = vfork();
    if (child == 0) {
        execl(argv[0], argv[0], "exec'd", (char *)NULL);
        _exit(127);
    }
    waitpid(child, NULL, 0);
    free(kept);
    return 0;
}
