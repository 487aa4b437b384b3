/*
 * crash_sigbus.c - a read past the end of a mapped file: SIGBUS.
 *
 * Maps a page of an empty file (a memfd) and reads it: the kernel raises SIGBUS (BUS_ADRERR) at
 * that page's address, which the program prints first ("mapped 0x...", without stdio's buffer)
 * so the report's fault address can be checked against it.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: signal=SIGBUS
// expect-summary: definite=0/0 indirect=0/0 possible=0/0 reachable=32/1

__attribute__((noinline)) static int touch(volatile const char *page)
{
    return page[0]; /* the faulting line */
}

int main(void)
{
    char *p = malloc(32); // expect: leak bytes=32 kind=reachable
    ESCAPE(p);
    int fd = memfd_create("empty", 0);
    if (fd < 0)
        return 1;
    char *page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0); // expect: mapping bytes=4096
    if (page == MAP_FAILED)
        return 1;
    char line[64];
    snprintf(line, sizeof line, "mapped %p\n", (void *)page);
    if (write(1, line, strlen(line)) < 0)
        return 1;
    return touch(page);
}
