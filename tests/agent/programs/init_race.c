/*
 * init_race.c - the recorder's first calls made by several threads at once, for ThreadSanitizer (build with
 * -fsanitize=thread): the recorder's source is compiled in, its hooks renamed (ml_malloc, ml_free, ...) so that
 * only these threads call them and its constructor turned off, so that nothing sets the recorder up before they
 * all call at once. Any data race in the set-up (who runs it, whether the thread key is ready) is reported.
 * Prints whether the recorder records (GDB_MEMLEAK_AGENT_FAULT=key makes its set-up fail).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define malloc ml_malloc
#define calloc ml_calloc
#define realloc ml_realloc
#define free ml_free
#define reallocarray ml_reallocarray
#define posix_memalign ml_posix_memalign
#define aligned_alloc ml_aligned_alloc
#define memalign ml_memalign
#define valloc ml_valloc
#define pvalloc ml_pvalloc
#define constructor(priority) used
#include "../../../gdb_memleak/agent/recorder.c"
#undef constructor
#undef malloc
#undef free

#define THREADS 8

static pthread_barrier_t start;

static void *first_call(void *arg)
{
    pthread_barrier_wait(&start);
    void *p = ml_malloc(32 + (size_t)arg);
    ml_free(p);
    return NULL;
}

int main(void)
{
    pthread_t threads[THREADS];
    cfg_depth = 1; /* no stack walks: libunwind's per-thread cache is not for ThreadSanitizer's threads */
    pthread_barrier_init(&start, NULL, THREADS);
    for (long i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, first_call, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    printf("recording: %s\n", __atomic_load_n(&memleak_agent.region, __ATOMIC_ACQUIRE) ? "yes" : "no");
    return 0;
}
