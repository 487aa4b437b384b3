/*
 * clean_kinds.c - the shapes of the leak-kind targets, all released.
 *
 * A 10-node linked list, a block addressed through an interior pointer,
 * and a block held by a global: every one is freed
 * before exit, so valgrind prints "All heap blocks were freed".
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect: clean
// expect-exit: code=0
// expect-summary: definite=0/0 indirect=0/0 possible=0/0 reachable=0/0

struct node {
    struct node *next;
    long value;
};

char *held;
char *mid;

int main(void)
{
    struct node *head = NULL;
    for (long i = 0; i < 10; i++) {
        struct node *n = malloc(sizeof *n);
        n->value = i;
        n->next = head;
        head = n;
    }
    ESCAPE(head);

    char *p = malloc(32);
    memset(p, 'x', 32);
    mid = p + 8;
    p = NULL;
    ESCAPE(mid);

    held = malloc(100);
    memset(held, 'h', 100);

    while (head) {
        struct node *next = head->next;
        free(head);
        head = next;
    }
    free(mid - 8);
    mid = NULL;
    free(held);
    held = NULL;
    return 0;
}
