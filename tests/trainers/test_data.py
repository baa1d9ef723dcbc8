"""Dataset helpers on the real benchmark files, and their errors."""

from __future__ import annotations

import json

import pytest

from torl.data import (
    DataError,
    apply_torl_template,
    apply_zero_tir_template,
    load_jsonl_dataset,
    read_jsonl,
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


def test_read_jsonl_yields_locations_and_names_bad_lines(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_bytes(b'{"a": 1}\n\n  \n{"a": "\xe2\x80\xa8 2"}\r\n{oops\n')
    rows = read_jsonl(p)
    assert next(rows) == (f"{p}:1", {"a": 1})
    assert next(rows) == (f"{p}:4", {"a": "\u2028 2"})  # blank lines skipped; lines end at \n only
    with pytest.raises(DataError, match=r"r\.jsonl:5: not valid JSON \(Expecting property name"):
        next(rows)
    for content, message in ((b"{}\n[1]\n", "r.jsonl:2: expected a JSON object, got list"),
                             (b"{}\n{}\n\xff{}\n", "r.jsonl:3: not UTF-8 text")):
        p.write_bytes(content)
        with pytest.raises(DataError, match=message.replace(".", r"\.")):
            list(read_jsonl(p))
    with pytest.raises(DataError, match="nope.jsonl: no such file"):
        read_jsonl(tmp_path / "nope.jsonl")  # at once, before iterating


def test_one_reader_for_training_rows_benchmarks_and_metrics(tmp_path):
    """Training data, benchmarks and report metrics read JSON Lines with the same reader and messages."""
    from torl.eval import load_problems
    from torl.view import ReportError, load_metrics

    p = tmp_path / "t.jsonl"
    p.write_text('{"problem": "q", "answer": "1", "step": 1}\n{oops\n')
    message = r"t\.jsonl:2: not valid JSON \(Expecting property name enclosed in double quotes\)$"
    readers = ((load_jsonl_dataset, DataError), (load_problems, DataError), (load_metrics, ReportError))
    for read, error in readers:
        with pytest.raises(error, match=message):
            read(str(p))


def _write_parquet(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _verl_row(question, answer, source="numina_olympiads"):
    """One row as verl's RL parquet holds it (ToRL's train.parquet layout)."""
    return {
        "data_source": source,
        "prompt": [{"role": "system", "content": "Please reason step by step."}, {"role": "user", "content": question}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": answer},
        "extra_info": {"split": "train", "index": 0},
    }


def test_verl_parquet_loader(tmp_path):
    from torl.data import apply_torl_template, load_verl_parquet

    path = _write_parquet(tmp_path / "train.parquet", [_verl_row("What is 2 + 2?", "4"), _verl_row("Find x.", "7", "amc")])
    ds = load_verl_parquet(path)
    assert ds["problem"] == ["What is 2 + 2?", "Find x."] and ds["answer"] == ["4", "7"]
    assert ds["data_source"] == ["numina_olympiads", "amc"] and ds["ability"] == ["math", "math"]
    assert "extra_info" not in ds.column_names and "reward_model" not in ds.column_names
    assert apply_torl_template(ds)[0]["prompt"].endswith("\nWhat is 2 + 2?\nAssistant:\n")
    assert len(load_verl_parquet(path, limit=1)) == 1


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": [{"role": "system", "content": "s"}], "reward_model": {"ground_truth": "1"}}, "no user message"),
        ({"prompt": "What?", "reward_model": {"style": "rule"}}, "ground_truth"),
        ({"prompt": "What?", "reward_model": {"ground_truth": ""}}, "ground_truth"),
    ],
)
def test_verl_parquet_bad_rows(tmp_path, row, message):
    from torl.data import DataError, load_verl_parquet

    path = _write_parquet(tmp_path / "bad.parquet", [row])
    with pytest.raises(DataError, match=rf"bad\.parquet: row 0: .*{message}"):
        load_verl_parquet(path)


def test_verl_parquet_bad_files(tmp_path):
    from torl.data import DataError, load_verl_parquet

    with pytest.raises(DataError, match="no such file"):
        load_verl_parquet(tmp_path / "missing.parquet")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="not a readable parquet"):
        load_verl_parquet(tmp_path / "junk.parquet")
    with pytest.raises(DataError, match="no 'reward_model' column"):
        load_verl_parquet(_write_parquet(tmp_path / "nocol.parquet", [{"prompt": "q"}]))


def test_recipe_reads_a_verl_parquet(tmp_path):
    from torl.trainers.recipe import build_dataset

    path = _write_parquet(tmp_path / "train.parquet", [_verl_row("What is 2 + 2?", "4")])
    ds = build_dataset({"train": str(path), "template": "torl"}, tokenizer=None)
    assert ds[0]["answer"] == "4" and ds[0]["prompt"].startswith("A conversation between User and Assistant.")
