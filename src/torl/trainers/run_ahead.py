"""`RunAhead`: the producer side of asynchronous training (used by `AsyncTIRGRPOTrainer`).

It takes GRPO groups (the n rows of one prompt) in dataset order, rolls each out as one unit on the
rollout engine's event loop, and hands the trainer whole groups, oldest first. Admission bounds the
lead: with the engine at policy version v (the trainer step whose weights it holds), groups may run or
wait until `(v - start_step + max_staleness + 1) * groups_per_batch` groups have been admitted since the
start, so a batch's first turns are never older than `max_staleness` when it is trained. A group that
is overtaken by others (a slow sandbox) and so exceeds the bound when taken is dropped or regenerated.
With `max_staleness=0` nothing runs ahead and every batch is the dataset's next batch, as in
synchronous training.

All state lives on the engine's loop thread; the trainer calls the blocking methods from its own thread.
`Lookahead` reads HF's epoch iterator ahead of the training loop, to feed the producer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from torl.core import Trajectory

__all__ = ["Lookahead", "RunAhead", "TakenBatch"]

logger = logging.getLogger(__name__)

StalePolicy = Literal["drop", "regenerate"]


@dataclass(eq=False)
class _Group:
    index: int
    rows: list[dict]
    step: int
    """The trainer step this group is meant for (its seed comes from it)."""
    offset: int
    """Its position in that step's batch, in rows (for the seed, as in synchronous training)."""
    attempt: int = 0
    task: asyncio.Task | None = None
    trajectories: list[Trajectory] | None = None
    error: BaseException | None = None

    def oldest(self) -> int | None:
        vs = [v for t in self.trajectories or [] if (v := t.oldest_version) is not None]
        return min(vs, default=None)


@dataclass
class TakenBatch:
    """One training batch: the dataset rows and their trajectories (group by group), and what the producer
    measured since the previous batch."""

    rows: list[dict]
    trajectories: list[Trajectory]
    stats: dict[str, float]


