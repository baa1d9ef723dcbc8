"""Golden tests of the originals' answer checks (`scorer="torl"`, `scorer="zero_tir"`).

The expected values are what ToRL's verl fork (`math_verifier.is_equiv`, `eval.normalize_final_answer`, its
box pattern) and AReaL's ZERO-TIR example (`reward_fn` with the Qwen2.5-Math extraction) give for these
inputs, on math-verify 0.9; written out by hand, next to torl's default verdict.
"""

from __future__ import annotations

import pytest

from torl.core import ToolResult
from torl.rewards import MathAnswerReward, ToRLReward, math_equal
from torl.rewards import originals as O
from torl.rewards.verify import check_pair


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("\\dfrac{3}{4}", "\\frac{3}{4}"),
        ("\\text{(B)}", "(B)"),
        ("90^\\circ", "90"),
        ("\\$18.90", "18.90"),
        ("10\\%", "10\\"),
        ("1,000", "1000"),
        ("1 000", "1000"),
        ("5 \\text{ cm}", "5"),
        ("\\frac12", "\\frac{1}{2}"),
        ("\\sqrt2", "\\sqrt{2}"),
        ("√2", "\\sqrt{2}"),
        ("x \\in [2, 5)", "x\\in[2,5)"),
        ("\\boxed{7}", "7"),
        ("$\\frac{1}{2}$", "\\frac{1}{2}"),
        ("\\(x+1\\)", "x+1"),
        ("12 students", "12"),
        ("an apple", "apple"),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
        ("\\textbf{June} 1", "June1"),
        ("3\\overline{3}", "33"),
        ("x \\approx 2.5", "x=2.5"),
        ("f^\\prime(x)", "f'(x)"),
        ("cm", ""),
        ("academic", "academic"),  # "cm" is removed only where it is spelled together
    ],
)
def test_normalize_final_answer(raw, normalized):
    assert O.normalize_final_answer(raw) == normalized


@pytest.mark.parametrize(
    ("pred", "ref", "torl", "default"),
    [
        # the examples: equivalent forms ToRL rejects and torl accepts
        ("3\\sqrt{2}", "\\sqrt{18}", False, True),
        ("(1,2)", "(1, 2)", False, True),
        ("\\pi/2", "\\frac{\\pi}{2}", False, True),
        ("\\text{(B)}", "B", False, True),
        ("2\\sqrt{3}", "\\sqrt{12}", False, True),
        ("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}{2}", False, True),
        ("\\text{June 1}", "June 1", False, True),
        ("[2, 5)", "[2,5)", False, True),
        # and forms both accept
        ("\\frac{1}{2}", "0.5", True, True),
        ("0.5", "\\frac12", True, True),
        ("x=5", "5", True, True),
        ("10\\%", "10", True, True),
        ("\\dfrac{3}{4}", "\\frac{3}{4}", True, True),
        ("1,000", "1000", True, True),
        ("90^\\circ", "90", True, True),
        ("-\\frac{1}{3}", "-1/3", True, True),
        ("18", "18.0", True, True),
        ("ABC", "abc", True, True),  # ToRL's first check ignores case
    ],
)
def test_torl_check(pred, ref, torl, default):
    v = O.torl_check(pred, ref)
    assert v.correct is torl
    assert v.method == ("torl_exact" if pred.strip().lower() == ref.strip().lower() else "torl_math_verify")
    assert check_pair(pred, ref, scorer="torl") == v
    assert math_equal(pred, ref, scorer="torl") is torl
    assert math_equal(pred, ref) is default


