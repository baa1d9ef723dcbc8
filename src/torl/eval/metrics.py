"""Scores of an evaluation: pass@1 averaged over samples, unbiased pass@k, maj@k and tool-use statistics."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from torl.core import Trajectory
from torl.eval.counterfactual import summarize_counterfactual


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from `n` samples of which `c` are correct (Chen et al. 2021):
    `1 - C(n-c, k) / C(n, k)`.

    Raises:
        ValueError: unless `0 <= c <= n` and `1 <= k <= n`.
    """
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_vote(
    answers: Sequence[str | None], equal: Callable[[str, str], bool] | None = None
) -> int | None:
    """Index of a representative of the most common answer (None answers do not vote); None if none voted.

    Answers are grouped by `equal` (default `torl.rewards.math_equal`; exact strings compare first).
    Ties go to the answer seen first.
    """
    groups: list[list[int]] = []
    for i, a in enumerate(answers):
        if a is None:
            continue
        for g in groups:
            rep = answers[g[0]]
            assert rep is not None
            if a.strip() == rep.strip() or _equal(equal)(a, rep):
                g.append(i)
                break
        else:
            groups.append([i])
    if not groups:
        return None
    return max(groups, key=len)[0]  # max keeps the first of equal-size groups


def _equal(equal: Callable[[str, str], bool] | None) -> Callable[[str, str], bool]:
    if equal is not None:
        return equal
    from torl.rewards import math_equal

    return math_equal


def _ks(n: int) -> list[int]:
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n]


def tool_stats(trajectories: Sequence[Trajectory]) -> dict[str, Any]:
    """Tool use of some trajectories: `cells` (code cells run), `failed_cells` (cells whose result is not
    ok), `cells_per_problem` (mean cells per trajectory), `tool_use_rate` (share of trajectories with at
    least one cell) and `code_error_rate` (share of cells that failed; None when no cell ran)."""
    n = len(trajectories)
    cells = sum(t.num_tool_calls for t in trajectories)
    failed = sum(1 for t in trajectories for r in t.tool_calls if not r.result.ok)
    return {
        "cells": cells,
        "failed_cells": failed,
        "cells_per_problem": cells / n if n else 0.0,
        "tool_use_rate": sum(1 for t in trajectories if t.tool_calls) / n if n else 0.0,
        "code_error_rate": failed / cells if cells else None,
    }


def _problem_key(t: Trajectory) -> tuple[str, str]:
    m = t.metadata
    return str(m.get("benchmark", "")), str(m.get("problem_id", ""))


def summarize_benchmark(
    trajectories: Sequence[Trajectory], equal: Callable[[str, str], bool] | None = None
) -> dict[str, Any]:
    """Scores of one benchmark from scored eval trajectories (metadata `problem_id`, `pred`; `Trajectory.correct`).

    Keys: `problems`, `samples`, `k` (samples per problem, the smallest), `pass@1` (mean over problems
    of the share of correct samples), `pass@k` ({k: value} for k = 1, 2, 4, ..., n), `maj@k`, tool use
    (`cells_per_problem`: mean code cells per sampled solution; `code_error_rate`: share of cells that
    failed; `tool_use_rate`: share of solutions with at least one cell), `no_answer_rate`,
    `truncated_rate` (token budget hit), `error_count` (rollouts that failed), `mean_response_tokens`,
    and `counterfactual` (`summarize_counterfactual`'s rates) when the samples have counterfactual runs.
    All rates are fractions in [0, 1].
    """
    by_problem: dict[tuple[str, str], list[Trajectory]] = defaultdict(list)
    for t in trajectories:
        by_problem[_problem_key(t)].append(t)
    if not by_problem:
        raise ValueError("no trajectories to summarize")
    n_min = min(len(v) for v in by_problem.values())
    ks = _ks(n_min)
    p1, pk, maj = [], {k: [] for k in ks}, []
    for samples in by_problem.values():
        samples = sorted(samples, key=lambda t: t.metadata.get("sample", 0))
        correct = [bool(t.correct) for t in samples]
        n, c = len(correct), sum(correct)
        p1.append(c / n)
        for k in ks:
            pk[k].append(pass_at_k(n, c, k))
        win = majority_vote([t.metadata.get("pred") for t in samples], equal) if n > 1 else 0
        maj.append(win is not None and correct[win])
    trajs = list(trajectories)
    tools = tool_stats(trajs)
    out = {
        "problems": len(by_problem),
        "samples": len(trajs),
        "k": n_min,
        "pass@1": _mean(p1),
        "pass@k": {str(k): _mean(v) for k, v in pk.items()},
        "maj@k": _mean([float(m) for m in maj]),
        "cells_per_problem": tools["cells_per_problem"],
        "code_error_rate": tools["code_error_rate"] or 0.0,
        "tool_use_rate": tools["tool_use_rate"],
        "no_answer_rate": sum(1 for t in trajs if t.metadata.get("pred") is None) / len(trajs),
        "truncated_rate": sum(1 for t in trajs if t.finish_reason == "length") / len(trajs),
        "error_count": sum(1 for t in trajs if t.finish_reason == "error"),
        "mean_response_tokens": sum(len(t.completion_ids) for t in trajs) / len(trajs),
    }
    if any(t.metadata.get("counterfactual") for t in trajs):
        out["counterfactual"] = summarize_counterfactual(trajs, lambda t: "")["overall"]
    return out


def _mean(xs: Iterable[float]) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else 0.0


def summarize(
    trajectories: Iterable[Trajectory], equal: Callable[[str, str], bool] | None = None
) -> dict[str, Any]:
    """Per-benchmark scores (see `summarize_benchmark`) under `"benchmarks"`, and `"average"`: the
    unweighted mean over benchmarks of `pass@1`, `maj@k` and the tool statistics (ToRL's "Avg");
    `"counterfactual"`: the counterfactual rates over all samples, when there are any."""
    by_bench: dict[str, list[Trajectory]] = defaultdict(list)
    for t in trajectories:
        by_bench[str(t.metadata.get("benchmark", ""))].append(t)
    benches = {b: summarize_benchmark(ts, equal) for b, ts in by_bench.items()}
    keys = (
        "pass@1",
        "maj@k",
        "cells_per_problem",
        "code_error_rate",
        "tool_use_rate",
        "mean_response_tokens",
    )
    avg = {k: _mean(s[k] for s in benches.values()) for k in keys} if benches else {}
    out = {"benchmarks": benches, "average": avg}
    if any("counterfactual" in s for s in benches.values()):
        every = [t for ts in by_bench.values() for t in ts]
        out["counterfactual"] = summarize_counterfactual(every)["overall"]
    return out
