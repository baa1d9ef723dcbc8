"""Weight updates at turn boundaries on a real vLLM `AsyncLLM`: a trajectory waiting on its sandbox continues
under the new weights without running its cell again; a turn in flight finishes under the old weights or is
aborted and generated again under the new ones; every model segment says which version wrote it."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio

from torl.core import Tool, ToolCall, ToolResult
from torl.rollout import TIRRollout, VersionedBackend, reload_async_llm

from .conftest import TRANSCRIPTS, hf_token_logprobs, make_tool

pytestmark = [pytest.mark.vllm, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def backend(tir_model_path):
    eng = TIRRollout.from_vllm(
        tir_model_path, engine_kwargs={"max_model_len": 1024, "dtype": "float32", "enforce_eager": True}
    )
    yield eng.backend
    await eng.close()


class GatedTool(Tool):
    """The real sandbox; its first call waits until the test releases it. Counts the cells it ran."""

    name = "python"

    def __init__(self) -> None:
        self.inner = make_tool()
        self.ran: list[str] = []
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def setup(self) -> None:
        await self.inner.start()

    async def teardown(self) -> None:
        await self.inner.close()

    async def run(self, call: ToolCall) -> ToolResult:
        if not self.ran:
            self.entered.set()
            await self.release.wait()
        self.ran.append(call.code)
        return await self.inner.run(call)


class Sends:
    """Records each request's prompt ids as it is sent (an aborted request never returns)."""

    def __init__(self, inner) -> None:
        self.inner, self.tokenizer, self.max_model_len = inner, inner.tokenizer, inner.max_model_len
        self.sent: list[list[int]] = []

    async def generate(self, request):
        self.sent.append(list(request.prompt_ids))
        return await self.inner.generate(request)

    async def close(self) -> None:
        pass


def _max_diff(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


async def test_new_weights_while_a_trajectory_waits_on_its_sandbox(backend, tir_model_path, tiny_model_path):
    """Turn 0 under version 0 (the TIR model), the cell runs once, the weights change to the random tiny model
    meanwhile, and turn 1 is sampled from the new weights under version 1."""
    vb = VersionedBackend(backend, inflight="finish")
    tool = GatedTool()
    eng = TIRRollout(vb, tool=tool, max_tool_calls=2, max_new_tokens=160)
    t = TRANSCRIPTS["torl"]
    try:
        task = asyncio.ensure_future(eng.generate([t.prompt], temperature=1.0, seed=3))
        await asyncio.wait_for(tool.entered.wait(), 300)
        stats = await vb.publish(1, load=lambda: reload_async_llm(vb.engine, path=tiny_model_path))
        tool.release.set()
        (traj,) = await task
    finally:
        await reload_async_llm(backend.engine, path=tir_model_path)  # the other tests use the TIR weights
        await tool.close()
    assert traj.error is None, traj.error
    assert stats.finished_turns == 0 and stats.aborted_turns == 0  # nothing was generating: it was in its cell
    kinds = [(s.kind, s.version) for s in traj.segments]
    assert kinds[:3] == [("model", 0), ("tool", None), ("model", 1)], kinds
    assert traj.versions[0] == 0 and set(traj.versions[1:]) == {1}
    assert (traj.oldest_version, traj.newest_version) == (0, 1)
    # The cell ran exactly once, and its output segment is in the transcript once.
    assert tool.ran[0] == "print(12 * 34 + 5)\n" and tool.ran.count(tool.ran[0]) == 1
    assert [r.call.code for r in traj.tool_calls] == tool.ran
    assert traj.completion_text.count(traj.segments[1].text) == 1
    # Each model turn's logprobs are those of the weights its version names.
    old, new = traj.segments[0], traj.segments[2]
    ids, lps = traj.completion_ids, traj.logprobs
    ref_old = hf_token_logprobs(tir_model_path, traj.prompt_ids, ids[: old.end], 1.0)[old.start :]
    assert _max_diff(lps[old.start : old.end], ref_old) < 1e-3
    ctx = traj.prompt_ids + ids[: new.start]
    ref_new = hf_token_logprobs(tiny_model_path, ctx, ids[new.start : new.end], 1.0)
    ref_tir = hf_token_logprobs(tir_model_path, ctx, ids[new.start : new.end], 1.0)
    assert _max_diff(lps[new.start : new.end], ref_new) < 1e-3
    assert _max_diff(lps[new.start : new.end], ref_tir) > 0.1


@pytest.mark.parametrize("inflight", ["finish", "abort"])
async def test_a_turn_in_flight_finishes_or_is_regenerated(backend, tir_model_path, tiny_model_path, inflight):
    """A long turn (random weights, no stop string) is generating when new weights (the TIR model) arrive."""
    await reload_async_llm(backend.engine, path=tiny_model_path)
    sends = Sends(backend)
    vb = VersionedBackend(sends, inflight=inflight)
    eng = TIRRollout(vb, tool=None, max_tool_calls=0, max_new_tokens=300)
    try:
        task = asyncio.ensure_future(eng.generate(["Once upon a time"], temperature=1.0, seed=7))
        while vb.in_flight == 0:
            await asyncio.sleep(0.005)
        stats = await vb.publish(1, load=lambda: reload_async_llm(backend.engine, path=tir_model_path))
        (traj,) = await task
    finally:
        await reload_async_llm(backend.engine, path=tir_model_path)
    assert traj.error is None, traj.error
    [seg] = traj.segments
    ids = traj.completion_ids
    if inflight == "finish":
        assert (stats.finished_turns, stats.aborted_turns, vb.aborted_turns) == (1, 0, 0)
        assert seg.version == 0 and len(sends.sent) == 1
        ref = hf_token_logprobs(tiny_model_path, traj.prompt_ids, ids, 1.0)
    else:
        assert (stats.finished_turns, stats.aborted_turns, vb.aborted_turns) == (0, 1, 1)
        # Sent again from the same turn boundary, and sampled from the new weights.
        assert seg.version == 1 and len(sends.sent) == 2 and sends.sent[0] == sends.sent[1]
        ref = hf_token_logprobs(tir_model_path, traj.prompt_ids, ids, 1.0)
    assert _max_diff(traj.logprobs, ref) < 1e-3


async def test_pause_and_resume_misuse_is_an_error(backend):
    vb = VersionedBackend(backend)
    with pytest.raises(RuntimeError, match="without pause"):
        await vb.resume(1)
    await vb.pause()
    with pytest.raises(RuntimeError, match="twice"):
        await vb.pause()
    await vb.resume(2)
    assert vb.version == 2 and not vb.paused
    with pytest.raises(ValueError, match="inflight"):
        VersionedBackend(backend, inflight="later")  # type: ignore[arg-type]
