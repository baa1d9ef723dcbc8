"""`TIRRollout.resume`: a counterfactual rollout from a recorded prefix, on the tiny TIR model (transformers
backend) and the real local sandbox. The prefix is reused token for token, only the suffix is generated."""

from __future__ import annotations

import pytest

from torl.core import Tool, ToolCall, ToolResult
from torl.rollout import TIRRollout, TransformersBackend
from torl.testing import WrappingTool

from .conftest import TRANSCRIPTS, RecordingBackend, make_tool


class CountingTool(WrappingTool):
    """The real sandbox, with every call it runs written down as (code, session)."""

    def __init__(self, inner: Tool) -> None:
        super().__init__(inner)
        self.runs: list[tuple[str, str | None]] = []

    async def run(self, call: ToolCall) -> ToolResult:
        self.runs.append((call.code, call.session))
        return await self.inner.run(call)


@pytest.fixture(scope="module")
def backend(tir_model_path):
    return TransformersBackend.from_model(tir_model_path)


@pytest.fixture
async def tool():
    t = CountingTool(make_tool())
    yield t
    await t.close()


def _engine(backend, tool, calls=2):
    return TIRRollout(RecordingBackend(backend), tool=tool, max_tool_calls=calls, max_new_tokens=120)


async def test_resume_with_the_recorded_output_gives_back_the_trajectory(backend, tool):
    eng = _engine(backend, tool)
    (t,) = await eng.generate([TRANSCRIPTS["torl"].prompt], temperature=0.0)
    assert t.num_tool_calls == 2 and t.error is None
    for call in (0, 1):
        r = await eng.resume(t, call, temperature=0.0)
        assert r.completion_ids == t.completion_ids and r.logprobs == t.logprobs and r.env_mask == t.env_mask
        assert r.segments == t.segments and r.finish_reason == t.finish_reason
        assert [c.call.code for c in r.tool_calls] == [c.call.code for c in t.tool_calls]
        assert [c.result.output for c in r.tool_calls] == [c.result.output for c in t.tool_calls]
        assert r.metadata["resumed"] == {"call": call, "prefix_tokens": t.segments[2 * call + 1].start}


async def test_only_the_suffix_is_generated_and_the_prefix_is_kept(backend, tool):
    eng = _engine(backend, tool)
    (t,) = await eng.generate([TRANSCRIPTS["torl"].prompt], temperature=0.0)
    rec = eng.backend
    rec.requests.clear()
    runs = len(tool.runs)
    swapped = ToolResult(output="999\n")
    r = await eng.resume(t, 0, swapped, temperature=0.0)
    start = t.segments[1].start
    assert r.completion_ids[:start] == t.completion_ids[:start]  # the recorded ids, not re-tokenized
    assert r.logprobs[:start] == t.logprobs[:start]
    assert r.segments[1].text == "\n999\n```\n" and r.tool_calls[0].result.output == "999\n"
    obs = eng.format.encode_env("\n999\n```\n", eng.tokenizer)
    assert r.completion_ids[start : start + len(obs)] == obs
    # the first request starts after the new observation: nothing before it is generated again
    first_prompt, _, _ = rec.requests[0]
    assert first_prompt == r.prompt_ids + r.completion_ids[: start + len(obs)]
    # every generated turn is a model segment after the prefix, with the ids and logprobs the backend returned
    new_turns = [s for s in r.segments if s.kind == "model" and s.start >= start]
    assert len(new_turns) == len(rec.requests)
    for seg, (sent, _, out) in zip(new_turns, rec.requests, strict=True):
        assert sent == r.prompt_ids + r.completion_ids[: seg.start]
        assert (
            r.completion_ids[seg.start : seg.end] == out.token_ids
            and r.logprobs[seg.start : seg.end] == out.logprobs
        )
    # the second call of the suffix ran in the sandbox; the first (replaced) did not run again
    assert [c for c, _ in tool.runs[runs:]] == [t.tool_calls[1].call.code]


async def test_the_resumed_output_is_cut_to_the_total_budget(backend, tool):
    """The new observation obeys every budget a normal rollout obeys, `max_total_tokens` included."""
    eng = _engine(backend, tool)
    (t,) = await eng.generate([TRANSCRIPTS["torl"].prompt], temperature=0.0)
    start = t.segments[1].start
    eng.max_total_tokens = len(t.prompt_ids) + start + 2
    r = await eng.resume(t, 0, ToolResult(output="123456789 987654321\n"), temperature=0.0)
    assert (r.segments[1].kind, r.segments[1].end - r.segments[1].start) == ("tool", 2)
    assert r.finish_reason == "length" and len(r.completion_ids) == start + 2


async def test_later_calls_get_the_disabled_result_and_run_nothing(backend, tool):
    eng = _engine(backend, tool, calls=3)
    (t,) = await eng.generate([TRANSCRIPTS["torl"].prompt], temperature=0.0)
    off = ToolResult.failure("sandbox_error", "The Python tool is unavailable.")
    runs = len(tool.runs)
    r = await eng.resume(t, 0, off, later_result=off, temperature=0.0)
    assert len(tool.runs) == runs  # nothing ran
    assert all(c.result == off for c in r.tool_calls)
    assert r.tool_calls[0].result.status == "sandbox_error"


async def test_earlier_cells_run_again_in_the_new_session_before_a_later_call(tir_tokenizer, tool):
    """Resumed at call 1, a later cell reads state that cell 0 built: the new session gets cell 0 again
    first. The TIR model never writes a third cell, so a scripted model does here (the sandbox is real)."""
    from .conftest import ScriptedBackend

    def script(prompt_ids, kw):
        text = tir_tokenizer.decode(prompt_ids)
        if "RuntimeError" in text:
            return "Again.\n```python\nprint(x + 1)\n```\n```output"
        n = text.count("```output")
        return [
            "```python\nx = 41\nprint(x)\n```\n```output",
            "```python\nprint(x)\n```\n```output",
            "So \\boxed{41}.",
        ][min(n, 2)]

    eng = TIRRollout(ScriptedBackend(tir_tokenizer, script), tool=tool, max_tool_calls=3, max_new_tokens=200)
    (t,) = await eng.generate(["Q: "], temperature=0.0)
    assert [c.result.output for c in t.tool_calls] == ["41\n", "41\n"]
    runs = len(tool.runs)
    r = await eng.resume(t, 1, ToolResult.failure("error", "RuntimeError: the cell failed"))
    ran = tool.runs[runs:]
    assert [c for c, _ in ran] == ["x = 41\nprint(x)\n", "print(x + 1)\n"]
    assert ran[0][1] is not None and ran[0][1] == ran[1][1]  # one session, the replayed cell first
    assert r.tool_calls[2].result.output == "42\n"  # the state was rebuilt


async def test_resume_refuses_a_call_it_cannot_resume(backend, tool):
    eng = _engine(backend, tool)
    (t,) = await eng.generate([TRANSCRIPTS["torl"].prompt], temperature=0.0)
    with pytest.raises(ValueError, match="no call 5"):
        await eng.resume(t, 5)
    broken = t.model_copy(deep=True)
    broken.tool_calls[0].output_segment = None
    with pytest.raises(ValueError, match="cannot resume it"):
        await eng.resume(broken, 0)
