/*
 * thread_held.c - a block only another thread holds, in a core (compiled by tests/gdb/test_core_file.py).
 *
 * A second thread allocates a block, keeps its only pointer in a local variable and blocks in pause(); the main
 * thread loses a block of its own and aborts once the thread has its block. Read from the core, the scan must take
 * the blocked thread's registers and stack from the core's notes: its block is still reachable, as valgrind says.
 * The thread's DTV (allocated by the dynamic loader at pthread_create, pointed at only past its start) is possibly
 * lost, as valgrind says (gdb-memleak's default suppressions hide it).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: signal=SIGABRT
// expect-summary: definite=24/1 indirect=0/0 possible=272/1 reachable=500/1

static pthread_barrier_t ready;

static void *holder(void *arg)
{
    (void)arg;
    char *volatile mine = malloc(500); // expect: leak bytes=500 kind=reachable
    memset(mine, 't', 500);
    pthread_barrier_wait(&ready);
    for (;;)
        pause();
    return (void *)mine;
}

__attribute__((noinline)) void lose(void)
{
    char *p = malloc(24); // expect: leak bytes=24 kind=definite
    memset(p, 'm', 24);
    ESCAPE(p);
}

int main(void)
{
    pthread_t thread;
    pthread_barrier_init(&ready, NULL, 2);
    pthread_create(&thread, NULL, holder, NULL); // expect: leak bytes=272 kind=possible suppressed
    pthread_barrier_wait(&ready);
    lose();
    abort();
}
