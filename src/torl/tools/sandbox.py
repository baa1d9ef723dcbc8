"""`Sandbox`: the interface every Python sandbox backend implements, its `Limits`, and the pool of
warm workers shared by the local and Docker backends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, get_args

from torl.core import Tool, ToolCall, ToolResult, ToolStatus

log = logging.getLogger(__name__)

DEFAULT_PRELOAD: tuple[str, ...] = ("numpy", "sympy")
"""Modules the worker imports once, before forking cells (a cell that imports them pays nothing)."""

WARMUP: dict[str, str] = {
    "numpy": """
import numpy as np
a = np.arange(1, 13, dtype=float).reshape(3, 4)
str(a); repr(a.sum(axis=0)); str(np.float64(1.5)); str(np.array([1.5, 2.25]))
m = np.array([[2.0, 1.0], [1.0, 3.0]])
np.linalg.det(m); np.linalg.inv(m); np.linalg.solve(m, [1.0, 2.0]); np.linalg.eig(m); np.linalg.norm(m)
r = np.random.default_rng(0); r.random((3, 3)); r.integers(0, 10, 5); np.random.seed(0); np.random.rand(2)
np.linspace(0, 1, 11).mean(); np.sqrt(a).round(3); np.cumsum(a); np.sort(a, axis=None); np.unique([3, 1, 3])
np.polyfit([0.0, 1.0, 2.0], [1.0, 3.0, 7.0], 2); np.roots([1, -3, 2]); np.prod([1, 2, 3]); np.gcd(12, 18)
""",
    "sympy": """
