/* leak.c - a test program that leaks one block and otherwise passes (exit 0). */
#include <stdlib.h>
#include <string.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

int main(void)
{
    char *name = malloc(24); // expect: leak bytes=24 blocks=1 kind=definite
    ESCAPE(name);
    strcpy(name, "forgotten");
    name = NULL;
    return 0;
}
