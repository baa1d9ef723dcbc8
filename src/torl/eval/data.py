"""Evaluation problems: the ToRL benchmarks by name, any JSON Lines file, or a Hugging Face dataset."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from torl.data import read_jsonl
from torl.errors import DataError

BENCHMARKS: dict[str, str] = {
    "aime24": "AIME24",
    "aime25": "AIME25",
    "math500": "MATH500",
    "olympiadbench": "OlympiadBench",
    "amc23": "AMC23",
}
"""The five benchmarks of ToRL's Table 3: file stem -> display name (the table's column order)."""

TORL_BENCHMARKS: tuple[str, ...] = tuple(BENCHMARKS)


@dataclass(frozen=True)
class Problem:
    """One evaluation problem: a unique id within its benchmark, the question and the reference answer."""

    benchmark: str
    id: str
    problem: str
    answer: str


def display_name(benchmark: str) -> str:
    """The table name of a benchmark ("math500" -> "MATH500"); unknown names are kept as they are."""
    return BENCHMARKS.get(benchmark.lower(), benchmark)


def resolve_data_dir(data_dir: str | Path | None = None) -> Path | None:
    """The folder holding `<benchmark>.jsonl` files: `data_dir`, else $TORL_DATA_DIR, else None."""
    d = data_dir or os.environ.get("TORL_DATA_DIR")
    return Path(d).expanduser() if d else None


def _as_text(value: object, what: str, where: str) -> str:
    if isinstance(value, list) and len(value) == 1:  # e.g. OlympiadBench's one-element final_answer
        value = value[0]
    if isinstance(value, bool) or value is None:
        raise DataError(f"{where}: {what} must be a string or a number, got {value!r}")
    if isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str):
        raise DataError(f"{where}: {what} must be a string or a number, got {type(value).__name__}")
    if not value.strip():
        raise DataError(f"{where}: {what} is empty")
    return value


def _rows_to_problems(
    rows: Iterable[tuple[str, Any]], benchmark: str, problem_key: str, answer_key: str, id_key: str
) -> list[Problem]:
    out: list[Problem] = []
    seen: set[str] = set()
    for i, (where, row) in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
        for key in (problem_key, answer_key):
            if key not in row:
                raise DataError(f"{where}: no {key!r} field (fields: {', '.join(sorted(row)) or 'none'})")
        pid = str(row[id_key]) if row.get(id_key) not in (None, "") else f"{benchmark}-{i}"
        if pid in seen:
            raise DataError(f"{where}: duplicate id {pid!r} (ids must be unique for resuming)")
        seen.add(pid)
        out.append(
            Problem(
                benchmark=benchmark,
                id=pid,
                problem=_as_text(row[problem_key], repr(problem_key), where),
                answer=_as_text(row[answer_key], repr(answer_key), where),
            )
        )
    return out


def _read_json_list(path: Path) -> list[tuple[str, Any]]:
    """(location, item) for the items of a .json file holding a list of objects."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of objects")
    return [(f"{path}: item {i}", row) for i, row in enumerate(data)]


def _load_hf(spec: str, problem_key: str, answer_key: str, id_key: str) -> tuple[str, list[tuple[str, dict]]]:
    name, _, split = spec.partition(":")
    split = split or "test"
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        raise DataError("reading a Hugging Face dataset needs `pip install datasets`") from None
    try:
        ds = datasets.load_dataset(name, split=split)
    except Exception as e:  # noqa: BLE001 - hub, network and format errors all mean "cannot read it"
        raise DataError(f"cannot load Hugging Face dataset {name!r} (split {split!r}): {e}") from None
    bench = name.rstrip("/").split("/")[-1]
    return bench, [(f"{name}[{split}] row {i}", dict(row)) for i, row in enumerate(ds)]


def load_problems(
    spec: str,
    *,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    problem_key: str = "problem",
    answer_key: str = "answer",
    id_key: str = "id",
) -> list[Problem]:
    """Load the problems of one benchmark.

    Args:
        spec: a benchmark name (`"aime24"`, or any `<name>.jsonl` in the data folder), a path to a
            `.jsonl` / `.json` file, or `"hf:owner/name"` / `"hf:owner/name:split"` for a Hugging Face
            dataset (split `test` by default). The benchmark is named after the file stem or dataset name.
        data_dir: folder of `<name>.jsonl` files (default: $TORL_DATA_DIR).
        limit: keep only the first `limit` problems.
        problem_key, answer_key, id_key: column names. Rows without an id get `<benchmark>-<row>`.

    Raises:
        DataError: the benchmark cannot be found, or a row is malformed (the message names it).
    """
    if limit is not None and limit < 1:
        raise DataError(f"limit must be at least 1, got {limit}")
    if spec.startswith("hf:"):
        bench, rows = _load_hf(spec[3:], problem_key, answer_key, id_key)
    else:
        path = Path(spec).expanduser()
        if not (path.suffix in (".jsonl", ".json") or path.exists()):
            root = resolve_data_dir(data_dir)
            if root is None:
                raise DataError(
                    f"benchmark {spec!r}: no data folder given; pass --data-dir (or set TORL_DATA_DIR) "
                    f"to a folder holding {spec}.jsonl, or give a path to a .jsonl file"
                )
            path = root / f"{spec.lower()}.jsonl"
            if not path.is_file():
                known = sorted(p.stem for p in root.glob("*.jsonl")) if root.is_dir() else []
                have = f"; found: {', '.join(known)}" if known else ""
                raise DataError(f"benchmark {spec!r}: no file {path}{have}")
        bench = path.stem.lower() if path.stem.lower() in BENCHMARKS else path.stem
        rows = _read_json_list(path) if path.suffix == ".json" else read_jsonl(path)
    problems = _rows_to_problems(islice(rows, limit), bench, problem_key, answer_key, id_key)
    if not problems:
        raise DataError(f"benchmark {spec!r} has no problems")
    return problems
