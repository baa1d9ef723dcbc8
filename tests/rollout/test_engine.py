"""Engine logic with a scripted backend: budgets, failures, concurrency, sync use. The same paths run on
real engines in test_vllm_*.py / test_transformers.py; this file reaches the corners those cannot."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import ClassVar

import pytest

from torl.core import Tool, ToolCall, ToolResult
from torl.rollout import BUDGET_SPENT_MESSAGE, HTTPBackend, TIRRollout, torl_prompt

from .conftest import LatencyTool, ScriptedBackend

CELL = "Compute.\n```python\nprint(6 * 7)\n```\n```output"


def always_code(prompt_ids, kw):
    return CELL if kw["stop"] else CELL + "\n42\n```\nDone \\boxed{42}.<|endoftext|>"


async def test_budget_continue_runs_c_calls_then_a_final_round(tir_tokenizer):
    b = ScriptedBackend(tir_tokenizer, always_code)
    eng = TIRRollout(b, tool=LatencyTool(), max_tool_calls=2, max_new_tokens=500)
    (t,) = await eng.generate([torl_prompt("q")], seed=1)
    assert t.num_tool_calls == 2 and t.num_turns == 3 and t.finish_reason == "stop"
    assert [r[1]["stop"] for r in b.requests] == [["```output"], ["```output"], []]
    assert [s.kind for s in t.segments] == ["model", "tool", "model", "tool", "model"]
    assert t.segments[1].text == "\n42\n```\n"
    assert len({r[1]["seed"] for r in b.requests}) == 3  # a fresh seed per turn
    (u,) = await eng.generate([torl_prompt("q")])
    assert u.metadata["seed"] is None and b.requests[-1][1]["seed"] is None


async def test_budget_zero_is_plain_generation(tir_tokenizer):
    b = ScriptedBackend(tir_tokenizer, always_code)
    (t,) = await TIRRollout(b, tool=LatencyTool(), max_tool_calls=0).generate([torl_prompt("q")])
    assert t.num_tool_calls == 0 and t.num_turns == 1 and b.requests[0][1]["stop"] == []
    assert t.env_mask == [1] * len(t.completion_ids)


async def test_budget_notify_answers_without_running(tir_tokenizer):
    tool = LatencyTool()
    b = ScriptedBackend(tir_tokenizer, always_code)
    eng = TIRRollout(b, tool=tool, max_tool_calls=1, over_budget="notify", max_turns=3)
    (t,) = await eng.generate([torl_prompt("q")])
    assert len(tool.calls) == 1 and t.num_tool_calls == 1
    tools = [s.text for s in t.segments if s.kind == "tool"]
    assert tools == ["\n42\n```\n", "\n" + BUDGET_SPENT_MESSAGE + "\n```\n"]
    assert all(r[1]["stop"] == ["```output"] for r in b.requests)
    assert t.finish_reason == "max_turns" and t.num_turns == 3


async def test_tool_output_over_token_budget_is_cut(tir_tokenizer):
    class Long(Tool):
        async def run(self, call):
            return ToolResult(output="9" * 200)

    b = ScriptedBackend(tir_tokenizer, always_code)
    first = len(tir_tokenizer(CELL, add_special_tokens=False)["input_ids"])
    eng = TIRRollout(b, tool=Long(), max_tool_calls=2, max_new_tokens=first + 3)
    (t,) = await eng.generate([torl_prompt("q")])
    assert t.finish_reason == "length" and len(t.completion_ids) == first + 3
    assert t.segments[-1].kind == "tool" and t.segments[-1].end - t.segments[-1].start == 3
    assert t.num_tool_calls == 1 and len(b.requests) == 1


async def test_model_budget_and_max_model_len(tir_tokenizer):
    prompt = torl_prompt("q")
    n_prompt = len(tir_tokenizer(prompt, add_special_tokens=False)["input_ids"])
    b = ScriptedBackend(tir_tokenizer, always_code, max_model_len=n_prompt + 10)
    (t,) = await TIRRollout(b, tool=LatencyTool(), max_new_tokens=100).generate([prompt])
    assert (
        b.requests[0][1]["max_tokens"] == 10 and t.finish_reason == "length" and len(t.completion_ids) == 10
    )
    b2 = ScriptedBackend(tir_tokenizer, always_code, max_model_len=n_prompt)
    (t2,) = await TIRRollout(b2, tool=LatencyTool()).generate([prompt])
    assert t2.finish_reason == "error" and "max_model_len" in t2.error and not b2.requests


async def test_one_failure_never_kills_the_batch(tir_tokenizer):
    def script(ids, kw):
        if "BOOM" in tir_tokenizer.decode(ids):
            raise RuntimeError("engine fell over")
        return always_code(ids, kw)

    class Crashy(Tool):
        async def run(self, call):
            raise OSError("sandbox died")

    b = ScriptedBackend(tir_tokenizer, script)
    prompts = [torl_prompt("ok"), torl_prompt("BOOM"), [{"role": "user", "content": "hi"}]]
    out = await TIRRollout(b, tool=LatencyTool(), max_tool_calls=1).generate(prompts, n=2)
    assert [t.metadata["prompt_index"] for t in out] == [0, 0, 1, 1, 2, 2]
    assert [t.finish_reason for t in out] == ["stop", "stop", "error", "error", "stop", "stop"]
    assert "engine fell over" in out[2].error
    # a tool that raises: the trajectory keeps what was generated and says why it ended
    (t,) = await TIRRollout(b, tool=Crashy(), max_tool_calls=1).generate([torl_prompt("ok")])
    assert t.finish_reason == "error" and "sandbox died" in t.error and t.completion_text == CELL
    # a prompt the format cannot encode fails alone
    bad = await TIRRollout(b, tool=LatencyTool(), tir_format="chat").generate(
        ["raw text", [{"role": "user", "content": "x"}]]
    )
    assert bad[0].finish_reason == "error" and "could not be encoded" in bad[0].error
    assert bad[1].finish_reason == "stop"


async def test_tool_timeout_and_missing_tool(tir_tokenizer):
    b = ScriptedBackend(tir_tokenizer, always_code)
    eng = TIRRollout(b, tool=LatencyTool(5.0), max_tool_calls=1, tool_timeout_s=0.1)
    (t,) = await eng.generate([torl_prompt("q")])
    assert t.tool_calls[0].result.status == "timeout" and t.segments[1].text == "\nTimeout Error\n```\n"
    (t,) = await TIRRollout(b, tool=None, max_tool_calls=1).generate([torl_prompt("q")])
    assert t.tool_calls[0].result.status == "sandbox_error" and t.finish_reason == "stop"


async def test_concurrency_bound(tir_tokenizer):
    live = peak = 0

    class Counting(ScriptedBackend):
        async def generate(self, request):
            nonlocal live, peak
            live += 1
            peak = max(peak, live)
            try:
                return await super().generate(request)
            finally:
                live -= 1

    b = Counting(tir_tokenizer, always_code, delay=0.01)
    out = await TIRRollout(b, tool=LatencyTool(0.01), max_concurrency=3).generate([torl_prompt("q")], n=10)
    assert len(out) == 10 and peak == 3


async def test_no_barrier_between_trajectories(tir_tokenizer):
    """A trajectory whose cell is slow does not hold up another one: the fast one finishes first."""

    def script(ids, kw):
        text = tir_tokenizer.decode(ids)
        slow = "SLOW" in text
        if kw["stop"]:
            return f"```python\nprint({'1' if slow else '2'})\n```\n```output"
        return "done<|endoftext|>"

    tool = LatencyTool({"print(1)\n": 1.0, "print(2)\n": 0.0})
    b = ScriptedBackend(tir_tokenizer, script)
    t0 = time.perf_counter()
    done: dict[str, float] = {}
    eng = TIRRollout(b, tool=tool, max_tool_calls=1)

    async def one(p):
        (t,) = await eng.generate([torl_prompt(p)])
        done[p] = time.perf_counter() - t0
        return t

    slow, fast = await asyncio.gather(one("SLOW"), one("FAST"))
    assert slow.finish_reason == fast.finish_reason == "stop"
    assert done["FAST"] < 0.5 < done["SLOW"]
    assert fast.metadata["timings"]["tool_s"] < 0.5 <= slow.metadata["timings"]["tool_s"]


def test_generate_sync_repeatedly_and_from_threads(tir_tokenizer):
    b = ScriptedBackend(tir_tokenizer, always_code)
    eng = TIRRollout(b, tool=LatencyTool(), max_tool_calls=1)
    a = eng.generate_sync([torl_prompt("q")], n=2, seed=5)
    c = eng.generate_sync([torl_prompt("q")], n=2, seed=5)
    assert [t.metadata["seed"] for t in a] == [5, 6] == [t.metadata["seed"] for t in c]
    box = []
    th = threading.Thread(target=lambda: box.append(eng.generate_sync([torl_prompt("q")], temperature=0.5)))
    th.start()
    th.join(30)
    assert box and box[0][0].finish_reason == "stop" and b.requests[-1][1]["temperature"] == 0.5
    eng.close_sync()


def test_bad_arguments(tir_tokenizer):
    b = ScriptedBackend(tir_tokenizer, always_code)
    with pytest.raises(ValueError):
        TIRRollout(b, over_budget="later")
    eng = TIRRollout(b)
    with pytest.raises(TypeError):
        eng.generate_sync("one prompt")
    with pytest.raises(ValueError):
        eng.generate_sync(["p"], n=0)


def test_http_replica_choice_is_sticky_and_balanced():
    h = HTTPBackend(["http://a:1/v1", "http://b:2"], "m", tokenizer=None)
    assert h.base_urls == ["http://a:1", "http://b:2"]
    first = h._pick(("batch", 0))
    h._inflight[first] += 1
    second = h._pick(("batch", 1))
    assert second != first  # the idle replica
    h._inflight[second] += 5
    assert h._pick(("batch", 0)) == first  # sticky even though another is idle now
    assert h._pick(None) == first  # least loaded
    with pytest.raises(ValueError):
        HTTPBackend([], "m", None)


async def test_call_with_session(tir_tokenizer):
    class Sessions(LatencyTool):
        opened = closed = 0
        seen: ClassVar[list] = []

        async def open_session(self):
            Sessions.opened += 1
            return f"s{Sessions.opened}"

        async def close_session(self, session):
            Sessions.closed += 1

        async def run(self, call: ToolCall):
            Sessions.seen.append(call.session)
            return await super().run(call)

    b = ScriptedBackend(tir_tokenizer, always_code)
    await TIRRollout(b, tool=Sessions(), max_tool_calls=2).generate([torl_prompt("q")], n=2)
    assert Sessions.opened == Sessions.closed == 2
    assert sorted(Sessions.seen) == ["s1", "s1", "s2", "s2"]
    await TIRRollout(b, tool=Sessions(), max_tool_calls=0).generate([torl_prompt("q")])
    assert Sessions.opened == 2  # no call, no session


def test_seeds_dropped_only_where_vllm_cpu_would_crash():
    from torl.rollout.backends import _safe_seed

    assert _safe_seed(5, False) == 5 and _safe_seed(None, True) is None
    assert _safe_seed(5, True) is None


async def test_torl_rendering_with_the_real_sandbox(tir_tokenizer):
    """Error -> last traceback line; long output -> 128 + "..." + 128; empty output -> ToRL's timeout text."""
    cells = iter(
        ["print(a)", "print('x' * 150 + 'y' * 150)", "x = 1", "import sys; sys.stdout.write('  7  ')"]
    )

    def script(ids, kw):
        return f"```python\n{next(cells)}\n```\n```output" if kw["stop"] else "done<|endoftext|>"

    from .conftest import make_tool

    async with make_tool() as tool:
        eng = TIRRollout(
            ScriptedBackend(tir_tokenizer, script), tool=tool, max_tool_calls=4, max_new_tokens=2000
        )
        (t,) = await eng.generate([torl_prompt("q")])
    tools = [s.text for s in t.segments if s.kind == "tool"]
    assert tools[0] == "\nNameError: name 'a' is not defined\n```\n"
    assert tools[1] == "\n" + "x" * 128 + "..." + "y" * 128 + "\n```\n"
    assert tools[2] == "\nTimeout Error\n```\n"
    assert tools[3] == "\n7\n```\n"
    assert [r.result.status for r in t.tool_calls] == ["error", "ok", "ok", "ok"]
    assert t.tool_failed and t.finish_reason == "stop"


