"""Real vLLM (sync `vllm.LLM`, as TRL's colocate mode holds it) through `TIRRollout.from_llm`, with the tiny
TIR model and the real Python sandbox: token exactness, masks, logprobs, budgets, stop strings."""

from __future__ import annotations

import asyncio
import threading
from typing import ClassVar

import pytest

from torl.rollout import (
    BUDGET_SPENT_MESSAGE,
    GenerationRequest,
    Sampling,
    TIRRollout,
    ToRLFormat,
    VLLMSyncBackend,
)

from .conftest import (
    TRANSCRIPTS,
    LatencyTool,
    RecordingBackend,
    check_token_exact,
    check_transcript,
    hf_token_logprobs,
    make_tool,
)

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def llm(tir_model_path):
    from vllm import LLM

    engine = LLM(
        model=tir_model_path,
        max_model_len=1024,
        logprobs_mode="processed_logprobs",
        enable_prefix_caching=True,
        seed=0,
        dtype="float32",
        enable_chunked_prefill=False,  # seeded sampling is unsafe on vLLM CPU with chunked prefill
        max_num_batched_tokens=2048,
        enforce_eager=True,  # no compile warm-up: the tiny model loads faster
    )
    yield engine
    engine.llm_engine.engine_core.shutdown()


@pytest.fixture
async def tool():
    async with make_tool() as t:
        yield t


def rollout(llm, tool, **kw):
    rec = RecordingBackend(VLLMSyncBackend(llm))
    return rec, TIRRollout(rec, tool=tool, **kw)


@pytest.mark.parametrize("name", ["torl", "xml", "chat"])
async def test_transcripts_token_exact(llm, tool, tir_tokenizer, name):
    t = TRANSCRIPTS[name]
    rec, eng = rollout(llm, tool, tir_format=name, max_tool_calls=2, max_new_tokens=400)
    (traj,) = await eng.generate([t.prompt], temperature=0.0, seed=0)
    check_transcript(traj, t, tir_tokenizer)
    check_token_exact(traj, rec.requests)
    assert traj.num_tool_calls == sum(k == "tool" for k, _ in t.segments)
    assert all(r.result.ok for r in traj.tool_calls)
    assert [r.output_segment for r in traj.tool_calls] == [
        i for i, (k, _) in enumerate(t.segments) if k == "tool"
    ]
    assert traj.metadata["timings"]["generation_s"] > 0 and traj.metadata["timings"]["tool_s"] > 0


async def test_logprobs_are_processed_and_seeded(llm, tir_model_path):
    t = TRANSCRIPTS["torl"]
    _, eng = rollout(llm, LatencyTool(0.0), max_tool_calls=2, max_new_tokens=120)
    a = await eng.generate([t.prompt], n=4, temperature=2.0, seed=123)
    b = await eng.generate([t.prompt], n=4, temperature=2.0, seed=123)
    assert [x.completion_ids for x in a] == [x.completion_ids for x in b]  # per-trajectory seeds
    assert [x.metadata["seed"] for x in a] == [123, 124, 125, 126]
    assert len({tuple(x.completion_ids) for x in a}) > 1, [x.error for x in a]
    for traj in a:
        ref = hf_token_logprobs(tir_model_path, traj.prompt_ids, traj.completion_ids, 2.0)
        raw = hf_token_logprobs(tir_model_path, traj.prompt_ids, traj.completion_ids, 1.0)
        for lp, r, m in zip(traj.logprobs, ref, traj.env_mask):
            if m:
                assert abs(lp - r) < 1e-3, (lp, r)
            else:
                assert lp == 0.0
        # after temperature, not raw: the raw logprobs are far off
        assert max(abs(lp - r) for lp, r, m in zip(traj.logprobs, raw, traj.env_mask) if m) > 0.1


async def test_stop_string_ending_inside_a_token(llm, tool, tir_tokenizer):
    """Stop on "```outp": vLLM stops inside the token "output"; the whole token is kept (it is what the
    model is conditioned on next turn), and the transcript still comes out token for token."""

    class Short(ToRLFormat):
        stop: ClassVar[list[str]] = ["```outp"]

    t = TRANSCRIPTS["torl"]
    rec, eng = rollout(llm, tool, tir_format=Short(), max_tool_calls=2)
    (traj,) = await eng.generate([t.prompt], temperature=0.0)
    out0 = rec.requests[0][2]
    assert out0.stop_reason == "```outp"
    assert tir_tokenizer.convert_ids_to_tokens(out0.token_ids[-1]) == "output"
    check_transcript(traj, t, tir_tokenizer)
    check_token_exact(traj, rec.requests)


