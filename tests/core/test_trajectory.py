import subprocess
import sys

import pytest
from pydantic import ValidationError

from torl import Segment, ToolCall, ToolCallRecord, ToolResult, Trajectory, load_jsonl, save_jsonl


def make_trajectory() -> Trajectory:
    return Trajectory(
        prompt=[{"role": "user", "content": "What is 2+2? ünïcødé"}],
        prompt_ids=[1, 2, 3],
        completion_ids=[10, 11, 12, 13, 14],
        logprobs=[-0.5, -1.25, 0.0, 0.0, -3.0e-7],
        env_mask=[1, 1, 0, 0, 1],
        segments=[
            Segment(kind="model", text="```python\nprint(2+2)\n```", start=0, end=2),
            Segment(kind="tool", text="\n4\n```\n", start=2, end=4),
            Segment(kind="model", text="\\boxed{4}", start=4, end=5),
        ],
        tool_calls=[
            ToolCallRecord(
                call=ToolCall(code="print(2+2)"),
                result=ToolResult(output="4\n", duration_s=0.01),
                turn=0,
                output_segment=1,
            )
        ],
        num_turns=2,
        finish_reason="stop",
        reward=1.0,
        reward_breakdown={"correct": 1.0, "exec_penalty": None},
        metadata={"prompt_index": 0, "nested": {"a": [1, 2]}},
    )


def test_round_trip_json_lines(tmp_path):
    t = make_trajectory()
    path = tmp_path / "t.jsonl"
    save_jsonl([t, t], path)
    back = load_jsonl(path)
    assert back == [t, t]
    assert back[0].logprobs[-1] == -3.0e-7  # floats survive exactly
    assert back[0].num_tool_calls == 1
    assert back[0].completion_text == "```python\nprint(2+2)\n```\n4\n```\n\\boxed{4}"
    assert back[0].model_text == "```python\nprint(2+2)\n```\\boxed{4}"
    assert back[0].num_model_tokens == 3
    assert not back[0].tool_failed


def test_misaligned_arrays_are_rejected():
    with pytest.raises(ValidationError, match="same length"):
        Trajectory(prompt_ids=[1], completion_ids=[1, 2], logprobs=[0.0], env_mask=[1, 1])
    with pytest.raises(ValidationError, match="outside completion"):
        Trajectory(
            prompt_ids=[1], completion_ids=[1], logprobs=[0.0], env_mask=[1],
            segments=[Segment(kind="model", text="x", start=0, end=3)],
        )


def test_tool_result_failure():
    r = ToolResult.failure("timeout", "cell ran past 5 s")
    assert not r.ok and r.status == "timeout" and r.error == "cell ran past 5 s"


def test_import_is_light():
    code = (
        "import sys, time; t = time.perf_counter(); import torl; dt = time.perf_counter() - t;"
        "heavy = [m for m in ('torch', 'vllm', 'docker', 'transformers', 'trl') if m in sys.modules];"
        "print(dt, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    dt, heavy = out.split(" ", 1)
    assert heavy.strip() == "[]", heavy
    assert float(dt) < 0.5
