/*
 * shm_sysv_clean.c - the seed's third program with the missing shmctl(IPC_RMID): the parent marks the segment
 * for removal once the child is done, so nothing outlives the program.
 */
#include <stdio.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

// expect: clean

void *shm_alloc(int size, int *id)
{
    *id = shmget(IPC_PRIVATE, size, IPC_CREAT | IPC_EXCL | S_IRUSR | S_IWUSR);
    printf("shmid %d\n", *id);
    char *addr = (char *)shmat(*id, NULL, 0);
    return addr;
}

int shm_free(void *addr)
{
    return shmdt(addr);
}

int main(void)
{
    int id;
    char *addr = (char *)shm_alloc(1024, &id);
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
        shmctl(id, IPC_RMID, NULL);
    }
    shm_free(addr);
    return 0;
}
