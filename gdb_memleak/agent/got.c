/* Attach mode: the allocator calls of a running process redirected to the recorder through each loaded object's
 * GOT slots, and given back at detach. Part of recorder.c (used by attach.c).
 *
 * Why the GOT: a program's calls into another object (and a function's address taken in PIC code) go through one
 * slot per symbol per object, which the dynamic loader filled; writing the recorder's function there redirects
 * them without stopping a thread (an aligned 8-byte store: a concurrent call takes the old or the new function).
 * Calls that never go through a slot (glibc's internal ones, an allocator inside the executable) are not seen.
 * Every object of the caller's namespace is walked (dl_iterate_phdr) except the recorder itself, libunwind (its
 * allocations happen inside the recorder) and the dynamic loader; JUMP_SLOT (DT_JMPREL) and GLOB_DAT (DT_RELA)
 * relocations naming a hooked function get the hook. Slots inside PT_GNU_RELRO are made writable for the store
 * and read-only again, as the loader left them. Each written slot's previous value is kept for the detach. */

/* What the exec family (environment.c) and _Fork (fork.c) hook, besides hooked.def's allocators. */
static const char *const OTHER_HOOKED[] = {"execve", "execvpe", "execv", "execvp", "execl", "execlp", "execle",
                                           "posix_spawn", "posix_spawnp", "_Fork"};

struct redirect { const char *name; void *hook; int releases; };
static struct redirect redirects[A_COUNT + sizeof OTHER_HOOKED / sizeof *OTHER_HOOKED + 2];
static int redirect_count;

struct saved_slot { void **slot; void *previous; };
static struct saved_slot *saved;         /* the slots written, in mmap'd pages (nothing through the hooks) */
static size_t saved_count, saved_capacity;
static atomic_int patch_lock;            /* one writer of slots at a time (mprotect of a shared page) */
static uintptr_t self_base, unwind_base; /* objects never redirected, with the loader (AT_BASE) and the vDSO */
static void *(*real_dlopen)(const char *, int);
static void *(*real_dlmopen)(Lmid_t, const char *, int);

static int is_own(const void *f) {
    Dl_info info;
    return f && dladdr(f, &info) && (uintptr_t)info.dli_fbase == self_base;
}

static int add_redirect(const char *name, void *hook, int releases) {
    if (!is_own(hook)) return 0;
    redirects[redirect_count++] = (struct redirect){name, hook, releases};
    return 1;
}

HIDDEN void *ml_dlopen_hook(const char *file, int mode);      /* below, in assembly */
HIDDEN void *ml_dlmopen_hook(Lmid_t lmid, const char *file, int mode);

/* The hook of every redirected name: this library's own definition (dlsym through its own handle: the global
 * scope would answer the C library's). Once per process. */
static int build_redirects(void) {
    if (redirect_count) return 1;
    Dl_info info;
    if (!dladdr((void *)build_redirects, &info)) return 0;
    void *self = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (!self) return 0;
    int ok = 1;
    for (unsigned id = 0; id < A_COUNT; id++)
        if (*ML_SYMBOLS[id])
            ok &= add_redirect(ML_SYMBOLS[id], dlsym(self, ML_SYMBOLS[id]), id == A_FREE || id == A_REALLOC
                               || id == A_REALLOCARRAY || (id >= A_DELETE && id <= A_DELETEA_ALIGNED_NOTHROW));
    for (size_t i = 0; i < sizeof OTHER_HOOKED / sizeof *OTHER_HOOKED; i++)
        ok &= add_redirect(OTHER_HOOKED[i], dlsym(self, OTHER_HOOKED[i]), 0);
    dlclose(self);
    real_dlopen = (void *(*)(const char *, int))dlsym(RTLD_DEFAULT, "dlopen");
    real_dlmopen = (void *(*)(Lmid_t, const char *, int))dlsym(RTLD_DEFAULT, "dlmopen");
    if (real_dlopen) ok &= add_redirect("dlopen", (void *)ml_dlopen_hook, 0);
    if (real_dlmopen) ok &= add_redirect("dlmopen", (void *)ml_dlmopen_hook, 0);
    if (!ok) redirect_count = 0;
    return ok;
}

static void *hook_for(const char *name, int releases) {
    for (int i = 0; i < redirect_count; i++)
        if (name[0] == redirects[i].name[0] && strcmp(name, redirects[i].name) == 0)
            return redirects[i].releases == releases ? redirects[i].hook : NULL;
    return NULL;
}

