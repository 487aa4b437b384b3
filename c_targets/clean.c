/*
 * clean.c - every allocation is released; nothing may be reported.
 *
 * Covers malloc, calloc, realloc (grow and shrink), realloc(NULL, n)
 * (acts as malloc), realloc(p, 0) (glibc frees p and returns NULL)
 * and free(NULL) (a no-op).
 */
#include <stdlib.h>
#include <string.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect: clean
// expect-exit: code=0

int main(void)
{
    char *a = malloc(64);
    memset(a, 'a', 64);
    ESCAPE(a);

    int *b = calloc(16, sizeof *b);
    ESCAPE(b);

    char *c = malloc(32);
    c = realloc(c, 512);
    c = realloc(c, 8);
    ESCAPE(c);

    char *d = realloc(NULL, 48);
    ESCAPE(d);

    char *e = malloc(24);
    ESCAPE(e);
    e = realloc(e, 0);
    ESCAPE(e);

    free(NULL);
    free(d);
    free(c);
    free(b);
    free(a);
    return 0;
}