import math, itertools, functools, fractions, collections, decimal, random, statistics
import sympy as sp
from sympy import *
x, y, z, k, n = sp.symbols('x y z k n')
t = sp.Symbol('t', positive=True)
i = sp.Symbol('i', integer=True)
str(sp.solve(x**2 - 5*x + 6, x)); str(sp.solve(x**2 - 3*x - 1, x)); str(sp.solve([x + y - 10, x - y - 2], [x, y]))
str(sp.solve(sp.Eq(2*x + 3, 11), x)); str(sp.solveset(sp.Abs(x - 1) - 2, x, sp.S.Reals)); sp.nsolve(x**3 - 2, x, 1)
str(sp.factor(x**3 - 6*x**2 + 11*x - 6)); str(sp.expand((x + 2*y)**4)); str(sp.simplify((x**2 - 4)/(x - 2)))
sp.simplify(sp.sin(x)**2 + sp.cos(x)**2); sp.trigsimp(sp.sin(2*x)/sp.cos(x)); sp.apart(1/(x*(x + 1)))
sp.cancel((x**2 - 1)/(x + 1)); sp.together(1/x + 1/y); sp.collect(x*y + x - 3 + 2*x**2, x)
str(sp.Rational(3, 7) + sp.Rational(1, 3)); sp.nsimplify(0.75); sp.N(sp.pi, 30); str(sp.sqrt(8)); sp.sqrt(2).evalf()
sp.factorint(360); sp.isprime(97); sp.divisors(60); sp.totient(36); sp.gcd(12, 18); sp.lcm(4, 6); sp.primerange(1, 30)
sp.binomial(10, 3); sp.factorial(8); sp.prime(10); sp.nextprime(100); sp.mod_inverse(3, 11); sp.floor(sp.Rational(7, 2))
M = sp.Matrix([[1, 2], [3, 4]]); str(M.det()); str(M.inv()); M.eigenvals(); M.rref(); M * M.T
sp.diff(sp.sin(x) * x**2, x); sp.integrate(x**2, (x, 0, 1)); sp.integrate(x * sp.exp(x), x); sp.integrate(1/(1 + x**2), x)
sp.summation(k**2, (k, 1, n)); sp.summation(1/k**2, (k, 1, 10)); sp.product(k, (k, 1, 5)); sp.limit(sp.sin(x)/x, x, 0)
sp.series(sp.exp(x), x, 0, 4); sp.Poly(x**2 + 2*x + 1, x).all_coeffs(); sp.roots(x**2 - 2*x + 1); sp.degree(x**3 + 1)
sp.latex(x**2/2); str(sp.Eq(x + y, 3)); str(sp.Abs(-x)); sp.log(8, 2); sp.exp(sp.I*sp.pi); sp.re(1 + 2*sp.I); str(sp.oo)
sp.Integer(10)**20; sp.Float(1.5) * 2; sp.sympify('x**2 + 1'); sp.lambdify(x, x**2)(3); sp.Piecewise((x, x > 0), (0, True))
""",
}
"""Code each worker runs once after its preload imports, before it forks any cell: common operations of
model-written math cells, so that the modules' lazy set-up (caches, printers, solvers) is done in the warm
parent and shared copy-on-write, instead of being redone in every forked cell. Keyed by preloaded module."""


def warmup_code(preload: Sequence[str], warmup: Sequence[str] | None) -> list[str]:
    """The warm-up snippets for `preload`: `warmup` if given, else those of `WARMUP` for preloaded modules."""
    if warmup is not None:
        return [str(c) for c in warmup]
    return [WARMUP[m] for m in preload if m in WARMUP]


def usable_cores() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup CPU quota if there is one."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    for files in (("cpu.max",), ("cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us")):  # cgroup v2, v1
        try:
            words = " ".join(Path("/sys/fs/cgroup", f).read_text() for f in files).split()
            quota, period = int(words[0]), int(words[1])
        except (OSError, ValueError, IndexError):  # no such file, or "max" (no quota)
            continue
        if quota > 0:
            n = min(n, math.ceil(quota / period))
        break
    return max(1, n)


def default_workers(cores: int | None = None) -> int:
    """Workers of a pool when not given: two per usable core (at least 2, at most 64).

    A worker's own CPU time is small (it forks, waits and cleans up); its cells use the core. Two per
    core keep the cores busy while some cells wait (sleeps, the wall-clock limit of a runaway loop,
    a worker between cells) and let a runaway loop share its core instead of holding it; each
    worker costs ~100 MB of memory."""
    return max(2, min(64, 2 * (cores or usable_cores())))


WORKER_SOURCE = (Path(__file__).parent / "_worker.py").read_text()
_STATUSES = set(get_args(ToolStatus))


@dataclass(frozen=True)
class Limits:
    """Per-cell limits. Every backend enforces all of them and says in the result which one hit."""

    timeout_s: float = 10.0
    """Wall-clock time of one cell (status "timeout")."""
    memory_mb: int = 1024
    """Memory a cell may allocate on top of the warm worker (status "memory")."""
    max_output: int = 65536
    """Bytes of stdout+stderr kept: the head and the tail, with a marker in between (`truncated`)."""
    max_procs: int = 64
    """Processes and threads a cell may run at once (status "killed")."""
    cpu_s: int | None = None
    """CPU seconds of one cell (status "timeout"); default: the wall-clock limit, rounded up, + 1."""
    fsize_mb: int = 16
    """Largest file a cell may write (status "killed")."""

    def __post_init__(self) -> None:
        t = self.timeout_s
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t < math.inf:
            raise ValueError(f"Limits.timeout_s must be a positive number of seconds, got {t!r}")
        for name in ("memory_mb", "max_output", "max_procs", "fsize_mb", "cpu_s"):
            value = getattr(self, name)
            if name == "cpu_s" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive int, got {value!r}")

    def to_worker(self) -> dict[str, Any]:
        d = asdict(self)
        d["cpu_s"] = self.cpu_s or math.ceil(self.timeout_s) + 1
        return d


class Sandbox(Tool):
    """A place to run untrusted Python cells; every sandbox is the Python `Tool` itself (`name="python"`).

    `execute(code)` runs a cell string, `run(ToolCall)` is the `Tool` protocol (code and session from the
    call). Neither raises for anything the code does: the returned `ToolResult` says what happened. The
    sandbox starts on first use (or in `async with`); cells are stateless unless run in a session
    (`open_session`), where they share globals like notebook cells.
    """

    name = "python"
    limits: Limits

    @abstractmethod
    async def execute(
        self, code: str, session: str | None = None, *, limits: Limits | None = None
    ) -> ToolResult:
        """Run one cell (in `session` if given) and return what happened.

        `limits` overrides the sandbox's limits for this cell only."""

    async def run(self, call: ToolCall) -> ToolResult:
        return await self.execute(call.code, call.session)

    async def execute_many(
        self,
        cells: Sequence[str | tuple[str, str | None]],
        *,
        limits: Limits | Sequence[Limits | None] | None = None,
    ) -> list[ToolResult]:
        """Run many cells at once and return their results in order.

        Each cell is a code string (stateless) or a `(code, session)` pair. `limits` is one `Limits` for
        all cells, or one per cell (None: the sandbox's). Every cell keeps its own isolation and limits;
        like `execute`, nothing a cell does raises. This default runs `execute` concurrently; the
        warm-worker pools feed their workers from one queue instead."""
        items = cell_items(cells, limits)
        return list(await asyncio.gather(*(self.execute(c, s, limits=lim) for c, s, lim in items)))

    async def run_many(self, calls: Sequence[ToolCall]) -> list[ToolResult]:
        """`run` for many calls at once (results in order): what an engine uses when the cells of several
        trajectories are ready together."""
        return await self.execute_many([(c.code, c.session) for c in calls])

    async def open_session(self) -> str | None:
        """Start a session whose cells share state, like a notebook; returns its id (None: no sessions)."""
        return None

    async def close_session(self, session: str | None) -> None:
        """End a session and free what it holds. Unknown ids are ignored."""


