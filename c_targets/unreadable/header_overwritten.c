/*
 * header_overwritten.c - a program that overwrites the start of the recorder's region (its header's magic), found
 * through the recorder's exported anchor `memleak_agent`, and then leaks 100 bytes. GDB can no longer read the
 * recorder's table: the report must say it is incomplete and why, never show an empty table as if it were whole.
 * Without the recorder (valgrind, the breakpoint engine) `memleak_agent` is not found and nothing is overwritten.
 * Built by tests/gdb/test_unreadable_table.py.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>

struct anchor {  /* struct ml_anchor in gdb_memleak/agent/recorder.c */
    uint64_t magic, version, region, size;
};

void *held;

int main(void)
{
    held = malloc(64);  /* the recorder maps its region at its first call */
    const struct anchor *anchor = dlsym(RTLD_DEFAULT, "memleak_agent");
    if (anchor != NULL && anchor->region != 0)
        *(volatile uint64_t *)(uintptr_t)anchor->region = 0;
    char *lost = malloc(100);
    lost[0] = 'x';
    lost = NULL;
    return 0;
}
