"""Counterfactual tool reliance: does the model read the tool's output, or would it answer the same
without it?

For each tool call of a finished trajectory, the rollout is resumed from the recorded prefix (token ids, as
sampled: `TIRRollout.resume`) with the call's output replaced, and only the rest is generated:

- `disabled`: the observation says the tool is unavailable, and every later call gets the same answer;
- `error`: the output is replaced by an error;
- `swap`: the output is replaced by another problem's output (same benchmark when there is one);
- `replay` (a control, off by default): the recorded output again. Greedy, it must give back the recorded
  answer; sampled, it measures how often the answer changes by chance.

Each run is scored like the original. The original trajectory keeps the outcomes in
`metadata["counterfactual"]` (one entry per call and kind: `kind`, `call`, `pred`, `correct`, `changed`,
`generated` tokens, `reused` prefix tokens; or `skipped` with the reason, e.g. a `swap` with no other
problem's output); `summarize_counterfactual` turns them into rates.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torl.core import ToolResult, Trajectory
from torl.errors import ConfigError
from torl.eval.table import align

__all__ = [
    "COUNTERFACTUAL_KINDS",
    "CounterfactualSettings",
    "format_counterfactual",
    "needs_counterfactual",
    "relies_on_tool",
    "run_counterfactuals",
    "summarize_counterfactual",
]

COUNTERFACTUAL_KINDS: tuple[str, ...] = ("disabled", "error", "swap", "replay")
"""Every perturbation: the tool disabled, an error, another problem's output, the recorded output
(a control)."""

TOOL_DISABLED = ToolResult.failure("sandbox_error", "The Python tool is unavailable: the code was not run.")
"""The result a call gets with the tool disabled (ToRL's rendering shows its `error`)."""
TOOL_ERROR = ToolResult.failure(
    "error",
    "RuntimeError: the cell failed",
    output='Traceback (most recent call last):\n  File "<cell>", line 1, in <module>\n'
    "RuntimeError: the cell failed\n",
)
"""The result of the `error` perturbation."""


@dataclass(frozen=True)
class CounterfactualSettings:
    """Which perturbations to run and how.

    Args:
        kinds: among `COUNTERFACTUAL_KINDS` (default: disabled, error, swap).
        disabled: the result a call gets with the tool disabled.
        error: the result of the `error` perturbation.
        max_calls: perturb at most the first this many calls of a trajectory (None: all).
        temperature: sampling of the re-generated suffix (None: the original's, from its `eval_settings`,
            else greedy).
    """

    kinds: tuple[str, ...] = ("disabled", "error", "swap")
    disabled: ToolResult = field(default_factory=lambda: TOOL_DISABLED)
    error: ToolResult = field(default_factory=lambda: TOOL_ERROR)
    max_calls: int | None = None
    temperature: float | None = None
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.kinds, str):
            object.__setattr__(self, "kinds", tuple(k.strip() for k in self.kinds.split(",") if k.strip()))
        bad = [k for k in self.kinds if k not in COUNTERFACTUAL_KINDS]
        if bad or not self.kinds:
            raise ConfigError(
                f"unknown counterfactual kind(s) {bad or self.kinds}: "
                f"choose from {', '.join(COUNTERFACTUAL_KINDS)}"
            )
        if self.max_calls is not None and self.max_calls < 1:
            raise ConfigError(f"max_calls must be >= 1, got {self.max_calls}")


@dataclass
class _Job:
    original: Trajectory
    call: int
    kind: str
    result: ToolResult | None
    out: Trajectory | None = field(default=None)


def needs_counterfactual(t: Trajectory, settings: CounterfactualSettings) -> bool:
    """True when `t` used the tool and has no recorded outcome for every kind asked."""
    if t.finish_reason == "error" or not _calls(t, settings) or "perturbation" in t.metadata:
        return False
    runs = t.metadata.get("counterfactual")
    have = {r.get("kind") for r in runs if isinstance(r, dict)} if isinstance(runs, list) else set()
    return not set(settings.kinds) <= have


