/*
 * attach_host.c - the recorder's attach mode without GDB: threads allocate (malloc, calloc, realloc, new, delete)
 * while this program dlopen()s the recorder (RTLD_NOW | RTLD_LOCAL) and calls memleak_agent_attach, adopts blocks
 * from before, dlopen()s a plugin, detaches and attaches again. Counters are read through the `memleak_agent`
 * anchor and layout.h with every thread paused between two calls. Prints one line per check; exit 0 when all hold.
 * Usage: attach_host RECORDER.so PLUGIN.so
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>
#include "layout.h"

void *cxx_new(size_t n);      /* attach_cxx.cc: new[] / delete[] */
void cxx_delete(void *p);

enum { THREADS = 3, SLOTS = 64 };
static atomic_int pause_wanted, paused, stop;
static long allocs_done[THREADS], frees_done[THREADS];
static int failures;

static void check(bool ok, const char *what) {
    printf("%s %s\n", ok ? "ok" : "FAIL", what);
    if (!ok) failures++;
}

static void *worker(void *arg) {
    long me = (long)arg;
    void *slot[SLOTS] = {0};
    bool cxx[SLOTS] = {0};
    unsigned rnd = (unsigned)me * 7919u + 1;
    while (!stop) {
        if (pause_wanted) {
            paused++;
            while (pause_wanted) usleep(100);
            paused--;
            continue;
        }
        for (int r = 0; r < 64; r++) {
            rnd = rnd * 1103515245u + 12345u;
            int i = (int)(rnd >> 8) % SLOTS, op = (int)(rnd >> 20) % 4;
            if (slot[i]) {
                if (cxx[i]) cxx_delete(slot[i]);
                else if (op == 0) { /* realloc: a release and an allocation */
                    void *q = realloc(slot[i], 16 + (rnd >> 24) % 200);
                    if (q) { slot[i] = q; allocs_done[me]++; frees_done[me]++; continue; }
                } else free(slot[i]);
                frees_done[me]++;
                slot[i] = NULL;
            } else {
                size_t n = 8 + (rnd >> 16) % 300;
                cxx[i] = op == 3;
                slot[i] = op == 1 ? calloc(1, n) : op == 3 ? cxx_new(n) : malloc(n);
                allocs_done[me]++;
            }
        }
    }
    return NULL;
}

static struct ml_anchor *anchor;

typedef struct { uint64_t allocs, frees, untracked, errors; int64_t live; } Figures;

static Figures figures(void) {
    Figures f = {0};
    struct ml_header *h = (struct ml_header *)anchor->region;
    if (!h) return f;
    struct ml_shard *s = (struct ml_shard *)((char *)h + h->shards_off);
    for (int i = 0; i < ML_SHARDS; i++) f.allocs += s[i].allocs, f.frees += s[i].frees;
    f.untracked = h->untracked_frees;
    f.errors = h->error_count;
    f.live = h->live_blocks;
    return f;
}

static void pause_all(void) {
    pause_wanted = 1;
    while (paused != THREADS) usleep(100);
}

static void resume_all(void) { pause_wanted = 0; }

static const char *object_of(void *f) {
    Dl_info info;
    return f && dladdr(f, &info) && info.dli_fname ? info.dli_fname : "?";
}

/* The address the program's own GOT gives for malloc (taken in PIC code: a GLOB_DAT slot, read now). */
static void *(*volatile malloc_now)(size_t);
static const char *malloc_object(void) {
    malloc_now = malloc;
    return object_of((void *)malloc_now);
}

static bool memfd_open(void) {
    DIR *d = opendir("/proc/self/fd");
    bool found = false;
    char path[300], link[256];
    for (struct dirent *e; d && (e = readdir(d));) {
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n > 0) { link[n] = 0; found |= strstr(link, "gdb-memleak") != NULL; }
    }
    if (d) closedir(d);
    return found;
}

