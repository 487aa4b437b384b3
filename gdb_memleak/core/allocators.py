"""The allocator functions gdb-memleak knows, with how to read their arguments and result.

One row per entry point. The engine reads arguments by index through the ABI (see `abi.py`), so adding a function
(the memalign family, C++ operators, mmap) is adding a row here, not code in the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import cached_property


class Role(Enum):
    ALLOC = "alloc"          # returns a new block of size product(size_args)
    FREE = "free"            # releases ptr_arg
    REALLOC = "realloc"      # releases ptr_arg (if any) and returns a new block
    MEMPTR = "memptr"        # stores the new block through out_arg, returns 0 on success
    EXIT = "exit"            # the process is about to end (its memory still intact): time for the leak scan
    EXEC = "exec"            # the process image may be replaced: classify its blocks while they exist
    # mappings and shared memory (family MAPPING, handled by gdb/mapping_hooks.py, recorded in core/mappings.py)
    MAP = "map"              # mmap(addr, length, prot, flags, fd, offset) -> region
    UNMAP = "unmap"          # munmap(addr, length) -> 0
    REMAP = "remap"          # mremap(old, old_size, new_size, flags, ...) -> region
    SHMGET = "shmget"        # shmget(key, size, flags) -> shmid
    SHMAT = "shmat"          # shmat(shmid, addr, flags) -> region
    SHMDT = "shmdt"          # shmdt(addr) -> 0
    SHMCTL = "shmctl"        # shmctl(shmid, cmd, buf) -> 0; only IPC_RMID matters
    SHM_OPEN = "shm_open"    # shm_open(name, oflag, mode) -> fd
    SHM_UNLINK = "shm_unlink"  # shm_unlink(name) -> 0


@dataclass(frozen=True)
class AllocatorSpec:
    name: str
    role: Role
    family: str                      # which release matches which allocation: "malloc", "new", "new[]"
    size_args: tuple[int, ...] = ()  # the block size is the product of these arguments
    ptr_arg: int | None = None       # argument holding the pointer to release
    out_arg: int | None = None       # argument holding where the new pointer is stored
    label: str = ""                  # the name reports show (C++ operators are hooked by mangled name)
    wraps: bool = False              # a release that calls another hooked release (operator delete -> free):
                                     # its return is tracked so the inner call is known to be part of it
    nargs: int = 0                   # arguments read at entry when not implied by the fields above

    @property
    def display(self) -> str:
        return self.label or self.name

    def size(self, args: tuple[int, ...]) -> int:
        total = 1
        for index in self.size_args:
            total *= args[index]
        return total

    def pointer(self, args: tuple[int, ...]) -> int:
        """The pointer a release (or realloc) is given; 0 for a spec that takes none."""
        return args[self.ptr_arg] if self.ptr_arg is not None else 0

    def out_pointer(self, args: tuple[int, ...]) -> int:
        """Where posix_memalign stores the new pointer; 0 for a spec that has no such argument."""
        return args[self.out_arg] if self.out_arg is not None else 0

    @property
    def needs_return(self) -> bool:
        return self.role not in (Role.FREE, Role.EXIT, Role.EXEC) or self.wraps

    @cached_property  # read on every allocator stop
    def arg_count(self) -> int:
        used = list(self.size_args) + [i for i in (self.ptr_arg, self.out_arg) if i is not None]
        return max(max(used) + 1 if used else 0, self.nargs)


C_ALLOCATORS: tuple[AllocatorSpec, ...] = (
    AllocatorSpec("malloc", Role.ALLOC, "malloc", size_args=(0,)),
    AllocatorSpec("calloc", Role.ALLOC, "malloc", size_args=(0, 1)),
    AllocatorSpec("realloc", Role.REALLOC, "malloc", size_args=(1,), ptr_arg=0),
    AllocatorSpec("free", Role.FREE, "malloc", ptr_arg=0),
)

# The rest of the C family. glibc aliases memalign and aligned_alloc (one address: the first row hooks it).
FAMILY_ALLOCATORS: tuple[AllocatorSpec, ...] = (
    AllocatorSpec("reallocarray", Role.REALLOC, "malloc", size_args=(1, 2), ptr_arg=0),
    AllocatorSpec("posix_memalign", Role.MEMPTR, "malloc", size_args=(2,), out_arg=0),
    AllocatorSpec("aligned_alloc", Role.ALLOC, "malloc", size_args=(1,)),
    AllocatorSpec("memalign", Role.ALLOC, "malloc", size_args=(1,)),
    AllocatorSpec("valloc", Role.ALLOC, "malloc", size_args=(0,)),
    AllocatorSpec("pvalloc", Role.ALLOC, "malloc", size_args=(0,)),
)

def _cxx(mangled: str, role: Role, family: str, label: str) -> AllocatorSpec:
    if role is Role.ALLOC:
        return AllocatorSpec(mangled, role, family, size_args=(0,), label=label)
    return AllocatorSpec(mangled, role, family, ptr_arg=0, label=label, wraps=True)


_NOTHROW, _ALIGN = "RKSt9nothrow_t", "St11align_val_t"
# C++ operators (Itanium ABI names). The outermost call owns the block: `new` calling malloc is one block "new".
CXX_ALLOCATORS: tuple[AllocatorSpec, ...] = tuple(
    _cxx(prefix + suffix, role, family, label + note)
    for prefix, role, family, label, suffixes in (
        ("_Znwm", Role.ALLOC, "new", "new", ("", _NOTHROW, _ALIGN, _ALIGN + _NOTHROW)),
        ("_Znam", Role.ALLOC, "new[]", "new[]", ("", _NOTHROW, _ALIGN, _ALIGN + _NOTHROW)),
        ("_ZdlPv", Role.FREE, "new", "delete", ("", "m", _ALIGN, "m" + _ALIGN, _NOTHROW, _ALIGN + _NOTHROW)),
        ("_ZdaPv", Role.FREE, "new[]", "delete[]", ("", "m", _ALIGN, "m" + _ALIGN, _NOTHROW, _ALIGN + _NOTHROW)),
    )
    for suffix in suffixes
    for note in [("(nothrow)" if _NOTHROW in suffix else "") + ("(aligned)" if _ALIGN in suffix else "")
                 + ("(sized)" if suffix.startswith("m") else "")]
)

# Not an allocator, but hooked the same way: `_exit` makes the exit_group system call after atexit handlers and
# stdio flushing, so the reachability scan runs there, with every block and root still in memory. The image is
# scanned before an exec by each function that makes the system call itself: `fexecve` and `execveat` do not call
# `execve` (glibc 2.34+ makes the execveat system call inline).
EXIT_HOOKS: tuple[AllocatorSpec, ...] = (AllocatorSpec("_exit", Role.EXIT, ""), AllocatorSpec("execve", Role.EXEC, ""),
                                         AllocatorSpec("fexecve", Role.EXEC, ""),
                                         AllocatorSpec("execveat", Role.EXEC, ""))

DEFAULT_ALLOCATORS = C_ALLOCATORS + FAMILY_ALLOCATORS + CXX_ALLOCATORS

# Mappings and shared memory (issue 10): not heap blocks, hooked the same way. glibc's mmap, mmap64 and __mmap are
# one address (the first row hooks it), so malloc's own mappings hit it too: they are told apart by the caller
# (a call made inside a tracked malloc is nested and ignored anyway; see gdb/mapping_hooks.py for the rest).
# memfd_create needs no hook: a mapping of its descriptor is named "memfd:NAME" by the kernel.
MAPPING = "mapping"
MAPPING_HOOKS: tuple[AllocatorSpec, ...] = tuple(
    AllocatorSpec(name, role, MAPPING, nargs=nargs)
    for name, role, nargs in (
        ("mmap", Role.MAP, 6), ("mmap64", Role.MAP, 6), ("munmap", Role.UNMAP, 2), ("mremap", Role.REMAP, 3),
        ("shmget", Role.SHMGET, 3), ("shmat", Role.SHMAT, 3), ("shmdt", Role.SHMDT, 1), ("shmctl", Role.SHMCTL, 2),
        ("shm_open", Role.SHM_OPEN, 2), ("shm_unlink", Role.SHM_UNLINK, 1),
    )
)

# Where a statically linked glibc maps memory for itself (thread stacks, locale archives, malloc heaps outside a
# malloc call): in a dynamic program these calls come from libc.so itself and are recognised by object instead.
INTERNAL_MAPPERS = frozenset({"sysmalloc", "new_heap", "alloc_new_heap", "_int_realloc", "mremap_chunk",
                              "allocate_stack", "__pthread_create_2_1", "pthread_create",
                              "_nl_load_locale_from_archive", "_nl_load_locale", "__gconv_load_cache",
                              "_dl_map_object_from_fd", "_dl_map_segments", "_dl_sysdep_read_whole_file"})


def by_name(specs: tuple[AllocatorSpec, ...] = DEFAULT_ALLOCATORS) -> dict[str, AllocatorSpec]:
    return {spec.name: spec for spec in specs}


# Functions inside the allocator that release memory the program never saw as blocks (glibc's per-thread cache
# flush at thread exit frees cached chunks and the cache itself). valgrind replaces the allocator and never sees
# them; a free of an unknown pointer called from one of these is ignored rather than reported or counted.
# (tcache_thread_shutdown is inlined: without libc debug info the caller is seen as __libc_thread_freeres.)
INTERNAL_RELEASERS = frozenset({"tcache_thread_shutdown", "__libc_thread_freeres", "__malloc_arena_thread_freeres"})