def _calls(t: Trajectory, settings: CounterfactualSettings) -> list[int]:
    idx = [i for i, r in enumerate(t.tool_calls) if r.output_segment is not None]
    return idx[: settings.max_calls] if settings.max_calls else idx


def _key(t: Trajectory) -> tuple[str, str]:
    m = t.metadata
    return str(m.get("benchmark", "")), str(m.get("problem_id", m.get("problem", m.get("prompt_index", ""))))


def _swaps(pool: Sequence[Trajectory]) -> Callable[[Trajectory, int], ToolResult | None]:
    """Another problem's output for a call: one of the other problems' first good outputs (same benchmark
    first), picked by rotation from the trajectory's place in `pool`, so a run is reproducible."""
    outputs: list[tuple[tuple[str, str], str, ToolResult]] = []  # (problem key, stripped output, result)
    by_benchmark: dict[str, list[tuple[tuple[str, str], str, ToolResult]]] = {}
    for t in pool:
        for r in t.tool_calls:
            if r.result.ok and (text := r.result.output.strip()):
                outputs.append((_key(t), text, r.result))
                by_benchmark.setdefault(outputs[-1][0][0], []).append(outputs[-1])
                break
    position = {id(t): i for i, t in enumerate(pool)}

    def pick(t: Trajectory, call: int) -> ToolResult | None:
        own, mine = t.tool_calls[call].result.output.strip(), _key(t)

        def others(items: list[tuple[tuple[str, str], str, ToolResult]]) -> list[ToolResult]:
            return [r for k, text, r in items if k != mine and text != own]

        cands = others(by_benchmark.get(mine[0], [])) or others(outputs)
        if not cands:
            return None
        return cands[(position.get(id(t), 0) + call) % len(cands)].model_copy(update={"duration_s": 0.0})

    return pick


def _sampling(t: Trajectory, settings: CounterfactualSettings) -> dict[str, Any]:
    temp = settings.temperature
    if temp is None:
        temp = float((t.metadata.get("eval_settings") or {}).get("temperature") or 0.0)
    out: dict[str, Any] = {"temperature": temp}
    if settings.top_p != 1.0:
        out["top_p"] = settings.top_p
    return out


