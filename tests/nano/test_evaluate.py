"""Scores of the nano evaluation: accuracy, tool use and code errors, overall and per size."""

from __future__ import annotations

from torl.core import ToolCall, ToolCallRecord, ToolResult, Trajectory
from torl.nano.evaluate import nano_table, summarize_nano


def _traj(size: str, correct: bool, calls: list[str]) -> Trajectory:
    records = [
        ToolCallRecord(call=ToolCall(code="print(1)"), result=ToolResult(status=s), turn=0) for s in calls
    ]
    return Trajectory(
        prompt_ids=[1],
        tool_calls=records,
        reward=1.0 if correct else -1.0,
        reward_breakdown={"correct": 1.0 if correct else 0.0},
        metadata={"size": size},
    )


def test_summarize_nano_counts_per_size():
    ts = [
        _traj("small", True, []),
        _traj("small", True, ["ok"]),
        _traj("large", False, []),
        _traj("large", True, ["ok"]),
        _traj("large", False, ["error"]),
        _traj("large", False, ["ok", "timeout"]),
    ]
    s = summarize_nano(ts)
    assert s.n == 6
    assert s.accuracy == 3 / 6
    assert s.tool_use == 4 / 6
    assert s.code_error_rate == 2 / 5  # per call
    assert s.by_size["small"] == {"n": 2, "accuracy": 1.0, "tool_use": 0.5, "code_error_rate": 0.0,
                                  "reliance": None, "follows_output": None}  # no counterfactual runs
    assert s.by_size["large"]["accuracy"] == 0.25 and s.by_size["large"]["tool_use"] == 0.75
    assert s.by_size["large"]["code_error_rate"] == 2 / 4


def test_no_tool_calls_means_no_error_rate():
    s = summarize_nano([_traj("small", False, [])])
    assert s.code_error_rate is None and s.accuracy == 0.0 and "large" not in s.by_size
    table = nano_table({"before greedy": s})
    assert "before greedy" in table and "   -  " in table and "0.0%" in table
