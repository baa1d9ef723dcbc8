"""The report's data and page, without a browser (the browser tests are in test_browser.py)."""

from __future__ import annotations

import json
import re

import pytest
from fakes import make_trajectory
from inputs import HOSTILE, write_eval, write_training_run

from torl.core import save_jsonl
from torl.view import ReportError, build_report, find_metrics, load_metrics, metric_series, trajectory_series


def page_data(page: str) -> dict:
    m = re.search(r'<script id="torl-data" type="application/json">(.*?)</script>', page, re.DOTALL)
    assert m, "no data element"
    return json.loads(m.group(1))


def test_model_text_cannot_break_out_of_the_page(tmp_path):
    page = build_report([write_eval(tmp_path)])
    assert page.count("<script") == 2 and page.count("</script>") == 2  # the data element and the code
    assert "window.__pwned" not in page.split('type="application/json">', 1)[0]
    assert "<img" not in page and "<b>bold" not in page
    data = page_data(page)
    assert any(HOSTILE in p["text"] for t in data["trajectories"] for p in t["parts"])  # kept, as data
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_placeholders_in_model_text_are_not_expanded(tmp_path):
    t = make_trajectory([("model", "/*__TORL_JS__*/ __TORL_DATA__ __TORL_TITLE__ /*__TORL_CSS__*/")])
    save_jsonl([t], tmp_path / "x.jsonl")
    page = build_report([tmp_path / "x.jsonl"], title="T")
    assert page.count('"use strict"') == 1 and page.count("--fg: #1d2330") == 1
    assert page_data(page)["trajectories"][0]["parts"][0]["text"].startswith("/*__TORL_JS__*/")


def test_eval_records_carry_cells_outputs_and_verdicts(tmp_path):
    data = page_data(build_report([write_eval(tmp_path)], title="Eval"))
    assert data["total"] == 60 and len(data["trajectories"]) == 60
    first = data["trajectories"][0]
    assert first["source"] == "my-model" and first["benchmark"] == "math500"
    assert [p["kind"] for p in first["parts"]] == ["model", "tool", "model"]
    assert first["parts"][1] == {
        "kind": "tool",
        "text": "\n413\n```\n",
        "status": "ok",
        "truncated": False,
        "error": None,
    }
    assert (first["pred"], first["answer"], first["correct"], first["calls"], first["failed"]) == (
        "413",
        "413",
        True,
        1,
        0,
    )
    assert first["rule"] == "integer"  # the answer rule that decided, to audit the verdict
    failed, truncated = data["trajectories"][1], data["trajectories"][2]
    assert failed["rule"] is None
    assert failed["failed"] == 1 and failed["parts"][1]["status"] == "error"
    assert truncated["truncated"] == 1 and truncated["finish"] == "length" and truncated["pred"] is None
    assert data["charts"] == []  # no steps in eval output


def test_training_folder_and_metrics_give_the_curves(tmp_path):
    folder, state = write_training_run(tmp_path)
    data = page_data(build_report([folder], state))
    steps = sorted({t["step"] for t in data["trajectories"]})
    assert steps == [1, 2, 3, 4, 5] and {t["benchmark"] for t in data["trajectories"]} == {"train (run)"}
    assert all(t["correct"] == (t["reward"] > 0) for t in data["trajectories"])  # from torl/correct
    charts = {c["title"]: {ln["label"]: ln["points"] for ln in c["lines"]} for c in data["charts"]}
    assert list(charts)[:6] == [
        "Reward",
        "Accuracy",
        "Tool calls per trajectory",
        "Share of trajectories using the tool",
        "Code error rate",
        "Response length (tokens)",
    ]
    acc = charts["Accuracy"]["accuracy (from trajectories: train (run))"]
    assert acc == [[1.0, 0.0], [2.0, 0.25], [3.0, 0.5], [4.0, 0.75], [5.0, 1.0]]
    assert "tir/accuracy (trainer_state.json)" in charts["Accuracy"]
    assert charts["Accuracy (eval)"] == {"eval_tir/accuracy (trainer_state.json)": [[1.0, 0.2], [5.0, 0.4]]}
    assert "reward (trainer_state.json)" in charts["Reward"]
    assert "completions/mean_length (trainer_state.json)" in charts["Response length (tokens)"]
    assert "tir/code_error_rate (trainer_state.json)" in charts["Code error rate"]
    assert [p[0] for p in data["metrics"]["loss"]] == [1.0, 3.0, 4.0, 5.0]  # NaN left out


def test_max_trajectories_spreads_over_files(tmp_path):
    folder, _ = write_training_run(tmp_path, steps=5)
    data = page_data(build_report([folder], max_trajectories=5))
    assert data["total"] == 20 and [t["step"] for t in data["trajectories"]] == [1, 2, 3, 4, 5]
    # curves still use every trajectory
    assert len(next(c for c in data["charts"] if c["title"] == "Accuracy")["lines"][0]["points"]) == 5


def test_metrics_formats_and_series(tmp_path):
    f = tmp_path / "m.jsonl"
    f.write_text('{"step": 2, "reward": 0.5}\n\n{"step": 1, "reward": 0.25, "flag": true, "name": "x"}\n')
    assert metric_series(load_metrics(f)) == {"reward": [[1.0, 0.25], [2.0, 0.5]]}
    g = tmp_path / "m.json"
    g.write_text(json.dumps([{"reward": 1.0}, {"reward": 2.0}]))  # no step: the row index
    assert metric_series(load_metrics(g)) == {"reward": [[0.0, 1.0], [1.0, 2.0]]}
    assert trajectory_series([make_trajectory([("model", "x")])]) == {}


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"global_step": 3}', "without 'log_history'"),
        ('{"step": 1}\n{oops\n', r"m\.json:2: not valid JSON"),
        ('{"step": 1}\n[2]\n', r"m\.json:2: expected a JSON object, got list"),
        ("[1, 2]", "expected a list of metric dicts"),
    ],
)
def test_bad_metrics_files(tmp_path, content, message):
    f = tmp_path / "m.json"
    f.write_text(content)
    with pytest.raises(ReportError, match=message):
        build_report([], f)


def test_bad_inputs(tmp_path):
    with pytest.raises(ReportError, match="nothing to show"):
        build_report([])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="a folder without .jsonl files"):
        build_report([tmp_path / "empty"])
    with pytest.raises(ReportError, match="no such file"):
        build_report([tmp_path / "nope.jsonl"])


def test_a_trainer_output_folder_brings_trajectories_and_the_latest_checkpoint_metrics(tmp_path):
    folder, state = write_training_run(tmp_path)
    run = folder.parent
    for n in (2, 10):  # numeric order: checkpoint-10 is the latest
        (run / f"checkpoint-{n}").mkdir()
        history = [{"step": s, "tir/accuracy": n / 100} for s in range(1, 3)]
        (run / f"checkpoint-{n}" / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    state.unlink()
    assert find_metrics(run) == run / "checkpoint-10" / "trainer_state.json"
    data = page_data(build_report([run]))
    assert len(data["trajectories"]) == 20
    acc = next(c for c in data["charts"] if c["title"] == "Accuracy")
    assert acc["lines"][1] == {
        "label": "tir/accuracy (checkpoint-10/trainer_state.json)",
        "points": [[1.0, 0.1], [2.0, 0.1]],
    }
    with pytest.raises(ReportError, match="no trainer_state.json in this folder"):
        build_report([], tmp_path)
