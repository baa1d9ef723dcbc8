"""Re-render and re-score a finished run offline: no model, no sandbox (`torl rescore RUN`).

Saved trajectories hold every tool call's `ToolResult`, so their tool output can be rendered again by
another format or with another truncation (`rerender`; the model's tokens stay as sampled, the tool
output is tokenized again with the run's tokenizer), and their answers judged by another scorer
(`SCORERS`, or any torl reward). `rescore_run` reports per file how many verdicts and rewards flipped.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from torl.core import Segment, Trajectory, load_jsonl, save_jsonl
from torl.errors import UserError
from torl.eval.table import align
from torl.rewards.provenance import record_provenance

__all__ = [
    "SCORERS",
    "FileRescore",
    "RescoreError",
    "format_rescore",
    "make_scorer",
    "rerender",
    "rescore_run",
]


class RescoreError(UserError, ValueError):
    """A run cannot be rescored (no trajectory files, an unknown scorer, no tokenizer to re-render with)."""


def _torl(**kw: Any) -> Callable[[], Any]:
    def make() -> Any:
        from torl.rewards import ToRLReward

        return ToRLReward(**kw)

    return make


def _math(**kw: Any) -> Callable[[], Any]:
    def make() -> Any:
        from torl.rewards import MathAnswerReward

        return MathAnswerReward(**kw)

    return make


SCORERS: dict[str, tuple[Callable[[], Any], str]] = {
    "torl": (_torl(), "ToRLReward: +1 / -1, the answer from the model's prose"),
    "torl-exec": (_torl(execution_penalty=-0.5), "ToRLReward with ToRL's -0.5 execution penalty"),
    "torl-response": (
        _torl(answer_source="response"),
        "ToRLReward reading the whole response, tool output included",
    ),
    "torl-tol": (_torl(rel_tol=1e-4), "ToRLReward accepting numbers within 1e-4 (the Qwen2.5-Math grader)"),
    "torl-exact": (_torl(exact=True), "ToRL's own reward: its answer check on the whole response, -1 unverifiable"),
    "zero-tir-exact": (
        _math(scorer="zero_tir", answer_source="response", on_failure=0.0),
        "AReaL ZERO-TIR-RL's 1 / 0 on the last <answer>, with its answer check",
    ),
    "math": (_math(), "MathAnswerReward: 1 / 0 (torl eval's scorer)"),
    "math-tol": (_math(rel_tol=1e-4), "MathAnswerReward accepting numbers within 1e-4"),
}
"""Scorers by name: (factory, description). Add your own, or pass `module:attr` to `make_scorer`."""


def make_scorer(spec: str) -> Any:
    """A reward from a name of `SCORERS`, or `package.module:attr` (a torl reward, or a callable making one).

    Raises:
        RescoreError: an unknown name, or an attribute that is not a torl reward.
    """
    from torl.rewards import BatchReward

    if spec in SCORERS:
        return SCORERS[spec][0]()
    if ":" in spec:
        mod, _, attr = spec.partition(":")
        try:
            obj = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError) as e:
            raise RescoreError(f"scorer {spec!r}: {e}") from None
        if isinstance(obj, type) or (callable(obj) and not isinstance(obj, BatchReward)):
            try:
                obj = obj()
            except Exception as e:  # noqa: BLE001 - whatever it is, it does not make a reward
                raise RescoreError(f"scorer {spec!r} is not a torl reward: calling it failed ({e})") from None
        if isinstance(obj, BatchReward):
            return obj
        raise RescoreError(f"scorer {spec!r} is not a torl reward (a BatchReward), got {type(obj).__name__}")
    raise RescoreError(f"unknown scorer {spec!r}: use one of {', '.join(SCORERS)} or package.module:attr")


def rerender(trajectory: Trajectory, tir_format: Any, tokenizer: Any) -> Trajectory:
    """The trajectory with each tool output rendered again by `tir_format` (a name or `TIRFormat`) from
    the recorded results, and tokenized with `tokenizer`. The model's segments, ids and logprobs stay as
    sampled; segments without a recorded call (e.g. a budget notice) stay as they were. The model was
    conditioned on the old rendering: this shows what another rendering looks like, not what the model
    would have done (for that, resume the rollout: `TIRRollout.resume`)."""
    from torl.rollout.formats import get_format

    fmt = get_format(tir_format)
    by_segment: dict[int, list] = {}
    for r in trajectory.tool_calls:
        if r.output_segment is not None:
            by_segment.setdefault(r.output_segment, []).append(r)
    ids: list[int] = []
    lps: list[float] = []
    mask: list[int] = []
    segments: list[Segment] = []
    for i, s in enumerate(trajectory.segments):
        recs = by_segment.get(i)
        if s.kind == "tool" and recs and i > 0:
            text = fmt.render(
                trajectory.segments[i - 1].text, [r.call for r in recs], [r.result for r in recs]
            )
            new = fmt.encode_env(text, tokenizer)
            seg_lps, seg_mask = [0.0] * len(new), [0] * len(new)
        else:
            text, new = s.text, trajectory.completion_ids[s.start : s.end]
            seg_lps, seg_mask = trajectory.logprobs[s.start : s.end], trajectory.env_mask[s.start : s.end]
        segments.append(s.model_copy(update={"text": text, "start": len(ids), "end": len(ids) + len(new)}))
        ids += new
        lps += seg_lps
        mask += seg_mask
    meta = {**trajectory.metadata, "rerendered": {"format": getattr(fmt, "name", str(fmt))}}
    return trajectory.model_copy(
        update={
            "completion_ids": ids,
            "logprobs": lps,
            "env_mask": mask,
            "segments": segments,
            "metadata": meta,
        },
        deep=True,
    )


@dataclass
class FileRescore:
    """The flips in one file (or one group of training step files)."""

    label: str
    files: int = 0
    n: int = 0
    correct_before: int = 0
    correct_after: int = 0
    wrong_to_right: int = 0
    right_to_wrong: int = 0
    rewards_changed: int = 0
    rewards_known: int = 0
    """Trajectories whose earlier reward is on record (eval and nano: `reward`; training: the one reward
    function's)."""
    text_changed: int = 0
    """Trajectories whose rendered text changed (with a format)."""

    @property
    def flipped(self) -> int:
        return self.wrong_to_right + self.right_to_wrong

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "flipped": self.flipped}


