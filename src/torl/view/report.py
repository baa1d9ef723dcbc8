"""Build the self-contained HTML report: trajectories (text, code cells, outputs) and training curves.

The page is one file with inline CSS, JavaScript and data; a Content-Security-Policy forbids any network
access. All model text is put on the page as data and shown with `textContent`: it never becomes HTML.
"""

from __future__ import annotations

import html
import json
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from torl.core import Trajectory
from torl.errors import DataError, UserError

_PLACEHOLDER = re.compile(r"/\*__TORL_(CSS|JS)__\*/|__TORL_(TITLE|DATA)__")


class ReportError(UserError, ValueError):
    """An input file of the report is missing or cannot be read (the message names the file and line)."""


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(f"[{m.get('role', '?')}]\n{m.get('content', '')}" for m in prompt)


def _pred(t: Trajectory) -> str | None:
    if "pred" in t.metadata:
        return t.metadata["pred"]
    try:
        from torl.rewards.extract import extract_answer

        return extract_answer(t.model_text)
    except Exception:  # noqa: BLE001 - an answer we cannot extract is shown as none
        return None


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _provenance(t: Trajectory) -> dict[str, Any] | None:
    if not t.tool_calls:
        return None
    from torl.rewards.provenance import FLAGS, recorded_provenance

    try:
        p = recorded_provenance(t)
    except Exception:  # noqa: BLE001 - a check that fails shows as no flags, never breaks the page
        return None
    return {k: getattr(p, k) for k in FLAGS}


def _counterfactual(t: Trajectory) -> list[dict[str, Any]] | None:
    runs = t.metadata.get("counterfactual")
    if not isinstance(runs, list):
        return None
    keys = ("kind", "call", "pred", "correct", "changed")
    return [{k: r.get(k) for k in keys} for r in runs if isinstance(r, dict) and not r.get("skipped")]


def _group_of(t: Trajectory, source: str) -> str:
    m = t.metadata
    return str(m.get("size") or m.get("benchmark") or m.get("source") or source)


def _verdicts(t: Trajectory) -> tuple[dict[str, Any] | None, bool | None, bool | None]:
    """Its provenance flags, and whether it relies on and follows the tool (each may be unknown)."""
    return _provenance(t), _relies(t), _follows(t)


def trajectory_record(
    t: Trajectory,
    source: str,
    index: int,
    step: float | None = None,
    verdicts: tuple[dict[str, Any] | None, bool | None, bool | None] | None = None,
) -> dict[str, Any]:
    """What the page shows of one trajectory (plain JSON); `verdicts`: `_verdicts(t)` if already known."""
    prov, relies, follows = verdicts or _verdicts(t)
    calls_by_segment = {r.output_segment: r for r in t.tool_calls if r.output_segment is not None}
    parts = []
    for i, s in enumerate(t.segments):
        part: dict[str, Any] = {"kind": s.kind, "text": s.text}
        if s.version is not None:  # the policy version that wrote it (asynchronous training)
            part["version"] = s.version
        r = calls_by_segment.get(i)
        if r is not None:
            part.update(status=r.result.status, truncated=r.result.truncated, error=r.result.error)
        parts.append(part)
    if not parts and t.completion_ids:
        parts.append({"kind": "model", "text": f"(no text segments: {len(t.completion_ids)} tokens)"})
    m = t.metadata
    return {
        "i": index,
        "source": source,
        "benchmark": str(m.get("benchmark") or m.get("source") or source),
        "problem_id": str(m.get("problem_id", m.get("prompt_index", ""))),
        "sample": m.get("sample", m.get("sample_index")),
        "step": _step_of(t, step),
        "prompt": _prompt_text(t.prompt),
        "parts": parts,
        "answer": None if m.get("answer") is None else str(m.get("answer")),
        "pred": _pred(t),
        "rule": None if m.get("rule") is None else str(m.get("rule")),
        "correct": t.correct,
        "reward": _finite(t.reward),
        "finish": t.finish_reason,
        "error": t.error,
        "calls": t.num_tool_calls,
        "failed": sum(1 for r in t.tool_calls if not r.result.ok),
        "truncated": sum(1 for r in t.tool_calls if r.result.truncated),
        "cached": sum(1 for r in t.tool_calls if r.result.cached),
        "tokens": len(t.completion_ids),
        "group": _group_of(t, source),
        "prov": prov,
        "cf": _counterfactual(t),
        "relies": relies,
        "follows": follows,
    }


