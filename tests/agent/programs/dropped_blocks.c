/* More blocks than a capped recorder region can record (the test runs it with a 256 MiB file-size limit: a 256 MiB
 * region, about a million records): the blocks it could not record are released silently, a free of an address no
 * allocator returned is still an invalid free. */
#include <stdio.h>
#include <stdlib.h>

#define N 1100000

static void *kept[N];

int main(void)
{
    for (int i = 0; i < N; i++)
        kept[i] = malloc(16);
    for (int i = 0; i < N; i++)
        free(kept[i]);
    char *volatile q = malloc(100);
    free(q + 16); /* invalid free */
    free(q);
    return 0;
}
