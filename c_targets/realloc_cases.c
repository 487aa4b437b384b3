/*
 * realloc_cases.c - the corner cases of realloc.
 *
 *  - realloc(NULL, 16) behaves like malloc and is leaked
 *  - a block grown twice with realloc and leaked: reported at the last
 *    realloc with the final size
 *  - realloc(p, 0) frees p (glibc returns NULL): not a leak
 *  - calloc(3, 8) leaked: 24 bytes
 */
#include <stdlib.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=340/3 indirect=0/0 possible=0/0 reachable=0/0

int main(void)
{
    char *a = realloc(NULL, 16); // expect: leak bytes=16 kind=definite
    ESCAPE(a);

    char *b = malloc(10);
    b = realloc(b, 50);
    b = realloc(b, 300); // expect: leak bytes=300 kind=definite
    ESCAPE(b);

    char *c = malloc(20);
    ESCAPE(c);
    c = realloc(c, 0);
    ESCAPE(c);

    char *d = calloc(3, 8); // expect: leak bytes=24 kind=definite
    ESCAPE(d);

    return 0;
}
