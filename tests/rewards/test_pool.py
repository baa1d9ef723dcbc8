"""The verification pool: parallel batches, hard deadlines, replaced workers, async use, shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from torl.rewards import VerifyPool
from torl.rewards.pool import JobTimeout, PoolClosed, WorkerDied

PAIRS = [  # none decided by the quick checks in this process
    (r"\frac{\sqrt{4}}{4}", "0.5"),
    ("x=5", "5"),
    ("[0,1]", "[0,1)"),
    (r"\sqrt{12}", r"2\sqrt3"),
    ("(1,2)", "(2,1)"),
]
EXPECTED = [True, True, False, True, False]

pytestmark = pytest.mark.timeout(120)


def test_batch_and_cache(pool):
    assert [v.correct for v in pool.verify_many(PAIRS)] == EXPECTED
    hits = pool.stats.get("cache_hits", 0)
    assert [v.correct for v in pool.verify_many(PAIRS)] == EXPECTED
    assert pool.stats["cache_hits"] - hits == len(PAIRS)


async def test_async_batches_run_together(pool):
    a, b = await asyncio.gather(pool.averify_many(PAIRS, quick=False), pool.averify_many(PAIRS[::-1]))
    assert [v.correct for v in a] == EXPECTED
    assert [v.correct for v in b] == EXPECTED[::-1]


def test_soft_timeout_in_worker_gives_none_and_keeps_worker(pool):
    pids = set(pool.worker_pids)
    v = pool.verify(r"\frac{x^{30}-1}{x-1}", r"\sum_{k=0}^{29} x^k", timeout_s=1e-3).result()
    assert v.correct is None and v.method == "timeout"
    assert set(pool.worker_pids) == pids  # stopped by the worker's own alarm: no restart


def test_pathological_answer_times_out_and_batch_goes_on(pool):
    # a model can write a number too big to compute; it must not stall the step
    verdicts = pool.verify_many([("10^{10^{10}}", "1"), *PAIRS], timeout_s=1.0)
    assert verdicts[0].correct is None and verdicts[0].method in ("timeout", "error")
    assert [v.correct for v in verdicts[1:]] == EXPECTED


def test_hung_worker_is_killed_and_replaced_batch_completes():
    with VerifyPool(workers=2, timeout_s=5, grace_s=0.2) as p:
        p.start()
        before = set(p.worker_pids)
        t0 = time.monotonic()
        hang = p.submit("sleep", 60, timeout_s=0.3)
        verdicts = p.verify_many(PAIRS * 3, quick=False)
        with pytest.raises(JobTimeout, match="worker replaced"):
            hang.result(timeout=30)
        assert time.monotonic() - t0 < 20
        assert [v.correct for v in verdicts] == EXPECTED * 3
        p.start()  # both workers answer again
        after = set(p.worker_pids)
        assert len(after) == 2 and after != before
        assert p.stats["timeouts"] == 1


def _kill_busy_worker(p: VerifyPool, job, spare: int | None = None) -> int:
    """SIGKILL the (single) worker, other than `spare`, once `job` runs on it; returns its pid."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        slots = [s for s in p._slots if s.job is not None and s.job.future is job and s.proc.pid != spare]
        if slots:
            os.kill(slots[0].proc.pid, signal.SIGKILL)
            return slots[0].proc.pid
        time.sleep(0.01)
    raise AssertionError("the job never started")


def test_crashing_job_is_retried_once_then_reported():
    with VerifyPool(workers=1, timeout_s=30) as p:
        p.start()
        crash = p.submit("exit", 3)
        after = p.verify("0.25", r"\frac14", quick=False)
        with pytest.raises(WorkerDied, match="exit code 3"):
            crash.result(timeout=60)
        assert after.result(timeout=60).correct is True  # the batch goes on on a fresh worker
        assert p.stats["deaths"] == 2  # first try + one retry


def test_killed_worker_is_replaced_and_queue_drains():
    with VerifyPool(workers=1, timeout_s=30) as p:
        p.start()
        busy = p.submit("sleep", 60)
        queued = p.verify("0.25", r"\frac14", quick=False)
        first = _kill_busy_worker(p, busy)
        second = _kill_busy_worker(
            p, busy, spare=first
        )  # the retry runs on the replacement: kill that one too
        with pytest.raises(WorkerDied, match="signal 9"):
            busy.result(timeout=30)
        assert queued.result(timeout=30).correct is True
        assert first != second and second not in p.worker_pids
        assert p.stats["deaths"] == 2


def test_idle_worker_death_is_noticed():
    with VerifyPool(workers=1) as p:
        p.start()
        (pid,) = p.worker_pids
        os.kill(pid, signal.SIGKILL)
        assert p.verify("0.5", r"\frac12", quick=False).result(timeout=30).correct is True
        assert p.worker_pids != [pid]


def test_close_stops_workers_and_answers_pending():
    p = VerifyPool(workers=1)
    p.start()
    procs = [s.proc for s in p._slots]
    busy = p.submit("sleep", 60)
    waiting = p.verify("0.75", r"\frac34", quick=False)
    time.sleep(0.2)
    p.close()
    with pytest.raises(PoolClosed):
        busy.result(timeout=10)
    v = waiting.result(timeout=10)
    assert v.correct is None and "closed" in v.reason
    assert all(proc.poll() is not None for proc in procs)
    late = p.verify("0.5", r"\frac12", quick=False).result(timeout=5)
    assert late.correct is None and late.method == "error"
    p.close()  # twice is fine


def test_bad_arguments():
    with pytest.raises(ValueError, match="workers"):
        VerifyPool(workers=0)
    with pytest.raises(ValueError, match="timeout_s"):
        VerifyPool(timeout_s=0)


def _verify_in_child(p: VerifyPool, q) -> None:
    q.put([v.correct for v in p.verify_many(PAIRS, quick=False)])
    p.close()


def test_forked_child_gets_its_own_workers():
    import multiprocessing as mp

    with VerifyPool(workers=1) as p:
        p.start()
        parent_pids = p.worker_pids
        ctx = mp.get_context("fork")
        q = ctx.Queue()
        child = ctx.Process(target=_verify_in_child, args=(p, q))
        child.start()
        assert q.get(timeout=120) == EXPECTED
        child.join(timeout=30)
        assert child.exitcode == 0
        assert p.worker_pids == parent_pids  # the child's close() left the parent's workers alone
        assert [v.correct for v in p.verify_many(PAIRS[:2], quick=False)] == EXPECTED[:2]
