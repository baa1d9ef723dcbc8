"""Counterfactual tool reliance on the tiny TIR model (transformers backend, local sandbox): every tool call
re-run from its recorded prefix with the output perturbed; the outcomes, their rates, resuming."""

from __future__ import annotations

import pytest

from torl.core import load_jsonl
from torl.errors import UserError
from torl.eval import (
    CounterfactualSettings,
    EvalSettings,
    Problem,
    evaluate,
    format_counterfactual,
    relies_on_tool,
    run_counterfactuals,
    summarize_counterfactual,
)
from torl.testing import TORL_TWO_CALLS

TOY = Problem("toy", "q1", "What is 12 * 34 + 5?", "413")


@pytest.fixture
async def engine(tir_model_path):
    from torl.rollout import TIRRollout
    from torl.tools import LocalSandbox

    async with LocalSandbox(timeout_s=5, workers=1, preload=()) as tool:
        eng = TIRRollout.from_transformers(tir_model_path, tool=tool, max_tool_calls=2, max_new_tokens=96)
        yield eng
        await eng.close()


async def test_evaluate_records_the_runs_and_resumes(engine, tmp_path):
    out = tmp_path / "trajectories.jsonl"
    cf = CounterfactualSettings(kinds=("disabled", "error", "swap", "replay"))
    settings = EvalSettings(k=1, max_new_tokens=96, max_tool_calls=2)
    result = await evaluate(engine, [TOY], settings, output=out, progress=False, counterfactual=cf)
    (t,) = result.trajectories
    runs = [r for r in t.metadata["counterfactual"] if not r.get("skipped")]
    assert [(r["kind"], r["call"]) for r in runs] == [
        (k, c) for c in (0, 1) for k in ("disabled", "error", "replay")
    ]
    # one problem: no other output to swap in; recorded as skipped, so that a rerun does not try again
    skipped = [(r["kind"], r["call"]) for r in t.metadata["counterfactual"] if r.get("skipped")]
    assert skipped == [("swap", 0), ("swap", 1)]
    by = {(r["kind"], r["call"]): r for r in runs}
    # greedy: the recorded output again gives back the recorded answer
    assert not by["replay", 0]["changed"] and by["replay", 0]["pred"] == "413"
    # the tiny model answers nothing once the tool is off: it relies on it
    assert by["disabled", 0]["changed"] and by["disabled", 0]["pred"] is None and relies_on_tool(t) is True
    # only the suffix was generated; the prefix (prompt excluded) was reused as recorded
    assert (
        by["replay", 1]["reused"] == t.segments[3].start
        and 0 < by["replay", 1]["generated"] < t.num_model_tokens
    )
    s = result.summary["benchmarks"]["toy"]["counterfactual"]
    assert s["tested"] == 1 and s["runs"] == 6 and s["reliance"] == 1.0
    assert s["kinds"]["replay"]["changed"] == 0.0 and s["kinds"]["disabled"]["changed"] == 1.0
    assert (
        s["kinds"]["disabled"]["correct_to_wrong"] == 1.0
        and result.summary["counterfactual"]["reliance"] == 1.0
    )
    saved = load_jsonl(out.with_name("trajectories_counterfactual.jsonl"))
    assert len(saved) == 6 and {x.metadata["perturbation"]["kind"] for x in saved} == {
        "disabled",
        "error",
        "replay",
    }
    assert load_jsonl(out)[0].metadata["counterfactual"] == t.metadata["counterfactual"]
    table = format_counterfactual(summarize_counterfactual(result.trajectories))
    assert table.splitlines()[0].split()[:3] == ["Benchmark", "tested", "reliance"] and "toy" in table
    # the output folder in the report: the samples with their runs, and the runs themselves
    from torl.view.report import build_report

    page = build_report([tmp_path])
    assert '"relies": true' in page and "trajectories_counterfactual" in page
    # a rerun finds both the samples and their runs saved: nothing is generated
    again = await evaluate(engine, [TOY], settings, output=out, progress=False, counterfactual=cf)
    assert again.generated == 0 and again.extra["counterfactual"] == []
    assert again.summary == result.summary


