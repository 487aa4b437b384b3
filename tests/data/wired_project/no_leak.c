/* no_leak.c - a test program that frees everything it allocates. */
#include <stdlib.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect: clean

int main(void)
{
    void *block = malloc(64);
    ESCAPE(block);
    free(block);
    return 0;
}
