/*
 * late_dlopen.c - a process that loads a library after it was attached to (tests/gdb/test_attach_recorder.py).
 *
 * Usage: late_dlopen PLUGIN.so
 *   Prints "ready <pid>", waits for SIGUSR1, then dlopen()s PLUGIN.so and calls its `plugin_work()` (which leaks
 *   one 777-byte block and keeps one 555-byte block in a global), prints "loaded", waits for SIGTERM, exits 0.
 *   Built by the test with PLUGIN.so from late_plugin.c.
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t go, end;
static void on_usr1(int sig) { (void)sig; go = 1; }
static void on_term(int sig) { (void)sig; end = 1; }

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    signal(SIGUSR1, on_usr1);
    signal(SIGTERM, on_term);
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    struct timespec pause = {0, 5 * 1000 * 1000};
    while (!go) nanosleep(&pause, NULL);
    void *lib = dlopen(argv[1], RTLD_NOW);
    void (*work)(void) = lib ? (void (*)(void))dlsym(lib, "plugin_work") : NULL;
    if (!work) return 3;
    work();
    printf("loaded\n");
    fflush(stdout);
    while (!end) nanosleep(&pause, NULL);
    return 0;
}
