/*
 * own_malloc.c - a program that brings its own malloc and free: a bump allocator over a static arena whose free
 * only counts. Calls to them never reach a preloaded library (the executable is first in symbol lookup order), so
 * gdb-memleak tracks them with the breakpoint engine; valgrind replaces them in the executable as well. No stdio:
 * libc's own allocations would go through this malloc but its realloc would not.
 */
#include <stddef.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=24/1 indirect=40/1 possible=0/0 reachable=6000/1

/* The arena outgrows the executable's file-backed data page: the blocks lie in that page, across its end and in
 * the anonymous mapping after it (the rest of .bss), beside the globals. */
static unsigned char arena[16384] __attribute__((aligned(16)));
static size_t arena_used;
static size_t releases;

void *malloc(size_t size)
{
    size_t at = arena_used;
    if (size > sizeof arena - at)
        return NULL;
    arena_used += (size + 15) & ~(size_t)15;
    return arena + at;
}

void free(void *block)
{
    if (block != NULL)
        releases++;
}

struct pair {
    struct pair *other;
    char payload[16];
};

void *held;

int main(void)
{
    held = malloc(6000);                      // expect: leak bytes=6000 blocks=1 kind=reachable
    struct pair *lost = malloc(sizeof *lost); // expect: leak bytes=24 blocks=1 kind=definite
    lost->other = malloc(40);                 // expect: leak bytes=40 blocks=1 kind=indirect
    ESCAPE(lost);
    lost = NULL;
    char *brief = malloc(10);
    ESCAPE(brief);
    free(brief);
    ESCAPE(releases);
    return 0;
}
