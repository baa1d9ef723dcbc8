"""Dataset helpers on the real benchmark files, and their errors."""

from __future__ import annotations

import json

import pytest

from torl.data import (
    DataError,
    apply_torl_template,
    apply_zero_tir_template,
    load_jsonl_dataset,
    torl_prompt,
)
from torl.testing import TORL_PROMPT_TEMPLATE


def test_load_and_template_real_data(data_dir):
    ds = load_jsonl_dataset(data_dir / "math500.jsonl")
    assert len(ds) == 500 and {"problem", "answer", "id", "source"} <= set(ds.column_names)
    ds = apply_torl_template(ds)
    row = ds[0]
    assert row["prompt"] == TORL_PROMPT_TEMPLATE.format(problem=row["problem"]) == torl_prompt(row["problem"])
    assert row["prompt"].endswith(row["problem"] + "\nAssistant:\n")
    assert "\\boxed{}" in row["prompt"]


def test_limit_and_numeric_answers(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text("\n".join(json.dumps({"problem": f"q{i}", "answer": i}) for i in range(5)) + "\n\n")
    ds = load_jsonl_dataset(p, limit=3)
    assert ds["answer"] == ["0", "1", "2"]


def test_zero_tir_messages(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text(json.dumps({"question": "What is 2+2?", "gt": "4"}) + "\n")
    ds = apply_zero_tir_template(load_jsonl_dataset(p, problem_key="question", answer_key="gt"))
    msgs = ds[0]["prompt"]
    assert [m["role"] for m in msgs] == ["system", "user"] and msgs[1]["content"] == "What is 2+2?"
    assert ds[0]["answer"] == "4"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "t.jsonl:2: not valid JSON"),
        ('{"answer": "1"}', "t.jsonl:2: missing or empty 'problem'"),
        ('{"problem": "q"}', "t.jsonl:2: missing or invalid 'answer'"),
        ('{"problem": "q", "answer": true}', "t.jsonl:2: missing or invalid 'answer'"),
        ("[1, 2]", "t.jsonl:2: expected a JSON object"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    p = tmp_path / "t.jsonl"
    p.write_text('{"problem": "ok", "answer": "1"}\n' + line + "\n")
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        load_jsonl_dataset(p)


def test_missing_file_and_column(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_jsonl_dataset(tmp_path / "nope.jsonl")
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no rows"):
        load_jsonl_dataset(tmp_path / "e.jsonl")
    from datasets import Dataset

    with pytest.raises(DataError, match="no 'problem' column"):
        apply_torl_template(Dataset.from_dict({"question": ["q"]}))