class RunAhead:
    """Keeps the rollout engine up to `max_staleness` policy versions ahead of the trainer.

    Args:
        rollout: the engine (`TIRRollout`, its backend wrapped in `VersionedBackend`).
        group_size: rows per group (`num_generations`).
        groups_per_batch: groups the trainer takes per step.
        max_staleness: how many versions a trajectory's oldest turn may lag the step that trains on it.
        stale: what to do with a group past the bound: "drop" it or "regenerate" it.
        sampling: the rollout's sampling settings for a trainer step (temperature, top_p, top_k, seed,
            max_new_tokens); group k of a step samples with seed + k * group_size, as its rows would in one
            synchronous batch.
        start_step: the trainer step of the first batch (a resumed run starts past 0).
    """

    def __init__(self, rollout: Any, *, group_size: int, groups_per_batch: int, max_staleness: int,
                 stale: StalePolicy = "drop", sampling: Callable[[int], dict[str, Any]],
                 start_step: int = 0) -> None:
        if group_size < 1 or groups_per_batch < 1 or max_staleness < 0:
            raise ValueError("group_size and groups_per_batch must be >= 1, max_staleness >= 0")
        if stale not in ("drop", "regenerate"):
            raise ValueError(f"stale must be 'drop' or 'regenerate', got {stale!r}")
        self.rollout = rollout
        self.group_size, self.groups_per_batch = group_size, groups_per_batch
        self.max_staleness, self.stale = max_staleness, stale
        self.sampling = sampling
        self.start_step = start_step
        self.version: int | None = None
        """The engine's policy version, once the trainer published weights (nothing runs before)."""
        self._fed = 0
        self._consumed = 0  # groups handed to the trainer
        self._pending: deque[_Group] = deque()
        self._running: set[_Group] = set()
        self._ready: list[_Group] = []
        self._dropped: list[_Group] = []
        self._changed: asyncio.Event | None = None
        self._stopped = False
        self._idle_since: float | None = time.perf_counter()
        self._idle_s = 0.0
        self._stale_count = 0
        self._aborted_seen = 0
        self._last_take = time.perf_counter()

    # ----- called from the trainer's thread -----

    def feed(self, rows: list[dict], step: int) -> None:
        """Queue one step's dataset rows (whole groups of `group_size` identical prompts)."""
        self._call(self._feed(list(rows), step))

    def publish(self, version: int) -> None:
        """The engine now holds `version`: admit what the bound allows."""
        self._call(self._set_version(version))

    def take(self, step: int, refill: Callable[[], bool]) -> TakenBatch:
        """The next batch for trainer step `step` (blocks until it is ready). When the producer has nothing
        left to run, `refill()` is asked to feed more rows (it returns False when it has none)."""
        while True:
            batch = self._call(self._take(step))
            if batch is not None:
                return batch
            if refill():
                continue
            if not self._call(self._resubmit_dropped()):
                raise RuntimeError("the asynchronous producer ran out of rows before the batch was complete")

    def stop(self) -> None:
        """Cancel every rollout in flight and forget the queue (safe to call twice)."""
        if not self._stopped:
            self._call(self._stop())

    def _call(self, coro) -> Any:
        return self.rollout._run(coro)

    # ----- on the loop -----

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    async def _feed(self, rows: list[dict], step: int) -> None:
        g = self.group_size
        if len(rows) % g:
            raise ValueError(f"a batch of {len(rows)} rows does not split into groups of {g}")
        for k in range(0, len(rows), g):
            group = rows[k : k + g]
            if any(r.get("prompt") != group[0].get("prompt") for r in group):
                raise ValueError("a group's rows hold different prompts: the sampler must repeat each prompt "
                                 f"{g} times in a row (TRL's RepeatSampler does)")
            self._pending.append(_Group(self._fed, group, step, k))
            self._fed += 1
        self._pump()

    async def _set_version(self, version: int) -> None:
        self.version = version
        self._pump()

    def _limit(self) -> int:
        if self.version is None:
            return 0
        return (self.version - self.start_step + self.max_staleness + 1) * self.groups_per_batch

    def _pump(self) -> None:
        """Start pending groups while the staleness bound allows."""
        while (self._pending and not self._stopped
               and self._consumed + len(self._running) + len(self._ready) < self._limit()):
            group = self._pending.popleft()
            if not self._running and self._idle_since is not None:
                self._idle_s += time.perf_counter() - self._idle_since
                self._idle_since = None
            self._running.add(group)
            group.task = asyncio.ensure_future(self._roll(group))
        self._event().set()

    async def _roll(self, group: _Group) -> None:
        s = dict(self.sampling(group.step))
        if s.get("seed") is not None:
            s["seed"] = s["seed"] + group.offset + group.attempt * 7_919_993
        try:
            prompts = [r["prompt"] for r in group.rows]
            group.trajectories = await self.rollout.generate(prompts, 1, **s)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a broken policy (one bad sample comes back as an error trajectory)
            group.error = e
        self._running.discard(group)
        if not self._running:
            self._idle_since = time.perf_counter()
        if not self._stopped:
            self._ready.append(group)
            self._pump()

    def _staleness(self, group: _Group, step: int) -> int:
        v = group.oldest()
        return 0 if v is None else step - v

    async def _take(self, step: int) -> TakenBatch | None:
        t0 = time.perf_counter()
        b = self.groups_per_batch
        while True:
            if self._stopped:
                raise RuntimeError("the asynchronous producer was stopped")
            failed = next((g for g in self._ready if g.error is not None), None)
            if failed is not None:
                raise RuntimeError(f"a rollout batch failed: {type(failed.error).__name__}: {failed.error}") \
                    from failed.error
            for g in [g for g in self._ready if self._staleness(g, step) > self.max_staleness]:
                self._ready.remove(g)
                self._stale_count += len(g.rows)
                if self.stale == "regenerate":
                    self._pending.appendleft(self._fresh(g))
                else:
                    self._dropped.append(g)
            self._pump()
            if len(self._ready) >= b:
                break
            if not self._pending and not self._running:
                return None  # starving: the trainer feeds more
            ev = self._event()
            ev.clear()
            try:
                await asyncio.wait_for(ev.wait(), 1.0)
            except TimeoutError:
                pass
        self._ready.sort(key=lambda g: g.index)
        taken, self._ready = self._ready[:b], self._ready[b:]
        self._consumed += b
        self._pump()
        return TakenBatch(
            rows=[r for g in taken for r in g.rows],
            trajectories=[t for g in taken for t in g.trajectories or []],
            stats=self._stats(taken, step, time.perf_counter() - t0),
        )

    def _fresh(self, g: _Group) -> _Group:
        return _Group(g.index, g.rows, g.step, g.offset, attempt=g.attempt + 1)

    async def _resubmit_dropped(self) -> bool:
        """Out of rows at the end of the data: regenerate dropped groups rather than wait forever."""
        if not self._dropped:
            return False
        self._pending.extend(self._fresh(g) for g in self._dropped)
        self._dropped.clear()
        self._pump()
        return True

    def _stats(self, taken: list[_Group], step: int, waited: float) -> dict[str, float]:
        now = time.perf_counter()
        idle = self._idle_s + (now - self._idle_since if self._idle_since is not None else 0.0)
        if self._idle_since is not None:
            self._idle_since = now
        self._idle_s = 0.0
        seg_lag = [step - s.version for g in taken for t in g.trajectories or [] for s in t.segments
                   if s.kind == "model" and s.version is not None]
        trajs = [t for g in taken for t in g.trajectories or []]
        aborted = getattr(self.rollout.backend, "aborted_turns", 0)
        stats = {
            "staleness_mean": sum(seg_lag) / len(seg_lag) if seg_lag else 0.0,
            "staleness_max": float(max(seg_lag, default=0)),
            "dropped_stale": float(self._stale_count),
            "queue_depth": float(sum(len(g.rows) for g in self._ready)),
            "in_flight": float(sum(len(g.rows) for g in self._running)),
            "trainer_idle_s": waited,
            "generator_idle_s": idle,
            "aborted_turns": float(aborted - self._aborted_seen),
            "multi_version_frac": (sum(len(set(t.versions)) > 1 for t in trajs) / len(trajs)) if trajs else 0.0,
            "step_interval_s": now - self._last_take,
        }
        self._aborted_seen = aborted
        self._stale_count = 0
        self._last_take = now
        return stats

    async def _stop(self) -> None:
        self._stopped = True
        tasks = [g.task for g in self._running if g.task is not None]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._running.clear()
        self._pending.clear()
        self._ready.clear()
        self._event().set()