def _relies(t: Trajectory) -> bool | None:
    from torl.eval.counterfactual import relies_on_tool

    return relies_on_tool(t)


def _follows(t: Trajectory) -> bool | None:
    from torl.eval.counterfactual import follows_output

    return follows_output(t)


class _SourceStats:
    """What the header and the comparison charts show of one source (over all its trajectories)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, bool | None, int, int, bool | None, bool | None, bool, bool | None]] = []

    def add(self, t: Trajectory, source: str, verdicts: tuple) -> None:
        prov, relies, follows = verdicts
        replays = [r for r in t.metadata.get("counterfactual") or [] if r.get("kind") == "replay"]
        chance = any(r.get("changed") for r in replays) if replays else None
        self.rows.append((_group_of(t, source), t.correct, t.num_tool_calls,
                          sum(1 for r in t.tool_calls if not r.result.ok), relies, follows,
                          bool(prov and prov["copied"]), chance))

    @staticmethod
    def _rates(rows: list) -> dict[str, Any]:
        n = len(rows)
        scored = [r[1] for r in rows if r[1] is not None]
        rely = [r[4] for r in rows if r[4] is not None]
        follow = [r[5] for r in rows if r[5] is not None]
        chance = [r[7] for r in rows if r[7] is not None]
        cells = sum(r[2] for r in rows)
        return {
            "n": n,
            "accuracy": sum(scored) / len(scored) if scored else None,
            "tool_use": sum(r[2] > 0 for r in rows) / n if n else None,
            "cells": cells / n if n else None,
            "code_error_rate": sum(r[3] for r in rows) / cells if cells else None,
            "reliance": sum(rely) / len(rely) if rely else None,
            "reliance_n": len(rely),
            "follows_output": sum(follow) / len(follow) if follow else None,
            "answer_copied": sum(r[6] for r in rows) / n if n else None,
            "changed_by_chance": sum(chance) / len(chance) if chance else None,
        }

    def summary(self) -> dict[str, Any]:
        groups: dict[str, list] = defaultdict(list)
        for r in self.rows:
            groups[r[0]].append(r)
        by_group = {g: self._rates(rs) for g, rs in sorted(groups.items())}
        return {"all": self._rates(self.rows), "groups": by_group}


COMPARE: list[tuple[str, str]] = [
    ("accuracy", "Accuracy"),
    ("tool_use", "Tool use"),
    ("reliance", "Reliance on the tool (answer changes without it)"),
    ("follows_output", "Follows the tool output (answer changes with another output)"),
    ("changed_by_chance", "Changes by chance (the replay control: same output, sampled again)"),
]
"""The before/after bars drawn when the report has several sources (runs), per group (problem size or
benchmark): a metric of `_SourceStats` and its title."""


def compare_charts(sources: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Bar charts side by side for several sources: [{title, key, groups, bars: {source: [value per group]}}],
    groups "all" then each group; a metric nobody measured is left out."""
    if len(sources) < 2:
        return []
    groups = ["all"] + sorted({g for s in sources.values() for g in s["groups"]})
    if len(groups) == 2:  # one group: it is "all"
        groups = ["all"]
    out = []
    for key, title in COMPARE:
        bars = {
            name: [(s["all"] if g == "all" else s["groups"].get(g, {})).get(key) for g in groups]
            for name, s in sources.items()
        }
        if all(v is None for vs in bars.values() for v in vs):
            continue
        out.append({"title": title, "key": key, "groups": groups, "bars": bars})
    return out


_FLAT_OR_CLOCK = re.compile(r"learning_rate|epoch|runtime|per_second|time|latency|num_tokens|step")


