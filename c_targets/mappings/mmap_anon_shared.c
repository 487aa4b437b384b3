/*
 * mmap_anon_shared.c - the seed's first way to share memory with a forked child: an anonymous MAP_SHARED mapping
 * (sleeps shortened). Here the parent never unmaps it; the child unmaps its inherited copy but leaves a scratch
 * region of its own mapped. Regions unmapped before exit are not reported; a partial munmap leaves two pieces and
 * an mremap moves a region to the mremap call.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

void *shm_mmap_alloc(int size)
{
    void *addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_ANON | MAP_SHARED, -1, 0); // expect: mapping bytes=1024 process=parent backing=anonymous
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
        char *scratch = mmap(NULL, 2048, PROT_READ | PROT_WRITE, MAP_ANON | MAP_PRIVATE, -1, 0); // expect: mapping bytes=2048 process=child
        scratch[0] = 1;
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
        char *temporary = mmap(NULL, 8192, PROT_READ, MAP_ANON | MAP_PRIVATE, -1, 0);
        munmap(temporary, 8192);
        char *three = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_ANON | MAP_PRIVATE, -1, 0); // expect: mapping bytes=8192 regions=2 process=parent
        munmap(three + 4096, 4096);
        char *small = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_ANON | MAP_PRIVATE, -1, 0);
        char *grown = mremap(small, 4096, 3 * 4096, MREMAP_MAYMOVE); // expect: mapping bytes=12288 process=parent
        grown[0] = 1;
        int i = 0;
        while (i++ < 5) {
            printf("parent: %s\n", addr);
            usleep(1000);
        }
        waitpid(pid, NULL, 0);
    }
    return 0;
}
