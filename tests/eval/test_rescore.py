"""`torl rescore`: a finished run's saved trajectories (here the tiny TIR model's, run with the local sandbox)
re-rendered and re-scored offline, with the flips counted."""

from __future__ import annotations

import json

import pytest

from torl.cli import main
from torl.core import load_jsonl
from torl.eval import EvalSettings, Problem, evaluate
from torl.eval.rescore import RescoreError, make_scorer, rerender, rescore_run

# 413 is the model's answer: exact checking calls it wrong, a relative tolerance of 1e-4 right
TOY = Problem("toy", "q1", "What is 12 * 34 + 5?", "413.01")


@pytest.fixture(scope="module")
def run_dir(tir_model_path, tmp_path_factory):
    import asyncio

    from torl.rollout import TIRRollout
    from torl.tools import CachedTool, LocalSandbox, ToolCache

    folder = tmp_path_factory.mktemp("run")

    async def go():
        tool = CachedTool(
            LocalSandbox(timeout_s=5, workers=1, preload=()), ToolCache(folder / "tool_log.jsonl")
        )
        async with tool:
            eng = TIRRollout.from_transformers(tir_model_path, tool=tool, max_tool_calls=2, max_new_tokens=96)
            await evaluate(
                eng,
                [TOY],
                EvalSettings(k=2, temperature=0.0, max_new_tokens=96, max_tool_calls=2),
                output=folder / "trajectories.jsonl",
                progress=False,
            )
            await eng.close()

    asyncio.run(go())
    return folder


def test_another_scorer_flips_the_verdicts(run_dir):
    before = load_jsonl(run_dir / "trajectories.jsonl")
    assert [t.correct for t in before] == [False, False] and before[0].metadata["pred"] == "413"
    report = rescore_run(run_dir, "math-tol")
    (row,) = report.rows
    assert (row.label, row.n, row.wrong_to_right, row.right_to_wrong) == ("trajectories.jsonl", 2, 2, 0)
    assert (row.rewards_changed, row.rewards_known, row.text_changed) == (2, 2, 0)
    assert report.skipped == ["tool_log.jsonl"]  # a JSON Lines file that is not trajectories
    after = load_jsonl(run_dir / "rescored" / "trajectories.jsonl")
    assert [t.correct for t in after] == [True, True] and after[0].metadata["rule"] == "numeric"
    assert after[0].completion_ids == before[0].completion_ids  # nothing generated, nothing run
    # the rescored folder is not read back as input
    assert [r.label for r in rescore_run(run_dir, "math", save=False).rows] == ["trajectories.jsonl"]


def test_rerendering_changes_only_the_tool_output(run_dir, tir_model_path):
    from transformers import AutoTokenizer

    from torl.rollout import get_format

    tok = AutoTokenizer.from_pretrained(tir_model_path)
    t = load_jsonl(run_dir / "trajectories.jsonl")[0]
    r = rerender(t, get_format("torl", max_chars=2), tok)
    assert [s.text for s in r.segments if s.kind == "tool"] == ["\n4...3\n```\n", "\n4...8\n```\n"]
    assert [s.text for s in r.segments if s.kind == "model"] == [
        s.text for s in t.segments if s.kind == "model"
    ]
    model_ids = lambda x: [i for i, m in zip(x.completion_ids, x.env_mask) if m]
    assert model_ids(r) == model_ids(t) and sum(r.env_mask) == sum(t.env_mask)
    assert tok.decode(r.completion_ids) == r.completion_text and r.metadata["rerendered"] == {
        "format": "torl"
    }
    report = rescore_run(
        run_dir,
        "math",
        tir_format="torl",
        format_options={"max_chars": 2},
        tokenizer=tir_model_path,
        save=False,
    )
    assert report.rows[0].text_changed == 2 and report.rows[0].flipped == 0


def test_the_command(run_dir, capsys):
    assert main(["rescore", str(run_dir), "--scorer", "math-tol", "--no-save"]) == 0
    out = capsys.readouterr().out
    assert "rescored 2 trajectories" in out and "wrong->right" in out
    line = next(x for x in out.splitlines() if x.startswith("trajectories.jsonl"))
    assert line.split()[1:7] == ["2", "0.0%", "100.0%", "2", "2", "0"]
    assert (
        main(
            [
                "rescore",
                str(run_dir / "trajectories.jsonl"),
                "--scorer",
                "torl.rewards:ToRLReward",
                "--json",
                "--no-save",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert (
        report["total"]["n"] == 2
        and report["total"]["flipped"] == 0
        and report["total"]["rewards_changed"] == 2
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scorer", "nope"], "unknown scorer 'nope'"),
        (["--format", "torl"], "give --tokenizer"),
        (["--format-arg", "max_chars=3"], "--format-arg goes with --format"),
        (["--format", "bogus", "--tokenizer", "x"], "unknown tir_format"),
    ],
)
def test_clear_errors(run_dir, argv, message, capsys):
    assert main(["rescore", str(run_dir), "--no-save", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_scorers_and_missing_runs(tmp_path):
    assert make_scorer("torl-exec").penalty.penalty == -0.5
    with pytest.raises(RescoreError, match="not a torl reward"):
        make_scorer("json:dumps")
    with pytest.raises(RescoreError, match="no such file or folder"):
        rescore_run(tmp_path / "nothing")
    with pytest.raises(RescoreError, match="no .jsonl"):
        rescore_run(tmp_path)
