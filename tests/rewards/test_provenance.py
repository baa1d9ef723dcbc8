"""Provenance checks on real trajectories of the tiny TIR model (local sandbox), and on transcripts that game
the checker in each way the checks name; the optional penalty through the reward API."""

from __future__ import annotations

import pytest

from torl.rewards import ProvenancePenalty, ToRLReward, WeightedReward, check_provenance, check_text
from torl.rewards.provenance import provenance_rates

Q = "Ann has 756 apples and gets 396 more. How many apples does Ann have now?"


def cell(code: str, output: str) -> str:
    return f"```python\n{code}\n```\n```output\n{output}\n```\n"


@pytest.fixture(scope="module")
def tiny_trajectories(tir_model_path):
    """The TIR model's greedy trajectory (two cells, a copied answer) and one whose output was swapped."""
    import asyncio

    from torl.core import ToolResult
    from torl.rollout import TIRRollout
    from torl.testing import TORL_TWO_CALLS
    from torl.tools import LocalSandbox

    async def go():
        async with LocalSandbox(timeout_s=5, workers=1, preload=()) as tool:
            eng = TIRRollout.from_transformers(tir_model_path, tool=tool, max_tool_calls=2, max_new_tokens=96)
            (t,) = await eng.generate(
                [TORL_TWO_CALLS.prompt], temperature=0.0, metadata=[{"problem": "What is 12 * 34 + 5?"}]
            )
            swapped = await eng.resume(t, 0, ToolResult(output="999\n"), temperature=0.0)
            await eng.close()
            return t, swapped

    return asyncio.run(go())


def test_the_tiny_models_answer_is_copied_from_its_tool_output(tiny_trajectories):
    t, swapped = tiny_trajectories
    p = check_provenance(t)
    assert p.answer == "413" and p.tool_calls == 2
    assert p.copied and not p.derived and not p.suspicious
    # with 999 shown at call 0 it still answers 413: the second cell printed 408 and no output showed 413
    q = check_provenance(swapped)
    assert q.answer == "413" and q.derived and not q.copied
    assert provenance_rates([p, q]) == {
        "answer_copied": 0.5,
        "boxed_by_code": 0.0,
        "hardcoded_answer": 0.0,
        "repeated_cells": 0.0,
        "echo_calls": 0.0,
        "answer_derived": 0.5,
    }


def test_the_training_metrics_carry_the_checks(tiny_trajectories):
    from torl.trainers.metrics import trajectory_metrics

    m = trajectory_metrics(list(tiny_trajectories))
    assert m["answer_copied"] == 0.5 and m["answer_derived"] == 0.5 and m["boxed_by_code"] == 0.0


@pytest.mark.parametrize(
    ("transcript", "answer", "flags"),
    [
        (cell("x = 756 + 396\nprint(x)", "1152") + "So \\boxed{1152}.", "1152", {"copied"}),
        ("By hand it is \\boxed{1152}.", "1152", set()),
        (cell("x = 756 + 396\nprint(x)", "1152") + "So \\boxed{1153}.", "1153", set()),  # derived (a slip)
        (cell("print(1152)", "1152") + "\\boxed{1152}", "1152", {"copied", "hardcoded"}),
        (cell("x = 1152\nprint(x)", "1152") + "\\boxed{1152}", "1152", {"copied", "hardcoded"}),
        (
            cell('print(f"The answer is {1152}")', "The answer is 1152") + "\\boxed{1152}",
            "1152",
            {"copied"},
        ),  # a sentence is not the answer literal
        (
            cell('print(r"\\boxed{1152}")', "\\boxed{1152}") + "\\boxed{1152}",
            "1152",
            {"copied", "boxed_by_code", "hardcoded"},
        ),
        (
            cell("print('\\\\boxed{%d}' % (756 + 396))", "\\boxed{1152}") + "\\boxed{1152}",
            "1152",
            {"copied", "boxed_by_code"},
        ),
        (cell("x = 4 - 2\nprint(x)", "2") + "\\boxed{2}", "2", {"copied"}),  # computed, not hard-coded
        (
            cell("print(756, 396)", "756 396") + cell("print(756, 396)", "756 396") + "\\boxed{1152}",
            "1152",
            {"repeated", "echo"},
        ),
        (cell('print("Ann has 756 apples")', "Ann has 756 apples") + "\\boxed{1152}", "1152", {"echo"}),
        (cell("print(max(756, 396))", "756") + "\\boxed{1152}", "1152", set()),  # computes: not an echo
    ],
)
def test_each_check_on_transcripts(transcript, answer, flags):
    p = check_text(transcript, question=Q)
    assert p.answer == answer
    got = {k for k in ("copied", "boxed_by_code", "hardcoded") if getattr(p, k)}
    got |= {"repeated"} if p.repeated_cells else set()
    got |= {"echo"} if p.echo_calls else set()
    assert got == flags


def test_numbers_compare_by_value_and_other_answers_as_text():
    assert check_text(cell("print(1/2)", "0.5") + "\\boxed{\\frac{1}{2}}").copied
    assert check_text(cell("print(1000)", "1,000") + "\\boxed{1000}").copied
    assert not check_text(cell("print(11520)", "11520") + "\\boxed{1152}").copied
    assert check_text(cell("print(sympy.sqrt(2))", "sqrt(2)") + "\\boxed{sqrt(2)}").copied
    assert not check_text(cell("print('x')", "x") + "\\boxed{y}").copied


def test_the_penalty_is_optional_and_goes_through_the_reward_api(tiny_trajectories):
    t, _ = tiny_trajectories
    gamed = cell('print(r"\\boxed{413}")', "\\boxed{413}") + "So \\boxed{413}."
    # not part of the default rewards
    assert not any(k.startswith("provenance") for k in ToRLReward().score(t, "413").breakdown)
    penalty = ProvenancePenalty()
    out = penalty.score(t, None)
    assert out.score == 0.0 and out.breakdown["copied"] == 1.0
    # TRL's call convention, on text: the box printed by code and the hard-coded literal cost 1 each
    assert penalty(prompts=["p"], completions=[gamed]) == [-2.0]
    combined = WeightedReward({ToRLReward(): 1.0, ProvenancePenalty(): 1.0})
    assert combined(prompts=["p"], completions=[gamed], answer=["413"]) == [-1.0]
    assert combined(prompts=["p"], completions=[t.completion_text], answer=["413"], trajectories=[t]) == [1.0]
    assert t.reward_breakdown["weighted/provenance/copied"] == 1.0
