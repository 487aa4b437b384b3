/* attach_plugin.c - a library attach_host dlopen()s after the recorder attached: its allocations must be recorded. */
#include <stdlib.h>

void **plugin_alloc(int n)
{
    void **blocks = malloc(sizeof(void *) * (size_t)n);
    for (int i = 0; i < n; i++) blocks[i] = malloc(40);
    return blocks; /* n + 1 allocations */
}