async def test_chat_calls_are_routed_by_tool_name(tir_tokenizer):
    """Each named call reaches its own tool; an unknown name is an error result the model sees."""

    class Named(LatencyTool):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    calls = (
        '<tool_call>{"name": "python", "arguments": {"code": "print(6 * 7)"}}</tool_call>'
        '<tool_call>{"name": "calc", "arguments": {"code": "print(2 + 2)"}}</tool_call>'
        '<tool_call>{"name": "nope", "arguments": {"code": "print(1)"}}</tool_call><|im_end|>'
    )

    def script(ids, kw):
        return calls if "<tool_response>" not in tir_tokenizer.decode(ids) else "done<|im_end|>"

    python, calc = Named("python"), Named("calc")
    b = ScriptedBackend(tir_tokenizer, script)
    eng = TIRRollout(b, tools=[python, calc], tir_format="chat", max_tool_calls=3)
    (t,) = await eng.generate([[{"role": "user", "content": "q"}]])
    assert [c for _, c in python.calls] == ["print(6 * 7)"] and [c for _, c in calc.calls] == ["print(2 + 2)"]
    results = [(r.call.name, r.result.status, r.result.output or r.result.error) for r in t.tool_calls]
    assert results[:2] == [("python", "ok", "42\n"), ("calc", "ok", "4\n")]
    assert results[2][:2] == ("nope", "error") and "unknown tool 'nope'" in results[2][2]
    assert "unknown tool" in t.segments[1].text and python.started and calc.started
    # both tools' schemas reach the chat template
    assert [s["function"]["name"] for s in eng.format.tools] == ["python", "calc"]
    with pytest.raises(ValueError, match="two tools are named"):
        TIRRollout(b, tools=[Named("x"), Named("x")], tir_format="chat")


