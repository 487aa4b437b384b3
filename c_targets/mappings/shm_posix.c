/*
 * shm_posix.c - POSIX shared memory: shm_open(NAME, O_CREAT | O_EXCL), sized to 4096 bytes, mapped, written,
 * unmapped and closed, but never shm_unlink'ed: the object stays in /dev/shm after the program ends.
 * NAME is argv[1] (tests pass a unique one).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "/gdb-memleak-shm-posix";
    int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600); // expect: posix bytes=4096 process=parent
    if (fd < 0) {
        perror("shm_open");
        return 2;
    }
    printf("parent %d\n", getpid());
    ftruncate(fd, 4096);
    char *addr = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    strcpy(addr, "hello");
    munmap(addr, 4096);
    close(fd);
    return 0;
}
