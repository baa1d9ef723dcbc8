"""Loading benchmarks: by name from the shared data, from any JSON Lines file, and clear errors."""

from __future__ import annotations

import json

import pytest

from torl.eval import BENCHMARKS, DataError, load_problems


def test_the_five_torl_benchmarks_load_with_their_sizes(data_dir):
    sizes = {name: len(load_problems(name, data_dir=data_dir)) for name in BENCHMARKS}
    assert sizes == {"aime24": 30, "aime25": 30, "math500": 500, "olympiadbench": 675, "amc23": 40}
    p = load_problems("aime24", data_dir=data_dir, limit=3)
    assert [x.benchmark for x in p] == ["aime24"] * 3
    assert p[0].id == "aime24-I-01" and p[0].answer == "204" and "Aya" in p[0].problem


def test_data_dir_from_environment(data_dir, monkeypatch):
    monkeypatch.setenv("TORL_DATA_DIR", str(data_dir))
    assert len(load_problems("AMC23", limit=2)) == 2


def test_jsonl_file_with_other_keys_numbers_and_lists(tmp_path):
    f = tmp_path / "mine.jsonl"
    rows = [{"question": "1+1?", "final": 2}, {"question": "x?", "final": ["3/4"]}, {}]
    f.write_text("\n".join(json.dumps(r) for r in rows[:2]) + "\n\n")
    p = load_problems(str(f), problem_key="question", answer_key="final")
    assert [(x.benchmark, x.id, x.answer) for x in p] == [("mine", "mine-0", "2"), ("mine", "mine-1", "3/4")]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"problem": "a", "answer": "1"}\n{"problem": "b"\n', "mine.jsonl:2: not valid JSON"),
        (
            '{"problem": "a", "solution": "1"}\n',
            "mine.jsonl:1: no 'answer' field (fields: problem, solution)",
        ),
        (
            '{"id": 1, "problem": "a", "answer": "1"}\n{"id": 1, "problem": "b", "answer": "2"}\n',
            "duplicate id '1'",
        ),
        ('{"problem": "a", "answer": "  "}\n', "'answer' is empty"),
        ('{"problem": "a", "answer": null}\n', "'answer' must be a string or a number"),
        ("[1, 2]\n", "expected a JSON object"),
        ("\n", "has no problems"),
    ],
)
def test_bad_rows_are_named(tmp_path, content, message):
    f = tmp_path / "mine.jsonl"
    f.write_text(content)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_problems(str(f))


def test_unknown_benchmark_lists_what_is_there(data_dir):
    with pytest.raises(DataError, match=r"no file .*aime23\.jsonl; found: .*aime24.*math500"):
        load_problems("aime23", data_dir=data_dir)


def test_missing_data_dir_and_file(tmp_path, monkeypatch):
    monkeypatch.delenv("TORL_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="no data folder given; pass --data-dir"):
        load_problems("aime24")
    with pytest.raises(DataError, match="no such file"):
        load_problems(str(tmp_path / "nope.jsonl"))
    with pytest.raises(DataError, match="limit must be at least 1"):
        load_problems(str(tmp_path / "nope.jsonl"), limit=0)


def test_hub_dataset_that_cannot_load_is_a_data_error():
    # offline here: the hub is unreachable, which must come back as a clear DataError
    with pytest.raises(DataError, match="cannot load Hugging Face dataset 'no-such-owner/no-such-set'"):
        load_problems("hf:no-such-owner/no-such-set")


def test_hugging_face_dataset_from_a_local_folder(tmp_path):
    ds = tmp_path / "my_set"
    ds.mkdir()
    rows = [{"question": f"q{i}", "final_answer": [str(i)], "uid": f"u{i}"} for i in range(4)]
    (ds / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = load_problems(f"hf:{ds}", problem_key="question", answer_key="final_answer", id_key="uid", limit=3)
    assert [(x.benchmark, x.id, x.problem, x.answer) for x in p] == [
        ("my_set", f"u{i}", f"q{i}", str(i)) for i in range(3)
    ]
    with pytest.raises(DataError, match=r"split 'train'"):
        load_problems(f"hf:{ds}:train")
