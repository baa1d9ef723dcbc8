"""A pool of verification worker processes with a hard deadline per item.

Each worker runs math-verify in its own main thread and puts a soft time limit on every item itself
(a signal alarm, which only works there). The parent enforces a hard deadline (limit + grace): a worker
still busy then (say, in C code that ignores signals) is killed and replaced, and a worker that dies is
replaced. A hung item gets `Verdict(None, ...)` at once; an item whose worker died is tried once more on
a fresh worker (the death may not be its fault), then gets `Verdict(None, ...)`. The batch always goes on.

Workers are long-lived (no process start per item). They are plain `python -m torl.rewards._worker`
processes talking over a socket pair: nothing is forked from the (possibly multi-threaded) trainer, and the
user's main module is never re-imported, so scripts without an `if __name__ == "__main__":` guard are safe.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import itertools
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Self

from torl.rewards import forms
from torl.rewards.verify import SCORERS, Scorer, Verdict, quick_check

logger = logging.getLogger(__name__)

_MAX_START_FAILURES = 3
_START_TIMEOUT_S = 120.0
_Key = tuple[str, str, bool, str | None, float | None, str]
"""A cached comparison: pred, ref, quick, question (when it matters), rel_tol, scorer."""


class PoolError(RuntimeError):
    """A job did not give a result: see the subclasses."""


class JobTimeout(PoolError):
    """The job ran past its deadline; its worker was killed and replaced."""


class WorkerDied(PoolError):
    """The worker running the job died twice (crash, signal, out of memory); it was replaced."""


class VerifyWorkerError(PoolError):
    """The job raised inside the worker."""


class PoolClosed(PoolError):
    """The pool was closed (or cannot start workers) before the job ran."""


@dataclass
class _Job:
    id: int
    task: str
    args: tuple
    deadline_s: float
    future: Future = field(default_factory=Future)
    started: bool = False
    attempts: int = 0


@dataclass
class _VerifySlot:
    proc: Any
    conn: Any
    ready: bool = False
    jobs: collections.deque = field(default_factory=collections.deque)
    """Jobs sent to this worker, in order; the first one is running."""
    deadline: float = 0.0
    """Deadline of the running job (set when it started, as far as the parent can see)."""
    done: int = 0
    born: float = field(default_factory=time.monotonic)

    @property
    def job(self) -> _Job | None:
        return self.jobs[0] if self.jobs else None


class VerifyPool:
    """Worker processes that compare answers, with a per-item time limit.

    Thread-safe; usable from sync code (`verify_many`) and async code (`averify_many`). Results of
    identical (pred, ref) pairs are cached, and pairs that `quick_check` decides never leave this process.

    Args:
        workers: number of processes (default: CPU count, at most 8).
        timeout_s: time limit per item. The worker stops a slow item itself at this limit; the parent
            kills the worker if it is still busy `grace_s` later.
        grace_s: extra time before the parent kills a busy worker.
        memory_mb: address-space limit per worker (None: no limit).
        cache_size: number of (pred, ref) verdicts kept (0: no cache).
        max_jobs_per_worker: a worker is replaced after this many jobs (bounds memory growth).
        prefetch: jobs queued at each worker, so it never waits for the parent between items. A job's
            deadline starts when the one before it on that worker finishes.
    """

    def __init__(
        self,
        workers: int | None = None,
        timeout_s: float = 5.0,
        *,
        grace_s: float = 1.0,
        memory_mb: int | None = 4096,
        cache_size: int = 100_000,
        max_jobs_per_worker: int | None = 10_000,
        prefetch: int = 4,
    ) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if timeout_s <= 0 or grace_s < 0:
            raise ValueError(f"timeout_s must be > 0 and grace_s >= 0, got {timeout_s}, {grace_s}")
        self.workers = workers or max(1, min(8, os.cpu_count() or 1))
        self.timeout_s = float(timeout_s)
        self.grace_s = float(grace_s)
        self.memory_mb = memory_mb
        self.cache_size = cache_size
        self.max_jobs_per_worker = max_jobs_per_worker
        if prefetch < 1:
            raise ValueError(f"prefetch must be >= 1, got {prefetch}")
        self.prefetch = prefetch
        self._lock: threading.Lock
        self._pending: collections.deque[_Job]
        self._slots: list[_VerifySlot]
        self._inflight: dict[_Key, Future]
        self._thread: threading.Thread | None
        self._ids = itertools.count()
        self._cache: collections.OrderedDict[_Key, Verdict] = collections.OrderedDict()
        self._stats = collections.Counter()
        self._closed = False
        self._broken: str | None = None
        self._fresh_state()

    def _fresh_state(self) -> None:
        """Dispatcher state; also run in a forked child, which inherits none of the parent's workers."""
        self._lock = threading.Lock()
        self._pending = collections.deque()
        self._slots = []
        self._inflight = {}
        self._start_failures = 0
        self._thread = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._pid = os.getpid()

    def _check_fork(self) -> None:
        if self._pid != os.getpid():
            self._fresh_state()

    # -- public API ---------------------------------------------------------------------------------

    def submit(self, task: str, *args: Any, timeout_s: float | None = None) -> Future:
        """Run a worker task (`"check"`, `"ping"`; `"sleep"`/`"exit"` exist for tests) and return a Future.

        The Future raises `JobTimeout`, `WorkerDied`, `VerifyWorkerError` or `PoolClosed` when there is no
        result.
        """
        self._check_fork()
        limit = self.timeout_s if timeout_s is None else timeout_s
        job = _Job(next(self._ids), task, args, limit + self.grace_s)
        with self._lock:
            if self._closed or self._broken:
                job.future.set_exception(PoolClosed(self._broken or "pool is closed"))
                return job.future
            self._pending.append(job)
            self._stats["jobs"] += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="torl-verify-pool", daemon=True)
                self._thread.start()
        with contextlib.suppress(OSError):  # closed meanwhile: the job gets PoolClosed
            os.write(self._wake_w, b"x")
        return job.future

    def verify(
        self,
        pred: str,
        ref: str,
        timeout_s: float | None = None,
        quick: bool = True,
        *,
        question: str | None = None,
        rel_tol: float | None = None,
        scorer: Scorer = "default",
    ) -> Future:
        """Compare `pred` with the reference `ref` (bare answers); a Future of a `Verdict` that never raises.

        With `quick=False` the string and plain-number shortcuts are skipped: every pair is parsed by
        math-verify (the answer rules still apply). `question`, `rel_tol` and `scorer` as in `check_pair`.
        """
        if scorer not in SCORERS:
            raise ValueError(f"unknown scorer {scorer!r}: use one of {', '.join(SCORERS)}")
        if scorer != "default":
            quick, question, rel_tol = False, None, None
        if quick and (decided := quick_check(pred, ref, rel_tol)) is not None:
            self._stats["quick"] += 1
            return _done(decided)
        if question is not None and not forms.needs_question(pred, ref):
            question = None  # keeps cache keys and messages small
        key = (pred, ref, quick, question, rel_tol, scorer)
        self._check_fork()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                self._stats["cache_hits"] += 1
                return _done(hit)
            shared = self._inflight.get(key)
            if shared is not None:
                self._stats["cache_hits"] += 1
                return shared
            out: Future = Future()
            self._inflight[key] = out
        limit = self.timeout_s if timeout_s is None else timeout_s
        raw = self.submit("check", pred, ref, limit, quick, question, rel_tol, scorer, timeout_s=limit)
        raw.add_done_callback(lambda f: self._finish(key, f, out))
        return out

    def verify_many(
        self,
        pairs: Sequence[tuple[str, str]],
        timeout_s: float | None = None,
        quick: bool = True,
        *,
        questions: Sequence[str | None] | None = None,
        rel_tol: float | None = None,
        scorer: Scorer = "default",
    ) -> list[Verdict]:
        """Compare many (pred, ref) pairs in parallel; one `Verdict` per pair, in order. `questions`, if
        given, holds each pair's question (or None)."""
        qs = _questions(pairs, questions)
        futures = [
            self.verify(p, r, timeout_s, quick, question=q, rel_tol=rel_tol, scorer=scorer) for (p, r), q in qs
        ]
        return [f.result() for f in futures]

    async def averify_many(
        self,
        pairs: Sequence[tuple[str, str]],
        timeout_s: float | None = None,
        quick: bool = True,
        *,
        questions: Sequence[str | None] | None = None,
        rel_tol: float | None = None,
        scorer: Scorer = "default",
    ) -> list[Verdict]:
        """Async `verify_many`: waits without blocking the event loop."""
        qs = _questions(pairs, questions)
        futures = [
            asyncio.wrap_future(self.verify(p, r, timeout_s, quick, question=q, rel_tol=rel_tol, scorer=scorer))
            for (p, r), q in qs
        ]
        return list(await asyncio.gather(*futures))

    def start(self, timeout_s: float = 300.0) -> VerifyPool:
        """Start the workers now (otherwise they start on first use) and wait until all are ready.

        Raises:
            PoolClosed: the pool is closed or its workers cannot start.
            TimeoutError: not all workers were ready within `timeout_s`.
        """
        self.submit("ping").result(timeout=timeout_s)
        end = time.monotonic() + timeout_s
        while True:
            with self._lock:
                ready = sum(s.ready for s in self._slots)
            if ready >= self.workers:
                return self
            if self._closed or self._broken:
                raise PoolClosed(self._broken or "pool is closed")
            if time.monotonic() > end:
                raise TimeoutError(f"{ready}/{self.workers} verification workers ready after {timeout_s:g} s")
            time.sleep(0.01)

    @property
    def stats(self) -> dict[str, int]:
        """Counters: jobs, quick, cache_hits, timeouts, deaths, workers_started."""
        return dict(self._stats)

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the live workers."""
        with self._lock:
            return [s.proc.pid for s in self._slots if s.proc.poll() is None]

    def close(self) -> None:
        """Stop the workers; jobs not yet done get `PoolClosed`. Safe to call twice."""
        self._check_fork()  # a forked child must not touch its parent's workers
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            os.write(self._wake_w, b"x")
            thread.join(timeout=10)
        self._shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()

    # -- internals ------------------------------------------------------------------------------------

    def _finish(self, key: _Key, raw: Future, out: Future) -> None:
        try:
            verdict = raw.result()
        except JobTimeout as e:
            verdict = Verdict(None, "timeout", str(e))
        except PoolError as e:
            verdict = Verdict(None, "error", str(e))
        if verdict.correct is None:
            logger.warning(
                "answer verification gave no result (%s): pred=%.80r ref=%.80r", verdict.reason, *key[:2]
            )
        with self._lock:
            self._inflight.pop(key, None)
            if verdict.correct is not None and self.cache_size > 0:
                self._cache[key] = verdict
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        out.set_result(verdict)

    def _spawn(self) -> _VerifySlot:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[2])  # the directory that holds the torl package
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        cmd = [sys.executable, "-m", "torl.rewards._worker", str(theirs.fileno()), str(self.memory_mb or 0)]
        try:
            proc = subprocess.Popen(cmd, pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        return _VerifySlot(proc, Connection(ours.detach()))

    def _retire(self, slot: _VerifySlot, kill: bool) -> None:
        if kill and slot.proc.poll() is None:
            slot.proc.kill()
        try:
            slot.conn.close()  # an idle worker exits on EOF
        except OSError:
            pass
        try:
            slot.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            slot.proc.kill()
            slot.proc.wait(timeout=5)
        if slot in self._slots:
            self._slots.remove(slot)

    def _lost(self, slot: _VerifySlot, exc: PoolError, kill: bool) -> None:
        job = slot.job
        self._retire(slot, kill)
        queued = list(slot.jobs)[1:]
        for j in queued:  # sent but not started: not their fault
            j.attempts -= 1
        if job is not None and isinstance(exc, WorkerDied) and job.attempts < 2:
            queued.insert(0, job)  # it may have died of something else (or before reading the job): one retry
        elif job is not None:
            job.future.set_exception(exc)
        elif not slot.ready:
            self._start_failures += 1
        with self._lock:
            self._pending.extendleft(reversed(queued))

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as e:
            logger.exception("verification pool dispatcher failed")
            self._broken = f"dispatcher failed: {type(e).__name__}: {e}"
        self._fail_pending(self._broken or "pool is closed")

    def _loop(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
            if self._start_failures >= _MAX_START_FAILURES:
                self._broken = f"verification workers failed to start {self._start_failures} times"
                logger.error(self._broken)
                return
            while len(self._slots) < self.workers:
                self._slots.append(self._spawn())
                self._stats["workers_started"] += 1
            self._dispatch()
            now = time.monotonic()
            busy = [s.deadline for s in self._slots if s.job is not None]
            busy += [s.born + _START_TIMEOUT_S for s in self._slots if not s.ready]
            timeout = max(0.0, min(busy) - now) if busy else None
            ready = wait([self._wake_r, *(s.conn for s in self._slots)], timeout)
            for r in ready:
                if r == self._wake_r:
                    try:
                        os.read(self._wake_r, 65536)
                    except BlockingIOError:
                        pass
                    continue
                slot = next(s for s in self._slots if s.conn is r)
                self._receive(slot)
            now = time.monotonic()
            for slot in [s for s in self._slots if s.job is not None and s.deadline <= now]:
                job = slot.job
                assert job is not None
                self._stats["timeouts"] += 1
                self._lost(
                    slot, JobTimeout(f"no result within {job.deadline_s:g} s; worker replaced"), kill=True
                )
            for slot in [s for s in self._slots if not s.ready and now - s.born > _START_TIMEOUT_S]:
                logger.warning("verification worker not ready after %.0f s: replaced", _START_TIMEOUT_S)
                self._lost(slot, WorkerDied("worker did not start"), kill=True)

    def _receive(self, slot: _VerifySlot) -> None:
        try:
            msg = slot.conn.recv()
        except (EOFError, OSError):
            try:
                code = slot.proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                code = None
            self._stats["deaths"] += 1
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            self._lost(slot, WorkerDied(f"verification worker died ({how}); worker replaced"), kill=True)
            return
        if msg[0] == "ready":
            slot.ready = True
            self._start_failures = 0
            return
        job_id, ok, value = msg
        if not slot.jobs or slot.jobs[0].id != job_id:  # cannot happen: a worker answers in order
            logger.error("verification worker replied to an unknown job %s", job_id)
            return
        job = slot.jobs.popleft()
        slot.done += 1
        if slot.jobs:  # the next one starts now
            slot.deadline = time.monotonic() + slot.jobs[0].deadline_s
        if ok:
            job.future.set_result(value)
        else:
            job.future.set_exception(VerifyWorkerError(value))
        if self.max_jobs_per_worker and slot.done >= self.max_jobs_per_worker:
            self._retire(slot, kill=False)

    def _dispatch(self) -> None:
        for slot in list(self._slots):
            while slot.ready and len(slot.jobs) < self.prefetch:
                if self.max_jobs_per_worker and slot.done + len(slot.jobs) >= self.max_jobs_per_worker:
                    break
                with self._lock:
                    job = None
                    while self._pending and job is None:
                        job = self._pending.popleft()
                        if not job.started and not job.future.set_running_or_notify_cancel():
                            job = None  # cancelled by the caller
                    if job is None:
                        return
                job.started = True
                try:
                    slot.conn.send((job.id, job.task, job.args))
                except (OSError, ValueError):
                    with self._lock:
                        self._pending.appendleft(job)  # not the job's fault: retry on a fresh worker
                    self._lost(slot, WorkerDied("verification worker gone"), kill=True)
                    break
                if not slot.jobs:
                    slot.deadline = time.monotonic() + job.deadline_s
                slot.jobs.append(job)
                job.attempts += 1

    def _fail_pending(self, reason: str) -> None:
        with self._lock:
            jobs = list(self._pending)
            self._pending.clear()
        jobs += [j for s in self._slots for j in s.jobs]
        for job in jobs:
            if not job.future.done():
                if not job.started and not job.future.set_running_or_notify_cancel():
                    continue
                job.future.set_exception(PoolClosed(reason))

    def _shutdown(self) -> None:
        self._fail_pending("pool is closed")
        for slot in list(self._slots):
            self._retire(slot, kill=slot.job is not None)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


def _questions(pairs: Sequence[tuple[str, str]], questions: Sequence[str | None] | None) -> list:
    if questions is None:
        return [(pair, None) for pair in pairs]
    if len(questions) != len(pairs):
        raise ValueError(f"{len(pairs)} pairs but {len(questions)} questions")
    return list(zip(pairs, questions, strict=True))


def _done(value: Any) -> Future:
    f: Future = Future()
    f.set_result(value)
    return f


_default: VerifyPool | None = None
_default_lock = threading.Lock()


def default_pool() -> VerifyPool:
    """The process-wide pool that rewards use unless given one (created on first use, closed at exit)."""
    global _default
    with _default_lock:
        if _default is None or _default._closed or _default._broken or _default._pid != os.getpid():
            _default = VerifyPool()
        return _default


@atexit.register
def _close_default() -> None:
    if _default is not None and _default._pid == os.getpid():
        _default.close()