def test_torl_string_fallback_only_when_math_verify_raises(monkeypatch):
    # math-verify says no: no string fallback (strip_string would make both "[2,5)")
    assert not O.torl_check("[2, 5)", "[2,5)").correct
    assert O.hendrycks_strip_string("[2, 5)") == O.hendrycks_strip_string("[2,5)")

    class Broken:
        def parse(self, *a, **k):
            raise RuntimeError("parser bug")

    monkeypatch.setattr(O, "_mv", lambda: Broken())
    v = O.torl_check("\\dfrac{1}{2}", "0.5")  # Hendrycks' strip_string: both "\frac{1}{2}"
    assert v.correct and v.method == "torl_string_fallback"
    # strip_string raises on "x/2": the normalized strings compared as they are
    assert O.torl_check("x/2", "x / 2").correct and not O.torl_check("x/2", "x/3").correct


@pytest.mark.parametrize(
    ("text", "box"),
    [
        ("a \\boxed{1} b \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{\\frac{1}{2", None),
        ("x \\boxed{3} y \\boxed{\\frac{1}{2", "3"),  # an unclosed last box leaves the earlier one
        ("\\boxed{{{{1}}}}", "{{{1}}}"),
        ("\\boxed{{{{{1}}}}}", None),  # four levels inside: no match
        ("\\fbox{2}", None),
        ("\\boxed 5", None),
        ("\\boxed{a\\{b\\}c}", "a\\{b\\}c"),
        ("\\boxed{}", ""),
    ],
)
def test_torl_last_boxed(text, box):
    assert O.torl_last_boxed(text) == box


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("The answer is 7", "7"),
        ("The answer is 7.", "7"),
        ("x = 7 apples", "7"),
        ("\\frac{1}{2}", "2"),  # no box: the last number, for a reference too
        ("\\boxed{\\frac{3}{2}}", "\\frac{3}{2}"),
        ("so \\boxed 5$ ok", "5"),
        ("final answer is $12$. I hope it is correct", "12"),
        ("1,234", "1234"),
        ("2,3,5", "235"),
        ("(1, 2)", "2"),
        ("no digits here", ""),
        ("\\boxed{\\frac{1}{2", "\\frac{1}{2"),  # an unclosed box: the rest
        (": 12.", "12"),
    ],
)
def test_qwen_extract_answer(text, answer):
    assert O.qwen_extract_answer(text) == answer


@pytest.mark.parametrize(
    ("pred", "ref", "correct", "method"),
    [
        ("The answer is 7", "7", True, "zero_tir_numeric"),
        ("x = 7 apples", "7", True, "zero_tir_numeric"),
        ("\\frac{3}{2}", "\\frac{1}{2}", True, "zero_tir_numeric"),  # both read as their last number, 2
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}", False, "numeric"),  # 1/2 against the reference's "2"
        ("20", "0.2", True, "zero_tir_numeric"),  # the reference as a percentage
        ("1000.05", "1000", True, "zero_tir_numeric"),  # 1e-4 relative
        ("no number", "7", False, "no_answer"),
        ("\\boxed{x^2}", "\\boxed{x^2}", True, "exact"),
    ],
)
def test_zero_tir_check(pred, ref, correct, method):
    v = O.zero_tir_check(pred, ref)
    assert (v.correct, v.method) == (correct, method)
    assert check_pair(pred, ref, scorer="zero_tir").correct is correct


def test_zero_tir_answer_tag():
    assert O.zero_tir_answer("<answer>1</answer> then <answer>2</answer>") == "2"
    assert O.zero_tir_answer("<answer>1</answer> <answer>2") == "1"  # the last closed one
    assert O.zero_tir_answer("<answer>a<answer>b</answer>") == "a<answer>b"
    assert O.zero_tir_answer("no tag") is None


def test_scorer_arguments():
    with pytest.raises(ValueError, match="unknown scorer"):
        MathAnswerReward(scorer="nope")
    with pytest.raises(ValueError, match="answer_tag"):
        MathAnswerReward(scorer="torl", answer_format="answer_tag")
    assert MathAnswerReward(scorer="zero_tir").answer_format == "answer_tag"
    with pytest.raises(ValueError, match="unknown scorer"):
        check_pair("1", "1", scorer="nope")


