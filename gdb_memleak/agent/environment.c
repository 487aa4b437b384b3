/* Environment and exec: settings from GDB_MEMLEAK_AGENT_*, the preload hidden from the program and given back to
 * the programs it execs, and the constructor. Part of recorder.c. */

/* ---- environment: hide the preload from the program, give it back to the programs it execs --------------- */

#define ENV_PREFIX "GDB_MEMLEAK_AGENT_"

static int starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

/* Our path is the first LD_PRELOAD entry ending in librecorder.so (the engine puts it first). */
static int is_ours(const char *entry, size_t len) {
    static const char tail[] = "librecorder.so";
    return len >= sizeof tail - 1 && memcmp(entry + len - (sizeof tail - 1), tail, sizeof tail - 1) == 0;
}

static char preload_rest[4096]; /* the user's own LD_PRELOAD, without ours */
static char preload_entry[4096 + 16];

static void hide_environment(void) {
    extern char **environ;
    if (!environ) return;
    char **w = environ;
    for (char **r = environ; *r; r++) {
        char *e = *r;
        if (starts_with(e, ENV_PREFIX)) {
            if (saved_env_count < 8) saved_env[saved_env_count++] = e;
            continue;
        }
        if (starts_with(e, "LD_PRELOAD=") && !saved_preload) {
            const char *v = e + 11, *sep;
            size_t len;
            for (; *v; v += len) {
                while (*v == ':' || *v == ' ') v++;
                sep = v + strcspn(v, ": ");
                len = (size_t)(sep - v);
                if (len && is_ours(v, len)) break;
                if (!len) break;
            }
            if (*v && len) {
                static char ours[4096];
                if (len < sizeof ours) {
                    memcpy(ours, v, len);
                    ours[len] = 0;
                    saved_preload = ours;
                }
                /* rebuild the rest */
                size_t before = (size_t)(v - (e + 11));
                const char *after = v + len;
                while (*after == ':' || *after == ' ') after++;
                size_t n = 0;
                if (before && before < sizeof preload_rest) { memcpy(preload_rest, e + 11, before); n = before; }
                while (n && (preload_rest[n - 1] == ':' || preload_rest[n - 1] == ' ')) n--;
                if (*after) {
                    if (n && n < sizeof preload_rest - 1) preload_rest[n++] = ':';
                    size_t alen = strlen(after);
                    if (n + alen < sizeof preload_rest) { memcpy(preload_rest + n, after, alen); n += alen; }
                }
                preload_rest[n] = 0;
                if (n) {
                    memcpy(preload_entry, "LD_PRELOAD=", 11);
                    memcpy(preload_entry + 11, preload_rest, n + 1);
                    *w++ = preload_entry;
                }
                continue;
            }
        }
        *w++ = e;
    }
    *w = NULL;
}

/* envp plus our preload and settings, in pages from mmap (the exec replaces them; a failed exec unmaps). */
static char **with_preload(char *const envp[], size_t *mapped) {
    *mapped = 0;
    if (!saved_preload) return (char **)envp;
    size_t count = 0;
    if (envp)
        for (; envp[count]; count++) {}
    size_t bytes = (count + saved_env_count + 2) * sizeof(char *) + 16384;
    char **out = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (out == MAP_FAILED) return (char **)envp;
    *mapped = bytes;
    char *text = (char *)(out + count + saved_env_count + 2), *end = (char *)out + bytes;
    size_t k = 0;
    int placed = 0;
    for (size_t i = 0; i < count; i++) {
        if (starts_with(envp[i], ENV_PREFIX)) continue;
        if (starts_with(envp[i], "LD_PRELOAD=") && !placed) {
            size_t need = strlen(saved_preload) + strlen(envp[i]) + 2;
            if (text + need < end) {
                char *s = text;
                text += need;
                strcpy(s, "LD_PRELOAD=");
                strcat(s, saved_preload);
                if (envp[i][11]) { strcat(s, ":"); strcat(s, envp[i] + 11); }
                out[k++] = s;
                placed = 1;
                continue;
            }
        }
        out[k++] = envp[i];
    }
    if (!placed) {
        size_t need = strlen(saved_preload) + 12;
        if (text + need < end) {
            strcpy(text, "LD_PRELOAD=");
            strcat(text, saved_preload);
            out[k++] = text;
        }
    }
    for (int i = 0; i < saved_env_count; i++) out[k++] = (char *)saved_env[i];
    out[k] = NULL;
    return out;
}

