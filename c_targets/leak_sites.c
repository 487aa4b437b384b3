/*
 * leak_sites.c - leaks from several distinct call sites.
 *
 *  - a 3-node linked list built via main -> make_list -> node_alloc
 *    (the head is directly lost, the other two nodes indirectly)
 *  - a list header allocated in make_list
 *  - a loop leaking 10 blocks of 24 bytes from one line
 *  - one calloc leak
 *  - a malloc that is freed correctly (must not be reported)
 *  - a block grown with realloc and then leaked: reported at the
 *    realloc line with the new size, not at the original malloc.
 */
#include <stdlib.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=496/13 indirect=48/3 possible=0/0 reachable=0/0

struct node {
    struct node *next;
    long value;
};

struct list {
    struct node *head;
    long length;
};

static __attribute__((noinline)) struct node *node_alloc(long value)
{
    struct node *n = malloc(sizeof *n); // expect: leak bytes=48 blocks=3 kind=indirect
    n->next = NULL;
    n->value = value;
    return n;
}

static __attribute__((noinline)) struct list *make_list(long count)
{
    struct list *l = malloc(sizeof *l); // expect: leak bytes=16 kind=definite
    l->head = NULL;
    l->length = count;
    for (long i = 0; i < count; i++) {
        struct node *n = node_alloc(i);
        n->next = l->head;
        l->head = n;
    }
    return l;
}

static __attribute__((noinline)) void leak_in_loop(void)
{
    for (int i = 0; i < 10; i++) {
        char *buf = malloc(24); // expect: leak bytes=240 blocks=10 kind=definite
        buf[0] = (char)i;
        ESCAPE(buf);
    }
}

int main(void)
{
    struct list *l = make_list(3);
    ESCAPE(l);

    leak_in_loop();

    long *zeros = calloc(5, sizeof *zeros); // expect: leak bytes=40 kind=definite
    ESCAPE(zeros);

    char *tmp = malloc(100);
    tmp[0] = 'x';
    ESCAPE(tmp);
    free(tmp);

    char *grow = malloc(8);
    grow[0] = 'g';
    grow = realloc(grow, 200); // expect: leak bytes=200 kind=definite
    ESCAPE(grow);

    return 0;
}
