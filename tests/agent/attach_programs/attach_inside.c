/*
 * attach_inside.c - a detach while a call is inside the recorder: a thread's operator new waits in its new_handler
 * (inside the recorder's hook) while this program detaches and attaches again; then the handler lets go and
 * std::bad_alloc leaves through the hook, and the program attaches and detaches once more. The region must not
 * go (nor a new one replace it) while the call is inside. Prints one line per check; exit 0 when all hold.
 * Usage: attach_inside RECORDER.so
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>
#include "layout.h"

int cxx_new_waiting(int *inside, int *let_go); /* attach_cxx.cc */

static int inside, let_go, failures;

static void check(bool ok, const char *what) {
    printf("%s %s\n", ok ? "ok" : "FAIL", what);
    if (!ok) failures++;
}

static void *waiting_call(void *unused) {
    (void)unused;
    return (void *)(intptr_t)cxx_new_waiting(&inside, &let_go);
}

/* Whether `address` lies in one of this process's mappings. */
static bool mapped(uint64_t address) {
    FILE *maps = fopen("/proc/self/maps", "r");
    unsigned long lo, hi;
    bool found = false;
    char line[512];
    while (maps && fgets(line, sizeof line, maps))
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && address >= lo && address < hi) found = true;
    if (maps) fclose(maps);
    return found;
}

static uint64_t allocations(const struct ml_anchor *anchor) {
    const struct ml_header *h = (const struct ml_header *)anchor->region;
    const struct ml_shard *s = (const struct ml_shard *)((const char *)h + h->shards_off);
    uint64_t n = 0;
    for (int i = 0; i < ML_SHARDS; i++) n += s[i].allocs;
    return n;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    check(lib != NULL, "the recorder dlopen()ed");
    if (!lib) return 1;
    const struct ml_anchor *anchor = dlsym(lib, "memleak_agent");
    int (*attach)(uint64_t, uint64_t, uint64_t) = (int (*)(uint64_t, uint64_t, uint64_t))dlsym(lib, "memleak_agent_attach");
    void (*detach)(void) = (void (*)(void))dlsym(lib, "memleak_agent_detach");

    check(attach(16, 0, 0) == 0 && anchor->region, "attached");
    uint64_t first = anchor->region;
    pthread_t thread;
    pthread_create(&thread, NULL, waiting_call, NULL);
    while (!__atomic_load_n(&inside, __ATOMIC_ACQUIRE)) usleep(1000);

    detach();
    check(anchor->region == 0 && anchor->stopped == OFF_DETACHED, "detached while a call is inside: the anchor says so");
    check(mapped(first), "a call inside at the detach: the region's range stays mapped for it");
    int rc = attach(16, 0, 0);
    check(rc == OFF_INFLIGHT && anchor->region == 0 && anchor->stopped == OFF_INFLIGHT,
          "attached while that call is inside: refused, the anchor says why");

    __atomic_store_n(&let_go, 1, __ATOMIC_RELEASE);
    void *caught = NULL;
    pthread_join(thread, &caught);
    check(caught != NULL, "the call left the hook through std::bad_alloc");

    check(attach(16, 0, 0) == 0 && anchor->region && anchor->stopped == OFF_NONE, "attached once the call left");
    uint64_t second = anchor->region, before = allocations(anchor);
    void *blocks[10];
    for (int i = 0; i < 10; i++) blocks[i] = malloc(32 + i);
    check(allocations(anchor) - before == 10, "attached again: every allocation recorded");
    for (int i = 0; i < 10; i++) free(blocks[i]);
    detach();
    check(anchor->region == 0 && !mapped(second), "detached with no call inside: the region unmapped at once");
    printf("%s\n", failures ? "FAILED" : "ALL OK");
    return failures ? 1 : 0;
}
