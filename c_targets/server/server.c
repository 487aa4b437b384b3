/*
 * server.c - a thread-pool server with a slow leak, a bounded cache that plateaus, and request churn.
 *
 * Usage: server [--signalfd] SOCKET
 *   Listens on the UNIX stream socket SOCKET (a stale file there is removed first; removed again at exit) and
 *   writes "listening SOCKET" on stdout when connections are accepted. The main thread accepts and queues
 *   connections; WORKERS threads take them from the queue. A connection carries request lines, each answered with
 *   one line, until the client closes it:
 *     ECHO TEXT    "OK TEXT" upper-cased                         churn: a request record, copies, a grown reply
 *     GET KEY      "OK VALUE" from a read-through LRU cache        at most CACHE_MAX entries: fills, then plateaus
 *     LOGIN USER   "OK session N"                                the bug: the session record is never freed
 *     STATS        "OK requests=N logins=N cache_entries=N cache_hits=N"
 *     QUIT         "BYE", then the server shuts down
 *   anything else: "ERR unknown request". Every line a connection sends is read into a buffer grown by realloc.
 *
 * Signals, as servers handle them: the workers block every signal. By default the main thread catches SIGTERM,
 * SIGINT and SIGHUP with a handler (the rest of its mask is the caller's); with --signalfd those three are blocked
 * in every thread too and the main thread reads them from a signalfd (sigwait's semantics: never delivered to a
 * handler, so a debugger that stops the process with SIGINT never sees it). Either signal, or QUIT, shuts down
 * cleanly: no new connection is accepted, queued ones are served, the workers are joined, the cache is freed.
 * Exit status 0.
 *
 * At exit only the sessions remain: one SESSION_SIZE-byte block per LOGIN answered, definitely lost (the pointer
 * lived only in handle_login's frame). valgrind (--leak-check=full --run-libc-freeres=no --run-cxx-freeres=no)
 * reports also each joined worker's DTV (272 bytes, calloc'ed by the loader under pthread_create) possibly lost,
 * as threads_stress.c explains: the workers get an explicit 256 KiB stack, so all fit glibc's stack cache. stdout
 * is written with write(2): no stdio buffer is allocated.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0

#define WORKERS 4
#define WORKER_STACK (256 * 1024)
#define CACHE_MAX 64
#define CACHE_BUCKETS 512
#define KEY_MAX 32
#define VALUE_SIZE 128

struct session {            /* SESSION_SIZE = 80 bytes */
    unsigned long id;
    long created;
    char user[64];
};

struct entry {              /* a cache entry: 72 bytes, and its value: VALUE_SIZE bytes */
    struct entry *bucket_next, *newer, *older;
    char key[KEY_MAX];
    char *value;
    unsigned long hits;
};

struct request {
    char *verb;
    char *arg;
};

struct reply {              /* a reply line grown by realloc */
    char *text;
    size_t length, capacity;
};

struct queued {
    int fd;
    struct queued *next;
};