def truncate_middle(text: str, limit: int) -> tuple[str, bool]:
    """Keep the first and last `limit // 2` bytes of `text` with a marker between (as the worker does)."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text, False
    half = max(limit // 2, 1)
    cut = len(data) - 2 * half
    head = data[:half].decode("utf-8", "replace")
    tail = data[-half:].decode("utf-8", "replace")
    return f"{head}\n[... {cut} bytes of output truncated ...]\n{tail}", True


def cell_items(
    cells: Sequence[str | tuple[str, str | None]], limits: Limits | Sequence[Limits | None] | None
) -> list[tuple[Any, str | None, Limits | None]]:
    """`execute_many`'s arguments as (code, session, limits) triples (code is checked later, per cell)."""
    items = [(c, None) if not isinstance(c, tuple | list) else (tuple(c) + (None,))[:2] for c in cells]
    if limits is None or isinstance(limits, Limits):
        per_cell: list[Limits | None] = [limits] * len(items)
    else:
        per_cell = list(limits)
        if len(per_cell) != len(items):
            raise ValueError(f"got {len(per_cell)} limits for {len(items)} cells")
    return [(code, session, lim) for (code, session), lim in zip(items, per_cell, strict=True)]


def limits_from(limits: Limits | None, **overrides: Any) -> Limits:
    """`limits` with the keyword overrides that are not None applied."""
    base = limits or Limits()
    given = {k: v for k, v in overrides.items() if v is not None}
    return Limits(**{**asdict(base), **given}) if given else base


# ---------------------------------------------------------------------------------------------
# Warm-worker pool (local processes or containers)


class WorkerError(RuntimeError):
    """The worker (process or container) failed, not the cell."""


