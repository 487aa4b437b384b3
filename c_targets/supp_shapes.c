/*
 * supp_shapes.c - one leak or heap error for each thing a valgrind suppression file names
 * (tests/data/supp_shapes.supp, tests/gdb/test_valgrind_suppressions.py).
 *
 *  - a 3-node list made by make_list -> make_node: the head definitely lost, the rest
 *    indirectly (match-leak-kinds, wildcards in fun: names)
 *  - a name copied by strdup and kept in a global: still reachable, with a libc frame
 *    between malloc and the program (fun:strdup, obj: of the program)
 *  - a buffer grown by realloc, one zeroed by calloc (fun:realloc, fun:calloc, src:FILE:LINE)
 *  - a block only pointed into: possibly lost
 *  - a leak 15 calls deep, below valgrind's 12 callers (its stack never reaches main)
 *  - a free of a pointer inside a block, then a block freed twice (Memcheck:Free). Natively
 *    glibc aborts at the first; the CLI skips both, as valgrind does, and the program runs on.
 */
#include <stdlib.h>
#include <string.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: signal=SIGABRT
// expect-cli-exit: code=0   (the CLI skips the bad frees, as valgrind does, so the program runs on)
// expect-summary: definite=136/4 indirect=32/2 possible=32/1 reachable=23/1

struct node {
    struct node *next;
    long value;
};

static char *kept_name;  /* reachable through this global */
static char *kept_inside; /* points 8 bytes into its block: possibly lost */

static __attribute__((noinline)) struct node *make_node(long value, struct node *next)
{
    struct node *n = malloc(sizeof *n); // expect: leak bytes=48 blocks=3
    n->value = value;
    n->next = next;
    return n;
}

static __attribute__((noinline)) struct node *make_list(void)
{
    struct node *list = NULL;
    for (long i = 0; i < 3; i++)
        list = make_node(i, list);
    return list;
}

static __attribute__((noinline)) void store_name(void)
{
    kept_name = strdup("kept for the whole run"); // expect: leak bytes=23 kind=reachable
}

static __attribute__((noinline)) void *grow_buffer(void)
{
    char *p = malloc(8);
    ESCAPE(p);
    p = realloc(p, 64); // expect: leak bytes=64 kind=definite
    return p;
}

static __attribute__((noinline)) void *zeroed_table(void)
{
    return calloc(4, 8); // expect: leak bytes=32 kind=definite
}

static __attribute__((noinline)) void hold_inside(void)
{
    kept_inside = (char *)malloc(32) + 8; // expect: leak bytes=32 kind=possible
}

static __attribute__((noinline)) void *descend(int depth)
{
    if (depth == 0)
        return malloc(24); // expect: leak bytes=24 kind=definite
    void *p = descend(depth - 1);
    __asm__ volatile("" : : : "memory"); /* no tail call */
    return p;
}

static __attribute__((noinline)) void release_inside(void)
{
    char *p = malloc(40);
    ESCAPE(p);
    char *mid = p + 16;
    __asm__ volatile("" : "+r"(mid)); /* hide the offset from gcc's warning */
    free(mid); // expect: invalid_free
    free(p);
}

static __attribute__((noinline)) void release_twice(void)
{
    void *p = malloc(16); // mark: alloc tag=twice
    ESCAPE(p);
    free(p); // mark: free tag=twice
    free(p); // expect: double_free tag=twice
}

int main(void)
{
    ESCAPE(make_list());
    store_name();
    ESCAPE(grow_buffer());
    ESCAPE(zeroed_table());
    hold_inside();
    ESCAPE(descend(14));
    release_inside();
    release_twice();
    return 0;
}
