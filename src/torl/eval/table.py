"""ToRL-style results tables: rows are runs, columns are benchmarks and their average."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from torl.eval.data import BENCHMARKS, Problem, display_name

TORL_REPORTED: dict[str, dict[str, float]] = {
    "ToRL-1.5B (reported)": {
        "AIME24": 26.7,
        "AIME25": 26.7,
        "MATH500": 77.8,
        "OlympiadBench": 44.0,
        "AMC23": 67.5,
        "Avg": 48.5,
    },
    "ToRL-7B (reported)": {
        "AIME24": 43.3,
        "AIME25": 30.0,
        "MATH500": 82.2,
        "OlympiadBench": 49.9,
        "AMC23": 75.0,
        "Avg": 62.1,
    },
}
"""ToRL's Table 3 (greedy decoding, accuracy in %), for `--compare-torl`."""

TORL_REPORTED_SOURCE = (
    "ToRL's paper, Table 3, not rerun here: greedy decoding, C=1; AIME24, AIME25, MATH500, OlympiadBench and "
    "AMC23 as ToRL names them, problem counts not given; its repository's first test file held only aime24, "
    "aime25 and math500 (GAIR-NLP/ToRL#9) and 134 level-5 MATH500 problems (#13; test_0524.parquet has all "
    "500); the checker behind the table is not published (ToRL's validation scores with its reward's check, "
    "scorer=torl)"
)
"""Where the `TORL_REPORTED` rows come from, as `torl eval --compare-torl` prints it."""

SCORER_TEXT: dict[str, str] = {
    "default": "torl's answer rules on the model's own prose (scorer=default)",
    "torl": "ToRL's check on the whole response: its last \\boxed{}, exact / normalize_final_answer / "
    "math-verify, unverifiable = wrong (scorer=torl)",
    "zero_tir": "AReaL ZERO-TIR-RL's check: the last <answer>, the Qwen2.5-Math extraction (scorer=zero_tir)",
}


def summary_row(summary: Mapping[str, Any], metric: str = "pass@1") -> dict[str, float]:
    """One table row (in %) from a `summarize` result: `metric` per benchmark, and `Avg` over them.

    `metric` is `"pass@1"`, `"maj@k"`, `"pass@k"` (at the largest k), or a tool statistic such as
    `"tool_use_rate"`.
    """
    row: dict[str, float] = {}
    for bench, s in summary["benchmarks"].items():
        if metric == "pass@k":
            value = s["pass@k"][max(s["pass@k"], key=int)]
        elif metric in s:
            value = s[metric]
        else:
            raise ValueError(f"unknown metric {metric!r}")
        row[display_name(bench)] = 100.0 * value if metric.endswith(("@1", "@k", "_rate")) else value
    if row:
        row["Avg"] = sum(row.values()) / len(row)
    return row


def format_table(rows: Mapping[str, Mapping[str, float | None]], digits: int = 1) -> str:
    """A Markdown table (aligned, readable as plain text). Columns: ToRL's benchmarks first, in their
    order, then any others, then `Avg`; a missing value shows as `-`."""
    order = list(BENCHMARKS.values())
    seen: list[str] = []
    for r in rows.values():
        for c in r:
            if c not in seen and c != "Avg":
                seen.append(c)
    cols = [c for c in order if c in seen] + [c for c in seen if c not in order] + ["Avg"]
    header = ["Model"] + cols
    body = [
        [name] + [f"{r[c]:.{digits}f}" if r.get(c) is not None else "-" for c in cols]
        for name, r in rows.items()
    ]
    widths = [max(len(x[i]) for x in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "| " + " | ".join(parts) + " |"

    sep = "|" + "|".join(["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|"
    return "\n".join([line(header), sep, *(line(b) for b in body)])


def format_details(summary: Mapping[str, Any]) -> str:
    """Per-benchmark detail table: problems, k, pass@1, pass@k, maj@k and tool-use statistics; with
    counterfactual runs, `reliance` (share of tool-using samples whose answer changes without the tool)."""
    head = [
        "Benchmark",
        "n",
        "k",
        "pass@1",
        "pass@k",
        "maj@k",
        "cells",
        "code err",
        "tool use",
        "no ans",
        "tokens",
    ]
    cf = any("counterfactual" in s for s in summary["benchmarks"].values())
    if cf:
        head.append("reliance")
    rows = []
    for bench, s in summary["benchmarks"].items():
        kmax = max(s["pass@k"], key=int)
        rows.append(
            [
                display_name(bench),
                str(s["problems"]),
                str(s["k"]),
                f"{100 * s['pass@1']:.1f}",
                f"{100 * s['pass@k'][kmax]:.1f}",
                f"{100 * s['maj@k']:.1f}",
                f"{s['cells_per_problem']:.2f}",
                f"{100 * s['code_error_rate']:.1f}%",
                f"{100 * s['tool_use_rate']:.1f}%",
                f"{100 * s['no_answer_rate']:.1f}%",
                f"{s['mean_response_tokens']:.0f}",
            ]
        )
        if cf:
            r = (s.get("counterfactual") or {}).get("reliance")
            rows[-1].append("-" if r is None else f"{100 * r:.1f}%")
    return align(head, rows)


def align(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned, two spaces apart."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(r: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    return "\n".join([line(head), *(line(r) for r in rows)])


def problem_sets(problems: Sequence[Problem], sources: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Per benchmark: how many problems, where they came from (`sources`: benchmark -> file or dataset) and a
    short sha256 of their (id, problem, answer) triples, which names the exact set."""
    groups: dict[str, list[Problem]] = {}
    for p in problems:
        groups.setdefault(p.benchmark, []).append(p)
    out = {}
    for bench, ps in groups.items():
        blob = json.dumps([[p.id, p.problem, p.answer] for p in ps], ensure_ascii=False)
        out[bench] = {
            "problems": len(ps),
            "source": (sources or {}).get(bench, bench),
            "sha256": hashlib.sha256(blob.encode()).hexdigest()[:12],
        }
    return out


def row_source(
    model: str, settings: Any, sets: Mapping[str, Mapping[str, Any]], scorer: str, rescored: bool = False
) -> str:
    """One line saying how a `torl eval` row was made: sampling, engine settings, problem sets, answer check."""
    temp = settings.sampling_temperature
    head = (
        f"torl eval of {settings.model or model}: {settings.k} sample(s) a problem, temperature {temp:g}, "
        f"C={settings.max_tool_calls}, {settings.max_new_tokens} tokens, format {settings.tir_format}"
    )
    parts = ", ".join(
        f"{display_name(b)} {s['problems']} problems ({s['source']}, sha256 {s['sha256']})" for b, s in sets.items()
    )
    again = "; the same samples judged again" if rescored else ""
    return f"{head}; problem sets: {parts}; answer check: {SCORER_TEXT.get(scorer, scorer)}{again}"
