"""Several tools per trajectory, for real: a tiny model that calls the Python sandbox and the calculator
by name in one chat turn (native JSON tool calls) on real vLLM; each call reaches its own tool."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.conftest import cache_dir
from torl.rollout import TIRRollout, VLLMSyncBackend
from torl.testing.transcripts import CHAT_TWO_TOOLS

from .conftest import RecordingBackend, check_token_exact, check_transcript, make_tool

pytestmark = pytest.mark.vllm
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_tool"


def _calculator():
    spec = importlib.util.spec_from_file_location("calc_example_two_tools", EXAMPLE / "calculator_tool.py")
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(EXAMPLE))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(EXAMPLE))
    return mod.CalculatorTool()


class Counted:
    """Counts the calls that reach a tool (wraps its `run`, the tool stays real)."""

    def __init__(self, tool):
        self.tool, self.codes = tool, []
        run = tool.run

        async def counted(call):
            self.codes.append(call.code)
            return await run(call)

        tool.run = counted


@pytest.fixture(scope="module")
def two_tools_model():
    from torl.testing import build_tir_model

    return build_tir_model(cache_dir() / "tiny-two-tools", [CHAT_TWO_TOOLS])


async def test_each_named_call_reaches_its_own_tool(two_tools_model):
    from vllm import LLM

    llm = LLM(model=two_tools_model, max_model_len=1024, logprobs_mode="processed_logprobs", seed=0,
              dtype="float32", enable_chunked_prefill=False, max_num_batched_tokens=2048, enforce_eager=True)
    try:
        python, calc = Counted(make_tool()), Counted(_calculator())
        rec = RecordingBackend(VLLMSyncBackend(llm))
        eng = TIRRollout(rec, tools=[python.tool, calc.tool], tir_format="chat", max_tool_calls=2)
        assert eng.format.tools == CHAT_TWO_TOOLS.tools  # both schemas reach the chat template
        (t,) = await eng.generate([CHAT_TWO_TOOLS.prompt], temperature=0.0)
        await python.tool.close()
    finally:
        llm.llm_engine.engine_core.shutdown()
    check_transcript(t, CHAT_TWO_TOOLS, eng.tokenizer)
    check_token_exact(t, rec.requests)
    assert python.codes == ["print(6 * 7)"] and calc.codes == ["print(2 + 2)"]
    assert [(r.call.name, r.result.output) for r in t.tool_calls] == [("python", "42\n"), ("calculator", "4\n")]
