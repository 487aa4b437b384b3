/*
 * deep_stack.c - a leak deep in the call stack.
 *
 * main calls f(20), which recurses down to f(0); f(0) leaks an 8-byte
 * block, 20 recursive calls below the first f frame.
 */
#include <stdlib.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=8/1 indirect=0/0 possible=0/0 reachable=0/0

static __attribute__((noinline)) void f(int n)
{
    if (n == 0) {
        void *p = malloc(8); // expect: leak bytes=8 kind=definite
        ESCAPE(p);
        return;
    }
    f(n - 1);
    __asm__ volatile("" : : : "memory"); /* no tail call */
}

int main(void)
{
    f(20);
    return 0;
}