/* The connection queue between the main thread and the workers. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    struct queued *head, *tail;
    int closed;
} queue = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0};

/* The LRU cache: a hash table of entries, and a list from the most to the least recently used. */
static struct {
    pthread_mutex_t lock;
    struct entry *buckets[CACHE_BUCKETS];
    struct entry *newest, *oldest;
    int count;
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static atomic_ulong requests, logins, cache_hits, next_session;
static int wake_pipe[2];    /* a byte here wakes the main thread: a signal (handler mode) or QUIT */

/* --- the reply and the request ----------------------------------------------------------------------------- */

static void reply_add(struct reply *r, const char *text)
{
    size_t n = strlen(text);
    if (r->length + n + 1 > r->capacity) {
        size_t capacity = r->capacity ? r->capacity : 16;
        while (capacity < r->length + n + 1)
            capacity *= 2;
        r->text = realloc(r->text, capacity);
        r->capacity = capacity;
    }
    memcpy(r->text + r->length, text, n + 1);
    r->length += n;
}

static struct request *parse_request(const char *line)
{
    struct request *req = calloc(1, sizeof *req);
    size_t verb = strcspn(line, " ");
    req->verb = strndup(line, verb);
    req->arg = strdup(line[verb] ? line + verb + 1 : "");
    return req;
}

static void free_request(struct request *req)
{
    free(req->verb);
    free(req->arg);
    free(req);
}

/* --- the cache ---------------------------------------------------------------------------------------------- */

static unsigned bucket_of(const char *key)
{
    unsigned h = 2166136261u;
    for (; *key; key++)
        h = (h ^ (unsigned char)*key) * 16777619u;
    return h % CACHE_BUCKETS;
}

static void lru_unlink(struct entry *e)
{
    if (e->newer) e->newer->older = e->older; else cache.newest = e->older;
    if (e->older) e->older->newer = e->newer; else cache.oldest = e->newer;
}

static void lru_push(struct entry *e)
{
    e->newer = NULL;
    e->older = cache.newest;
    if (cache.newest) cache.newest->newer = e; else cache.oldest = e;
    cache.newest = e;
}

static void bucket_remove(struct entry *e)
{
    struct entry **link = &cache.buckets[bucket_of(e->key)];
    while (*link != e)
        link = &(*link)->bucket_next;
    *link = e->bucket_next;
}

static void free_entry(struct entry *e)
{
    free(e->value);
    free(e);
}

/* The value a GET computes on a miss: always VALUE_SIZE bytes, so a full cache holds a constant number of bytes. */
static __attribute__((noinline)) struct entry *cache_fill(const char *key)
{
    struct entry *e = calloc(1, sizeof *e);
    snprintf(e->key, sizeof e->key, "%s", key);
    e->value = malloc(VALUE_SIZE);
    snprintf(e->value, VALUE_SIZE, "value-of-%s", e->key);
    if (cache.count == CACHE_MAX) {         /* evict the least recently used */
        struct entry *old = cache.oldest;
        lru_unlink(old);
        bucket_remove(old);
        free_entry(old);
        cache.count--;
    }
    unsigned b = bucket_of(e->key);
    e->bucket_next = cache.buckets[b];
    cache.buckets[b] = e;
    lru_push(e);
    cache.count++;
    return e;
}

/* A copy of KEY's value (the caller frees it), computed and cached on a miss. */
static char *cache_get(const char *key)
{
    pthread_mutex_lock(&cache.lock);
    struct entry *e = cache.buckets[bucket_of(key)];
    while (e && strncmp(e->key, key, KEY_MAX - 1) != 0)
        e = e->bucket_next;
    if (e) {
        e->hits++;
        atomic_fetch_add(&cache_hits, 1);
        lru_unlink(e);
        lru_push(e);
    } else {
        e = cache_fill(key);
    }
    char *copy = strdup(e->value);
    pthread_mutex_unlock(&cache.lock);
    return copy;
}

static void cache_free(void)
{
    struct entry *e = cache.newest;
    while (e) {
        struct entry *older = e->older;
        free_entry(e);
        e = older;
    }
    memset(cache.buckets, 0, sizeof cache.buckets);
    cache.newest = cache.oldest = NULL;
    cache.count = 0;
}

/* --- requests ----------------------------------------------------------------------------------------------- */

static __attribute__((noinline)) struct session *session_new(const char *user)
{
    struct session *s = malloc(sizeof *s); // expect: leak bytes=80 blocks=1 kind=definite per=LOGIN
    s->id = atomic_fetch_add(&next_session, 1) + 1;
    s->created = (long)requests;
    snprintf(s->user, sizeof s->user, "%s", user);
    return s;
}

/* The leak: the session is made, its id answered, and the record dropped (no table keeps it, nothing frees it). */
static __attribute__((noinline)) void handle_login(const char *user, struct reply *r)
{
    struct session *s = session_new(user);
    char line[64];
    snprintf(line, sizeof line, "OK session %lu", s->id);
    reply_add(r, line);
    atomic_fetch_add(&logins, 1);
    ESCAPE(s);
    s = NULL;               /* the only pointer to it, gone: definitely lost */
    ESCAPE(s);
}

static void handle_echo(const char *text, struct reply *r)
{
    char *upper = strdup(text);
    for (char *c = upper; *c; c++)
        *c = (char)toupper((unsigned char)*c);
    reply_add(r, "OK ");
    reply_add(r, upper);
    free(upper);
}

static void handle_get(const char *key, struct reply *r)
{
    char *value = cache_get(key);
    reply_add(r, "OK ");
    reply_add(r, value);
    free(value);
}

static void handle_stats(struct reply *r)
{
    char line[160];
    pthread_mutex_lock(&cache.lock);
    int entries = cache.count;
    pthread_mutex_unlock(&cache.lock);
    snprintf(line, sizeof line, "OK requests=%lu logins=%lu cache_entries=%d cache_hits=%lu",
             (unsigned long)requests, (unsigned long)logins, entries, (unsigned long)cache_hits);
    reply_add(r, line);
}

static void wake_main(void)
{
    char byte = 'q';
    ssize_t n = write(wake_pipe[1], &byte, 1);
    (void)n;                /* a full pipe already holds a wake-up */
}

/* Answers one request line; returns 0 after QUIT. */
static int handle_line(int fd, const char *line)
{
    struct request *req = parse_request(line);
    struct reply r = {0};
    int go_on = 1;
    atomic_fetch_add(&requests, 1);
    if (strcmp(req->verb, "ECHO") == 0)
        handle_echo(req->arg, &r);
    else if (strcmp(req->verb, "GET") == 0 && req->arg[0])
        handle_get(req->arg, &r);
    else if (strcmp(req->verb, "LOGIN") == 0 && req->arg[0])
        handle_login(req->arg, &r);
    else if (strcmp(req->verb, "STATS") == 0)
        handle_stats(&r);
    else if (strcmp(req->verb, "QUIT") == 0) {
        reply_add(&r, "BYE");
        go_on = 0;
    } else
        reply_add(&r, "ERR unknown request");
    reply_add(&r, "\n");
    send(fd, r.text, r.length, MSG_NOSIGNAL);   /* a client gone is not the server's failure */
    free(r.text);
    free_request(req);
    if (!go_on)
        wake_main();
    return go_on;
}

/* Serves one connection until the client closes it (or QUIT): its lines are read into a buffer grown by realloc. */
static void serve_connection(int fd)
{
    size_t capacity = 16, length = 0;
    char *buffer = malloc(capacity);
    for (;;) {
        char *newline = memchr(buffer, '\n', length);
        if (newline) {
            *newline = '\0';
            if (newline > buffer && newline[-1] == '\r')
                newline[-1] = '\0';
            int go_on = handle_line(fd, buffer);
            length -= (size_t)(newline + 1 - buffer);
            memmove(buffer, newline + 1, length);
            if (!go_on)
                break;
            continue;
        }
        if (length + 1 >= capacity) {
            capacity *= 2;
            buffer = realloc(buffer, capacity);
        }
        ssize_t n = read(fd, buffer + length, capacity - length - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        length += (size_t)n;
    }
    free(buffer);
    close(fd);
}

/* --- the pool ----------------------------------------------------------------------------------------------- */

static void enqueue(int fd)
{
    struct queued *q = malloc(sizeof *q);
    q->fd = fd;
    q->next = NULL;
    pthread_mutex_lock(&queue.lock);
    if (queue.tail) queue.tail->next = q; else queue.head = q;
    queue.tail = q;
    pthread_cond_signal(&queue.ready);
    pthread_mutex_unlock(&queue.lock);
}

/* The next queued connection; -1 once the queue is closed and empty. */
static int dequeue(void)
{
    pthread_mutex_lock(&queue.lock);
    while (!queue.head && !queue.closed)
        pthread_cond_wait(&queue.ready, &queue.lock);
    struct queued *q = queue.head;
    int fd = -1;
    if (q) {
        queue.head = q->next;
        if (!queue.head)
            queue.tail = NULL;
        fd = q->fd;
        free(q);
    }
    pthread_mutex_unlock(&queue.lock);
    return fd;
}

static void *worker(void *arg)
{
    (void)arg;
    for (int fd; (fd = dequeue()) >= 0;)
        serve_connection(fd);
    return NULL;
}

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    wake_main();
    errno = saved;
}

static int listen_on(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path) {
        fprintf(stderr, "server: socket path too long: %s\n", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    unlink(path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 128) != 0) {
        fprintf(stderr, "server: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return fd;
}

/* Accepts and queues connections until a byte arrives on the wake pipe or a signal on `signals` (-1: none). */
static void accept_loop(int listener, int signals)
{
    struct pollfd fds[3] = {{listener, POLLIN, 0}, {wake_pipe[0], POLLIN, 0}, {signals, POLLIN, 0}};
    for (;;) {
        if (poll(fds, signals >= 0 ? 3 : 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "server: poll: %s\n", strerror(errno));
            return;
        }
        if (fds[1].revents || (signals >= 0 && fds[2].revents))
            return;
        int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            enqueue(fd);
    }
}

int main(int argc, char **argv)
{
    int use_signalfd = argc > 1 && strcmp(argv[1], "--signalfd") == 0;
    if (argc != 2 + use_signalfd) {
        fprintf(stderr, "usage: server [--signalfd] SOCKET\n");
        return 2;
    }
    const char *path = argv[1 + use_signalfd];
    int listener = listen_on(path);
    if (listener < 0 || pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return 1;

    sigset_t all, caller, stopping;
    sigfillset(&all);
    sigemptyset(&stopping);
    sigaddset(&stopping, SIGTERM);
    sigaddset(&stopping, SIGINT);
    sigaddset(&stopping, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &all, &caller);      /* the workers inherit a mask blocking every signal */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, WORKER_STACK);
    pthread_t workers[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        if (pthread_create(&workers[i], &attr, worker, NULL) != 0) // expect: leak bytes=1088 blocks=4 kind=possible suppressed
            return 1;
    pthread_attr_destroy(&attr);

    int signals = -1;
    if (use_signalfd) {
        sigset_t mask = caller;
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        pthread_sigmask(SIG_SETMASK, &mask, NULL);
        signals = signalfd(-1, &stopping, SFD_CLOEXEC);
    } else {
        struct sigaction action = {.sa_handler = on_signal};
        sigemptyset(&action.sa_mask);
        sigaction(SIGTERM, &action, NULL);
        sigaction(SIGINT, &action, NULL);
        sigaction(SIGHUP, &action, NULL);
        pthread_sigmask(SIG_SETMASK, &caller, NULL);
        pthread_sigmask(SIG_UNBLOCK, &stopping, NULL);
    }

    char ready[sizeof(struct sockaddr_un) + 16];
    int n = snprintf(ready, sizeof ready, "listening %s\n", path);
    if (write(STDOUT_FILENO, ready, (size_t)n) != n)
        return 1;
    accept_loop(listener, signals);

    close(listener);
    unlink(path);
    pthread_mutex_lock(&queue.lock);
    queue.closed = 1;
    pthread_cond_broadcast(&queue.ready);
    pthread_mutex_unlock(&queue.lock);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(workers[i], NULL);
    cache_free();
    if (signals >= 0)
        close(signals);
    close(wake_pipe[0]);
    close(wake_pipe[1]);
    return 0;
}
