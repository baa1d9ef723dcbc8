"""ToRL-style results tables: rows are runs, columns are benchmarks and their average."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torl.eval.data import BENCHMARKS, display_name

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
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(head), *(fmt(r) for r in rows)])