static int save_slot(void **slot, void *previous) {
    if (saved_count == saved_capacity) {
        size_t bytes = saved_capacity * sizeof *saved, more = bytes ? bytes * 2 : 16384;
        void *m = saved ? mremap(saved, bytes, more, MREMAP_MAYMOVE)
                        : mmap(NULL, more, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return 0;
        saved = m;
        saved_capacity = more / sizeof *saved;
    }
    saved[saved_count++] = (struct saved_slot){slot, previous};
    return 1;
}

static void *saved_value(void **slot) {
    for (size_t i = saved_count; i-- > 0;)
        if (saved[i].slot == slot) return saved[i].previous;
    return NULL;
}

/* Stores `value` in `slot`, a RELRO page made writable for the moment ([ro_lo, ro_hi): the pages the loader
 * protected). 0 when the page cannot be made writable. */
static int write_slot(void **slot, void *value, uintptr_t ro_lo, uintptr_t ro_hi) {
    uintptr_t at = (uintptr_t)slot, page_size = (uintptr_t)getpagesize(), page = at & ~(page_size - 1);
    int ro = at >= ro_lo && at < ro_hi;
    if (ro && mprotect((void *)page, page_size, PROT_READ | PROT_WRITE) != 0) return 0;
    __atomic_store_n(slot, value, __ATOMIC_RELEASE);
    if (ro) mprotect((void *)page, page_size, PROT_READ);
    return 1;
}

struct walk { int restore; int releases; int failed; int written; };

/* A dynamic-section address: relocated in place by the loader, except where the section is read-only. */
static uintptr_t dyn_address(uintptr_t bias, ElfW(Addr) value) { return value < bias ? value + bias : value; }

static void walk_relocations(struct walk *w, uintptr_t bias, const ElfW(Rela) *r, size_t bytes, unsigned type,
                             const ElfW(Sym) *symtab, const char *strtab, uintptr_t ro_lo, uintptr_t ro_hi) {
    for (const ElfW(Rela) *end = r + bytes / sizeof *r; r < end && !w->failed; r++) {
        if (ELF64_R_TYPE(r->r_info) != type || !ELF64_R_SYM(r->r_info)) continue;
        void *hook = hook_for(strtab + symtab[ELF64_R_SYM(r->r_info)].st_name, w->releases);
        if (!hook) continue;
        void **slot = (void **)(bias + r->r_offset), *now = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
        if (w->restore) {
            void *previous = now == hook ? saved_value(slot) : NULL;
            if (previous && write_slot(slot, previous, ro_lo, ro_hi)) w->written++;
        } else if (now != hook) {
            if (!save_slot(slot, now) || !write_slot(slot, hook, ro_lo, ro_hi)) w->failed = 1;
            else w->written++;
        }
    }
}

static int walk_object(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    uintptr_t bias = info->dlpi_addr;
    if ((bias && (bias == self_base || bias == unwind_base || bias == getauxval(AT_BASE)))
        || bias == getauxval(AT_SYSINFO_EHDR))
        return 0;
    const ElfW(Dyn) *dyn = NULL;
    uintptr_t ro_lo = 0, ro_hi = 0, page_size = (uintptr_t)getpagesize();
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_DYNAMIC) dyn = (const ElfW(Dyn) *)(bias + ph->p_vaddr);
        if (ph->p_type == PT_GNU_RELRO) {
            ro_lo = (bias + ph->p_vaddr) & ~(page_size - 1);
            ro_hi = (bias + ph->p_vaddr + ph->p_memsz) & ~(page_size - 1);
        }
    }
    if (!dyn) return 0;
    const ElfW(Rela) *jmprel = NULL, *rela = NULL;
    size_t jmprel_bytes = 0, rela_bytes = 0;
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    int pltrel_rela = 1;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        switch (dyn->d_tag) {
        case DT_JMPREL: jmprel = (const ElfW(Rela) *)dyn_address(bias, dyn->d_un.d_ptr); break;
        case DT_PLTRELSZ: jmprel_bytes = dyn->d_un.d_val; break;
        case DT_PLTREL: pltrel_rela = dyn->d_un.d_val == DT_RELA; break;
        case DT_RELA: rela = (const ElfW(Rela) *)dyn_address(bias, dyn->d_un.d_ptr); break;
        case DT_RELASZ: rela_bytes = dyn->d_un.d_val; break;
        case DT_SYMTAB: symtab = (const ElfW(Sym) *)dyn_address(bias, dyn->d_un.d_ptr); break;
        case DT_STRTAB: strtab = (const char *)dyn_address(bias, dyn->d_un.d_ptr); break;
        default: break;
        }
    }
    if (!symtab || !strtab) return 0;
    struct walk *w = data;
    if (jmprel && pltrel_rela)
        walk_relocations(w, bias, jmprel, jmprel_bytes, R_X86_64_JUMP_SLOT, symtab, strtab, ro_lo, ro_hi);
    if (rela) walk_relocations(w, bias, rela, rela_bytes, R_X86_64_GLOB_DAT, symtab, strtab, ro_lo, ro_hi);
    return w->failed;
}