@dataclass
class RescoreReport:
    scorer: str
    format: str | None
    rows: list[FileRescore] = field(default_factory=list)
    output: Path | None = None
    skipped: list[str] = field(default_factory=list)

    @property
    def total(self) -> FileRescore:
        t = FileRescore("all")
        for r in self.rows:
            for k in (
                "files",
                "n",
                "correct_before",
                "correct_after",
                "wrong_to_right",
                "right_to_wrong",
                "rewards_changed",
                "rewards_known",
                "text_changed",
            ):
                setattr(t, k, getattr(t, k) + getattr(r, k))
        return t

    def to_dict(self) -> dict[str, Any]:
        return {
            "scorer": self.scorer,
            "format": self.format,
            "output": str(self.output) if self.output else None,
            "files": [r.to_dict() for r in self.rows],
            "total": self.total.to_dict(),
            "skipped": self.skipped,
        }


_STEP = re.compile(r"^(eval_)?step_\d+$")


def trajectory_files(run: str | Path, exclude: Path | None = None) -> list[Path]:
    """The trajectory files of a run: a file itself, or every `*.jsonl` under a folder (sorted)."""
    p = Path(run)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise RescoreError(f"{p}: no such file or folder")
    files = sorted(f for f in p.rglob("*.jsonl") if exclude is None or exclude not in f.parents)
    if not files:
        raise RescoreError(f"{p}: no .jsonl trajectory files in this folder")
    return files


def _old_reward(t: Trajectory) -> float | None:
    if t.reward is not None:
        return t.reward
    funcs = [k for k in t.reward_breakdown if "/" not in k and k != "correct"]
    return t.reward_breakdown[funcs[0]] if len(funcs) == 1 else None


def find_tokenizer(run: Path) -> str | None:
    """The model folder a run names (a nano run's or `torl eval`'s results.json), for its tokenizer."""
    base = run if run.is_dir() else run.parent
    for f in (base / "results.json", base.parent / "results.json"):
        if f.is_file():
            try:
                model = json.loads(f.read_text(encoding="utf-8")).get("model")
            except (json.JSONDecodeError, AttributeError):
                continue
            if isinstance(model, str) and model:
                return model
    return None


def _load(f: Path) -> list[Trajectory] | None:
    try:
        return load_jsonl(f)
    except (ValidationError, ValueError) as e:
        first = f.read_text(encoding="utf-8").lstrip()[:1]
        if first != "{":
            return None
        try:  # another kind of JSON Lines file (a tool log, metrics): not trajectories
            row = json.loads(f.read_text(encoding="utf-8").splitlines()[0])
        except (json.JSONDecodeError, IndexError):
            raise RescoreError(f"{f}: not a trajectory file ({e})") from None
        if isinstance(row, dict) and "completion_ids" not in row:
            return None
        raise RescoreError(f"{f}: not a trajectory file ({type(e).__name__})") from None


