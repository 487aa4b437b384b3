/* The shapes glibc's heap takes, each reached at checkpoint(stage) for tests/gdb/test_heap_walk.py, which compares
 * the walk of glibc's chunks with the recorder's live table there.
 *   1 single-threaded mixed sizes
 *   2 four threads alive, each with its own arena (one grows past a 64 MB heap: heaps chained, fenceposts)
 *   3 big mmapped blocks: malloc, calloc, realloc (mremap), memalign/aligned_alloc/posix_memalign, large alignments
 *   4 after many frees: tcache full, fastbins, unsorted, small and large bins (every other block freed, then
 *     a large malloc sorts the unsorted chunks into bins, then small frees fill fastbins and others the unsorted bin)
 *   5 after malloc_trim(0)
 * At each checkpoint `program_ptrs`/`program_usable` hold the program's own live blocks and malloc_usable_size. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 20000
#define THREADS 4

static void *slot[SLOTS];
void *program_ptrs[SLOTS];
size_t program_usable[SLOTS];
int program_count;

static pthread_barrier_t ready;
static pthread_barrier_t finish;

__attribute__((noinline)) void checkpoint(int stage) {
    __asm__ volatile("" ::"r"(stage) : "memory");
}

static void reached(int stage) {
    program_count = 0;
    for (int i = 0; i < SLOTS; i++)
        if (slot[i]) {
            program_ptrs[program_count] = slot[i];
            program_usable[program_count++] = malloc_usable_size(slot[i]);
        }
    checkpoint(stage);
}

static void *thread_main(void *arg) {
    int index = (int)(intptr_t)arg;
    int base = 2000 + index * 1000;
    int big = index == 0;  /* this thread's arena grows past one heap: 800 blocks of 100 kB */
    for (int i = 0; i < (big ? 800 : 600); i++) {
        size_t size = big ? 100000 : (size_t)(1 + (i * 37 + index * 11) % 3000);
        slot[base + i] = malloc(size);
        memset(slot[base + i], index, size < 64 ? size : 64);
    }
    for (int i = 0; i < 600; i += 3) {  /* some frees in the thread's own arena: its tcache and bins */
        if (!big) {
            free(slot[base + i]);
            slot[base + i] = NULL;
        }
    }
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&finish);
    return NULL;
}

int main(void) {
    /* 1: mixed sizes */
    for (int i = 0; i < 1500; i++)
        slot[i] = malloc((size_t)(i * 13 % 1200 + (i % 7 == 0 ? 4000 : 0)));
    slot[1500] = calloc(10, 10);
    slot[1501] = realloc(NULL, 77);
    slot[1502] = malloc(0);
    reached(1);

    /* 2: threads, each in an arena of its own, alive at the checkpoint */
    pthread_t threads[THREADS];
    pthread_barrier_init(&ready, NULL, THREADS + 1);
    pthread_barrier_init(&finish, NULL, THREADS + 1);
    for (int t = 0; t < THREADS; t++)
        pthread_create(&threads[t], NULL, thread_main, (void *)(intptr_t)t);
    pthread_barrier_wait(&ready);
    reached(2);
    pthread_barrier_wait(&finish);
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);

    /* 3: mmapped blocks */
    slot[7000] = malloc(200000);
    slot[7001] = malloc(1 << 20);
    slot[7002] = calloc(1, 300000);
    slot[7003] = aligned_alloc(1 << 16, 300000);
    slot[7004] = memalign(1 << 20, 500000);
    if (posix_memalign(&slot[7005], 4096, 200000))
        slot[7005] = NULL;
    slot[7006] = realloc(malloc(150000), 3000000);
    slot[7007] = memalign(64, 400000);
    slot[7008] = aligned_alloc(4096, 128);  /* a small aligned block: on the heap */
    slot[7009] = memalign(1 << 12, 5000);
    reached(3);

    /* 4: many frees: every other block, so neighbours do not merge and every kind of bin fills */
    for (int i = 0; i < 4000; i++)
        slot[8000 + i] = malloc((size_t)(i % 4 == 0 ? 16 + i % 100 : i % 4 == 1 ? 200 + i : 1100 + i * 7));
    for (int i = 0; i < 4000; i += 2) {
        free(slot[8000 + i]);
        slot[8000 + i] = NULL;
    }
    for (int i = 0; i < 1500; i += 2) {
        free(slot[i]);
        slot[i] = NULL;
    }
    for (int i = 0; i < 50; i++)  /* sorts the unsorted chunks into small and large bins */
        slot[13000 + i] = malloc((size_t)(40000 + i * 100));
    free(slot[7000]);
    slot[7000] = NULL;
    for (int i = 0; i < 200; i++)  /* fastbins: more small frees than their (full) tcache bins take */
        slot[14000 + i] = malloc((size_t)(24 + (i % 8) * 8));
    for (int i = 0; i < 200; i += 2) {
        free(slot[14000 + i]);
        slot[14000 + i] = NULL;
    }
    for (int i = 1; i < 800; i += 4) {  /* the unsorted bin: too big for tcache once merged with a freed neighbour */
        free(slot[8000 + i]);
        slot[8000 + i] = NULL;
    }
    reached(4);

    /* 5: malloc_trim gives free pages back and shrinks the heaps */
    for (int i = 8001; i < 12000; i += 2) {
        free(slot[i]);
        slot[i] = NULL;
    }
    malloc_trim(0);
    reached(5);

    for (int i = 0; i < SLOTS; i++)
        free(slot[i]);
    return 0;
}