async def test_swap_shows_another_problems_output(engine, tir_model_path):
    """The TIR model keeps answering 413 when another problem's output (42, from an XML-format run of the
    same model) is swapped in: it does not follow that output."""
    from torl.rollout import TIRRollout
    from torl.testing.transcripts import XML_ONE_CALL
    from torl.tools import LocalSandbox

    async with LocalSandbox(timeout_s=5, workers=1, preload=()) as tool:
        xml = TIRRollout.from_transformers(
            tir_model_path, tool=tool, tir_format="xml", max_tool_calls=1, max_new_tokens=64
        )
        (other,) = await xml.generate([XML_ONE_CALL.prompt], temperature=0.0, metadata=[{"problem": "7 * 6"}])
        await xml.close()
    assert other.tool_calls[0].result.output == "42\n"
    (t,) = await engine.generate(
        [TORL_TWO_CALLS.prompt], temperature=0.0, metadata=[{"answer": "413", "problem": TOY.problem}]
    )
    from torl.rewards import MathAnswerReward

    await MathAnswerReward().ascore_trajectories([t])
    runs = await run_counterfactuals(engine, [t], CounterfactualSettings(kinds=("swap",)), pool=[t, other])
    assert len(runs) == 2 and "\n42\n```\n" in runs[0].completion_text
    assert [r["changed"] for r in t.metadata["counterfactual"]] == [False, False]
    g = summarize_counterfactual([t])["overall"]
    assert g["follows_output"] == 0.0 and g["reliance"] is None  # no run took the output away: not measured


def test_rates_from_recorded_outcomes():
    """The arithmetic of the summary on outcome records (kinds, calls, verdicts)."""
    from fakes import solution

    def traj(bench, correct, runs):
        t = solution("1")
        t.metadata.update(benchmark=bench, counterfactual=runs)
        t.reward_breakdown["correct"] = float(correct)
        return t

    def run(kind, call, changed, correct):
        return {
            "kind": kind,
            "call": call,
            "changed": changed,
            "correct": correct,
            "generated": 3,
            "reused": 9,
        }

    ts = [
        traj("a", True, [run("disabled", 0, True, False), run("swap", 0, True, False)]),
        traj("a", True, [run("disabled", 0, False, True), run("swap", 0, False, True)]),
        traj("b", False, [run("disabled", 0, True, True), run("swap", 0, False, False)]),
        traj("b", False, []),
        # the error run at call 0 keeps the answer: it can answer without the tool, whatever `disabled` did
        traj(
            "b",
            False,
            [run("disabled", 0, True, False), run("error", 0, False, False), run("error", 1, True, False)],
        ),
    ]
    assert [relies_on_tool(t) for t in ts] == [True, False, True, None, False]
    s = summarize_counterfactual(ts)
    a, b, every = s["groups"]["a"], s["groups"]["b"], s["overall"]
    assert (a["reliance"], a["follows_output"], a["changed"], a["correct_to_wrong"]) == (0.5, 0.5, 0.5, 0.5)
    assert (b["tested"], b["reliance"], b["correct_to_wrong"]) == (2, 0.5, None)
    assert b["kinds"]["disabled"]["wrong_to_correct"] == 0.5 and b["kinds"]["error"]["changed"] == 0.5
    assert every["reliance"] == 0.5 and every["generated_tokens"] == 27


def test_bad_settings_are_user_errors():
    with pytest.raises(UserError, match="unknown counterfactual kind"):
        CounterfactualSettings(kinds=("disabled", "nope"))
    assert CounterfactualSettings(kinds="swap, replay").kinds == ("swap", "replay")
    with pytest.raises(UserError, match="max_calls"):
        CounterfactualSettings(max_calls=0)
