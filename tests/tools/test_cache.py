"""The tool-result log: cells keyed by (code, the session's earlier cells), answered from the log when seen,
replayed in a real session when a later cell needs their state; clocks and randomness never cached."""

from __future__ import annotations

import asyncio

import pytest

from torl.core import ToolCall, ToolResult
from torl.testing import WrappingTool
from torl.tools import CachedTool, LocalSandbox, ToolCache, is_cacheable


class Counting(WrappingTool):
    """The real local sandbox, counting what it runs."""

    def __init__(self) -> None:
        super().__init__(LocalSandbox(timeout_s=3, workers=2, preload=()))
        self.ran: list[str] = []

    async def run(self, call: ToolCall) -> ToolResult:
        self.ran.append(call.code)
        return await self.inner.run(call)


@pytest.mark.parametrize(
    ("code", "cacheable"),
    [
        ("print(12 * 34 + 5)", True),
        ("import sympy\nprint(sympy.factorint(360))", True),
        ("x = 756 + 396\nprint(x)", True),
        ("print((", True),  # a SyntaxError is the same every time
        ("import random\nprint(random.randint(1, 6))", False),
        ("from random import choice", False),
        ("import numpy as np\nprint(np.random.rand())", False),
        ("import time\nprint(time.time())", False),
        ("from datetime import datetime\nprint(datetime.now())", False),
        ("print(hash('abc'))", False),
        ("print(open('/etc/hostname').read())", False),
        ("import os\nprint(os.getpid())", False),
        ("print(1)  # torl: nocache", False),
        ("import random  # torl: cache\nrandom.seed(0)\nprint(random.random())", True),
    ],
)
def test_is_cacheable(code, cacheable):
    assert is_cacheable(code) is cacheable


async def test_a_seen_cell_is_answered_from_the_log():
    inner = Counting()
    async with CachedTool(inner) as tool:
        a = await tool.run(ToolCall(code="print(6 * 7)"))
        b = await tool.run(ToolCall(code="print(6 * 7)"))
        assert a.output == b.output == "42\n" and not a.cached and b.cached
        assert inner.ran == ["print(6 * 7)"] and tool.cache.hits == 1 and tool.cache.misses == 1
        assert tool.cache.hit_rate == 0.5
    assert CachedTool(LocalSandbox(timeout_s=3)).limits.timeout_s == 3  # the sandbox's own API passes through


async def test_the_key_holds_the_earlier_cells_and_replay_rebuilds_the_state():
    inner = Counting()
    async with CachedTool(inner) as tool:
        s1, s2, s3 = [await tool.open_session() for _ in range(3)]
        assert (await tool.run(ToolCall(code="x = 41", session=s1))).output == ""
        assert (await tool.run(ToolCall(code="print(x + 1)", session=s1))).output == "42\n"
        # the same two cells in another session: both from the log, nothing runs
        r = await tool.run(ToolCall(code="x = 41", session=s2))
        r2 = await tool.run(ToolCall(code="print(x + 1)", session=s2))
        assert r.cached and r2.cached and r2.output == "42\n" and len(inner.ran) == 2
        # a new cell after them misses: the answered cells run first, in a real session of s2
        r3 = await tool.run(ToolCall(code="print(x * 2)", session=s2))
        assert not r3.cached and r3.output == "82\n"
        assert inner.ran[2:] == ["x = 41", "print(x + 1)", "print(x * 2)"]
        # the same cell after other earlier cells is another key
        await tool.run(ToolCall(code="x = 1", session=s3))
        r4 = await tool.run(ToolCall(code="print(x + 1)", session=s3))
        assert not r4.cached and r4.output == "2\n"
        for s in (s1, s2, s3):
            await tool.close_session(s)


async def test_identical_cells_in_flight_run_once():
    inner = Counting()
    async with CachedTool(inner) as tool:
        code = "import math\nprint(sum(math.isqrt(i) for i in range(200000)))"
        results = await asyncio.gather(*(tool.run(ToolCall(code=code)) for _ in range(4)))
        assert len({r.output for r in results}) == 1 and results[0].ok
        assert inner.ran == [code] and sum(r.cached for r in results) == 3


async def test_clocks_randomness_and_failures_are_never_cached():
    inner = Counting()
    async with CachedTool(inner) as tool:
        s = await tool.open_session()
        code = "import random\nprint(random.random())"
        a = await tool.run(ToolCall(code=code, session=s))
        b = await tool.run(ToolCall(code=code))
        assert not a.cached and not b.cached and a.output != b.output and len(inner.ran) == 2
        # after a cell that is not cacheable, its session's cells are not either (the state may differ)
        await tool.run(ToolCall(code="print(1)", session=s))
        c = await tool.run(ToolCall(code="print(1)", session=s))
        assert not c.cached and tool.cache.uncacheable == 4
        # a cell that hit a limit is run again next time
        slow = "while True: pass"
        t1 = await tool.run(ToolCall(code=slow))
        t2 = await tool.run(ToolCall(code=slow))
        assert t1.status == t2.status == "timeout" and not t2.cached
        await tool.close_session(s)


async def test_the_log_file_replays_in_a_new_process(tmp_path):
    log = tmp_path / "tool_log.jsonl"
    inner = Counting()
    async with CachedTool(inner, ToolCache(log)) as tool:
        await tool.run(ToolCall(code="print(2 ** 10)"))
    assert log.exists() and len(ToolCache(log)) == 1
    again = Counting()
    async with CachedTool(again, ToolCache(log)) as tool:
        r = await tool.run(ToolCall(code="print(2 ** 10)"))
    assert r.cached and r.output == "1024\n" and again.ran == []


async def test_a_group_of_the_tiny_model_hits_the_log(tir_model_path):
    """Four greedy samples of one prompt (a GRPO group) write the same two cells: two run, six are
    answered from the log."""
    from torl.rollout import TIRRollout
    from torl.testing import TORL_TWO_CALLS
    from torl.trainers.metrics import trajectory_metrics

    inner = Counting()
    tool = CachedTool(inner)
    eng = TIRRollout.from_transformers(tir_model_path, tool=tool, max_tool_calls=2, max_new_tokens=96)
    try:
        trajs = await eng.generate([TORL_TWO_CALLS.prompt], n=4, temperature=0.0)
    finally:
        await tool.close()
        await eng.close()
    assert all(t.completion_text == trajs[0].completion_text for t in trajs)
    assert inner.ran == [c.call.code for c in trajs[0].tool_calls]
    assert sum(c.result.cached for t in trajs for c in t.tool_calls) == 6
    assert trajectory_metrics(trajs)["tool_cache_hit_rate"] == pytest.approx(0.75)
    # the recorded results seed a log: replaying the group runs nothing at all
    cache = ToolCache()
    assert cache.record(trajs[:1]) == 2
    fresh = Counting()
    tool2 = CachedTool(fresh, cache)
    eng2 = TIRRollout.from_transformers(tir_model_path, tool=tool2, max_tool_calls=2, max_new_tokens=96)
    try:
        again = await eng2.generate([TORL_TWO_CALLS.prompt], n=2, temperature=0.0)
    finally:
        await tool2.close()
        await eng2.close()
    assert fresh.ran == [] and [t.completion_ids for t in again] == [trajs[0].completion_ids] * 2