def rescore_run(
    run: str | Path,
    scorer: str | Any = "torl",
    *,
    tir_format: str | None = None,
    format_options: dict[str, Any] | None = None,
    tokenizer: Any = None,
    output: str | Path | None = None,
    save: bool = True,
) -> RescoreReport:
    """Re-score (and with `tir_format`, first re-render) every saved trajectory of a run, offline.

    Args:
        run: a trajectory file, or a run folder (a nano run, a `torl eval` output, a trainer output dir:
            every `*.jsonl` under it; files that are not trajectories are skipped).
        scorer: a name of `SCORERS`, `module:attr`, or a torl reward.
        tir_format: re-render the tool output with this format, built with `format_options` (e.g.
            `{"max_chars": 512}` for another truncation).
        tokenizer: a tokenizer or the path of one (default: the model named by the run's results.json),
            needed only to re-render.
        output: where the rescored files go, in the same layout (default `<run>/rescored`).
        save: write the rescored files (False: only report).

    Returns:
        A `RescoreReport` with a row per file (training step files grouped per folder).

    Raises:
        RescoreError: no trajectory file, an unknown scorer, no tokenizer to re-render with.
    """
    run = Path(run)
    reward = make_scorer(scorer) if isinstance(scorer, str) else scorer
    name = scorer if isinstance(scorer, str) else getattr(scorer, "name", type(scorer).__name__)
    out_dir = Path(output) if output else (run if run.is_dir() else run.parent) / "rescored"
    fmt = None
    if tir_format is not None:
        from torl.rollout.formats import get_format

        try:
            fmt = get_format(tir_format, **(format_options or {}))
        except (ValueError, TypeError) as e:
            raise RescoreError(f"format {tir_format!r}: {e}") from None
        if tokenizer is None:
            tokenizer = find_tokenizer(run)
            if tokenizer is None:
                raise RescoreError(
                    "re-rendering tokenizes the new tool output: give --tokenizer (the run's model folder)"
                )
        if isinstance(tokenizer, (str, Path)):
            from transformers import AutoTokenizer

            try:
                tokenizer = AutoTokenizer.from_pretrained(str(tokenizer))
            except (OSError, ValueError) as e:
                raise RescoreError(f"cannot load the tokenizer {tokenizer}: {e}") from None
    report = RescoreReport(str(name), tir_format, output=out_dir if save else None)
    rows: dict[str, FileRescore] = {}
    for f in trajectory_files(run, exclude=out_dir):
        trajs = _load(f)
        rel = f.relative_to(run) if run.is_dir() else Path(f.name)
        if trajs is None:
            report.skipped.append(str(rel))
            continue
        label = (
            str(rel.parent / (("eval_" if f.stem.startswith("eval_") else "") + "step_*.jsonl"))
            if _STEP.match(f.stem)
            else str(rel)
        )
        row = rows.setdefault(label, FileRescore(label))
        row.files += 1
        before = [(t.correct, _old_reward(t), t.completion_text) for t in trajs]
        if fmt is not None:
            trajs = [rerender(t, fmt, tokenizer) for t in trajs]
        reward.score_trajectories(trajs)
        for t, (was, old_r, old_text) in zip(trajs, before, strict=True):
            if t.finish_reason == "error":  # a failed rollout is wrong, as in evaluation
                t.reward_breakdown["correct"] = 0.0
            elif t.tool_calls:
                record_provenance(t)  # the answer (and with a format, the text) may have changed
            now = t.correct
            row.n += 1
            row.correct_before += bool(was)
            row.correct_after += bool(now)
            row.wrong_to_right += bool(now) and not was
            row.right_to_wrong += bool(was) and not now
            if old_r is not None:
                row.rewards_known += 1
                row.rewards_changed += t.reward is not None and abs(t.reward - old_r) > 1e-9
            row.text_changed += t.completion_text != old_text
        if save:
            save_jsonl(trajs, out_dir / rel)
    report.rows = list(rows.values())
    if not report.rows:
        raise RescoreError(f"{run}: no trajectory files (skipped: {', '.join(report.skipped)})")
    return report


def format_rescore(report: RescoreReport) -> str:
    """The report as a plain-text table."""

    def pct(a: int, n: int) -> str:
        return f"{100 * a / n:.1f}%" if n else "-"

    head = [
        "file",
        "n",
        "acc before",
        "acc after",
        "flipped",
        "wrong->right",
        "right->wrong",
        "rewards changed",
    ]
    if report.format:
        head.append("text changed")
    rows = []
    for r in [*report.rows, report.total] if len(report.rows) > 1 else report.rows:
        label = r.label + (f" ({r.files} files)" if r.files > 1 else "")
        cells = [
            label,
            str(r.n),
            pct(r.correct_before, r.n),
            pct(r.correct_after, r.n),
            str(r.flipped),
            str(r.wrong_to_right),
            str(r.right_to_wrong),
            f"{r.rewards_changed}/{r.rewards_known}" if r.rewards_known else "-",
        ]
        if report.format:
            cells.append(str(r.text_changed))
        rows.append(cells)
    return align(head, rows)
