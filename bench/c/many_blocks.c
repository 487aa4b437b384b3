/* many_blocks N [abort]: N live 32-byte blocks; every other one is held by a global array (still reachable), the
 * rest are dropped (definitely lost). Used by bench/scan_vs_valgrind.py: the scan is timed at `ready()`. With
 * `abort` (bench/core_dump_size.py) it then stops itself (SIGSTOP: a core is written with gcore, or it is
 * continued) and aborts: the kernel dumps core as RLIMIT_CORE allows. */
#include <signal.h>
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
    if (argc > 2) {
        raise(SIGSTOP);
        abort();
    }
    return 0;
}
