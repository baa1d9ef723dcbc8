"""A tool-result log with memoised replay: `CachedTool` answers a cell it has seen before from its
`ToolCache`.

A cell is keyed by its tool, its code (and arguments) and the code of the cells that ran before it in the
same session, so a cell that reads state left by earlier cells hits only after the same earlier cells.
Within a GRPO group the samples of one prompt often write the same cells: the first one runs, the others
get its result (`ToolResult.cached`), even while it is still running. A session whose cells were all
answered from the log has run nothing; when one of its later cells misses, the answered cells run first
in a real session (the memoised replay), so the state is what the code built.

Only deterministic cells may be answered twice. `is_cacheable` decides from the code (see its rules);
a cell can declare itself with a `# torl: nocache` or `# torl: cache` comment; `cacheable=` replaces the
rule. After a cell that is not cacheable, the rest of its session is not either (its state may differ).
Results whose status says the machine hit a limit (timeout, memory, killed, sandbox_error) are not kept.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import itertools
import json
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torl.core import Tool, ToolCall, ToolResult, Trajectory

__all__ = ["NONDETERMINISTIC_MODULES", "NONDETERMINISTIC_NAMES", "CachedTool", "ToolCache", "is_cacheable"]

NONDETERMINISTIC_MODULES: frozenset[str] = frozenset(
    {
        "random",
        "secrets",
        "time",
        "datetime",
        "uuid",
        "os",
        "subprocess",
        "socket",
        "threading",
        "multiprocessing",
        "urllib",
        "http",
        "requests",
        "httpx",
        "glob",
        "tempfile",
        "signal",
        "resource",
    }
)
"""Importing one of these (or a submodule) makes a cell not cacheable: clocks, randomness, processes,
the file system, the network."""

NONDETERMINISTIC_NAMES: frozenset[str] = frozenset(
    {
        "random",
        "rand",
        "randn",
        "randint",
        "randrange",
        "random_sample",
        "shuffle",
        "permutation",
        "choice",
        "default_rng",
        "seed",
        "urandom",
        "getrandbits",
        "uuid1",
        "uuid4",
        "randprime",
        "time",
        "perf_counter",
        "monotonic",
        "process_time",
        "now",
        "today",
        "utcnow",
        "getpid",
        "hash",
        "id",
        "input",
        "open",
    }
)
"""A name or attribute read anywhere in the cell (`np.random.rand`, `datetime.now`, `hash(s)`) that
makes it not cacheable. `hash` and `id` are in: string hashes differ between interpreters."""

_DECLARED = re.compile(r"#\s*torl:\s*(nocache|cache)\b")
_KEPT = ("ok", "error")


def is_cacheable(code: str) -> bool:
    """Whether a cell gives the same result each time it runs in the same state (so a log may answer it).

    Declared: a `# torl: nocache` comment makes it not cacheable, `# torl: cache` cacheable, whatever
    the code. Detected otherwise, from the syntax tree: not cacheable when it imports a module of
    `NONDETERMINISTIC_MODULES` or reads a name of `NONDETERMINISTIC_NAMES` (clocks, random numbers, process
    ids, hashes, input, files). Code that does not parse is cacheable (the `SyntaxError` is the same each
    time). The rule is syntactic: `getattr(__import__("ra" + "ndom"), ...)` fools it; declare such cells.
    """
    m = _DECLARED.findall(code)
    if m:
        return m[-1] == "cache"
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return True
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            if any(a.name.split(".")[0] in NONDETERMINISTIC_MODULES for a in node.names):
                return False
        elif isinstance(node, ast.ImportFrom):
            mod = (node.module or "").split(".")
            if mod[0] in NONDETERMINISTIC_MODULES or "random" in mod:
                return False
            if any(a.name in NONDETERMINISTIC_NAMES for a in node.names):
                return False
        elif (
            getattr(node, "id", None) in NONDETERMINISTIC_NAMES
            or getattr(node, "attr", None) in NONDETERMINISTIC_NAMES
        ):
            return False  # a Name or an Attribute
    return True


def cell_key(tool: str, code: str, history: Sequence[str] = (), arguments: dict | None = None) -> str:
    """The log key of a cell: a hash of the tool name, the code (and arguments), and the session's
    earlier cells."""
    blob = json.dumps([tool, code, arguments or {}, list(history)], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class ToolCache:
    """The tool-result log: cell key -> `ToolResult`, least recently used entries dropped past `max_entries`.

    With `path`, the log is also a JSON Lines file: read when the cache is made (so a rerun replays the
    recorded results) and appended to as cells run. `hits`, `misses` and `uncacheable` count lookups.
    """

    def __init__(self, path: str | Path | None = None, *, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        self.path = Path(path) if path is not None else None
        self._store: OrderedDict[str, ToolResult] = OrderedDict()
        self.hits = self.misses = self.uncacheable = 0
        if self.path is not None and self.path.exists():
            with self.path.open(encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        row = json.loads(line)
                        self._remember(row["key"], ToolResult.model_validate(row["result"]))

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, key: str) -> bool:
        return key in self._store

    @property
    def hit_rate(self) -> float | None:
        """Share of cacheable lookups answered from the log (None before any)."""
        n = self.hits + self.misses
        return self.hits / n if n else None

    def get(self, key: str) -> ToolResult | None:
        r = self._store.get(key)
        if r is not None:
            self._store.move_to_end(key)
        return r

    def put(self, key: str, result: ToolResult, *, code: str = "") -> bool:
        """Keep `result` under `key` (results of a limit or a sandbox failure are not kept); whether it was
        added."""
        if result.status not in _KEPT or key in self._store:
            return False
        result = result.model_copy(update={"cached": False})
        self._remember(key, result)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, "code": code, "result": result.model_dump()}) + "\n")
        return True

    def _remember(self, key: str, result: ToolResult) -> None:
        self._store[key] = result
        self._store.move_to_end(key)
        while len(self._store) > self.max_entries:
            self._store.popitem(last=False)

    def record(
        self,
        trajectories: Iterable[Trajectory],
        tool: str = "python",
        stateful: bool = True,
        cacheable: Callable[[str], bool] = is_cacheable,
    ) -> int:
        """Put the recorded results of finished trajectories of one tool in the log (as a `CachedTool` named
        `tool` would have keyed them); returns how many cells were added. With them, a resumed or repeated
        rollout replays those cells without running them."""
        added = 0
        for t in trajectories:
            history: list[str] = []
            for r in t.tool_calls:
                if not cacheable(r.call.code):
                    break  # the rest of the session depends on it
                key = cell_key(tool, r.call.code, history if stateful else (), r.call.arguments)
                added += self.put(key, r.result, code=r.call.code)
                if stateful:
                    history.append(r.call.code)
        return added


@dataclass
class _Session:
    history: list[str] = field(default_factory=list)
    pending: list[ToolCall] = field(default_factory=list)
    """Cells answered from the log, not yet run in `inner`."""
    inner: str | None = None
    opened: bool = False
    tainted: bool = False
    """A cell that is not cacheable ran: the state is not a function of the code any more."""


class CachedTool(Tool):
    """A tool whose results go through a `ToolCache`: a cell already in the log is answered from it.

    ```python
    cache = ToolCache()
    tool = CachedTool(LocalSandbox(timeout_s=5), cache)
    engine = TIRRollout(backend, tool=tool)          # or TIRGRPOConfig(tool_cache=True)
    ```

    Args:
        tool: the tool that runs cells (a sandbox). Starting and closing this wrapper starts and closes it.
        cache: the log (default: a new in-memory `ToolCache`).
        cacheable: code -> whether a log may answer it (default `is_cacheable`).
    """

    def __init__(
        self,
        tool: Tool,
        cache: ToolCache | None = None,
        *,
        cacheable: Callable[[str], bool] = is_cacheable,
    ) -> None:
        if not isinstance(tool, Tool):
            raise TypeError(f"CachedTool wraps a torl Tool, got {type(tool).__name__}")
        self.tool = tool
        self.cache = cache if cache is not None else ToolCache()
        self.cacheable = cacheable
        self.name = tool.name
        self.description = tool.description
        self.parameters = tool.parameters
        self._sessions: dict[str, _Session] = {}
        self._inflight: dict[str, asyncio.Future] = {}
        self._ids = itertools.count()

    async def setup(self) -> None:
        await self.tool.start()

    async def teardown(self) -> None:
        await self.tool.close()

    async def open_session(self) -> str | None:
        sid = f"cached-{next(self._ids)}"
        self._sessions[sid] = _Session()
        return sid

    async def close_session(self, session: str | None) -> None:
        s = self._sessions.pop(session or "", None)
        if s is not None and s.opened:
            await self.tool.close_session(s.inner)

    async def run(self, call: ToolCall) -> ToolResult:
        sess = self._sessions.get(call.session or "")
        history = sess.history if sess is not None else []
        if (sess is not None and sess.tainted) or not self.cacheable(call.code):
            self.cache.uncacheable += 1
            if sess is not None:
                sess.tainted = True
            result = await self._execute(sess, call)
        else:
            key = cell_key(self.name, call.code, history, call.arguments)
            result = await self._lookup(key, sess, call)
        if sess is not None:
            sess.history.append(call.code)
        return result

    async def _lookup(self, key: str, sess: _Session | None, call: ToolCall) -> ToolResult:
        hit = self.cache.get(key)
        if hit is None and key in self._inflight:  # the same cell is running for another sample: wait for it
            hit = await asyncio.shield(self._inflight[key])
        if hit is not None:
            self.cache.hits += 1
            if sess is not None:
                sess.pending.append(call)
            return hit.model_copy(update={"cached": True})
        self.cache.misses += 1
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        result: ToolResult | None = None
        try:
            result = await self._execute(sess, call)
            self.cache.put(key, result, code=call.code)
        finally:
            del self._inflight[key]
            # waiters take a result that may be kept; else (a limit, a crash) they run the cell themselves
            fut.set_result(result if result is not None and result.status in _KEPT else None)
        return result

    async def _execute(self, sess: _Session | None, call: ToolCall) -> ToolResult:
        if sess is None:
            return await self.tool.run(call.model_copy(update={"session": None}))
        if not sess.opened:
            sess.inner, sess.opened = await self.tool.open_session(), True
        if sess.inner is not None:  # the memoised replay: cells answered from the log run now, in order
            for p in sess.pending:
                await self.tool.run(p.model_copy(update={"session": sess.inner}))
        sess.pending.clear()
        return await self.tool.run(call.model_copy(update={"session": sess.inner}))

    def __getattr__(self, name: str) -> Any:  # the wrapped tool's own API (e.g. a sandbox's execute)
        if name.startswith("_") or name == "tool":
            raise AttributeError(name)
        return getattr(self.tool, name)
