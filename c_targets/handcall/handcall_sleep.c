/*
 * handcall_sleep.c - a single-threaded program blocked in read(2) on stdin, for tests calling a function by hand
 * (tests/gdb/test_handcall.py): bump() increments a global and returns it; main prints the global and the line it read.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

// expect: clean
// expect-exit: code=0

volatile long counter = 40;

long bump(long by)
{
    counter += by;
    return counter * 10;
}

int main(void)
{
    char line[64] = {0};
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    ssize_t got = read(0, line, sizeof line - 1);
    line[strcspn(line, "\n")] = 0;
    printf("counter %ld read %zd %s\n", counter, got, line);
    return 3;
}
