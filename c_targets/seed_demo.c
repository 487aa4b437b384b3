/*
 * seed_demo.c - the canonical demo: one leak and one double free.
 *
 * p3 (30 bytes) is never freed; p4 is freed twice.  Natively glibc's
 * tcache detects the second free ("free(): double free detected in
 * tcache 2") and aborts.  ESCAPE() only keeps the compiler from
 * eliding the allocations at higher -O; it does not change the logic.
 */
#include <stdlib.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: signal=SIGABRT
// expect-summary: definite=30/1 indirect=0/0 possible=0/0 reachable=0/0
// expect-cli-exit: code=0   (the CLI skips the bad free, as valgrind does, so the program runs on)

int main(void)
{
    void *p1 = malloc(10);
    ESCAPE(p1);
    void *p2 = malloc(20);
    ESCAPE(p2);
    free(p1);
    void *p3 = malloc(30); /* leak */ // expect: leak bytes=30 kind=definite
    ESCAPE(p3);
    void *p4 = malloc(40); // mark: alloc tag=p4
    ESCAPE(p4);
    free(p2);
    free(p4); // mark: free tag=p4
    free(p4); /* double free */ // expect: double_free tag=p4
    return 0;
}