class WorkerConn(ABC):
    """A started worker: JSON lines in, JSON lines out."""

    reader: asyncio.StreamReader
    info: dict[str, Any]

    @abstractmethod
    async def send(self, data: bytes) -> None: ...

    @abstractmethod
    async def kill(self) -> None:
        """Stop the worker and free everything it holds (idempotent)."""

    def diagnostics(self) -> str:
        """The worker's own stderr tail, for error messages."""
        return ""

    async def request(self, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send `msg`, return its answer. Answers to earlier requests whose callers were cancelled (the
        worker still ran them) are read and dropped first, each within `timeout`: a cancelled call
        never hands its answer to the next caller nor costs the worker."""
        want = msg.get("id")
        try:
            await self.send((json.dumps(msg) + "\n").encode())
            while True:
                reply = self._parse(await asyncio.wait_for(self.reader.readline(), timeout))
                got = reply.get("id")
                if want is None or got == want:
                    return reply
                if not (isinstance(got, int) and isinstance(want, int) and got < want):
                    raise WorkerError("out-of-order answer from the sandbox worker")
        except TimeoutError:
            raise WorkerError(f"no answer from the sandbox worker within {timeout:.0f} s") from None
        except (OSError, ConnectionError) as e:
            raise WorkerError(f"lost the sandbox worker: {e}") from None

    def _parse(self, line: bytes) -> dict[str, Any]:
        if not line:
            raise WorkerError(f"the sandbox worker exited{self._diag()}")
        try:
            reply = json.loads(line)
        except ValueError:
            raise WorkerError(f"garbled answer from the sandbox worker: {line[:200]!r}") from None
        if not isinstance(reply, dict):
            raise WorkerError(f"garbled answer from the sandbox worker: {line[:200]!r}")
        return reply

    async def handshake(self, config: dict[str, Any], timeout: float) -> dict[str, Any]:
        reply = await self.request(config, timeout)
        if not reply.get("ready"):
            raise WorkerError(f"sandbox worker did not start: {reply}{self._diag()}")
        self.info = reply
        return reply

    def _diag(self) -> str:
        d = self.diagnostics().strip()
        return f" (worker stderr: {d[-1500:]})" if d else ""


@dataclass
class _Slot:
    index: int
    conn: WorkerConn | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sessions: set[str] = field(default_factory=set)
    queued: int = 0  # callers of this slot's sessions waiting for its lock


def to_result(reply: dict[str, Any], duration_s: float) -> ToolResult:
    """A worker's answer as a `ToolResult` (an answer that makes no sense is a "sandbox_error").

    `duration_s` is what the caller waited, measured by the host from its request to this answer."""
    status = reply.get("status")
    if status not in _STATUSES:
        return ToolResult.failure(
            "sandbox_error", f"bad status from the sandbox worker: {status!r}", duration_s=duration_s
        )
    error = reply.get("error")
    try:
        return ToolResult(
            output=str(reply.get("output") or ""),
            status=status,
            truncated=bool(reply.get("truncated")),
            error=None if error is None else str(error),
            duration_s=duration_s,
        )
    except (TypeError, ValueError) as e:
        return ToolResult.failure(
            "sandbox_error", f"bad answer from the sandbox worker: {e}", duration_s=duration_s
        )


class WorkerPool(Sandbox):
    """A fixed number of warm workers; each runs one cell at a time. Subclasses say how to spawn one.

    A worker that dies, hangs or garbles the protocol is killed and replaced; the cell that was on it
    gets status "sandbox_error", and its sessions end. `ToolResult.duration_s` is what the caller
    waited: from the request (queueing for a free worker included) to the answer.
    """

    spawn_timeout_s: float = 120.0

    def __init__(
        self, limits: Limits, workers: int | None, preload: Sequence[str], warmup: Sequence[str] | None = None
    ) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.limits = limits
        self.workers = workers or default_workers()
        self.preload = tuple(preload)
        self.warmup = warmup_code(self.preload, warmup)
        self._slots: list[_Slot] = []
        self._sessions: dict[str, _Slot] = {}
        self._freed: asyncio.Condition | None = None
        self._dispatch: asyncio.Lock | None = None
        self._ids = 0
        self._closed = True  # until setup: calls in flight at teardown see it too

    @abstractmethod
    async def _spawn(self, index: int) -> WorkerConn:
        """Start worker number `index` and complete its handshake."""

    async def setup(self) -> None:
        self._closed = False
        self._freed = asyncio.Condition()
        self._dispatch = asyncio.Lock()
        self._slots = [_Slot(i) for i in range(self.workers)]
        results = await asyncio.gather(*(self._respawn(s) for s in self._slots), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self.teardown()
            raise errors[0]

    async def teardown(self) -> None:
        self._closed = True
        slots, self._slots = self._slots, []
        self._sessions.clear()
        if self._freed is not None:  # callers waiting for a worker: there will be none
            async with self._freed:
                self._freed.notify_all()
        await asyncio.gather(*(s.conn.kill() for s in slots if s.conn), return_exceptions=True)
        for s in slots:
            s.conn = None

    async def _respawn(self, slot: _Slot) -> None:
        if self._closed:
            raise WorkerError(f"{type(self).__name__} is closed")
        if slot.conn is not None:
            with contextlib.suppress(Exception):
                await slot.conn.kill()
            slot.conn = None
        for sid in slot.sessions:
            self._sessions.pop(sid, None)
        slot.sessions.clear()
        slot.conn = await asyncio.wait_for(self._spawn(slot.index), self.spawn_timeout_s)

    def _check_open(self) -> None:
        if not self.started or self._closed:
            raise RuntimeError(f"{type(self).__name__} is not started (use `async with` or await start())")

    def _closed_reply(self) -> dict[str, Any]:
        return {"status": "sandbox_error", "error": f"{type(self).__name__} was closed during the call"}

    @contextlib.asynccontextmanager
    async def _any_slot(self):
        """The free slot with the fewest sessions (waits for one to free up; WorkerError once closed).

        Callers get slots in the order they asked (one dispatcher at a time, and asyncio.Lock is FIFO):
        a caller that just gave a slot back cannot take it again ahead of those already waiting."""
        assert self._freed is not None and self._dispatch is not None
        async with self._dispatch:
            while True:
                if self._closed:
                    raise WorkerError(f"{type(self).__name__} is closed")
                free = [s for s in self._slots if not s.lock.locked() and not s.queued]
                if free:
                    slot = min(free, key=lambda s: len(s.sessions))
                    await slot.lock.acquire()  # free and nobody queued: immediate
                    break
                async with self._freed:
                    await self._freed.wait()
        try:
            yield slot
        finally:
            slot.lock.release()
            async with self._freed:
                self._freed.notify()

    @contextlib.asynccontextmanager
    async def _this_slot(self, slot: _Slot):
        slot.queued += 1
        try:
            await slot.lock.acquire()
        finally:
            slot.queued -= 1
        try:
            yield slot
        finally:
            slot.lock.release()
            assert self._freed is not None
            async with self._freed:
                self._freed.notify()

    async def _call(self, slot: _Slot, msg: dict[str, Any]) -> dict[str, Any]:
        """One request to the slot's worker (lock held); replaces the worker when it fails."""
        self._ids += 1
        msg["id"] = self._ids
        try:
            if slot.conn is None:
                await self._respawn(slot)
            assert slot.conn is not None
            reply = await slot.conn.request(msg, msg["limits"]["timeout_s"] + 15.0)
            if reply.get("status") == "sandbox_error":  # the worker itself failed: it may be poisoned
                raise WorkerError(str(reply.get("error")))
            return reply
        except (TimeoutError, WorkerError, OSError) as e:
            if self._closed:
                return self._closed_reply()
            lost = sorted(slot.sessions)
            log.warning("sandbox worker %d failed (%s); replacing it", slot.index, e)
            try:
                await self._respawn(slot)
            except Exception as e2:  # noqa: BLE001
                log.error("could not replace sandbox worker %d: %s", slot.index, e2)
                slot.conn = None
            reply = {"status": "sandbox_error", "error": f"sandbox worker failed: {e}"}
            if lost:
                reply["error"] += "; its sessions ended"
            return reply

    @staticmethod
    def _run_msg(code: str, session: str | None, limits: Limits) -> dict[str, Any]:
        return {"op": "run", "code": code, "limits": limits.to_worker(), "session": session}

    async def execute(
        self, code: str, session: str | None = None, *, limits: Limits | None = None
    ) -> ToolResult:
        t0 = time.perf_counter()
        if not isinstance(code, str):
            return ToolResult.failure("error", f"code must be a str, got {type(code).__name__}")
        self._check_open()
        reply = await self._execute(code, session, limits or self.limits)
        return to_result(reply, time.perf_counter() - t0)

    async def _execute(self, code: str, session: str | None, limits: Limits) -> dict[str, Any]:
        msg = self._run_msg(code, session, limits)
        if session is None:
            try:
                async with self._any_slot() as slot:
                    return await self._call(slot, msg)
            except WorkerError:  # closed while we waited for a worker
                return self._closed_reply()
        slot = self._sessions.get(session)
        if slot is None:
            return {"status": "error", "error": f"unknown session {session!r} (not open, or it ended)"}
        async with self._this_slot(slot):
            if session not in slot.sessions:  # lost while we waited
                return {"status": "error", "error": f"session {session!r} ended: its worker was replaced"}
            reply = await self._call(slot, msg)
            if reply.get("session_ended") or reply.get("status") == "sandbox_error":
                slot.sessions.discard(session)
                self._sessions.pop(session, None)
        return reply

    async def execute_many(
        self,
        cells: Sequence[str | tuple[str, str | None]],
        *,
        limits: Limits | Sequence[Limits | None] | None = None,
    ) -> list[ToolResult]:
        """Run many cells at once; results in order (see `Sandbox.execute_many`).

        Stateless cells go into one queue; each worker that frees up takes the next cell from it, so
        cells start as soon as a worker can take them, with no per-cell scheduling round trip. A
        session's cells run in their order on the session's worker. Each cell's `duration_s` is the
        time from this call to its answer."""
        t0 = time.perf_counter()
        items = cell_items(cells, limits)
        self._check_open()
        results: list[ToolResult | None] = [None] * len(items)
        queue: deque[int] = deque()
        by_session: dict[str, list[int]] = {}
        for i, (code, session, _) in enumerate(items):
            if not isinstance(code, str):
                results[i] = ToolResult.failure("error", f"code must be a str, got {type(code).__name__}")
            elif session is None:
                queue.append(i)
            else:
                by_session.setdefault(session, []).append(i)

        def done(i: int, reply: dict[str, Any]) -> None:
            results[i] = to_result(reply, time.perf_counter() - t0)

        async def feed() -> None:
            try:
                async with self._any_slot() as slot:
                    while queue:
                        i = queue.popleft()
                        code, _, lim = items[i]
                        done(i, await self._call(slot, self._run_msg(code, None, lim or self.limits)))
            except WorkerError:  # closed while we waited for a worker
                while queue:
                    done(queue.popleft(), self._closed_reply())

        async def in_session(indices: list[int]) -> None:
            for i in indices:
                code, session, lim = items[i]
                done(i, await self._execute(code, session, lim or self.limits))

        await asyncio.gather(
            *(feed() for _ in range(min(len(queue), self.workers))),
            *(in_session(ix) for ix in by_session.values()),
        )
        return [
            r if r is not None else ToolResult.failure("sandbox_error", "cell was not run") for r in results
        ]

    async def open_session(self) -> str:
        self._check_open()
        sid = uuid.uuid4().hex[:16]
        async with self._any_slot() as slot:
            reply = await self._call(slot, {"op": "open", "session": sid, "limits": self.limits.to_worker()})
            if reply.get("status") != "ok":
                raise WorkerError(f"could not open a session: {reply.get('error')}")
            slot.sessions.add(sid)
            self._sessions[sid] = slot
        return sid

    async def close_session(self, session: str | None) -> None:
        slot = self._sessions.pop(session, None) if session is not None else None
        if slot is None or self._closed:
            return
        async with self._this_slot(slot):
            if session in slot.sessions:
                slot.sessions.discard(session)
                await self._call(slot, {"op": "close", "session": session, "limits": self.limits.to_worker()})

    def worker_info(self) -> list[dict[str, Any]]:
        """What each worker reported at start (python version, preloaded modules, warm-up time, pid)."""
        return [dict(s.conn.info) for s in self._slots if s.conn is not None]


CELL_ENV: dict[str, str] = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONIOENCODING": "utf-8",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
"""The environment of every worker and its cells, local and Docker (one thread per math library)."""


def base_config(
    preload: Sequence[str], env: dict[str, str], warmup: Sequence[str] = (), **extra: Any
) -> dict[str, Any]:
    """The worker's first line: what to import and run before forking, the environment of cells, how to
    drop privileges."""
    return {"preload": list(preload), "warmup": list(warmup), "env": env, **extra}
