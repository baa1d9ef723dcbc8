"""`torl eval` end to end on the real engine: the tiny TIR model on vLLM (CPU), the local sandbox,
the shared benchmark files. One engine start for the module."""

from __future__ import annotations

import json
import time

import pytest

from torl.cli import main
from torl.core import load_jsonl
from torl.testing import TORL_TWO_CALLS

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def run(tir_model_path, data_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval")
    toy = tmp / "toy.jsonl"
    toy.write_text(json.dumps({"id": "q1", "problem": "What is 12 * 34 + 5?", "answer": "413"}) + "\n")
    argv = [
        "eval",
        "--model",
        tir_model_path,
        "-b",
        str(toy),
        "-b",
        "aime24,aime25,math500,olympiadbench,amc23",
        "--data-dir",
        str(data_dir),
        "--limit",
        "2",
        "--max-new-tokens",
        "96",
        "--max-tool-calls",
        "2",
        "--sandbox",
        "local",
        "--output",
        str(tmp / "out"),
        "--name",
        "tiny-tir",
        "--no-progress",
        "--compare-torl",
        "--counterfactual",
        "--counterfactual-kinds",
        "disabled,error,swap,replay",
    ]
    return argv, tmp / "out"


def test_eval_runs_scores_and_resumes(run, capsys):
    argv, out = run
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| tiny-tir" in printed and "| ToRL-7B (reported)" in printed
    results = json.loads((out / "results.json").read_text())
    benches = results["summary"]["benchmarks"]
    assert set(benches) == {"toy", "aime24", "aime25", "math500", "olympiadbench", "amc23"}
    assert all(benches[b]["problems"] == 2 for b in benches if b != "toy")
    toy = benches["toy"]
    # greedy: the model writes a cell, gets 413 from the sandbox, writes a second cell, answers \boxed{413}
    assert (toy["pass@1"], toy["tool_use_rate"], toy["cells_per_problem"], toy["code_error_rate"]) == (
        1.0,
        1.0,
        2.0,
        0.0,
    )
    assert (
        results["settings"]["temperature"] == 0.0 and results["table"]["rows"]["tiny-tir"]["Avg"] >= 100 / 6
    )
    trajs = load_jsonl(out / "trajectories.jsonl")
    assert len(trajs) == 11
    (t,) = [t for t in trajs if t.metadata["benchmark"] == "toy"]
    assert t.completion_text == "".join(text for _, text in TORL_TWO_CALLS.segments)
    assert t.tool_calls[0].call.code.strip() == "print(12 * 34 + 5)"
    assert t.tool_calls[0].result.output.strip() == "413"
    assert t.metadata["pred"] == "413" and t.correct is True and t.reward == 1.0

    # counterfactual runs: each of the toy's two calls re-run from its recorded prefix; greedy, the recorded
    # output again (the control) gives back the recorded answer
    runs = {(r["kind"], r["call"]): r for r in t.metadata["counterfactual"] if not r.get("skipped")}
    assert {k for k, _ in runs} >= {"disabled", "error", "replay"} and {c for _, c in runs} == {0, 1}
    assert not runs["replay", 0]["changed"] and not runs["replay", 1]["changed"]
    assert all(0 < r["generated"] and r["reused"] > 0 for r in runs.values())
    cf = toy["counterfactual"]
    assert cf["tested"] == 1 and cf["kinds"]["replay"]["changed"] == 0.0 and 0.0 <= cf["reliance"] <= 1.0
    assert results["summary"]["counterfactual"]["tested"] >= 1
    assert "counterfactual tool reliance" in printed and "reliance" in printed.split("counterfactual")[-1]
    saved = load_jsonl(out / "trajectories_counterfactual.jsonl")
    assert sum(x.metadata["perturbation"]["of"]["benchmark"] == "toy" for x in saved) == len(runs)

    # a rerun finds every problem saved: no engine start, same numbers
    start = time.monotonic()
    assert main(argv) == 0
    assert time.monotonic() - start < 20
    assert "(all 11 problems were already in" in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text())["summary"] == results["summary"]

    # and the report shows the real cells and outputs
    html_file = out / "report.html"
    assert main(["view", str(out / "trajectories.jsonl"), "-o", str(html_file)]) == 0
    page = html_file.read_text()
    assert "print(12 * 34 + 5)" in page and "\\n413\\n```\\n" in page
