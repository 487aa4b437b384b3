/*
 * crash_thread_fault.c - a second thread faults three calls deep, at a non-null address.
 *
 * The main thread waits in pthread_join; the worker writes through a pointer to 0x1008.  The
 * report names SIGSEGV, "Access not within mapped region at address 0x1008" and the worker's
 * stack (poke, descend x3, worker), as valgrind does; the leak scan still runs at the crash.
 */
#include <pthread.h>
#include <stdlib.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: signal=SIGSEGV
// expect-summary: definite=0/0 indirect=0/0 possible=272/1 reachable=64/2

static char *held;

__attribute__((noinline)) static void poke(volatile int *where)
{
    *where = 7; /* the faulting line */
}

__attribute__((noinline)) static void descend(int depth)
{
    if (depth == 0)
        poke((volatile int *)0x1008);
    else
        descend(depth - 1);
    ESCAPE(&depth);
}

static void *worker(void *arg)
{
    char *p = malloc(24); // expect: leak bytes=24 kind=reachable
    ESCAPE(p);
    descend(2);
    return p;
}

int main(void)
{
    pthread_t thread;
    held = malloc(40); // expect: leak bytes=40 kind=reachable
    if (pthread_create(&thread, NULL, worker, NULL) != 0)
        return 1;
    pthread_join(thread, NULL);
    return 0;
}
