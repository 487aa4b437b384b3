/*
 * handcall_threads.c - threads allocating with malloc all the time, for tests loading a library by hand into the
 * process meanwhile (tests/gdb/test_handcall.py): no deadlock; threads churn until
 * finish_now() (called by hand) or argv[1] rounds, checking every block's bytes, and print their error counts.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

// expect: clean
// expect-exit: code=0
// expect-args: 300

#define THREADS 3

static long rounds;
static long errors[THREADS];
static volatile int finish;

void finish_now(void)
{
    finish = 1;
}

static void *churn(void *arg)
{
    long index = (long)arg, bad = 0;
    struct timespec pause = {0, 200 * 1000};
    for (long i = 0; !finish && (rounds <= 0 || i < rounds); i++) {
        size_t size = 16 + (size_t)((i * 37 + index) % 2000);
        unsigned char *block = malloc(size);
        memset(block, (int)(i & 0xff), size);
        for (size_t k = 0; k < size; k++)
            bad += block[k] != (unsigned char)(i & 0xff);
        free(block);
        if (i % 10 == 0)
            nanosleep(&pause, NULL);
    }
    errors[index] = bad;
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t threads[THREADS];
    rounds = argc > 1 ? strtol(argv[1], NULL, 10) : 300;
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    for (long t = 0; t < THREADS; t++)
        pthread_create(&threads[t], NULL, churn, (void *)t);
    for (long t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    for (long t = 0; t < THREADS; t++)
        printf("thread %ld errors %ld\n", t, errors[t]);
    return 0;
}
