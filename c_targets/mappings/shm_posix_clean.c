/*
 * shm_posix_clean.c - shm_posix.c with the shm_unlink: nothing is left in /dev/shm. NAME is argv[1].
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

// expect: clean

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "/gdb-memleak-shm-posix-clean";
    int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
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
    shm_unlink(name);
    return 0;
}
