/* live_million N: N live blocks of mixed small sizes (16..255 bytes), with one block freed in every 8 (tcache,
 * fastbins and bins hold free chunks between them), then waits: bench/heap_walk.py attaches and walks the heap.
 * Prints "ready" once the blocks are made. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1000000;
    long made = n + n / 7 + 1;
    void **all = malloc(sizeof *all * (size_t)made);
    for (long i = 0; i < made; i++)
        all[i] = malloc((size_t)(16 + (i * 37) % 240));
    for (long i = 0; i < made; i += 8)
        free(all[i]);
    printf("ready\n");
    fflush(stdout);
    pause();
    return 0;
}
