/*
 * close_fds.c - a daemon-style program: lists its descriptors, closes every one above 2 (closefrom(3)), then
 * allocates enough to grow the recorder's tables, leaking 1234 blocks of 48 bytes, and lists its descriptors
 * again and the number its next open() gets, and whether malloc kept errno. Its output must be the same with the
 * recorder as without.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

static void list_fds(const char *when)
{
    char line[4096];
    int at = 0;
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *e;
    while (dir && (e = readdir(dir)) != NULL)
        if (e->d_name[0] != '.' && at < (int)sizeof line - 16)
            at += snprintf(line + at, sizeof line - at, " %s", e->d_name);
    if (dir)
        closedir(dir);
    line[at] = 0;
    printf("%s:%s\n", when, line);
}

int main(void)
{
    errno = 77;
    void *first = malloc(8);
    int kept_errno = errno;
    free(first);
    printf("errno after malloc: %d\n", kept_errno);
    list_fds("start");
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = 3; fd < max && fd < 65536; fd++)
        close((int)fd);
    list_fds("closed");
    void *kept[1234];
    for (int round = 0; round < 50; round++) {
        void *tmp[1000];
        for (int i = 0; i < 1000; i++)
            tmp[i] = malloc(64 + round);
        for (int i = 0; i < 1000; i++)
            free(tmp[i]);
    }
    for (int i = 0; i < 1234; i++) {
        kept[i] = malloc(48);
        ESCAPE(kept[i]);
    }
    int fd = open("/dev/null", O_RDONLY);
    printf("next open: %d\n", fd);
    close(fd);
    list_fds("end");
    fflush(stdout);
    return 0;
}
