/*
 * core_dump.c - leaks of every kind, then a core dump: the post-mortem target.
 *
 * Makes a definitely lost block, a lost list (its head definitely lost, the
 * other nodes indirectly lost), a block reached only through an interior
 * pointer held by a global (possibly lost) and a block a global holds (still
 * reachable); scrubs the stack it used, calls dump_point() (tests stop there
 * and write a core with GDB's gcore), then abort()s: the kernel dumps core as
 * RLIMIT_CORE allows. The same findings hold at dump_point, at the abort, and
 * in either core (tests/gdb/test_core_file.py).
 */
#include <stdlib.h>
#include <string.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: signal=SIGABRT
// expect-summary: definite=64/2 indirect=64/4 possible=64/1 reachable=100/1

struct node {
    struct node *next;
    long value;
};

char *middle; /* points 8 bytes into its block: possibly lost */
char *held;   /* points at its block: still reachable */

__attribute__((noinline)) void lose_block(void)
{
    char *p = malloc(48); // expect: leak bytes=48 kind=definite
    memset(p, 'd', 48);
    ESCAPE(p);
}

__attribute__((noinline)) void lose_list(void)
{
    struct node *head = malloc(sizeof *head); // expect: leak bytes=16 kind=definite
    head->next = NULL;
    for (long i = 0; i < 4; i++) {
        struct node *n = malloc(sizeof *n); // expect: leak bytes=64 blocks=4 kind=indirect
        n->value = i;
        n->next = head->next;
        head->next = n;
    }
    ESCAPE(head);
}

__attribute__((noinline)) void keep_interior(void)
{
    char *p = malloc(64); // expect: leak bytes=64 kind=possible
    memset(p, 'p', 64);
    middle = p + 8;
}

__attribute__((noinline)) void keep_held(void)
{
    held = malloc(100); // expect: leak bytes=100 kind=reachable
    memset(held, 'h', 100);
}

/* The frames above were here: no stale copy of their pointers stays below the caller's stack pointer's reach. */
__attribute__((noinline)) void scrub_stack(void)
{
    volatile char dirt[4096];
    memset((char *)dirt, 0, sizeof dirt);
}

__attribute__((noinline)) void dump_point(void) { __asm__ volatile("" ::: "memory"); }

int main(void)
{
    lose_block();
    lose_list();
    keep_interior();
    keep_held();
    scrub_stack();
    dump_point();
    abort();
}
