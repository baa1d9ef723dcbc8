"""Real vLLM `AsyncLLM` through `TIRRollout.from_vllm`: token exactness, and trajectories that do not wait
for each other's sandbox calls."""

from __future__ import annotations

import asyncio
import time

import pytest
import pytest_asyncio

from torl.rollout import TIRRollout

from .conftest import (
    TRANSCRIPTS,
    LatencyTool,
    RecordingBackend,
    check_token_exact,
    check_transcript,
    make_tool,
)

# One engine per module, on one event loop (an AsyncLLM stays on the loop that first used it).
pytestmark = [pytest.mark.vllm, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(tir_model_path):
    eng = TIRRollout.from_vllm(
        tir_model_path,
        tool=None,
        engine_kwargs={"max_model_len": 1024, "dtype": "float32", "enforce_eager": True},
    )
    yield eng
    await eng.close()


@pytest.mark.parametrize("name", ["torl", "chat"])
async def test_transcripts_token_exact(engine, tir_tokenizer, name):
    t = TRANSCRIPTS[name]
    rec = RecordingBackend(engine.backend)
    async with make_tool() as tool:
        eng = TIRRollout(rec, tool=tool, tir_format=name, max_tool_calls=2, max_new_tokens=400)
        (traj,) = await eng.generate([t.prompt], temperature=0.0)
    check_transcript(traj, t, tir_tokenizer)
    check_token_exact(traj, rec.requests)
    assert engine.backend.engine.vllm_config.cache_config.enable_prefix_caching
    assert str(engine.backend.engine.model_config.logprobs_mode).endswith("processed_logprobs")


async def test_slow_cells_do_not_block_other_trajectories(engine):
    """Prompt 0's first cell takes 1.5 s, prompt 1's 0 s: prompt 1's trajectories finish long before."""
    t = TRANSCRIPTS["torl"]
    tool = LatencyTool({"print(12 * 34 + 5)\n": 0.0, "print(413 - 5)\n": 0.0})
    eng = TIRRollout(engine.backend, tool=tool, max_tool_calls=2, max_new_tokens=400)
    slow = TIRRollout(engine.backend, tool=LatencyTool(1.5), max_tool_calls=2, max_new_tokens=400)
    t0 = time.perf_counter()
    ends: dict[str, float] = {}

    async def timed(key, e):
        out = await e.generate([t.prompt], n=3, temperature=0.0)
        ends[key] = time.perf_counter() - t0
        return out

    fast_out, slow_out = await asyncio.gather(timed("fast", eng), timed("slow", slow))
    want = "".join(x for _, x in t.segments)
    assert all(o.completion_text == want for o in fast_out + slow_out)
    assert ends["fast"] < 1.5 < ends["slow"]


async def test_another_event_loop_gets_a_clear_error(engine):
    t = TRANSCRIPTS["torl"]
    eng = TIRRollout(engine.backend, tool=LatencyTool(), max_tool_calls=1, max_new_tokens=50)
    (traj,) = await asyncio.to_thread(lambda: asyncio.run(eng.generate([t.prompt], temperature=0.0)))
    assert traj.finish_reason == "error" and "event loop" in traj.error