async def run_counterfactuals(
    engine: Any,
    trajectories: Sequence[Trajectory],
    settings: CounterfactualSettings | None = None,
    *,
    reward: Any = None,
    pool: Sequence[Trajectory] | None = None,
    concurrency: int = 64,
) -> list[Trajectory]:
    """Run the perturbations of `settings` on every tool call of `trajectories` and record the outcomes.

    Args:
        engine: the `TIRRollout` that made the trajectories (same model, format and budgets): it resumes
            them (`TIRRollout.resume`).
        trajectories: scored trajectories (`metadata["pred"]`, `Trajectory.correct`, `metadata["answer"]`).
        settings: which perturbations (default `CounterfactualSettings()`).
        reward: scores the perturbed runs (default: `MathAnswerReward`, as `torl eval`).
        pool: trajectories whose outputs `swap` draws from (default: `trajectories`).
        concurrency: resumed rollouts in flight.

    Returns:
        The perturbed trajectories (metadata `perturbation`: `kind`, `call`, and `of`, the original's
        benchmark, problem id and sample). Each original gets `metadata["counterfactual"]`.
    """
    from torl.rewards import MathAnswerReward, default_pool

    settings = settings or CounterfactualSettings()
    reward = reward or MathAnswerReward(name="eval")
    pick = _swaps(pool if pool is not None else trajectories)
    jobs: list[_Job] = []
    skipped: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for t in trajectories:
        if t.finish_reason == "error":
            continue
        for i in _calls(t, settings):
            for kind in settings.kinds:
                if kind == "swap":
                    result = pick(t, i)
                    if result is None:  # recorded, so that a rerun does not try again
                        skipped[id(t)].append(
                            {"kind": kind, "call": i, "skipped": "no other problem's output"}
                        )
                        continue
                else:
                    result = {"disabled": settings.disabled, "error": settings.error, "replay": None}[kind]
                jobs.append(_Job(t, i, kind, result))
    sem = asyncio.Semaphore(concurrency)

    async def one(job: _Job) -> None:
        t = job.original
        of = {
            "benchmark": t.metadata.get("benchmark"),
            "problem_id": t.metadata.get("problem_id"),
            "sample": t.metadata.get("sample", t.metadata.get("sample_index")),
        }
        async with sem:
            job.out = await engine.resume(
                t,
                job.call,
                job.result,
                later_result=settings.disabled if job.kind == "disabled" else None,
                metadata={"perturbation": {"kind": job.kind, "call": job.call, "of": of}},
                **_sampling(t, settings),
            )

    await asyncio.gather(*(one(j) for j in jobs))
    outs = [j.out for j in jobs if j.out is not None]
    if outs:
        await reward.ascore_trajectories(outs)
    from torl.eval.runner import fail_errored  # (runner imports this module)

    for o in outs:
        fail_errored(o)
    pairs = [(j.out.metadata.get("pred"), j.original.metadata.get("pred")) for j in jobs if j.out is not None]
    to_check = [(a, b) for a, b in pairs if a is not None and b is not None and a.strip() != b.strip()]
    verdicts = iter(await default_pool().averify_many(to_check) if to_check else [])
    records: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for j, (a, b) in zip([j for j in jobs if j.out is not None], pairs, strict=True):
        if a is None or b is None:
            same = a is None and b is None
        elif a.strip() == b.strip():
            same = True
        else:
            same = bool(next(verdicts).correct)
        o = j.out
        assert o is not None
        prefix = (o.metadata.get("resumed") or {}).get("prefix_tokens", 0)
        records[id(j.original)].append(
            {
                "kind": j.kind,
                "call": j.call,
                "pred": o.metadata.get("pred"),
                "correct": o.correct,
                "changed": not same,
                "finish": o.finish_reason,
                "generated": sum(o.env_mask[prefix:]),
                "reused": prefix,
            }
        )
    for t in trajectories:
        if id(t) in records or id(t) in skipped:
            t.metadata["counterfactual"] = records[id(t)] + skipped[id(t)]
    return outs


REMOVALS: tuple[str, ...] = ("disabled", "error")
"""The perturbations that take the tool's output away (what `relies_on_tool` reads)."""


def _runs(t: Trajectory) -> list[dict[str, Any]]:
    """The recorded runs of a trajectory (perturbations that could not be made left out)."""
    runs = t.metadata.get("counterfactual")
    return [r for r in runs if isinstance(r, dict) and not r.get("skipped")] if isinstance(runs, list) else []


def relies_on_tool(t: Trajectory) -> bool | None:
    """Whether the answer needs the tool: it changes under every run that took the first call's output
    away (`disabled`, `error`; None: none was run). One such run that keeps the answer shows the model
    can answer without the tool; requiring all of them keeps a message the model never saw (and answers
    oddly to) from passing for reliance."""
    runs = [r for r in _runs(t) if r.get("kind") in REMOVALS and r.get("call") == 0]
    return all(bool(r.get("changed")) for r in runs) if runs else None


def follows_output(t: Trajectory) -> bool | None:
    """Whether the answer follows the tool's output: it changes when another problem's output is swapped in
    at some call (None: not measured)."""
    swaps = [r for r in _runs(t) if r.get("kind") == "swap"]
    return any(r.get("changed") for r in swaps) if swaps else None