/* Redirects (or gives back) the slots of every object loaded now; 0 when a slot could not be written. The
 * releasing functions (free, realloc, the deletes) are redirected first and given back last: a block the table
 * records was made through a hook, so its release comes through one too (a native operator's half is attach.c's
 * operator_half_native). */
static int walk_objects(int restore) {
    struct walk w = {restore, !restore, 0, 0};
    unsigned round = 0;
    while (atomic_exchange_explicit(&patch_lock, 1, memory_order_acquire)) backoff(&round);
    dl_iterate_phdr(walk_object, &w);
    w.releases = restore;
    if (!w.failed) dl_iterate_phdr(walk_object, &w);
    if (restore) saved_count = 0;
    atomic_store_explicit(&patch_lock, 0, memory_order_release);
    return !w.failed;
}

/* ---- objects loaded later: dlopen and dlmopen ---------------------------------------------------------------
 * The loader searches a library by the caller's DT_RUNPATH/DT_RPATH and expands $ORIGIN from the caller, which it
 * finds by the return address. A hook calling dlopen would be the caller; so a call whose result could depend on
 * it (a '$' in the name; a bare name from an object with a search path of its own; dlmopen into another
 * namespace, which has its own C library, never redirected) jumps to the real function with the program's
 * return address untouched: that object is redirected at the next redirecting dlopen (or a repeated attach). */

static int has_search_path(void *caller) {
    Dl_info info;
    struct link_map *map = NULL;
    if (!dladdr1(caller, &info, (void **)&map, RTLD_DL_LINKMAP) || !map || !map->l_ld) return 0;
    for (const ElfW(Dyn) *d = map->l_ld; d->d_tag != DT_NULL; d++)
        if (d->d_tag == DT_RUNPATH || d->d_tag == DT_RPATH) return 1;
    return 0;
}

static int redirectable(const char *file, int mode, void *caller) {
    if (atomic_load_explicit(&recording_off, memory_order_relaxed) || !file || (mode & RTLD_NOLOAD)) return 0;
    if (strchr(file, '$')) return 0;
    return strchr(file, '/') || !has_search_path(caller);
}

static void *dlopen_redirecting(const char *file, int mode) {
    void *handle = real_dlopen(file, mode);
    if (handle && !atomic_load(&recording_off)) walk_objects(0);
    return handle;
}

static void *dlmopen_redirecting(Lmid_t lmid, const char *file, int mode) {
    void *handle = real_dlmopen(lmid, file, mode);
    if (handle && !atomic_load(&recording_off)) walk_objects(0);
    return handle;
}

HIDDEN __attribute__((used)) void *ml_dlopen_route(const char *file, int mode, void *caller) {
    return redirectable(file, mode, caller) ? (void *)dlopen_redirecting : (void *)real_dlopen;
}

HIDDEN __attribute__((used)) void *ml_dlmopen_route(Lmid_t lmid, const char *file, int mode, void *caller) {
    return lmid == LM_ID_BASE && redirectable(file, mode, caller) ? (void *)dlmopen_redirecting
                                                                   : (void *)real_dlmopen;
}

/* The hooks: the arguments kept, the route chosen by the caller's return address, then a jump (the stack as the
 * program made it: the real function sees the program's return address when it is the one jumped to). */
__asm__(".text\n.p2align 4\n.globl ml_dlopen_hook\n.hidden ml_dlopen_hook\n.type ml_dlopen_hook,@function\n"
        "ml_dlopen_hook:\n  endbr64\n"
        "  push %rdi\n  push %rsi\n  sub $8, %rsp\n  mov 24(%rsp), %rdx\n  call ml_dlopen_route\n"
        "  add $8, %rsp\n  pop %rsi\n  pop %rdi\n  jmp *%rax\n.size ml_dlopen_hook, .-ml_dlopen_hook\n"
        ".p2align 4\n.globl ml_dlmopen_hook\n.hidden ml_dlmopen_hook\n.type ml_dlmopen_hook,@function\n"
        "ml_dlmopen_hook:\n  endbr64\n"
        "  push %rdi\n  push %rsi\n  push %rdx\n  mov 24(%rsp), %rcx\n  call ml_dlmopen_route\n"
        "  pop %rdx\n  pop %rsi\n  pop %rdi\n  jmp *%rax\n.size ml_dlmopen_hook, .-ml_dlmopen_hook\n");
