/* The recorder's block table under churn: 4 threads allocate and free in a pseudo-random order, ~600,000 events in
 * all, so freed blocks are forgotten (the per-shard rings wrap), their records are reused, and the index grows and
 * shrinks its clusters. What stays live is written as "address size" lines to the file argv[1]: the test compares them with the
 * recorder's table. Then one block is freed twice right away (a remembered block: a double free). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 4
#define SLOTS 20000
#define STEPS 150000

static void *kept[THREADS][SLOTS];
static size_t kept_size[THREADS][SLOTS];

static void *churn(void *arg) {
    uintptr_t t = (uintptr_t)arg;
    uint64_t x = 0x9e3779b97f4a7c15ULL * (t + 1);
    for (int i = 0; i < STEPS; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        unsigned k = (unsigned)(x % SLOTS);
        if (kept[t][k]) {
            free(kept[t][k]);
            kept[t][k] = NULL;
        } else {
            kept_size[t][k] = 1 + (size_t)(x >> 40) % 200;
            kept[t][k] = malloc(kept_size[t][k]);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    pthread_t threads[THREADS];
    for (uintptr_t t = 0; t < THREADS; t++) pthread_create(&threads[t], NULL, churn, (void *)t);
    for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);
    FILE *out = fopen(argv[1], "w");
    if (!out) return 3;
    for (int t = 0; t < THREADS; t++)
        for (int k = 0; k < SLOTS; k++)
            if (kept[t][k]) fprintf(out, "%lu %zu\n", (unsigned long)(uintptr_t)kept[t][k], kept_size[t][k]);
    fclose(out);
    char *twice = malloc(77);
    free(twice);
    free(twice); /* double free */
    return 0;
}
