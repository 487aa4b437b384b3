/*
 * merged_mapping.c - the program's own anonymous mapping placed right beside the mapping glibc made for a big
 * block, so that the kernel merges the two into one entry of /proc/PID/maps. The 1,000 blocks whose only pointers
 * are stored in the program's part are still reachable (valgrind scans the program's mapping whatever the kernel
 * merged it with); the big block, dropped, is definitely lost. Where the big block lies is read from
 * /proc/self/maps (no allocator internals: under valgrind it is simply somewhere else).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")
#define OWN (256 << 10)

// expect-exit: code=0
// expect-summary: definite=300000/1 indirect=0/0 possible=0/0 reachable=40000/1000

/* The bounds of the /proc/self/maps entry holding `p`. */
static void entry_of(const void *p, uintptr_t *lo, uintptr_t *hi)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    *lo = *hi = 0;
    while (maps && fgets(line, sizeof line, maps)) {
        unsigned long a, b;
        if (sscanf(line, "%lx-%lx", &a, &b) == 2 && a <= (uintptr_t)p && (uintptr_t)p < b) {
            *lo = a;
            *hi = b;
        }
    }
    if (maps)
        fclose(maps);
}

/* A mapping right after (else right before) the entry holding `big`, else anywhere. */
static __attribute__((noinline)) void **beside(const char *big)
{
    uintptr_t lo, hi;
    entry_of(big, &lo, &hi);
    void *wanted[3] = {(void *)hi, (void *)(lo - OWN), NULL};
    void *own = MAP_FAILED;
    for (int i = 0; i < 3 && own == MAP_FAILED; i++) {
        int fixed = wanted[i] && lo ? MAP_FIXED_NOREPLACE : 0;
        own = mmap(wanted[i], OWN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | fixed, -1, 0); // expect: mapping bytes=262144
    }
    return own == MAP_FAILED ? NULL : own;
}

static __attribute__((noinline)) void fill(void **own)
{
    for (int i = 0; i < 1000; i++)
        own[i] = malloc(40); // expect: leak bytes=40000 blocks=1000 kind=reachable
}

static __attribute__((noinline)) void **place(void)
{
    char *big = malloc(300000); // expect: leak bytes=300000 blocks=1 kind=definite
    memset(big, 1, 300000);
    void **own = beside(big);
    ESCAPE(big);
    big = NULL;
    ESCAPE(big);
    return own;
}

int main(void)
{
    void **own = place();
    if (!own)
        return 1;
    fill(own);
    own = NULL;
    ESCAPE(own);
    return 0;
}
