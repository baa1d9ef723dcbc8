"""`LocalSandbox`: warm fork-server processes on this machine, isolated with bubblewrap when it exists.

Weaker than `DockerSandbox` (no memory cgroup, shared kernel view without bwrap); see docs/sandboxes.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections import deque
from collections.abc import Sequence
from typing import Literal

from torl.tools.sandbox import (
    CELL_ENV,
    DEFAULT_PRELOAD,
    WORKER_SOURCE,
    Limits,
    WorkerConn,
    WorkerPool,
    base_config,
    limits_from,
)

log = logging.getLogger(__name__)
Isolation = Literal["auto", "bwrap", "none"]

_uids = itertools.count()


def cell_uids() -> range:
    """The uids this process gives to cells when it runs as root (100 per process, reused in turn)."""
    start = 1_000_000 + (os.getpid() % 40_000) * 100
    return range(start, start + 100)


def _cell_uid() -> int:
    """A uid of our own for one worker's cells (so RLIMIT_NPROC and the cleanup sweep see only them)."""
    return cell_uids()[next(_uids) % 100]


@functools.cache
def bwrap_works(python: str | None = None) -> bool:
    """True when `bwrap` exists and can build the namespaces LocalSandbox uses (for `python`)."""
    exe = shutil.which("bwrap")
    if not exe:
        return False
    python = python or sys.executable
    try:
        cmd = [exe, *_bwrap_args(python, root=os.geteuid() == 0), python, "-c", "pass"]
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0  # noqa: PLW1510
    except (OSError, subprocess.SubprocessError):
        return False


def _python_dirs(python: str) -> list[str]:
    """Folders the interpreter needs: its prefix, base prefix and where the binary really lives."""
    out = subprocess.run(
        [
            python,
            "-I",
            "-c",
            (
                "import sys, os; print(sys.prefix); print(sys.base_prefix); "
                "print(os.path.dirname(os.path.realpath(sys.executable)))"
            ),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split("\n")
    return [d for d in out if d]


@functools.cache
def _prefix_dirs(python: str) -> tuple[str, ...]:
    return tuple(
        _python_dirs(python)
        if python != sys.executable
        else [sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))]
    )


def _bwrap_args(python: str, root: bool) -> list[str]:
    args = [
        "--die-with-parent",
        "--new-session",
        "--as-pid-1",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--perms",
        "1777",
        "--tmpfs",
        "/tmp",
        "--chdir",
        "/tmp",
    ]
    if root:
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user"]
    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for f in ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives"):
        args += ["--ro-bind-try", f, f]
    made = set()
    for d in sorted(set(_prefix_dirs(python))):
        if d.startswith("/usr/"):
            continue
        parts = d.strip("/").split("/")
        for i in range(1, len(parts)):  # bwrap would create these 0700: unreadable once we drop root
            parent = "/" + "/".join(parts[:i])
            if parent not in made:
                made.add(parent)
                args += ["--perms", "0755", "--dir", parent]
        args += ["--ro-bind", d, d]
    return args


def _world_readable(path: str) -> bool:
    """Can any user reach and read `path` (x on every folder above it, r+x on it)?"""
    p = os.path.realpath(path)
    parts = [p] + [os.path.dirname(p)]
    while parts[-1] != "/":
        parts.append(os.path.dirname(parts[-1]))
    try:
        return all(os.stat(d).st_mode & 0o001 for d in parts) and bool(os.stat(p).st_mode & 0o004)
    except OSError:
        return False


def _host_prefixes(python: str) -> list[tuple[str, str]]:
    """Host paths replaced in tracebacks (longest first), so output shows no host layout."""
    pairs: dict[str, str] = {}
    if python == sys.executable:
        for key in ("purelib", "platlib"):
            pairs[sysconfig.get_paths()[key]] = "<site-packages>"
        pairs[sysconfig.get_paths()["stdlib"]] = "<stdlib>"
    for d in _prefix_dirs(python):
        pairs.setdefault(d, "<python>")
    home = os.path.expanduser("~")
    if home not in ("/", ""):
        pairs.setdefault(home, "~")
    return sorted(pairs.items(), key=lambda kv: -len(kv[0]))


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []


class _ProcConn(WorkerConn):
    def __init__(self, proc: asyncio.subprocess.Process, tmp: str | None) -> None:
        assert proc.stdout is not None and proc.stdin is not None
        self.proc = proc
        self.worker_pid = proc.pid  # under bwrap: set to bwrap's child after the handshake
        self.reader = proc.stdout
        self.tmp = tmp
        self.info = {}
        self._stderr: deque[bytes] = deque(maxlen=50)
        self._drain = asyncio.create_task(self._read_stderr())

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self._stderr.append(line)

    def diagnostics(self) -> str:
        return b"".join(self._stderr).decode(errors="replace")

    async def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        await self.proc.stdin.drain()

    async def kill(self) -> None:
        # Closing stdin asks the worker to end its sessions and sweep; then it is killed regardless.
        assert self.proc.stdin is not None
        with contextlib.suppress(Exception):
            self.proc.stdin.close()
            await asyncio.wait_for(self.proc.wait(), 2)
        # Killing the worker (PID 1 of its namespace under bwrap) takes its whole namespace down.
        # bwrap does not pass its own death on to a worker that dropped root, so kill both.
        for pid in {self.worker_pid, self.proc.pid}:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, 9)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.proc.wait(), 10)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._drain, 2)
        self._drain.cancel()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


