/*
 * mmap_devzero_clean.c - the seed's second program as written (sleeps shortened): a MAP_SHARED mapping of
 * /dev/zero, unmapped by parent and child.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

// expect: clean

void *shm_mmap_alloc(int size)
{
    int fd = open("/dev/zero", O_RDWR);
    void *addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (addr == MAP_FAILED) {
        return NULL;
    }
    return addr;
}

int shm_mmap_free(void *addr, int size)
{
    return munmap(addr, size);
}

int main(void)
{
    char *addr = (char *)shm_mmap_alloc(1024);
    pid_t pid = fork();
    if (pid == 0) {
        // child
        printf("child %d\n", getpid());
        int i = 0;
        while (i < 26) {
            addr[i] = 'a' + i;
            i++;
            addr[i] = '\0';
            usleep(200);
        }
    } else if (pid > 0) {
        printf("parent %d\n", getpid());
        int i = 0;
        while (i++ < 5) {
            printf("parent: %s\n", addr);
            usleep(1000);
        }
        waitpid(pid, NULL, 0);
    }
    shm_mmap_free(addr, 1024);
    return 0;
}