class Lookahead:
    """Reads HF's epoch iterator ahead of the training loop: the first batch of each generation block (TRL
    repeats a generation batch over `every` micro-steps) is handed to `feed` as soon as it is read."""

    def __init__(self, iterator: Iterator, every: int, feed: Callable[[list[dict]], None]) -> None:
        self.iterator, self.every, self.feed = iterator, every, feed
        self.buffer: deque = deque()
        self.pulled = self.handed = 0
        self.exhausted = False

    def _pull(self) -> bool:
        if self.exhausted:
            return False
        try:
            raw = next(self.iterator)
        except StopIteration:
            self.exhausted = True
            return False
        if self.pulled % self.every == 0:
            self.feed(list(raw))
        self.pulled += 1
        self.buffer.append(raw)
        return True

    def take(self, n: int) -> list:
        out = []
        for _ in range(n):
            if not self.buffer and not self._pull():
                break
            out.append(self.buffer.popleft())
            self.handed += 1
        return out

    def fill(self, ahead: int) -> None:
        """Feed until the blocks of the next `ahead` steps (past what the loop took) are with the producer."""
        while not self.exhausted and -(-self.pulled // self.every) < -(-self.handed // self.every) + ahead:
            self._pull()

    def fill_one(self) -> bool:
        """Feed one more block; False when the epoch has none left."""
        fed = -(-self.pulled // self.every)
        while -(-self.pulled // self.every) == fed:
            if not self._pull():
                return False
        return True
