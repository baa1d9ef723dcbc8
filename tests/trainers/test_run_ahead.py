"""`RunAhead`, the producer of asynchronous training, on the real engine (`TIRRollout`, `VersionedBackend`)
over a scripted backend whose turns wait until the test lets them finish: admission never passes the
staleness bound, batches are whole groups in dataset order, a group overtaken past the bound is dropped or
regenerated, and an exhausted producer raises instead of waiting forever. The same path on real vLLM is in
test_async.py."""

from __future__ import annotations

import asyncio
import time

import pytest

from torl.core import Tool, ToolCall, ToolResult
from torl.rollout import GenerationOutput, TIRRollout, VersionedBackend
from torl.trainers.run_ahead import RunAhead


class ScriptedBackend:
    """A prompt with "slow" in it writes a code cell first (the tool then waits); every turn ends boxed."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer, self.max_model_len = tokenizer, 1024
        self.started: list[str] = []

    async def generate(self, request):
        text = self.tokenizer.decode(request.prompt_ids)
        self.started.append(text)
        if "slow" in text and "```output" not in text:
            out, stop = "```python\nprint(1)\n```\n```output", "```output"
        else:
            out, stop = "The answer is \\boxed{1}.", None
        ids = self.tokenizer(out, add_special_tokens=False)["input_ids"]
        return GenerationOutput(ids, [-0.5] * len(ids), "stop", stop)

    async def close(self) -> None:
        pass


class SlowSandbox(Tool):
    """A sandbox that answers only once released (a straggler)."""

    name = "python"

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls = 0

    async def run(self, call: ToolCall) -> ToolResult:
        self.calls += 1
        await self.release.wait()
        return ToolResult(output="1\n")


@pytest.fixture
def producer(tir_tokenizer):
    def make(k: int, groups_per_batch: int, stale: str = "drop"):
        tool = SlowSandbox()
        vb = VersionedBackend(ScriptedBackend(tir_tokenizer))
        rollout = TIRRollout(vb, tool=tool, max_tool_calls=1, max_new_tokens=64)
        ra = RunAhead(rollout, group_size=2, groups_per_batch=groups_per_batch, max_staleness=k, stale=stale,
                      sampling=lambda step: {"temperature": 1.0, "seed": 100 * step})
        made.append(rollout)
        return ra, rollout, vb, tool

    made: list = []
    yield make
    for r in made:
        r.close_sync()


@pytest.fixture
def tir_tokenizer(tir_model_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tir_model_path)


def _rows(*prompts: str) -> list[dict]:
    return [{"prompt": p, "id": p} for p in prompts for _ in range(2)]  # groups of 2 identical rows


def _publish(ra: RunAhead, rollout, vb: VersionedBackend, version: int) -> None:
    rollout._run(vb.pause())
    rollout._run(vb.resume(version))
    ra.publish(version)


def _admitted(ra: RunAhead) -> int:
    return len(ra._running) + len(ra._ready)


def _wait(cond, what: str) -> None:
    deadline = time.monotonic() + 60  # a hang guard, not a timing check
    while not cond():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.005)


@pytest.mark.parametrize("k", [0, 1, 2])
def test_admission_never_passes_the_bound(producer, k):
    ra, rollout, vb, _ = producer(k, groups_per_batch=2)
    for step in range(5):
        ra.feed(_rows(f"q{step}a", f"q{step}b"), step)
    assert _admitted(ra) == 0  # nothing runs before the trainer publishes weights
    for step in range(5):
        _publish(ra, rollout, vb, step)
        assert _admitted(ra) == min(2 * (k + 1), 2 * (5 - step)), step  # this step's batch and k more
        batch = ra.take(step, refill=lambda: False)
        assert [r["prompt"] for r in batch.rows] == [f"q{step}a"] * 2 + [f"q{step}b"] * 2  # dataset order
        lags = [step - t.oldest_version for t in batch.trajectories]
        assert max(lags) <= k and batch.stats["staleness_max"] == max(lags)
        if step >= k:
            assert max(lags) == k  # it did run k versions ahead
        # seeds as one synchronous batch of this step: row i samples with seed(step) + i
        assert [t.metadata["seed"] for t in batch.trajectories] == [100 * step + i for i in range(4)]
    ra.stop()


@pytest.mark.parametrize("stale", ["drop", "regenerate"])
def test_an_overtaken_group_is_dropped_or_regenerated(producer, stale):
    ra, rollout, vb, tool = producer(1, groups_per_batch=1, stale=stale)
    for step, p in enumerate(["slow", "a", "b", "c", "d"]):
        ra.feed(_rows(p), step)
    _publish(ra, rollout, vb, 0)
    assert [r["prompt"] for r in ra.take(0, refill=lambda: False).rows] == ["a", "a"]  # "slow" is overtaken
    _publish(ra, rollout, vb, 1)
    assert [r["prompt"] for r in ra.take(1, refill=lambda: False).rows] == ["b", "b"]
    rollout._run(_set(tool.release))
    _wait(lambda: any(g.rows[0]["prompt"] == "slow" for g in ra._ready), "the straggler finished")
    _publish(ra, rollout, vb, 2)
    batch = ra.take(2, refill=lambda: False)  # "slow" started under version 0: two versions old now
    if stale == "drop":
        [g] = ra._dropped  # first turn under version 0, the turn after its cell under version 1
        assert [t.versions for t in g.trajectories] == [[0, 1]] * 2
    assert [r["prompt"] for r in batch.rows] == ["c", "c"] and batch.stats["dropped_stale"] == 2
    _publish(ra, rollout, vb, 3)
    batch = ra.take(3, refill=lambda: False)
    if stale == "regenerate":  # started again first, under version 2
        assert [r["prompt"] for r in batch.rows] == ["slow", "slow"]
        assert {t.oldest_version for t in batch.trajectories} == {2}
        assert {t.versions[0] for t in batch.trajectories} == {2} and tool.calls == 4  # its cells ran again
    else:
        assert [r["prompt"] for r in batch.rows] == ["d", "d"]
    ra.stop()


async def _set(event: asyncio.Event) -> None:
    event.set()


def test_an_exhausted_producer_raises_instead_of_waiting(producer):
    ra, rollout, vb, _ = producer(1, groups_per_batch=1)
    ra.feed(_rows("a"), 0)
    _publish(ra, rollout, vb, 0)
    ra.take(0, refill=lambda: False)
    asked = []

    def refill() -> bool:
        asked.append(1)
        return False

    with pytest.raises(RuntimeError, match="ran out of rows"):
        ra.take(1, refill)
    assert asked == [1]
    ra.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        ra.take(1, refill)


def test_bad_input_is_a_clear_error(producer):
    ra, *_ = producer(1, groups_per_batch=1)
    with pytest.raises(ValueError, match="groups of 2"):
        ra.feed([{"prompt": "a"}] * 3, 0)
    with pytest.raises(ValueError, match="different prompts"):
        ra.feed([{"prompt": "a"}, {"prompt": "b"}], 0)
    with pytest.raises(ValueError, match="stale"):
        RunAhead(ra.rollout, group_size=2, groups_per_batch=1, max_staleness=1, stale="keep",  # type: ignore[arg-type]
                 sampling=dict)
    with pytest.raises(ValueError, match="max_staleness"):
        RunAhead(ra.rollout, group_size=2, groups_per_batch=1, max_staleness=-1, sampling=dict)
