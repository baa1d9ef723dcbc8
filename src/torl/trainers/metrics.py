"""What ToRL and ZERO-TIR watch during training, computed from a batch of trajectories."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torl.core import Trajectory
from torl.rewards.provenance import provenance_rates, recorded_provenance

__all__ = ["trajectory_metrics"]


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def trajectory_metrics(trajectories: Sequence[Trajectory]) -> dict[str, float]:
    """Batch means, logged by the trainer under `tir/`:

    - `accuracy`: share judged correct (`Trajectory.correct`); NaN when no reward judges answers
    - `reward`: mean `Trajectory.reward`, when the trajectories have one (not in training: TRL logs it)
    - `tool_calls`: tool calls per trajectory; `frac_with_tool_call`: share with at least one call
    - `code_error_rate`: share of tool calls that did not succeed (error, timeout, limits, sandbox failure);
      `frac_with_code_error`: share of trajectories with at least one failed call
    - `turns`: model turns per trajectory
    - `response_length`: completion tokens (model + tool output); `model_tokens`, `tool_tokens`
    - `truncation_rate`: share that ran out of token budget (`finish_reason == "length"`);
      `max_turns_rate`, `error_rate`: shares that hit the turn budget or failed
    - `tool_latency_s` (mean) and `tool_latency_max_s` over the calls; `tool_time_s`, `generation_time_s`:
      per-trajectory wall time in the tool and in generation
    - `tool_cache_hit_rate`: share of tool calls answered from the tool-result log (`tool_cache=True`)
    - provenance (`torl.rewards.provenance`): `answer_copied` (the final answer was in a tool output
      first), `answer_derived` (of those that used the tool and answered, share not copied),
      `boxed_by_code`, `hardcoded_answer`, and shares with `repeated_cells` and `echo_calls`
    """
    ts = list(trajectories)
    if not ts:
        return {}
    calls = [r for t in ts for r in t.tool_calls]
    lat = [r.result.duration_s for r in calls]
    acc = [float(c) for t in ts if (c := t.correct) is not None]
    rewards = [t.reward for t in ts if t.reward is not None and not math.isnan(t.reward)]
    timings = [t.metadata.get("timings") or {} for t in ts]
    out = {
        "accuracy": _mean(acc),
        "tool_calls": _mean([t.num_tool_calls for t in ts]),
        "frac_with_tool_call": _mean([float(t.num_tool_calls > 0) for t in ts]),
        "code_error_rate": _mean([float(not r.result.ok) for r in calls]) if calls else 0.0,
        "frac_with_code_error": _mean([float(t.tool_failed) for t in ts]),
        "turns": _mean([t.num_turns for t in ts]),
        "response_length": _mean([len(t.completion_ids) for t in ts]),
        "model_tokens": _mean([t.num_model_tokens for t in ts]),
        "tool_tokens": _mean([len(t.completion_ids) - t.num_model_tokens for t in ts]),
        "truncation_rate": _mean([float(t.finish_reason == "length") for t in ts]),
        "max_turns_rate": _mean([float(t.finish_reason == "max_turns") for t in ts]),
        "error_rate": _mean([float(t.finish_reason == "error") for t in ts]),
        "tool_latency_s": _mean(lat) if lat else 0.0,
        "tool_latency_max_s": max(lat) if lat else 0.0,
        "tool_time_s": _mean([float(x.get("tool_s", 0.0)) for x in timings]),
        "generation_time_s": _mean([float(x.get("generation_s", 0.0)) for x in timings]),
    }
    out["tool_cache_hit_rate"] = _mean([float(r.result.cached) for r in calls]) if calls else 0.0
    out.update(provenance_rates([recorded_provenance(t) for t in ts if t.finish_reason != "error"]))
    if rewards:  # set when one reward scored them (evaluation); in training TRL logs the reward itself
        out["reward"] = _mean(rewards)
    return out
