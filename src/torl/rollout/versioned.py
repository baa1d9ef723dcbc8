"""`VersionedBackend`: the policy version on every model turn, and weight updates at turn boundaries.

A backend wrapper with a gate in front of the engine. `generate` waits at the gate, then sends the turn
and labels its output with the version the engine held while it ran. `pause()` closes the gate: no new
turn starts, and each turn in flight either finishes under the old weights (`inflight="finish"`) or is
aborted (`"abort"`) and sent again, from the same turn boundary, once the gate reopens. Trajectories
that are waiting on a tool are not touched: their next turn simply waits at the gate. When `pause()`
returns nothing is generating, so the caller can load new weights; `resume(version)` reopens the gate.

```python
vb = VersionedBackend(backend, inflight="finish")
engine = TIRRollout(vb, tool=tool)
...
await vb.pause()            # turn boundary: nothing in flight from here on
load_new_weights()          # e.g. reload_weights on the engine
await vb.resume(version=1)  # later turns run (and are labelled) under version 1
```

The engine records each output's `version` on its model segment (`Segment.version`), so a trajectory
whose turns straddle an update carries both versions, and its tool calls ran exactly once.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from torl.rollout.backends import GenerationBackend, GenerationOutput, GenerationRequest

__all__ = ["InflightPolicy", "SyncStats", "VersionedBackend"]

logger = logging.getLogger(__name__)

InflightPolicy = Literal["finish", "abort"]


@dataclass
class SyncStats:
    """What one pause did: how many turns finished under the old weights or were aborted, and how long
    the engine took to reach the turn boundary (`drain_s`) and stayed paused in all (`paused_s`, set by
    `resume`)."""

    finished_turns: int = 0
    aborted_turns: int = 0
    drain_s: float = 0.0
    paused_s: float = 0.0


class VersionedBackend:
    """Wraps a `GenerationBackend`: versions on outputs, and a pause at turn boundaries for weight updates.

    Args:
        backend: the engine's backend (any `GenerationBackend`). A `quiesce()` coroutine on it, when present,
            is awaited at the end of `pause()` (the vLLM driver thread and the transformers worker use it to
            say they are idle).
        inflight: what a pause does to turns in flight: "finish" them under the old weights (no wasted tokens;
            the pause waits for the longest one) or "abort" them (the pause is immediate; each aborted turn is
            generated again from its turn boundary under the new weights).
        version: the version of the weights the engine holds now.
        drain_timeout_s: with "finish", turns still running after this long are aborted (None: wait).

    Other attributes (`llm`, `model`, `base_urls`...) are read from the wrapped backend.
    """

    def __init__(
        self,
        backend: GenerationBackend,
        *,
        inflight: InflightPolicy = "finish",
        version: int = 0,
        drain_timeout_s: float | None = None,
    ) -> None:
        if inflight not in ("finish", "abort"):
            raise ValueError(f"inflight must be 'finish' or 'abort', got {inflight!r}")
        if drain_timeout_s is not None and drain_timeout_s <= 0:
            raise ValueError(f"drain_timeout_s must be > 0 or None, got {drain_timeout_s}")
        self.backend = backend
        self.inflight = inflight
        self.drain_timeout_s = drain_timeout_s
        self._version = version
        self._gate: asyncio.Event | None = None
        self._running: set[asyncio.Task] = set()
        self._aborting: set[asyncio.Task] = set()
        self._paused_at: float | None = None
        self._stats = SyncStats()
        self.aborted_turns = 0
        """Turns aborted by pauses so far (each was generated again under the new weights)."""
        self.pauses = 0

    # ----- what the engine sees -----

    @property
    def tokenizer(self) -> Any:
        return self.backend.tokenizer

    @property
    def max_model_len(self) -> int | None:
        return self.backend.max_model_len

    @property
    def version(self) -> int:
        """The version of the weights new turns run under."""
        return self._version

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    @property
    def in_flight(self) -> int:
        """Turns being generated right now."""
        return len(self._running)

    def __getattr__(self, name: str) -> Any:  # llm, model, base_urls, served...: the wrapped backend's
        if name == "backend":
            raise AttributeError(name)
        return getattr(self.backend, name)

    def _open(self) -> asyncio.Event:
        if self._gate is None:
            self._gate = asyncio.Event()
            self._gate.set()
        return self._gate

    async def generate(self, request: GenerationRequest) -> GenerationOutput:
        """Generate one turn under the current weights (waiting while paused); the output's `version` says
        which. A turn aborted by a pause is sent again, unchanged, when the pause ends."""
        gate = self._open()
        while True:
            await gate.wait()
            version = self._version
            task = asyncio.ensure_future(self.backend.generate(request))
            self._running.add(task)
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError:  # the trajectory itself was cancelled
                task.cancel()
                raise
            finally:
                self._running.discard(task)
            aborted = task in self._aborting
            self._aborting.discard(task)
            if aborted and _was_aborted(task):
                self.aborted_turns += 1
                continue  # from the same turn boundary, once the new weights are in
            out = task.result()  # a backend error or a foreign cancellation propagates
            out.version = version
            return out

    # ----- what the weight publisher calls -----

    async def pause(self) -> SyncStats:
        """Stop at the turn boundary: close the gate, then finish or abort the turns in flight; return when
        nothing is generating (the backend's `quiesce` included). Call `resume` next."""
        if self._paused_at is not None:
            raise RuntimeError("VersionedBackend.pause called twice without resume")
        gate = self._open()
        gate.clear()
        t0 = self._paused_at = time.perf_counter()
        self.pauses += 1
        stats = self._stats = SyncStats()
        running = list(self._running)
        if self.inflight == "abort":
            self._abort(running)
        if running:
            _, late = await asyncio.wait(running, timeout=self.drain_timeout_s)
            if late:  # "finish" ran out of patience: these turns start again under the new weights
                logger.warning("%d turn(s) still running after %.0f s: aborting them", len(late),
                               self.drain_timeout_s)
                self._abort(list(late))
                await asyncio.wait(late)
        stats.aborted_turns = sum(1 for t in running if _was_aborted(t))
        stats.finished_turns = len(running) - stats.aborted_turns
        quiesce = getattr(self.backend, "quiesce", None)
        if quiesce is not None:
            await quiesce()
        stats.drain_s = time.perf_counter() - t0
        return stats

    async def resume(self, version: int | None = None) -> SyncStats:
        """Reopen the gate; turns from now on run under `version` (None: keep the current one)."""
        if self._paused_at is None:
            raise RuntimeError("VersionedBackend.resume called without pause")
        if version is not None:
            self._version = int(version)
        self._stats.paused_s = time.perf_counter() - self._paused_at
        self._paused_at = None
        self._open().set()
        return self._stats

    async def publish(self, version: int, load: Callable[[], Awaitable[Any] | Any] | None = None) -> SyncStats:
        """`pause()`, run `load()` (a function or a coroutine function that puts the new weights in the
        engine), then `resume(version)`. If `load` fails the gate reopens under the old version."""
        await self.pause()
        try:
            if load is not None:
                result = load()
                if inspect.isawaitable(result):
                    await result
        except BaseException:
            await self.resume(None)
            raise
        return await self.resume(version)

    def _abort(self, tasks: list[asyncio.Task]) -> None:
        for t in tasks:
            if not t.done():
                self._aborting.add(t)
                t.cancel()

    async def close(self) -> None:
        await self.backend.close()


def _was_aborted(task: asyncio.Task) -> bool:
    """The turn was cancelled, or the backend ended it itself with finish reason "abort" (an engine-side
    abort)."""
    if task.cancelled():
        return True
    return task.exception() is None and task.result().finish_reason == "abort"
