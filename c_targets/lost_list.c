/*
 * lost_list.c - a 10-node singly linked list whose only pointer is dropped.
 *
 * build_list() allocates the head, then pushes 9 nodes after it; drop_list()
 * keeps the head only in its own frame and clears it.  scribble() then
 * reuses that stack and the registers, so no stale copy of the head
 * pointer survives anywhere valgrind scans: the head is definitely lost
 * and the 9 nodes, reachable only through it, indirectly lost.
 */
#include <stdlib.h>
#include <string.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=16/1 indirect=144/9 possible=0/0 reachable=0/0

#define NODES 10

struct node {
    struct node *next;
    long value;
};

static __attribute__((noinline)) struct node *new_head(void)
{
    struct node *n = malloc(sizeof *n); // expect: leak bytes=16 blocks=1 kind=definite
    n->next = NULL;
    n->value = 0;
    return n;
}

static __attribute__((noinline)) struct node *new_node(long value)
{
    struct node *n = malloc(sizeof *n); // expect: leak bytes=144 blocks=9 kind=indirect
    n->next = NULL;
    n->value = value;
    return n;
}

static __attribute__((noinline)) struct node *build_list(void)
{
    struct node *head = new_head();
    struct node *tail = head;
    for (long i = 1; i < NODES; i++) {
        struct node *n = new_node(i);
        tail->next = n;
        tail = n;
        n = NULL;
    }
    tail = NULL;
    ESCAPE(tail);
    return head;
}

static __attribute__((noinline)) void drop_list(void)
{
    struct node *head = build_list();
    ESCAPE(head);
    head = NULL; /* the only pointer to the list is gone */
    ESCAPE(head);
}

/* Overwrites the stack the frames above used, and the caller-saved registers. */
static __attribute__((noinline)) void scribble(void)
{
    volatile char junk[4096];
    memset((char *)junk, 0, sizeof junk);
    ESCAPE(junk);
}

int main(void)
{
    drop_list();
    scribble();
    return 0;
}