def _rate(xs: Sequence[bool]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _group(trajs: Sequence[Trajectory]) -> dict[str, Any]:
    tested = [t for t in trajs if _runs(t)]
    runs = [(t, r) for t in tested for r in _runs(t)]
    kinds: dict[str, Any] = {}
    for kind in COUNTERFACTUAL_KINDS:
        rs = [(t, r) for t, r in runs if r.get("kind") == kind]
        if not rs:
            continue
        kinds[kind] = {
            "runs": len(rs),
            "changed": _rate([bool(r["changed"]) for _, r in rs]),
            "correct_to_wrong": _rate([not r.get("correct") for t, r in rs if t.correct]),
            "wrong_to_correct": _rate([bool(r.get("correct")) for t, r in rs if t.correct is False]),
        }
    rely = [x for t in tested if (x := relies_on_tool(t)) is not None]
    follow = [x for t in tested if (x := follows_output(t)) is not None]
    generated = sum(r.get("generated", 0) for _, r in runs)
    reused = sum(r.get("reused", 0) for _, r in runs)
    perturbed = [(t, r) for t, r in runs if r.get("kind") != "replay"]
    return {
        "trajectories": len(trajs),
        "tool_using": sum(1 for t in trajs if t.tool_calls),
        "tested": len(tested),
        "runs": len(runs),
        "reliance": _rate(rely),
        "follows_output": _rate(follow),
        "changed": _rate([bool(r["changed"]) for _, r in perturbed]),
        "correct_to_wrong": _rate([not r.get("correct") for t, r in perturbed if t.correct]),
        "kinds": kinds,
        "generated_tokens": generated,
        "reused_tokens": reused,
    }


def summarize_counterfactual(
    trajectories: Sequence[Trajectory], by: Callable[[Trajectory], str] | None = None
) -> dict[str, Any]:
    """Rates of the counterfactual runs recorded on `trajectories`, overall and per group (`by`: default the
    benchmark; the nano run groups by problem size).

    Each entry: `trajectories`, `tool_using`, `tested` (trajectories with runs), `runs`; `reliance` (share
    of tested trajectories whose answer changes under every run that took the first call's output away:
    `relies_on_tool`),
    `follows_output` (share whose answer changes with another problem's output swapped in), `changed`
    and `correct_to_wrong` (share of perturbed runs whose answer changed; of the originally correct
    ones, share that ended wrong; over all perturbations but the replay control), and per kind `runs`,
    `changed`, `correct_to_wrong`, `wrong_to_correct`; `generated_tokens` against `reused_tokens` (the
    prefix taken as recorded). Rates are None where nothing was measured.
    """
    by = by or (lambda t: str(t.metadata.get("benchmark", "")))
    groups: dict[str, list[Trajectory]] = defaultdict(list)
    for t in trajectories:
        groups[by(t)].append(t)
    return {"overall": _group(trajectories), "groups": {g: _group(ts) for g, ts in groups.items()}}


def format_counterfactual(summary: dict[str, Any], label: str = "Benchmark") -> str:
    """A plain-text table of `summarize_counterfactual` (one row per group, then all)."""

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    kinds = [k for k in COUNTERFACTUAL_KINDS if k in summary["overall"]["kinds"]]
    head = [
        label,
        "tested",
        "reliance",
        "follows out",
        "changed",
        "right->wrong",
        *[f"chg {k}" for k in kinds],
        "generated",
    ]
    rows = []
    for name, g in [*summary["groups"].items(), ("all", summary["overall"])]:
        total = g["generated_tokens"] + g["reused_tokens"]
        share = f"{100 * g['generated_tokens'] / total:.0f}%" if total else "-"
        rows.append(
            [
                str(name),
                f"{g['tested']}/{g['tool_using']}",
                pct(g["reliance"]),
                pct(g["follows_output"]),
                pct(g["changed"]),
                pct(g["correct_to_wrong"]),
                *[pct(g["kinds"].get(k, {}).get("changed")) for k in kinds],
                share,
            ]
        )
    return align(head, rows)
