/*
 * global_held.c - a block still held by a global pointer at exit
 * ("still reachable"), and one block whose pointer is dropped
 * ("definitely lost").
 */
#include <stdlib.h>
#include <string.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=40/1 indirect=0/0 possible=0/0 reachable=100/1

char *held;

static __attribute__((noinline)) void hold(void)
{
    held = malloc(100); // expect: leak bytes=100 blocks=1 kind=reachable
    memset(held, 'h', 100);
}

static __attribute__((noinline)) void drop(void)
{
    char *p = malloc(40); // expect: leak bytes=40 blocks=1 kind=definite
    memset(p, 'd', 40);
    ESCAPE(p);
    p = NULL;
    ESCAPE(p);
}

static __attribute__((noinline)) void scribble(void)
{
    volatile char junk[4096];
    memset((char *)junk, 0, sizeof junk);
    ESCAPE(junk);
}

int main(void)
{
    hold();
    drop();
    scribble();
    return 0;
}