async def test_budget_continue_like_torl(llm, tool):
    t = TRANSCRIPTS["torl"]
    rec, eng = rollout(llm, tool, max_tool_calls=1, max_new_tokens=160)
    (traj,) = await eng.generate([t.prompt], temperature=0.0)
    assert traj.num_tool_calls == 1 and traj.num_turns == 2
    assert [r[1]["stop"] for r in rec.requests] == [["```output"], []]
    assert traj.segments[2].text.startswith(t.segments[2][1])  # writes ```output and goes on; nothing runs
    assert traj.finish_reason in ("stop", "length")
    check_token_exact(traj, rec.requests)


async def test_budget_notify(llm, tool):
    t = TRANSCRIPTS["torl"]
    rec, eng = rollout(llm, tool, max_tool_calls=1, over_budget="notify", max_turns=3, max_new_tokens=300)
    (traj,) = await eng.generate([t.prompt], temperature=0.0)
    assert traj.num_tool_calls == 1
    assert traj.segments[1].text == t.segments[1][1]
    assert traj.segments[3].text == "\n" + BUDGET_SPENT_MESSAGE + "\n```\n"
    check_token_exact(traj, rec.requests)


async def test_token_budget_counts_tool_tokens(llm, tool, tir_tokenizer):
    t = TRANSCRIPTS["torl"]
    first = len(tir_tokenizer(t.segments[0][1], add_special_tokens=False)["input_ids"])
    rec, eng = rollout(llm, tool, max_tool_calls=2, max_new_tokens=first + 2)
    (traj,) = await eng.generate([t.prompt], temperature=0.0)
    assert traj.finish_reason == "length" and len(traj.completion_ids) == first + 2
    assert traj.segments[-1].kind == "tool" and traj.segments[-1].text == "\n4"
    # the model's own turn cut by the budget
    rec, eng = rollout(llm, tool, max_tool_calls=2, max_new_tokens=5)
    (traj,) = await eng.generate([t.prompt], temperature=0.0)
    assert (
        traj.finish_reason == "length"
        and len(traj.completion_ids) == 5
        and rec.requests[0][1]["max_tokens"] == 5
    )


def test_generate_sync_many_concurrent_and_from_a_thread(llm, tir_tokenizer):
    """The driver thread serves many trajectories at once; sync calls work repeatedly, from any thread."""
    eng = TIRRollout.from_llm(
        llm,
        tool=LatencyTool({"print(12 * 34 + 5)\n": 0.3, "print(413 - 5)\n": 0.05}),
        max_tool_calls=2,
        max_new_tokens=400,
    )
    prompts = [TRANSCRIPTS["torl"].prompt] * 2
    want = "".join(x for _, x in TRANSCRIPTS["torl"].segments)
    for _ in range(2):
        out = eng.generate_sync(prompts, n=4, temperature=0.0)
        assert [o.completion_text for o in out] == [want] * 8
        assert [o.metadata["prompt_index"] for o in out] == [0] * 4 + [1] * 4
    box = []
    th = threading.Thread(target=lambda: box.append(eng.generate_sync(prompts[:1], temperature=0.0)))
    th.start()
    th.join(120)
    assert box and box[0][0].num_tool_calls == 2
    eng.close_sync()
    # the LLM is still the caller's: it still generates
    from vllm import SamplingParams

    assert (
        llm.generate([{"prompt_token_ids": [1, 2, 3]}], SamplingParams(max_tokens=2))[0].outputs[0].token_ids
    )


async def test_a_cancelled_request_is_aborted_in_the_engine(llm):
    b = VLLMSyncBackend(llm)
    aborted: list = []
    orig = llm.llm_engine.abort_request
    llm.llm_engine.abort_request = lambda ids, *a, **k: (aborted.extend(ids), orig(ids, *a, **k))
    try:
        task = asyncio.create_task(b.generate(GenerationRequest([5, 6, 7], 900)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        out = await b.generate(GenerationRequest([5, 6, 7], 3, Sampling(temperature=0.0)))  # the engine still serves
        assert 1 <= len(out.token_ids) <= 3
        assert len(aborted) == 1
        assert llm.llm_engine.get_num_unfinished_requests() == 0
    finally:
        llm.llm_engine.abort_request = orig
        await b.close()
