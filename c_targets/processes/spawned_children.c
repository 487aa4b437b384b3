/*
 * spawned_children.c - the parent starts this same program four times, through each way glibc execs without its
 * exported execve (so no PLT hook sees it): system() and popen() (glibc's internal clone + execve, through
 * /bin/sh), fexecve() and execveat() after a fork. Each child image makes 20,000 malloc/free pairs and leaks one
 * block at its own line (the size says which child it is). The parent frees everything it allocates.
 * Under gdb-memleak every child must be tracked by the recorder (no "using the breakpoint engine" line: 20,000
 * pairs cost ~10 s under the breakpoint engine, well under 1 s under the recorder) and its leak found.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")
#define PAIRS 20000

extern char **environ;

static void *leak(size_t size)
{
    switch (size) {
    case 111: return malloc(111);  // expect: leak bytes=111 blocks=1 kind=definite
    case 222: return malloc(222);  // expect: leak bytes=222 blocks=1 kind=definite
    case 333: return malloc(333);  // expect: leak bytes=333 blocks=1 kind=definite
    default: return malloc(444);   // expect: leak bytes=444 blocks=1 kind=definite
    }
}

static int child(size_t size)
{
    for (int i = 0; i < PAIRS; i++) {
        void *p = malloc(16 + i % 64);
        ESCAPE(p);
        free(p);
    }
    void *lost = leak(size);
    ESCAPE(lost);
    lost = NULL;
    printf("child %d\n", (int)getpid());
    return 0;
}

/* fork, then replace the child's image through the descriptor of this program (AT_EMPTY_PATH or fexecve) */
static int exec_from_fd(const char *size, int use_fexecve)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/proc/self/exe", O_RDONLY);
        char *args[] = {"spawned_children", (char *)size, NULL};
        if (use_fexecve)
            fexecve(fd, args, environ);
        else
            execveat(fd, "", args, environ, AT_EMPTY_PATH);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return child((size_t)strtoul(argv[1], NULL, 10));
    char self[4096], command[4200];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0)
        return 2;
    self[n] = '\0';
    snprintf(command, sizeof command, "'%s' 111", self);
    int failures = system(command) != 0;
    snprintf(command, sizeof command, "'%s' 222", self);
    FILE *out = popen(command, "r");
    if (out == NULL)
        return 3;
    char line[128];
    while (fgets(line, sizeof line, out) != NULL) {}
    failures += pclose(out) != 0;
    failures += exec_from_fd("333", 1) != 0;
    failures += exec_from_fd("444", 0) != 0;
    printf("parent %d\n", (int)getpid());
    return failures;  // expect-exit: code=0
}
