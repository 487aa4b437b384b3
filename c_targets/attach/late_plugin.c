/* late_plugin.c - the library late_dlopen.c loads after the attach: one 777-byte block leaked (definitely lost),
 * one 555-byte block kept in a global (still reachable). */
#include <stdlib.h>
#include <string.h>

void *plugin_kept;

void plugin_work(void) {
    void *lost = malloc(777);
    memset(lost, 1, 777);
    __asm__ volatile("" : : "r"(lost) : "memory");
    plugin_kept = malloc(555);
}
