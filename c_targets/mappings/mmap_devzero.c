/*
 * mmap_devzero.c - the seed's second way: a MAP_SHARED mapping of /dev/zero shared with a forked child (sleeps
 * shortened). The child unmaps its inherited copy and leaves a private /dev/zero mapping of its own; the parent
 * never unmaps the shared one.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

void *shm_mmap_alloc(int size, int flags)
{
    int fd = open("/dev/zero", O_RDWR);
    void *addr = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, fd, 0); // expect: mapping bytes=1024 process=parent backing=/dev/zero
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
    char *addr = (char *)shm_mmap_alloc(1024, MAP_SHARED);
    pid_t pid = fork();
    if (pid == 0) {
        // child
        printf("child %d\n", getpid());
        int fd = open("/dev/zero", O_RDWR);
        char *own = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0); // expect: mapping bytes=4096 process=child backing=/dev/zero
        close(fd);
        own[0] = 1;
        int i = 0;
        while (i < 26) {
            addr[i] = 'a' + i;
            i++;
            addr[i] = '\0';
            usleep(200);
        }
        shm_mmap_free(addr, 1024);
        return 0;
    } else if (pid > 0) {
        printf("parent %d\n", getpid());
        int i = 0;
        while (i++ < 5) {
            printf("parent: %s\n", addr);
            usleep(1000);
        }
        waitpid(pid, NULL, 0);
    }
    return 0;
}
