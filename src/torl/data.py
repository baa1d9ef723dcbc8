"""Training data helpers: read problems into a `datasets.Dataset` and put them in a TIR prompt format.

The trainer never rewrites prompts: a dataset reaches it with a `prompt` column (raw text, or a list of chat
messages) and an `answer` column. These helpers build that from `{problem, answer}` rows:

```python
ds = apply_torl_template(load_jsonl_dataset("train_math.jsonl"))   # prompt = torl_prompt(problem)
ds = apply_torl_template(load_verl_parquet("torl_data/train.parquet"))  # ToRL's own file
```
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torl.errors import DataError
from torl.rollout.formats import ZERO_TIR_SYSTEM_PROMPT, TIRFormat, get_format, torl_prompt, zero_tir_messages

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = [
    "ZERO_TIR_SYSTEM_PROMPT",
    "DataError",
    "apply_format_template",
    "apply_template",
    "apply_torl_template",
    "apply_zero_tir_template",
    "load_jsonl_dataset",
    "load_verl_parquet",
    "read_jsonl",
    "torl_prompt",
    "zero_tir_messages",
]


def read_jsonl(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The rows of a JSON Lines file, one JSON object a line, as `(location, row)` pairs; `location` is
    `"file:line"`, for error messages. Blank lines are skipped. Rows are read as they are iterated.

    ```python
    from torl.data import DataError, read_jsonl

    for where, row in read_jsonl("train.jsonl"):
        if "answer" not in row:
            raise DataError(f"{where}: no 'answer'")
    ```

    Raises:
        DataError: the file is missing (at once), or a line is not UTF-8 text, not valid JSON or not a
            JSON object (when that line is reached); the message names the file and line.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    return _jsonl_rows(p)


def _jsonl_rows(p: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with p.open("rb") as f:
        for n, raw in enumerate(f, 1):
            where = f"{p}:{n}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(f"{where}: not UTF-8 text") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield where, row


def load_jsonl_dataset(
    path: str | Path, *, problem_key: str = "problem", answer_key: str = "answer", limit: int | None = None
) -> Dataset:
    """Read a JSON Lines file of `{problem, answer, ...}` rows into a `datasets.Dataset`.

    Every row must have a non-empty `problem_key` text and an `answer_key` (string or number, kept as text);
    the columns are renamed to `problem` and `answer`, other fields are kept. A bad line raises `DataError`
    naming the file and line (see `read_jsonl`); nothing is silently dropped. `limit` keeps the first rows.
    """
    from datasets import Dataset

    p = Path(path).expanduser()
    rows: list[dict[str, Any]] = []
    for where, row in read_jsonl(p):
        problem, answer = row.pop(problem_key, None), row.pop(answer_key, None)
        if not isinstance(problem, str) or not problem.strip():
            raise DataError(f"{where}: missing or empty {problem_key!r}")
        if isinstance(answer, bool) or not isinstance(answer, (str, int, float)) or not str(answer).strip():
            raise DataError(f"{where}: missing or invalid {answer_key!r} (want a string or a number)")
        rows.append({"problem": problem, "answer": str(answer), **row})
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise DataError(f"{p}: no rows")
    # Columns must be the same in every row for Dataset.from_list; fill missing extras with None.
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return Dataset.from_list([{k: r.get(k) for k in keys} for r in rows])


def load_verl_parquet(path: str | Path, *, limit: int | None = None) -> Dataset:
    """Read a verl RL parquet file (ToRL's `data/torl_data/train.parquet` layout) into `{problem, answer, ...}`
    rows, ready for `apply_format_template`.

    verl's columns: `prompt` (chat messages; the problem is the content of the user message, which ToRL
    reads as message 1; a plain string is taken as it is), `reward_model.ground_truth` (the answer) and
    `data_source`. Other columns whose values are plain (text, numbers, booleans) are kept; nested ones
    (`extra_info`, `reward_model`) are left out. A bad row raises `DataError` naming the file and row.
    """
    from datasets import Dataset

    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    try:
        import pyarrow.parquet as pq

        table = pq.read_table(p)
    except Exception as e:  # noqa: BLE001 - any reader error is a bad file
        raise DataError(f"{p}: not a readable parquet file ({type(e).__name__}: {e})") from None
    for col in ("prompt", "reward_model"):
        if col not in table.column_names:
            raise DataError(f"{p}: no {col!r} column (a verl RL parquet has prompt, data_source, reward_model)")
    rows: list[dict[str, Any]] = []
    for n, row in enumerate(table.to_pylist()):
        where = f"{p}: row {n}"
        rows.append({"problem": _verl_problem(row["prompt"], where), "answer": _verl_answer(row["reward_model"], where),
                     **{k: v for k, v in row.items() if k not in ("prompt", "reward_model", "problem", "answer")
                        and (v is None or isinstance(v, (str, int, float, bool)))}})
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise DataError(f"{p}: no rows")
    return Dataset.from_list(rows)


def _verl_problem(prompt: Any, where: str) -> str:
    if isinstance(prompt, str):
        text = prompt
    elif isinstance(prompt, list) and all(isinstance(m, dict) for m in prompt):
        users = [m.get("content") for m in prompt if m.get("role") == "user"]
        text = users[-1] if users else None
    else:
        text = None
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}: 'prompt' holds no user message with text")
    return text


def _verl_answer(reward_model: Any, where: str) -> str:
    truth = reward_model.get("ground_truth") if isinstance(reward_model, dict) else None
    if isinstance(truth, bool) or not isinstance(truth, (str, int, float)) or not str(truth).strip():
        raise DataError(f"{where}: 'reward_model.ground_truth' is missing or not a string or a number")
    return str(truth)


def apply_template(ds: Dataset, make_prompt: Callable[[str], Any], *, problem_key: str = "problem") -> Dataset:
    """Add (or replace) the `prompt` column with `make_prompt(row[problem_key])`, keeping the other columns."""
    if problem_key not in ds.column_names:
        raise DataError(f"dataset has no {problem_key!r} column (columns: {ds.column_names})")
    return ds.map(lambda row: {"prompt": make_prompt(row[problem_key])})


def apply_format_template(
    ds: Dataset, tir_format: str | TIRFormat = "torl", *, problem_key: str = "problem"
) -> Dataset:
    """Set `prompt` to the format's prompt of each problem (`TIRFormat.prompt`): ToRL's raw text for "torl",
    system + user messages for "zero_tir", one user message for "chat"."""
    return apply_template(ds, get_format(tir_format).prompt, problem_key=problem_key)


def apply_torl_template(ds: Dataset, *, problem_key: str = "problem") -> Dataset:
    """Set `prompt` to ToRL's raw-text prompt (`torl_prompt`, byte-exact `tir_base_0309`) for each problem."""
    return apply_format_template(ds, "torl", problem_key=problem_key)


def apply_zero_tir_template(
    ds: Dataset, *, problem_key: str = "problem", system_prompt: str = ZERO_TIR_SYSTEM_PROMPT
) -> Dataset:
    """Set `prompt` to ZERO-TIR-style chat messages (rendered by the model's chat template at rollout time)."""
    return apply_format_template(ds, get_format("zero_tir", system_prompt=system_prompt), problem_key=problem_key)
