"""The custom-tool example: the calculator as a torl Tool, and GRPO steps that use it."""

from __future__ import annotations

import math
import os

from tests.conftest import load_example
from torl.core import ToolCall


def _load(name):
    return load_example("custom_tool", name)


async def test_calculator_tool():
    tool = _load("calculator_tool").CalculatorTool()
    r = await tool.run(ToolCall(code="print(12 * 34 + 5)\n"))
    assert r.ok and r.output == "413\n"
    sid = await tool.open_session()
    assert (await tool.run(ToolCall(code="x = 2 ** 10", session=sid))).ok
    r = await tool.run(ToolCall(code="print(x / 4, sqrt(16))", session=sid))
    assert r.output == "256 4\n"
    await tool.close_session(sid)
    bad = await tool.run(ToolCall(code="print(y)"))
    assert bad.status == "error" and bad.error == "NameError: name 'y' is not defined"
    assert (await tool.run(ToolCall(code="import os"))).error.startswith("CalcError: unsupported statement")
    assert (await tool.run(ToolCall(code="print(1/0)"))).error == "ZeroDivisionError: division by zero"
    assert (await tool.run(ToolCall(code="print(9 ** 99999)"))).status == "error"
    assert (await tool.run(ToolCall(code="print(("))).error.startswith("SyntaxError")


def test_training_with_the_calculator(tir_model_path, tmp_path):
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    trainer = _load("train").main(["--model", tir_model_path, "--output-dir", str(tmp_path), "--steps", "2"])
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert trainer.state.global_step == 2 and all(math.isfinite(h["loss"]) for h in logs)
    from torl.core import load_jsonl

    trajs = [t for f in sorted((tmp_path / "trajectories").glob("*.jsonl")) for t in load_jsonl(f)]
    outputs = [r.result.output for t in trajs for r in t.tool_calls if r.result.ok]
    assert "413\n" in outputs  # the model's print(12 * 34 + 5) went through the calculator
    assert all(t.reward_breakdown["torl"] in (1.0, -1.0) and t.correct is not None for t in trajs)
