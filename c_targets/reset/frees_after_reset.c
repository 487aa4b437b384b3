/*
 * frees_after_reset.c - blocks allocated before a `memleak reset` (at first_phase) freed after it, in two steps with
 * a stop between (second_phase, where a command reads the table): every read counts them as untracked frees once.
 * After the reset: 1 allocation (32 bytes), 1 free, 2 untracked frees, nothing in use. Built by
 * tests/gdb/test_reset_reads.py.
 */
#include <stdlib.h>

void *blocks[3];

__attribute__((noinline)) void first_phase(void) { __asm__ volatile("" ::: "memory"); }
__attribute__((noinline)) void second_phase(void) { __asm__ volatile("" ::: "memory"); }

int main(void)
{
    for (int i = 0; i < 3; i++)
        blocks[i] = malloc(16);
    first_phase();
    free(blocks[0]);
    char *later = malloc(32);
    second_phase();
    free(blocks[1]);
    free(later);
    return 0;
}
