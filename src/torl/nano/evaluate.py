"""Evaluate a nano model on held-out problems with the real rollout engine, sandbox and ToRL reward.

Metrics: accuracy, share of answers that used the tool, code error rate (share of tool calls that
failed), each also per problem size (small: safe by hand; large: needs the tool). The tool statistics
are `torl.eval.tool_stats`; the names here say "nano" because `torl.eval` has its own `evaluate`,
`summarize` and `format_table` for benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from torl.core import Trajectory
from torl.eval.counterfactual import summarize_counterfactual
from torl.eval.metrics import tool_stats
from torl.nano.tasks import NanoProblem


@dataclass
class NanoScores:
    """Summary of one evaluation; rates are in [0, 1] (None when there is nothing to rate)."""

    n: int
    accuracy: float
    tool_use: float
    code_error_rate: float | None
    by_size: dict[str, dict[str, Any]] = field(default_factory=dict)
    reliance: float | None = None
    """Share of tool-using answers that change whenever the tool's output is taken away (counterfactual
    runs, `torl.eval.relies_on_tool`; None: not run)."""
    follows_output: float | None = None
    """Share of tool-using answers that change with another problem's output swapped in."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rates(trajs: Sequence[Trajectory]) -> tuple[float, float, float | None]:
    correct = sum(1 for t in trajs if t.correct)
    tools = tool_stats(trajs)
    return correct / max(len(trajs), 1), tools["tool_use_rate"], tools["code_error_rate"]


def _reliance(trajs: Sequence[Trajectory]) -> tuple[float | None, float | None]:
    g = summarize_counterfactual(trajs, lambda t: "")["overall"]
    return g["reliance"], g["follows_output"]


def summarize_nano(trajectories: Sequence[Trajectory]) -> NanoScores:
    """Scores of scored trajectories (`Trajectory.correct`; `metadata["size"]` for the split; the
    reliance rates when they have counterfactual runs, `torl.eval.counterfactual`)."""
    acc, tool, err = _rates(trajectories)
    by_size: dict[str, dict[str, Any]] = {}
    for size in ("small", "large"):
        part = [t for t in trajectories if t.metadata.get("size") == size]
        if part:
            a, u, e = _rates(part)
            r, f = _reliance(part)
            by_size[size] = {"n": len(part), "accuracy": a, "tool_use": u, "code_error_rate": e,
                             "reliance": r, "follows_output": f}
    return NanoScores(len(trajectories), acc, tool, err, by_size, *_reliance(trajectories))


async def evaluate_nano(
    engine: Any,
    problems: Sequence[NanoProblem],
    *,
    reward: Any = None,
    n: int = 1,
    temperature: float = 0.0,
    seed: int = 0,
    counterfactual: bool = False,
) -> tuple[NanoScores, list[Trajectory]]:
    """Roll out `n` samples per problem with `engine` (a `TIRRollout`), score them with `reward`
    (default `ToRLReward()`), and summarize. Greedy (temperature 0) by default, as ToRL evaluates.
    `counterfactual`: also re-run every tool call with the tool disabled, an error, and another problem's
    output (`torl.eval.run_counterfactuals`, at the same temperature), for the reliance rates; the runs
    are in the returned trajectories' `metadata["counterfactual"]`."""
    from torl.eval.counterfactual import CounterfactualSettings, run_counterfactuals
    from torl.rewards import ToRLReward, record_provenance

    if not problems:
        raise ValueError("evaluate_nano needs at least one problem")
    reward = reward or ToRLReward()
    meta = [{"answer": p.answer, "size": p.size, "problem": p.text} for p in problems]
    trajs = await engine.generate(
        [p.prompt for p in problems], n=n, temperature=temperature, seed=seed, metadata=meta
    )
    await reward.ascore_trajectories(trajs)  # answers: metadata["answer"]
    for t in trajs:
        if t.tool_calls:
            record_provenance(t)
    if counterfactual:
        settings = CounterfactualSettings(temperature=temperature)
        await run_counterfactuals(engine, trajs, settings, reward=reward)
    return summarize_nano(trajs), trajs


def nano_table(rows: dict[str, NanoScores]) -> str:
    """A plain-text before/after table: overall and per size."""

    def pct(x: float | None) -> str:
        return "   -  " if x is None else f"{100 * x:5.1f}%"

    rely = any(s.reliance is not None for s in rows.values())
    size_head = "acc/tool/relies" if rely else "acc/tool"
    w = 23 if rely else 15
    head = (
        f"{'model':<22}{'accuracy':>10}{'tool use':>10}{'code err':>10}   "
        f"{'small ' + size_head:>{w}}   {'large ' + size_head:>{w}}"
    )
    lines = [head, "-" * len(head)]

    def cols(d: dict) -> str:
        out = f"{pct(d.get('accuracy')):>7} {pct(d.get('tool_use')):>7}"
        return out + f" {pct(d.get('reliance')):>7}" if rely else out

    for name, s in rows.items():
        sm, lg = s.by_size.get("small", {}), s.by_size.get("large", {})
        lines.append(
            f"{name:<22}{pct(s.accuracy):>10}{pct(s.tool_use):>10}{pct(s.code_error_rate):>10}   "
            f"{cols(sm):>{w}}   {cols(lg):>{w}}"
        )
    if rely:
        lines.append("relies: share of tool-using answers that change with the tool off (counterfactual)")
    return "\n".join(lines)
