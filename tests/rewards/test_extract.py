"""Final-answer extraction: last box of the model's own text, nested braces, tool output ignored."""

from __future__ import annotations

import pytest

from torl.rewards import extract_answer, strip_tool_output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so \boxed{5}", "5"),
        (r"\boxed{1} then \boxed{2}", "2"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"\boxed{\left( 3, \frac{\pi}{2} \right)}.", r"\left( 3, \frac{\pi}{2} \right)"),
        (r"$\boxed{ x = 5 }$", "x = 5"),
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),
        (r"\boxed 7 apples", "7"),
        (r"\fbox{8}", "8"),
        (r"\boxed{\boxed{9}}", "9"),
        (r"\boxed{\text{(C)}}", r"\text{(C)}"),
        ("no answer at all", None),
        (r"truncated \boxed{\frac{1}{2", None),
        (r"\boxed{}", None),
        (r"\boxedfoo{3}", None),
    ],
)
def test_last_boxed(text, expected):
    assert extract_answer(text) == expected


def test_tool_output_is_not_the_answer():
    transcript = "```python\nprint(r'\\boxed{7}')\n```\n```output\n\\boxed{7}\n```\nThe answer is \\boxed{8}."
    assert extract_answer(strip_tool_output(transcript)) == "8"
    only_tool = "```python\nprint(1)\n```\n```output\n\\boxed{7}\n```\n"
    assert extract_answer(strip_tool_output(only_tool)) is None
    interp = "<interpreter>\\boxed{7}</interpreter> hence \\boxed{6} <interpreter>\\boxed{5}"
    assert extract_answer(strip_tool_output(interp)) == "6"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>x</think> <answer>42</answer>", "42"),
        ("<answer>1</answer> <answer> $\\frac{1}{2}$ </answer>", r"\frac{1}{2}"),
        ("<answer>The answer is \\boxed{7}</answer>", "7"),
        ("<answer> 3", "3"),  # generation stopped on "</answer>", which vLLM leaves out
        ("\\boxed{3} but no tag", None),
        ("<answer></answer>", None),
    ],
)
def test_answer_tag(text, expected):
    assert extract_answer(text, "answer_tag") == expected


def test_bad_input():
    with pytest.raises(TypeError, match="expects a str"):
        extract_answer(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown answer_format"):
        extract_answer("x", "xml")  # type: ignore[arg-type]