/* The exec family: the program's child image gets the preload (and our settings) back. */
#define EXEC_HOOK(name, params, envp, call)                                                                     \
    EXPORT int name params {                                                                                   \
        ensure_init();                                                                                         \
        size_t mapped;                                                                                         \
        char **env = with_preload(envp, &mapped);                                                              \
        int rc = call;                                                                                         \
        int err = errno;                                                                                       \
        if (mapped) munmap(env, mapped);                                                                       \
        errno = err;                                                                                           \
        return rc;                                                                                             \
    }

EXEC_HOOK(execve, (const char *path, char *const argv[], char *const envp[]), envp, R.execve(path, argv, env))
EXEC_HOOK(execvpe, (const char *file, char *const argv[], char *const envp[]), envp, R.execvpe(file, argv, env))
EXEC_HOOK(posix_spawn, (pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                        const posix_spawnattr_t *attr, char *const argv[], char *const envp[]),
          envp, R.posix_spawn(pid, path, fa, attr, argv, env))
EXEC_HOOK(posix_spawnp, (pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                         const posix_spawnattr_t *attr, char *const argv[], char *const envp[]),
          envp, R.posix_spawnp(pid, file, fa, attr, argv, env))

extern char **environ;
EXPORT int execv(const char *path, char *const argv[]) { return execve(path, argv, environ); }
EXPORT int execvp(const char *file, char *const argv[]) { return execvpe(file, argv, environ); }

#define COLLECT_ARGS(first, ap, argv)                                                                          \
    size_t argc_ = 1;                                                                                          \
    va_start(ap, first);                                                                                       \
    while (va_arg(ap, char *)) argc_++;                                                                        \
    va_end(ap);                                                                                                \
    char *argv[argc_ + 1];                                                                                     \
    argv[0] = (char *)first;                                                                                   \
    va_start(ap, first);                                                                                       \
    for (size_t i_ = 1; i_ <= argc_; i_++) argv[i_] = va_arg(ap, char *);

EXPORT int execl(const char *path, const char *arg, ...) {
    va_list ap;
    COLLECT_ARGS(arg, ap, argv)
    va_end(ap);
    return execve(path, argv, environ);
}

EXPORT int execlp(const char *file, const char *arg, ...) {
    va_list ap;
    COLLECT_ARGS(arg, ap, argv)
    va_end(ap);
    return execvpe(file, argv, environ);
}

EXPORT int execle(const char *path, const char *arg, ...) {
    va_list ap;
    COLLECT_ARGS(arg, ap, argv)
    char *const *envp = va_arg(ap, char *const *);
    va_end(ap);
    return execve(path, argv, envp);
}

/* ---- start-up --------------------------------------------------------------------------------------------- */

static void test_stop_at_exit(void) {
    /* Tests without GDB: after every exit handler and destructor, stop so the test reads /proc/PID/mem. */
    raise(SIGSTOP);
}

__attribute__((constructor(101))) static void recorder_init(void) {
    dump_arena_start();
    if (loaded_by_dlopen()) { /* attach mode (attach.c): nothing until memleak_agent_attach */
        attach_mode_init();
        return;
    }
    const char *v = getenv(ENV_PREFIX "DEPTH");
    if (v && *v) {
        long d = strtol(v, NULL, 10);
        if (d >= 1 && d <= ML_MAX_DEPTH) cfg_depth = (uint64_t)d;
    }
    const char *onerr = getenv(ENV_PREFIX "ON_ERROR");
    cfg_test_stop = getenv(ENV_PREFIX "TEST_STOP") != NULL;
    ensure_init();
    if (!atomic_load(&recording_off)) {
        H->depth = cfg_depth;
        if (onerr && strcmp(onerr, "skip") == 0) H->skip_bad_frees = 1;
        const char *brk = getenv(ENV_PREFIX "BREAK_ALLOC"); /* `memleak break-alloc N` set before the run */
        if (brk && *brk) H->break_seq = strtoull(brk, NULL, 10);
    }
    hide_environment();
    if (cfg_test_stop) atexit(test_stop_at_exit);
}
