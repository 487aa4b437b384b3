"""Making core files deterministically for the post-mortem tests, each bounded, so that a core growing past the
bound fails its test instead of filling the disk (an unmarked recorder region once made an 11 GB core):
- the kernel's: a program that aborts with RLIMIT_CORE raised to CORE_LIMIT (the kernel cuts the core there);
- GDB's `gcore`: GDB's own RLIMIT_FSIZE lowered to CORE_LIMIT just before it writes (`GCORE_LIMIT`, a command),
  after the program started (a program inheriting the limit would get a smaller recorder region)."""

from __future__ import annotations

import os
import resource
import subprocess
from pathlib import Path

#: a core bigger than this fails its test
CORE_LIMIT = 32 << 20
CORE_PATTERN = Path("/proc/sys/kernel/core_pattern")
#: a GDB command bounding the files GDB writes from now on (gcore): past the bound the write fails
GCORE_LIMIT = (f"python import resource; resource.setrlimit(resource.RLIMIT_FSIZE, ({CORE_LIMIT}, {CORE_LIMIT}))")


def core_pattern_problem() -> str | None:
    """Why the kernel cannot be made to write a core file into the dumping process's directory, or None: the pattern
    must be a plain file name (Debian's default is `core`), and RLIMIT_CORE raisable to CORE_LIMIT."""
    try:
        pattern = CORE_PATTERN.read_text().strip()
    except OSError as exc:
        return f"{CORE_PATTERN} is unreadable: {exc.strerror}"
    if pattern.startswith("|"):
        return f"the kernel's core_pattern pipes cores to a program ({pattern.split()[0]}), not into a file"
    if "/" in pattern:
        return f"the kernel's core_pattern {pattern!r} writes cores elsewhere than the process's directory"
    hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
    if hard != resource.RLIM_INFINITY and hard < CORE_LIMIT:
        return f"the hard RLIMIT_CORE ({hard} bytes) is below {CORE_LIMIT}"
    return None


def kernel_core(argv: list[str], cwd: Path, env: dict[str, str] | None = None, limit: int = CORE_LIMIT,
                coredump_filter: int | None = None) -> tuple[int, Path | None]:
    """Runs `argv` in `cwd` with core dumps allowed up to `limit` bytes (and with `coredump_filter`, else the one it
    inherits): its wait status, and the core file it dumped there (the one new `core*` file), if any."""

    def allow_core() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (limit, resource.getrlimit(resource.RLIMIT_CORE)[1]))
        if coredump_filter is not None:  # inherited through the exec
            Path("/proc/self/coredump_filter").write_text(f"0x{coredump_filter:x}")

    before = set(cwd.glob("core*"))
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=allow_core)
    _, status = os.waitpid(proc.pid, 0)
    proc.returncode = 0  # reaped here: Popen must not wait for it again
    cores = sorted(set(cwd.glob("core*")) - before)
    return status, cores[0] if len(cores) == 1 else None


def killed_with_core(status: int, signum: int) -> bool:
    """The wait status of a process killed by `signum` that dumped core."""
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signum and os.WCOREDUMP(status)
