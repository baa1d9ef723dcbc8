"""Several tools per trajectory, for real: a tiny model that calls the Python sandbox and the calculator
by name in one chat turn (native JSON tool calls) on real vLLM; each call reaches its own tool."""

from __future__ import annotations

import pytest

from tests.conftest import cache_dir, load_example
from torl.rollout import TIRRollout
from torl.testing.transcripts import CHAT_TWO_TOOLS

from .conftest import RecordingBackend, check_token_exact, check_transcript, make_tool

pytestmark = pytest.mark.vllm


def _calculator():
    return load_example("custom_tool", "calculator_tool").CalculatorTool()


class Counted:
    """Counts the calls that reach a tool, one by one or in batches (wraps the real tool's methods)."""

    def __init__(self, tool):
        self.tool, self.codes = tool, []
        run, run_many = tool.run, tool.run_many

        async def counted(call):
            self.codes.append(call.code)
            return await run(call)

        async def counted_many(calls):
            self.codes.extend(c.code for c in calls)
            return await run_many(calls)

        tool.run, tool.run_many = counted, counted_many


@pytest.fixture(scope="module")
def two_tools_model():
    from torl.testing import build_tir_model

    return build_tir_model(cache_dir() / "tiny-two-tools", [CHAT_TWO_TOOLS])


async def test_each_named_call_reaches_its_own_tool(two_tools_model):
    # AsyncLLM: its engine core runs in a process of its own (no state shared with other tests' engines)
    python, calc = Counted(make_tool()), Counted(_calculator())
    eng = TIRRollout.from_vllm(
        two_tools_model, tools=[python.tool, calc.tool], tir_format="chat", max_tool_calls=2,
        engine_kwargs={"max_model_len": 1024, "dtype": "float32", "enforce_eager": True, "seed": 0},
    )
    rec = RecordingBackend(eng.backend)
    eng.backend = rec
    try:
        assert eng.format.tools == CHAT_TWO_TOOLS.tools  # both schemas reach the chat template
        (t,) = await eng.generate([CHAT_TWO_TOOLS.prompt], temperature=0.0)
    finally:
        await rec.inner.close()
        await python.tool.close()
    check_transcript(t, CHAT_TWO_TOOLS, eng.tokenizer)
    check_token_exact(t, rec.requests)
    assert python.codes == ["print(6 * 7)"] and calc.codes == ["print(2 + 2)"]
    assert [(r.call.name, r.result.output) for r in t.tool_calls] == [("python", "42\n"), ("calculator", "4\n")]
