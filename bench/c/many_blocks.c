/* many_blocks N: N live 32-byte blocks; every other one is held by a global array (still reachable), the rest are
 * dropped (definitely lost). Used by bench/scan_vs_valgrind.py: the scan is timed at `ready()`. */
#include <stdlib.h>

void **held;
long nheld;

__attribute__((noinline)) void ready(void) { __asm__ volatile("" ::: "memory"); }

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1000000;
    held = malloc(sizeof *held * (size_t)(n / 2 + 1));
    for (long i = 0; i < n; i++) {
        void *p = malloc(32);
        __asm__ volatile("" : : "r"(p) : "memory");
        if (i % 2 == 0)
            held[nheld++] = p;
    }
    ready();
    return 0;
}