async def test_cells_ready_together_go_to_the_tool_as_one_batch(tir_tokenizer):
    """Trajectories whose cells are ready in the same moment reach a batching tool in one `run_many`
    (here the real local sandbox, whose run_many feeds its workers from one queue)."""
    from torl.tools import LocalSandbox

    class Counting(LocalSandbox):
        batches: list[int] = []

        async def run_many(self, calls):
            self.batches.append(len(calls))
            return await super().run_many(calls)

    b = ScriptedBackend(tir_tokenizer, always_code)
    async with Counting(timeout_s=5, workers=2, preload=()) as sb:
        eng = TIRRollout(b, tool=sb, max_tool_calls=1, stateful=False)  # stateless cells: no session to open
        out = await eng.generate([torl_prompt("q")], n=6)
    assert [t.tool_calls[0].result.output for t in out] == ["42\n"] * 6
    assert Counting.batches == [6]  # all six cells, one batch
    assert all(t.tool_calls[0].result.duration_s > 0 for t in out)


async def test_a_batching_tool_that_breaks_fails_its_trajectories_not_the_engine(tir_tokenizer):
    class Broken(LatencyTool):
        async def run_many(self, calls):
            return [ToolResult(output="1\n")]  # one result for several calls

    b = ScriptedBackend(tir_tokenizer, always_code)
    out = await TIRRollout(b, tool=Broken(), max_tool_calls=1).generate([torl_prompt("q")], n=3)
    assert [t.finish_reason for t in out] == ["error"] * 3 and "gave 1 results for 3 calls" in out[0].error
