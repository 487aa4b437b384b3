/*
 * server_load.c - the load driver for server.c: client threads sending a mix of requests at a rate.
 *
 * Usage: server_load [-c CLIENTS] [-n REQUESTS] [-q] SOCKET SECONDS RATE
 *   CLIENTS threads (default 4) send requests to the server listening on the UNIX socket SOCKET, one connection
 *   per request, for SECONDS seconds (0: no time limit, then -n is needed) at RATE requests per second in all
 *   (0: each client sends its next request as soon as the previous one is answered), and at most REQUESTS of them
 *   with -n. With -q, QUIT is sent once every client is done, and the driver waits for the server's "BYE".
 *   Request number J (0, 1, 2, ... across all clients) is, by J % 10: 0 "LOGIN userJ" (the leaking request),
 *   4 "STATS", 2, 6, 8 "ECHO hello-J", odd "GET keyK" with K a hash of J below KEYS (more keys than the server's
 *   cache holds: it fills, then replaces entries). With -n N the mix is exact: ceil(N / 10) LOGINs.
 *   At the end one line on stdout: "requests N ok N failed N login N get N echo N stats N" (ok: answered "OK ...",
 *   failed: not answered, or answered otherwise; login/get/...: the ok ones of each kind).
 *   Exit status 0 when every request was answered OK (and QUIT with BYE), 1 otherwise, 2 on a usage error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 64
#define KEYS 160

enum kind { LOGIN, GET, ECHO, STATS, KINDS };

static const char *socket_path;
static double seconds, rate;
static long limit = -1;                 /* -n: requests in all; -1 none */
static struct timespec start;
static atomic_long next_request;
static atomic_long ok[KINDS], failed;

static double since_start(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
}

static void sleep_until(double offset)
{
    struct timespec when = start;
    when.tv_sec += (time_t)offset;
    when.tv_nsec += (long)((offset - (double)(time_t)offset) * 1e9);
    if (when.tv_nsec >= 1000000000L) {
        when.tv_sec++;
        when.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &when, NULL) == EINTR)
        ;
}

/* Request `j`'s line (newline included) and its kind. */
static enum kind compose(long j, char *line, size_t size)
{
    switch (j % 10) {
    case 0:
        snprintf(line, size, "LOGIN user%ld\n", j);
        return LOGIN;
    case 4:
        snprintf(line, size, "STATS\n");
        return STATS;
    case 2: case 6: case 8:
        snprintf(line, size, "ECHO hello-%ld\n", j);
        return ECHO;
    default: {
        unsigned long h = (unsigned long)j * 2654435761ul;
        snprintf(line, size, "GET key%lu\n", (h >> 7) % KEYS);
        return GET;
    }
    }
}

/* Sends `line` on a new connection; the answer (without its newline) in `answer`. Returns 0 when answered. */
static int exchange(const char *line, char *answer, size_t size)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    size_t got = 0;
    int answered = -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0
        && send(fd, line, strlen(line), MSG_NOSIGNAL) == (ssize_t)strlen(line)) {
        /* no handler runs in the driver: a read is never interrupted */
        for (ssize_t n; answered != 0 && got + 1 < size && (n = read(fd, answer + got, size - got - 1)) > 0;) {
            got += (size_t)n;
            answered = memchr(answer, '\n', got) ? 0 : -1;
        }
    }
    answer[got] = '\0';
    answer[strcspn(answer, "\n")] = '\0';
    close(fd);
    return answered;
}

static void *client(void *arg)
{
    (void)arg;
    char line[64], answer[256];
    for (;;) {
        long j = atomic_fetch_add(&next_request, 1);
        if (limit >= 0 && j >= limit)
            break;
        if (rate > 0) {
            double when = (double)j / rate;
            if (seconds > 0 && when >= seconds)
                break;
            sleep_until(when);
        } else if (seconds > 0 && since_start() >= seconds) {
            break;
        }
        enum kind kind = compose(j, line, sizeof line);
        if (exchange(line, answer, sizeof answer) == 0 && strncmp(answer, "OK", 2) == 0)
            atomic_fetch_add(&ok[kind], 1);
        else
            atomic_fetch_add(&failed, 1);
    }
    return NULL;
}

static int usage(void)
{
    fprintf(stderr, "usage: server_load [-c CLIENTS] [-n REQUESTS] [-q] SOCKET SECONDS RATE\n");
    return 2;
}

int main(int argc, char **argv)
{
    int clients = 4, quit = 0;
    for (int opt; (opt = getopt(argc, argv, "c:n:q")) != -1;) {
        if (opt == 'c')
            clients = atoi(optarg);
        else if (opt == 'n')
            limit = atol(optarg);
        else if (opt == 'q')
            quit = 1;
        else
            return usage();
    }
    if (argc - optind != 3 || clients < 1 || clients > MAX_CLIENTS)
        return usage();
    socket_path = argv[optind];
    seconds = atof(argv[optind + 1]);
    rate = atof(argv[optind + 2]);
    if (seconds <= 0 && limit < 0)
        return usage();

    clock_gettime(CLOCK_MONOTONIC, &start);
    pthread_t threads[MAX_CLIENTS];
    for (int i = 0; i < clients; i++)
        pthread_create(&threads[i], NULL, client, NULL);
    for (int i = 0; i < clients; i++)
        pthread_join(threads[i], NULL);

    int quit_failed = 0;
    if (quit) {
        char answer[64];
        quit_failed = exchange("QUIT\n", answer, sizeof answer) != 0 || strcmp(answer, "BYE") != 0;
    }
    long total = 0;
    for (int k = 0; k < KINDS; k++)
        total += ok[k];
    printf("requests %ld ok %ld failed %ld login %ld get %ld echo %ld stats %ld\n", total + failed, total,
           (long)failed, (long)ok[LOGIN], (long)ok[GET], (long)ok[ECHO], (long)ok[STATS]);
    return failed || quit_failed ? 1 : 0;
}
