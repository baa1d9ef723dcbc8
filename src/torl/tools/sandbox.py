"""`Sandbox`: the interface every Python sandbox backend implements, its `Limits`, and the pool of
warm workers shared by the local and Docker backends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, get_args

from torl.core import Tool, ToolCall, ToolResult, ToolStatus

log = logging.getLogger(__name__)

DEFAULT_PRELOAD: tuple[str, ...] = ("numpy", "sympy")
"""Modules the worker imports once, before forking cells (a cell that imports them pays nothing)."""

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
        try:
            await self.send((json.dumps(msg) + "\n").encode())
            line = await asyncio.wait_for(self.reader.readline(), timeout)
        except TimeoutError:
            raise WorkerError(f"no answer from the sandbox worker within {timeout:.0f} s") from None
        except (OSError, ConnectionError) as e:
            raise WorkerError(f"lost the sandbox worker: {e}") from None
        if not line:
            raise WorkerError(f"the sandbox worker exited{self._diag()}")
        try:
            reply = json.loads(line)
        except ValueError:
            raise WorkerError(f"garbled answer from the sandbox worker: {line[:200]!r}") from None
        if msg.get("id") is not None and reply.get("id") != msg["id"]:
            raise WorkerError("out-of-order answer from the sandbox worker")
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


def to_result(reply: dict[str, Any]) -> ToolResult:
    """A worker's answer as a `ToolResult` (an answer that makes no sense is a "sandbox_error")."""
    status = reply.get("status")
    if status not in _STATUSES:
        return ToolResult.failure("sandbox_error", f"bad status from the sandbox worker: {status!r}")
    error = reply.get("error")
    try:
        return ToolResult(
            output=str(reply.get("output") or ""),
            status=status,
            truncated=bool(reply.get("truncated")),
            error=None if error is None else str(error),
            duration_s=float(reply.get("duration_s") or 0.0),
        )
    except (TypeError, ValueError) as e:
        return ToolResult.failure("sandbox_error", f"bad answer from the sandbox worker: {e}")


class WorkerPool(Sandbox):
    """A fixed number of warm workers; each runs one cell at a time. Subclasses say how to spawn one.

    A worker that dies, hangs or garbles the protocol is killed and replaced; the cell that was on it
    gets status "sandbox_error", and its sessions end.
    """

    spawn_timeout_s: float = 120.0

    def __init__(self, limits: Limits, workers: int | None, preload: Sequence[str]) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.limits = limits
        self.workers = workers or max(2, min(8, os.cpu_count() or 2))
        self.preload = tuple(preload)
        self._slots: list[_Slot] = []
        self._sessions: dict[str, _Slot] = {}
        self._freed: asyncio.Condition | None = None
        self._ids = 0
        self._closed = True  # until setup: calls in flight at teardown see it too

    @abstractmethod
    async def _spawn(self, index: int) -> WorkerConn:
        """Start worker number `index` and complete its handshake."""

    async def setup(self) -> None:
        self._closed = False
        self._freed = asyncio.Condition()
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

    @contextlib.asynccontextmanager
    async def _any_slot(self):
        """The free slot with the fewest sessions (waits for one to free up)."""
        assert self._freed is not None
        while True:
            free = [s for s in self._slots if not s.lock.locked()]
            if free:
                slot = min(free, key=lambda s: len(s.sessions))
                await slot.lock.acquire()
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
        await slot.lock.acquire()
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
                return {
                    "status": "sandbox_error",
                    "error": f"{type(self).__name__} was closed during the call",
                }
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

    async def execute(
        self, code: str, session: str | None = None, *, limits: Limits | None = None
    ) -> ToolResult:
        if not isinstance(code, str):
            return ToolResult.failure("error", f"code must be a str, got {type(code).__name__}")
        self._check_open()
        msg = {"op": "run", "code": code, "limits": (limits or self.limits).to_worker(), "session": session}
        if session is None:
            async with self._any_slot() as slot:
                reply = await self._call(slot, msg)
        else:
            slot = self._sessions.get(session)
            if slot is None:
                return ToolResult.failure("error", f"unknown session {session!r} (not open, or it ended)")
            async with self._this_slot(slot):
                if session not in slot.sessions:  # lost while we waited
                    return ToolResult.failure("error", f"session {session!r} ended: its worker was replaced")
                reply = await self._call(slot, msg)
                if reply.get("session_ended") or reply.get("status") == "sandbox_error":
                    slot.sessions.discard(session)
                    self._sessions.pop(session, None)
        return to_result(reply)

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
        """What each worker reported at start (python version, preloaded modules, pid)."""
        return [dict(s.conn.info) for s in self._slots if s.conn is not None]


def base_config(preload: Sequence[str], env: dict[str, str], **extra: Any) -> dict[str, Any]:
    """The worker's first line: what to import, the environment of cells, how to drop privileges."""
    return {"preload": list(preload), "env": env, **extra}
