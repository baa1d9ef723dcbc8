"""Training metrics from trajectories, and the trainer's argument checks (no model run)."""

from __future__ import annotations

import math

import pytest

from torl.core import Segment, ToolCall, ToolCallRecord, ToolResult, Trajectory
from torl.trainers import TIRGRPOConfig, trajectory_metrics


def _traj(calls=(), finish="stop", reward=None, correct=None, n_model=4, n_tool=0):
    ids = list(range(n_model + n_tool))
    mask = [1] * n_model + [0] * n_tool
    segs = [Segment(kind="model", text="m", start=0, end=n_model)]
    if n_tool:
        segs.append(Segment(kind="tool", text="t", start=n_model, end=n_model + n_tool))
    recs = [ToolCallRecord(call=ToolCall(code="x"), result=r, turn=0, output_segment=1 if n_tool else None)
            for r in calls]
    bd = {} if correct is None else {"torl": reward, "torl/correct": correct, "correct": correct}
    return Trajectory(prompt_ids=[1], completion_ids=ids, logprobs=[0.0] * len(ids), env_mask=mask, segments=segs,
                      tool_calls=recs, num_turns=1 + len(calls), finish_reason=finish, reward=reward,
                      reward_breakdown=bd, metadata={"timings": {"generation_s": 1.0, "tool_s": 0.5}})


def test_trajectory_metrics():
    ok = ToolResult(output="1\n", duration_s=0.2)
    bad = ToolResult.failure("error", "NameError: x", duration_s=0.4)
    ts = [
        _traj([ok, bad], reward=1.0, correct=1.0, n_tool=6),
        _traj([ok], reward=-1.0, correct=0.0, n_tool=2, finish="length"),
        _traj(reward=-1.0, correct=0.0),
        _traj(finish="error"),
    ]
    m = trajectory_metrics(ts)
    assert m["tool_calls"] == pytest.approx(3 / 4)
    assert m["frac_with_tool_call"] == pytest.approx(2 / 4)
    assert m["code_error_rate"] == pytest.approx(1 / 3)
    assert m["frac_with_code_error"] == pytest.approx(1 / 4)
    assert m["accuracy"] == pytest.approx(1 / 3)  # the failed rollout has no verdict
    assert m["reward"] == pytest.approx(-1 / 3)
    assert m["truncation_rate"] == m["error_rate"] == pytest.approx(1 / 4)
    assert m["turns"] == pytest.approx((3 + 2 + 1 + 1) / 4)
    assert m["response_length"] == pytest.approx((10 + 6 + 4 + 4) / 4)
    assert m["tool_tokens"] == pytest.approx(2.0) and m["model_tokens"] == pytest.approx(4.0)
    assert m["tool_latency_s"] == pytest.approx(0.8 / 3) and m["tool_latency_max_s"] == pytest.approx(0.4)
    assert trajectory_metrics([]) == {}
    assert math.isnan(trajectory_metrics([_traj()])["accuracy"])


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"max_tool_calls": -1}, "max_tool_calls"),
        ({"over_budget": "stop"}, "over_budget"),
        ({"save_trajectories_steps": -2}, "save_trajectories_steps"),
        ({"rollout_max_concurrency": 0}, "rollout_max_concurrency"),
        ({"tool_cache_log": "tool_log.jsonl"}, "tool_cache_log needs tool_cache"),
    ],
)
def test_config_rejects_bad_values(tmp_path, kw, message):
    with pytest.raises(ValueError, match=message):
        TIRGRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, **kw)


def test_trainer_rejects_bad_arguments_before_loading(tmp_path):
    from datasets import Dataset
    from trl import GRPOConfig

    from torl.trainers import TIRGRPOTrainer

    args = TIRGRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False)
    ds = Dataset.from_dict({"prompt": ["p"], "answer": ["1"]})
    with pytest.raises(ValueError, match="'prompt' column"):
        TIRGRPOTrainer("unused", [], args, Dataset.from_dict({"problem": ["p"]}))
    with pytest.raises(TypeError, match="TIRGRPOConfig"):
        TIRGRPOTrainer("unused", [], GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False), ds)
    with pytest.raises(ValueError, match="rollout_func"):
        TIRGRPOTrainer("unused", [], args, ds, rollout_func=lambda p, t: {})
    with pytest.raises(TypeError, match="torl Tool"):
        TIRGRPOTrainer("unused", [], args, ds, tool=print)
    bad = TIRGRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, repetition_penalty=1.1)
    with pytest.raises(ValueError, match="repetition_penalty"):
        TIRGRPOTrainer("unused", [], bad, ds)
