/*
 * shm_sysv.c - the seed's third way: shmget(IPC_PRIVATE, 1024) + shmat, shared with a forked child; both shmdt,
 * nobody calls shmctl(IPC_RMID): the segment outlives the program (sleeps shortened). Reported once, by its
 * creator (the parent); the child only inherited the attachment.
 */
#include <stdio.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void *shm_alloc(int size)
{
    int segment_id = shmget(IPC_PRIVATE, size, IPC_CREAT | IPC_EXCL | S_IRUSR | S_IWUSR); // expect: sysv bytes=1024 process=parent
    printf("shmid %d\n", segment_id);
    char *addr = (char *)shmat(segment_id, NULL, 0);
    return addr;
}

int shm_free(void *addr)
{
    return shmdt(addr);
}

int main(void)
{
    char *addr = (char *)shm_alloc(1024);
    fflush(stdout);
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
    shm_free(addr);
    return 0;
}
