/* Prints the signal state the program was started with: which signals are ignored (SigIgn), blocked (SigBlk) and
 * caught (SigCgt), for all 64, as the kernel reports them in /proc/self/status, before main does anything else.
 * Under gdb-memleak the three lines must equal a native run's (tests/gdb/test_cli_signal_state.py). */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

// expect: clean
// expect-exit: code=0

int main(void)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (n <= 0)
        return 1;
    buf[n] = '\0';
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
        if (!strncmp(line, "SigIgn:", 7) || !strncmp(line, "SigBlk:", 7) || !strncmp(line, "SigCgt:", 7)) {
            write(1, line, strlen(line));
            write(1, "\n", 1);
        }
    close(fd);
    return 0;
}