/* Threads paused: counters at A, threads run, paused again at B: B - A is exactly what they did. */
static void counted_window(const char *what) {
    pause_all();
    Figures a = figures();
    long allocs = 0, frees = 0;
    for (int i = 0; i < THREADS; i++) allocs -= allocs_done[i], frees -= frees_done[i];
    resume_all();
    usleep(20000);
    pause_all();
    Figures b = figures();
    for (int i = 0; i < THREADS; i++) allocs += allocs_done[i], frees += frees_done[i];
    char text[200];
    snprintf(text, sizeof text, "%s: allocations %lu recorded / %ld made, releases %lu / %ld, errors %lu", what,
             (unsigned long)(b.allocs - a.allocs), allocs,
             (unsigned long)(b.frees + b.untracked - a.frees - a.untracked), frees, (unsigned long)b.errors);
    check(allocs > 0 && b.allocs - a.allocs == (uint64_t)allocs
          && b.frees + b.untracked - a.frees - a.untracked == (uint64_t)frees && b.errors == 0, text);
    resume_all();
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *libc_name = malloc_object();
    void *before[8];
    uint64_t pairs[2 * 9];
    for (int i = 0; i < 8; i++) before[i] = malloc(100 + i), pairs[2 * i] = (uint64_t)before[i], pairs[2 * i + 1] = 100 + i;
    pthread_t threads[THREADS];
    for (long i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, worker, (void *)i);
    usleep(10000);

    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    check(lib != NULL, "the recorder dlopen()ed");
    if (!lib) return 1;
    anchor = (struct ml_anchor *)dlsym(lib, "memleak_agent");
    int (*attach)(uint64_t, uint64_t, uint64_t) = (int (*)(uint64_t, uint64_t, uint64_t))dlsym(lib, "memleak_agent_attach");
    int (*adopt)(const uint64_t *, uint64_t) = (int (*)(const uint64_t *, uint64_t))dlsym(lib, "memleak_agent_adopt");
    void (*detach)(void) = (void (*)(void))dlsym(lib, "memleak_agent_detach");
    check(anchor->region == 0 && anchor->stopped == 0, "loaded, the recorder records nothing until attached");
    check(strcmp(malloc_object(), libc_name) == 0, "loaded, the program's malloc is still the C library's");

    for (int round = 1; round <= 2; round++) {
        int rc = attach(16, 0, 0); /* the threads keep running */
        check(rc == 0 && anchor->region != 0, "attached");
        check(strcmp(malloc_object(), argv[1]) == 0, "attached, the program's malloc slot holds the recorder's");
        counted_window("threads, every call after the attach");
        if (round == 1) {
            pause_all();
            void *mine = malloc(77);
            pairs[16] = (uint64_t)mine, pairs[17] = 999;
            Figures a = figures();
            int entered = adopt(pairs, 9);
            Figures b = figures();
            check(entered == 8 && b.live - a.live == 8, "adopted the 8 blocks from before, the known one skipped");
            for (int i = 0; i < 8; i++) free(before[i]);
            free(mine);
            Figures c = figures();
            check(c.frees - b.frees == 9 && c.untracked == b.untracked && c.errors == 0 && c.live - b.live == -9,
                  "adopted blocks released: ordinary releases, no error");
            void *plugin = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
            void **(*work)(int) = plugin ? (void **(*)(int))dlsym(plugin, "plugin_alloc") : NULL;
            Figures d = figures();
            void **blocks = work ? work(10) : NULL;
            Figures e = figures();
            check(blocks && e.allocs - d.allocs == 11, "a library dlopen()ed after the attach is recorded");
            resume_all();
        }
        detach();
        check(anchor->region == 0 && anchor->stopped == OFF_DETACHED, "detached: the anchor says so");
        check(strcmp(malloc_object(), libc_name) == 0, "detached, the program's malloc slot is the C library's again");
        check(!memfd_open(), "detached, no descriptor of the recorder's left");
        usleep(10000); /* blocks allocated while attached are freed natively now */
    }
    stop = 1;
    for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
    printf("%s\n", failures ? "FAILED" : "ALL OK");
    return failures ? 1 : 0;
}
