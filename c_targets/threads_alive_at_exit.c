/*
 * threads_alive_at_exit.c - worker threads still blocked when main calls exit(), each holding a block only on its
 * own stack: valgrind scans every live thread's stack at exit, so the blocks are still reachable. (GDB evaluates
 * its breakpoint at `_exit` with the other threads still running: their registers, hence where their stacks
 * start, can only be read once every thread is stopped.) Each thread's DTV, allocated by the dynamic loader when
 * the thread is created, is pointed at only past its start (from the thread's descriptor): possibly lost.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")
#define WORKERS 2

// expect-exit: code=0
// expect-summary: definite=0/0 indirect=0/0 possible=544/2 reachable=27008/2

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int started;

static void *worker(void *arg)
{
    (void)arg;
    char *volatile mine = malloc(13504); // expect: leak bytes=27008 blocks=2 kind=reachable
    memset(mine, 0, 13504);
    pthread_mutex_lock(&lock);
    started++;
    pthread_cond_broadcast(&changed);
    for (;;)
        pthread_cond_wait(&changed, &lock); /* never returns: the thread is alive at exit */
    ESCAPE(mine);
    return NULL;
}

int main(void)
{
    pthread_t tids[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        pthread_create(&tids[i], NULL, worker, NULL); // expect: leak bytes=544 blocks=2 kind=possible suppressed
    pthread_mutex_lock(&lock);
    while (started < WORKERS)
        pthread_cond_wait(&changed, &lock);
    pthread_mutex_unlock(&lock);
    exit(0);
}