def moving_metric(metrics: dict[str, list[list[float]]], shown: Sequence[str] = ()) -> str | None:
    """The metric the "other metric" picker opens on: the one with the clearest trend (the change from its
    first third of steps to its last, in standard deviations: noise around a level, as in a GRPO loss,
    scores low) among those not already charted (nor equal to a charted one), leaving out clocks and
    counters; None if none moves."""
    best, best_score = None, 0.0
    drawn = [metrics[k] for k in shown if k in metrics]
    for key, pts in metrics.items():
        if key in shown or _FLAT_OR_CLOCK.search(key) or len(pts) < 2 or pts in drawn:
            continue  # charted already (under this name or another), a clock or a counter
        ys = [p[1] for p in pts]
        k = max(1, len(ys) // 3)
        sd = statistics.pstdev(ys)
        score = abs(statistics.fmean(ys[-k:]) - statistics.fmean(ys[:k])) / sd if sd > 0 else 0.0
        if score > best_score + 1e-9:
            best, best_score = key, score
    return best


def _step_of(t: Trajectory, default: float | None) -> float | None:
    s = t.metadata.get("step", t.metadata.get("global_step"))
    return s if isinstance(s, (int, float)) and not isinstance(s, bool) else default


def load_trajectories(path: str | Path) -> list[Trajectory]:
    """Trajectories of a JSON Lines file (eval output or the trainer's samples).

    Raises:
        ReportError: the file is missing or a line is not a trajectory (file and line are named).
    """
    p = Path(path)
    if not p.is_file():
        raise ReportError(f"{p}: no such file")
    out = []
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(Trajectory.from_json(line))
            except ValidationError as e:
                err = e.errors()[0]
                where = ".".join(str(x) for x in err.get("loc", ()))
                raise ReportError(f"{p}:{n}: not a trajectory ({where}: {err['msg']})") from None
    return out


def find_metrics(folder: str | Path) -> Path | None:
    """The trainer_state.json of a trainer output folder: its own, else the latest checkpoint's."""
    d = Path(folder)
    if (d / "trainer_state.json").is_file():
        return d / "trainer_state.json"
    ckpts = [c for c in d.glob("checkpoint-*/trainer_state.json") if c.parent.name.split("-")[-1].isdigit()]
    return max(ckpts, key=lambda c: int(c.parent.name.split("-")[-1]), default=None)


def load_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Logged metrics as a list of dicts with a `step`: a trainer_state.json (its `log_history`),
    a JSON list, or a JSON Lines file of dicts. A folder means its trainer_state.json (see `find_metrics`).

    Raises:
        ReportError: the file is missing or is none of these.
    """
    p = Path(path)
    if p.is_dir():
        found = find_metrics(p)
        if found is None:
            raise ReportError(f"{p}: no trainer_state.json in this folder or its checkpoint-* folders")
        p = found
    if not p.is_file():
        raise ReportError(f"{p}: no such file")
    text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:  # JSON Lines: one dict a line
        from torl.data import read_jsonl

        try:
            data = [row for _, row in read_jsonl(p)]
        except DataError as e:
            raise ReportError(str(e)) from None
    if isinstance(data, dict):
        if "log_history" not in data:
            raise ReportError(f"{p}: a JSON object without 'log_history' (expected a trainer_state.json)")
        data = data["log_history"]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ReportError(f"{p}: expected a list of metric dicts")
    return [{**r, "step": r.get("step", r.get("global_step", i))} for i, r in enumerate(data)]


# Curves drawn first, like ToRL's figures; each is found by the first matching metric name
# (exact, then as a suffix: "tir/accuracy" matches "accuracy"). Eval metrics ("eval_...") get their own.
CURVES: list[tuple[str, tuple[str, ...]]] = [
    ("Reward", ("reward", "tir/reward")),
    ("Accuracy", ("accuracy", "correct")),
    ("Tool calls per trajectory", ("tool_calls", "num_tool_calls")),
    ("Share of trajectories using the tool", ("frac_with_tool_call", "tool_use_rate")),
    ("Code error rate", ("code_error_rate",)),
    ("Response length (tokens)", ("completions/mean_length", "response_length")),
    ("Answer copied from a tool output", ("answer_copied",)),
    ("Cells answered from the tool log", ("tool_cache_hit_rate",)),
]


def _is_eval(key: str) -> bool:
    return key.startswith(("eval_", "eval/", "test_", "test/"))


def _match(keys: Sequence[str], names: tuple[str, ...]) -> str | None:
    for n in names:
        if n in keys:
            return n
    for n in names:
        for k in keys:
            if k.endswith(("/" + n, "_" + n)):
                return k
    return None


def metric_series(rows: Sequence[dict[str, Any]]) -> dict[str, list[list[float]]]:
    """Every numeric metric as [[step, value], ...] sorted by step (non-finite values left out)."""
    series: dict[str, dict[float, float]] = defaultdict(dict)
    for r in rows:
        step = r.get("step")
        if not isinstance(step, (int, float)) or isinstance(step, bool):
            continue
        for k, v in r.items():
            if (
                k in ("step", "epoch", "global_step")
                or isinstance(v, bool)
                or not isinstance(v, (int, float))
            ):
                continue
            if math.isfinite(v):
                series[k][float(step)] = float(v)
    return {k: sorted([s, v] for s, v in d.items()) for k, d in series.items() if d}


class _StepStats:
    """Per-step sums for the curves drawn from trajectories."""

    def __init__(self) -> None:
        self.rows: dict[float, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def add(self, t: Trajectory, step: float | None) -> None:
        if step is None:
            return
        r = self.rows[float(step)]
        r["n"] += 1
        if t.reward is not None and math.isfinite(t.reward):
            r["reward_sum"] += t.reward
            r["reward_n"] += 1
        c = t.correct
        if c is not None:
            r["correct_sum"] += c
            r["correct_n"] += 1
        r["calls"] += t.num_tool_calls
        r["used"] += t.num_tool_calls > 0
        r["failed"] += sum(1 for x in t.tool_calls if not x.result.ok)
        r["tokens"] += len(t.completion_ids)

    def series(self) -> dict[str, list[list[float]]]:
        if len(self.rows) < 2:
            return {}
        out: dict[str, list[list[float]]] = defaultdict(list)
        for s in sorted(self.rows):
            r = self.rows[s]
            if r["reward_n"]:
                out["reward"].append([s, r["reward_sum"] / r["reward_n"]])
            if r["correct_n"]:
                out["accuracy"].append([s, r["correct_sum"] / r["correct_n"]])
            out["tool_calls"].append([s, r["calls"] / r["n"]])
            out["frac_with_tool_call"].append([s, r["used"] / r["n"]])
            if r["calls"]:
                out["code_error_rate"].append([s, r["failed"] / r["calls"]])
            out["response_length"].append([s, r["tokens"] / r["n"]])
        return dict(out)


def trajectory_series(
    trajectories: Sequence[Trajectory], step: float | None = None
) -> dict[str, list[list[float]]]:
    """Curves over training steps from trajectories with a step (`metadata["step"]`, else `step`):
    mean reward, accuracy, tool calls per trajectory, share using the tool, code error rate and response
    length in tokens. Empty when fewer than two steps are present."""
    acc = _StepStats()
    for t in trajectories:
        acc.add(t, _step_of(t, step))
    return acc.series()


def build_charts(metrics: dict[str, list[list[float]]], series: str) -> list[dict[str, Any]]:
    """The main charts (ToRL's figures) from a {name: points} dict: [{title, key, series, points}]."""
    charts = []
    for keys, suffix in (
        ([k for k in metrics if not _is_eval(k)], ""),
        ([k for k in metrics if _is_eval(k)], " (eval)"),
    ):
        for title, names in CURVES:
            key = _match(keys, names)
            if key is not None:
                charts.append({"title": title + suffix, "key": key, "series": series, "points": metrics[key]})
    return charts


_STEP_FILE = re.compile(r"^(eval_)?step_(\d+)$")


def _expand(inputs: Sequence[str | Path]) -> list[tuple[str, list[tuple[Path, float | None]]]]:
    """Input files and folders as (label, [(file, step from its name)]); a folder gives its *.jsonl files."""
    groups: list[tuple[str, list[tuple[Path, float | None]]]] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir() and not any(p.glob("*.jsonl")) and (p / "trajectories").is_dir():
            p = p / "trajectories"  # a trainer output folder
        if p.is_dir():
            files = sorted(p.glob("*.jsonl"))
            if not files:
                raise ReportError(f"{p}: a folder without .jsonl files")
        elif p.is_file():
            files = [p]
        else:
            raise ReportError(f"{p}: no such file")
        by_label: dict[str, list[tuple[Path, float | None]]] = defaultdict(list)
        for f in files:
            m = _STEP_FILE.match(f.stem)
            if m:  # the trainer's trajectories/step_000010.jsonl and eval_step_000010.jsonl
                label = ("eval" if m.group(1) else "train") + (
                    f" ({p.parent.name})" if p.is_dir() and p.parent.name else ""
                )
                by_label[label].append((f, float(m.group(2))))
            else:
                label = f.stem if f.stem not in ("trajectories", "samples") else (f.parent.name or f.stem)
                by_label[label].append((f, None))
        groups += list(by_label.items())
    return groups


def _subsample(items: list[Any], limit: int | None) -> list[Any]:
    if limit is None or len(items) <= limit:
        return items
    stride = len(items) / limit
    return [items[int(i * stride)] for i in range(limit)]


def _asset(name: str) -> str:
    return resources.files("torl.view").joinpath(name).read_text(encoding="utf-8")


def _json_for_script(data: Any) -> str:
    """JSON safe inside a <script> element: `<`, `>` and `&` escaped so no text can close the element."""
    s = json.dumps(data, ensure_ascii=False, allow_nan=False)
    return (
        s.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def build_report(
    trajectory_files: Sequence[str | Path] = (),
    metrics_file: str | Path | None = None,
    *,
    title: str = "torl report",
    max_trajectories: int | None = 2000,
) -> str:
    """The HTML page (a string) for trajectory JSON Lines files and an optional metrics file.

    Args:
        trajectory_files: JSON Lines files of trajectories (`torl eval`'s `trajectories.jsonl`), or folders
            of them (the trainer's `trajectories/step_000010.jsonl`; the step comes from the file name).
        metrics_file: a trainer_state.json, or a JSON / JSON Lines file of metric dicts with a `step`.
        title: the page title.
        max_trajectories: show at most about this many, spread evenly over the files and within each
            (None: all); the curves use all of them.

    Raises:
        ReportError: no input, or an input file cannot be read.
    """
    if not trajectory_files and metrics_file is None:
        raise ReportError("nothing to show: give trajectory files and/or a metrics file")
    groups = _expand(trajectory_files)
    nfiles = sum(len(files) for _, files in groups)
    quota = None if max_trajectories is None else max(1, max_trajectories // max(nfiles, 1))
    records: list[dict[str, Any]] = []
    charts: list[dict[str, Any]] = []
    sources: dict[str, _SourceStats] = {}
    total = 0
    for label, files in groups:
        stats = _StepStats()
        summary = sources.setdefault(label, _SourceStats())
        for f, step in files:
            trajs = load_trajectories(f)
            total += len(trajs)
            verdicts = {}
            for t in trajs:
                stats.add(t, _step_of(t, step))
                verdicts[id(t)] = _verdicts(t)
                summary.add(t, label, verdicts[id(t)])
            for t in _subsample(trajs, quota):
                records.append(trajectory_record(t, label, len(records), step, verdicts[id(t)]))
        charts += build_charts(stats.series(), f"from trajectories: {label}")
    if metrics_file is None:  # a trainer output folder brings its own metrics
        for item in trajectory_files:
            if Path(item).is_dir() and find_metrics(item) is not None:
                metrics_file = find_metrics(item)
                break
    all_metrics: dict[str, list[list[float]]] = {}
    if metrics_file is not None:
        all_metrics = metric_series(load_metrics(metrics_file))
        mf = Path(metrics_file)
        mf = (find_metrics(mf) or mf) if mf.is_dir() else mf
        label = f"{mf.parent.name}/{mf.name}" if mf.parent.name.startswith("checkpoint-") else mf.name
        charts += build_charts(all_metrics, label)
    merged: dict[str, dict[str, Any]] = {}
    for c in charts:  # one chart per curve, a line per source
        merged.setdefault(c["title"], {"title": c["title"], "lines": []})["lines"].append(
            {"label": f"{c['key']} ({c['series']})", "points": c["points"]}
        )
    per_source = {name: s.summary() for name, s in sources.items()}
    data = {
        "title": title,
        "trajectories": records,
        "total": total,
        "sources": per_source,
        "compare": compare_charts(per_source),
        "charts": list(merged.values()),
        "metrics": all_metrics,
        "metric_default": moving_metric(all_metrics, [c["key"] for c in charts]),
    }
    parts = {
        "CSS": _asset("report.css"),
        "JS": _asset("report.js"),
        "TITLE": html.escape(title),
        "DATA": _json_for_script(data),
    }
    # one pass over the template: inserted text (model output included) is never scanned again
    return _PLACEHOLDER.sub(lambda m: parts[m.group(1) or m.group(2)], _asset("report.html"))


def write_report(
    out: str | Path,
    trajectory_files: Sequence[str | Path] = (),
    metrics_file: str | Path | None = None,
    *,
    title: str = "torl report",
    max_trajectories: int | None = 2000,
) -> Path:
    """Build the report (see `build_report`) and write it to `out`; returns the path."""
    page = build_report(trajectory_files, metrics_file, title=title, max_trajectories=max_trajectories)
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(page, encoding="utf-8")
    return p
