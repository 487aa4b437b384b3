/* double_free.c - a test program that frees one block twice (glibc aborts natively; under a memory checker the
 * second free is skipped and the program ends with 0). */
#include <stdlib.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: signal=SIGABRT
// expect-cli-exit: code=0

int main(void)
{
    void *buffer = malloc(32); // mark: alloc tag=buffer
    ESCAPE(buffer);
    free(buffer); // mark: free tag=buffer
    free(buffer); // expect: double_free tag=buffer
    return 0;
}