class LocalSandbox(WorkerPool):
    """Cells run in children forked from warm worker processes on this machine.

    Each cell gets its own session, rlimits (CPU time, address space, file size, processes), a
    wall-clock kill, a fresh working folder and a clean environment. With `bwrap` (isolation
    "auto" finds it) each worker also lives in its own pid, network, IPC and mount namespaces with
    a read-only view of only the system and Python folders and a private /tmp. When started as
    root, cells run as an unprivileged uid of their own. Limits are weaker than `DockerSandbox`'s.

    Args:
        timeout_s, memory_mb, max_output, max_procs: override the matching `Limits` fields.
        limits: all limits at once.
        workers: cells that can run at once (one warm process each); default two per usable core (2..64).
        preload: modules imported once by each worker before it forks cells.
        warmup: code each worker runs once after the preload, so forked cells find lazy caches filled;
            default: common numpy/sympy operations for the preloaded modules (`sandbox.WARMUP`); () for none.
        python: interpreter for the workers (default: this one).
        isolation: "auto" (bwrap if it works), "bwrap" (required) or "none" (rlimits only).
    """

    def __init__(
        self,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        max_output: int | None = None,
        max_procs: int | None = None,
        *,
        limits: Limits | None = None,
        workers: int | None = None,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        python: str | None = None,
        isolation: Isolation = "auto",
        warmup: Sequence[str] | None = None,
    ) -> None:
        lim = limits_from(
            limits, timeout_s=timeout_s, memory_mb=memory_mb, max_output=max_output, max_procs=max_procs
        )
        super().__init__(lim, workers, preload, warmup)
        if isolation not in ("auto", "bwrap", "none"):
            raise ValueError(f"isolation must be 'auto', 'bwrap' or 'none', got {isolation!r}")
        self.python = python or sys.executable
        self.isolation = isolation
        self.root = os.geteuid() == 0

    async def setup(self) -> None:
        if self.isolation == "auto":
            self.isolation = "bwrap" if await asyncio.to_thread(bwrap_works, self.python) else "none"
            if self.isolation == "none":
                log.warning(
                    "LocalSandbox: bubblewrap is missing or cannot create namespaces here; cells "
                    "run with rlimits only (network and host files are not isolated)"
                )
        elif self.isolation == "bwrap" and not await asyncio.to_thread(bwrap_works, self.python):
            raise RuntimeError("isolation='bwrap' but bubblewrap is missing or cannot create namespaces")
        if self.isolation == "none" and self.root:
            hidden = [d for d in _prefix_dirs(self.python) if not _world_readable(d)]
            if hidden:
                log.warning(
                    "LocalSandbox: cells run as an unprivileged uid and cannot read %s; imports beyond "
                    "the preloaded modules will fail (install Python world-readable, or use bwrap)",
                    hidden,
                )
        await super().setup()

    async def _spawn(self, index: int) -> WorkerConn:
        env = dict(CELL_ENV)
        extra: dict[str, object] = {"prefixes": _host_prefixes(self.python)}
        tmp = None
        if self.isolation == "bwrap":
            cmd = ["bwrap", *_bwrap_args(self.python, self.root), self.python, "-I", "-c", WORKER_SOURCE]
            extra["tmp"] = "/tmp/work"
            # As root: cells' own uid. Otherwise bwrap's user namespace, whose process count is
            # its own (Linux >= 5.14 counts RLIMIT_NPROC per user namespace).
            extra.update(nproc_limit=True)
            if self.root:
                extra.update(become_uid=_cell_uid())
        else:
            cmd = [self.python, "-I", "-c", WORKER_SOURCE]
            tmp = tempfile.mkdtemp(prefix="torl-sandbox-")
            os.chmod(tmp, 0o711)
            extra["tmp"] = tmp
            if self.root:
                extra.update(drop_uid=_cell_uid(), nproc_limit=True)
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
            limit=1 << 26,
        )
        conn = _ProcConn(proc, tmp)
        try:
            await conn.handshake(base_config(self.preload, env, self.warmup, **extra), self.spawn_timeout_s)
        except BaseException:
            await conn.kill()
            raise
        if self.isolation == "bwrap":
            conn.worker_pid = next(iter(_children(proc.pid)), proc.pid)
        if conn.info.get("failed") and index == 0:
            log.warning("sandbox worker could not preload %s (%s)", conn.info["failed"], self.python)
        if conn.info.get("warmup_failed") and index == 0:
            log.warning(
                "sandbox worker: %d warm-up snippet(s) failed (%s)", conn.info["warmup_failed"], self.python
            )
        return conn
