/*
 * dlopen_twice.c - a program that dlopens two libraries (glibc's own, present wherever glibc is).
 * The dynamic loader (glibc 2.35+) allocates a _dl_find_object segment (2,304 bytes, possibly lost: only an
 * interior pointer to it is kept) at each of the first two dlopens that add objects. The recorder's own dlopen of
 * libunwind at start-up takes the first of them: the program's second segment must still be counted.
 * Each dlopen line leaves 6 blocks: that segment (possibly lost) and the loader's records of the library (still
 * reachable); the summary says which kind is which.
 */
#include <dlfcn.h>
#include <stdio.h>

int main(void)
{
    void *first = dlopen("libm.so.6", RTLD_NOW);        // expect: leak bytes=4162 blocks=6
    void *second = dlopen("libresolv.so.2", RTLD_NOW);  // expect: leak bytes=3985 blocks=6
    printf("%d %d\n", first != NULL, second != NULL);
    return 0;
}
// expect-summary: definite=0/0 indirect=0/0 possible=4608/2 reachable=7635/11