def test_torl_reward_exact(pool):
    """ToRL's reward: the last box of the whole response (tool output included), ToRL's check, -1 for
    what it cannot verify; the default reads the model's prose with torl's rules."""
    completions = [
        "So \\boxed{3\\sqrt{2}}.",
        "```python\nprint(r'\\boxed{7}')\n```\n```output\n\\boxed{7}\n```\nI am not sure.",
        "No box.",
        "\\boxed{3} first, then \\boxed{\\frac{1}{2",
    ]
    answers = ["\\sqrt{18}", "7", "7", "3"]
    exact = ToRLReward(exact=True, pool=pool, tir_format="torl")
    default = ToRLReward(pool=pool, tir_format="torl")
    assert exact(["p"] * 4, completions, answer=answers) == [-1.0, 1.0, -1.0, 1.0]
    assert default(["p"] * 4, completions, answer=answers) == [1.0, -1.0, -1.0, -1.0]
    assert (exact.scorer, exact.answer_source, exact.on_failure, exact.penalty.penalize_no_code) == (
        "torl", "response", -1.0, True)
    assert (default.scorer, default.answer_source, default.on_failure) == ("default", "prose", None)
    outs = exact.score_batch([_traj()], ["7"])
    assert outs[0].rule == "torl_exact"


def test_unverifiable_is_wrong_for_torl(pool):
    """ToRL: any failure to verify is -1; torl's default scores it None (left out of the group's baseline)."""
    slow = ("So \\boxed{2^(2^(24))}.", "5")  # math-verify works out 2^16777216: half a second
    exact = ToRLReward(exact=True, pool=pool, timeout_s=0.05)
    out = exact.score_batch([_traj_text(slow[0])], [slow[1]])[0]
    assert out.score == -1.0 and out.breakdown["unverified"] == 1.0 and out.rule == "timeout"
    default = ToRLReward(pool=pool, timeout_s=1e-3).score_batch([_traj_text("So \\boxed{\\frac{x^{40}-1}{x-1}}.")],
                                                                 ["\\sum_{k=0}^{39} x^k"])[0]
    assert default.score is None and default.rule == "timeout"


def test_zero_tir_reward(pool):
    reward = MathAnswerReward(scorer="zero_tir", answer_source="response", on_failure=0.0, pool=pool)
    completions = [
        "<think>ok</think> <answer>The answer is 7</answer>",
        "<think>half</think> <answer>\\frac{3}{2}</answer>",
        "<think>x</think> <answer>7",  # never closed
        "```python\nprint('<answer>7</answer>')\n```\n```output\n<answer>7</answer>\n```\n",
    ]
    assert reward(["p"] * 4, completions, answer=["7", "\\frac{1}{2}", "7", "7"]) == [1.0, 1.0, 0.0, 1.0]
    default = MathAnswerReward(answer_format="answer_tag", pool=pool, tir_format="zero_tir")
    assert default(["p"] * 4, completions, answer=["7", "\\frac{1}{2}", "7", "7"]) == [0.0, 0.0, 1.0, 0.0]


def _traj():
    from torl import Segment, ToolCall, ToolCallRecord, Trajectory

    segs = [Segment(kind="model", text="```python\nprint(7)\n```\n```output", start=0, end=1),
            Segment(kind="tool", text="\n\\boxed{7}\n```\n", start=1, end=2)]
    rec = ToolCallRecord(call=ToolCall(code="print(7)"), result=ToolResult(output="\\boxed{7}"), turn=0,
                         output_segment=1)
    return Trajectory(prompt_ids=[0], completion_ids=[1, 2], logprobs=[0.0, 0.0], env_mask=[1, 0], segments=segs,
                      tool_calls=[rec])


def _traj_text(text: str):
    from torl import Segment, Trajectory

    return Trajectory(prompt_ids=[0], completion_ids=[1], logprobs=[0.0], env_mask=[1],
                      segments=[Segment(kind="model", text=text, start=0, end=1)])
