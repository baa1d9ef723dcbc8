"""Final-answer extraction: last box of the model's own text, nested braces, tool output ignored."""

from __future__ import annotations

import pytest

from torl.rewards import extract_answer, strip_tool_output
from torl.rewards.extract import strip_code


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


CELL = "```python\nprint(r'\\boxed{7}')\n```\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (CELL + "```output\n\\boxed{7}\n```\nSo \\boxed{8}.", "8"),  # a rendered transcript
        (CELL + "```output\n\\boxed{7}\n```\n", None),  # the box is only in the cell and its output
        (CELL + "```output" + "So \\boxed{8}.", "8"),  # model_text: the output marker, then the model
        (CELL + "```output" + "Hence:\n```python\nx = r'\\boxed{9}'\n```\n```output" + "done", None),
        ("So \\boxed{8}. ```python\nprint(r'\\boxed{7}')", "8"),  # an unclosed cell, to the end
        ("```\n\\boxed{7}\n``` and \\boxed{8}", "8"),  # a fence without a language
        ("```py print(r'\\boxed{7}')``` and \\boxed{8}", "8"),
        ("<code>\\boxed{7}</code> hence \\boxed{6} <code>\\boxed{5}", "6"),  # <code>, closed or not
        ("inline `\\boxed{7}` is prose: \\boxed{7}", "7"),
    ],
)
def test_code_cells_are_not_the_answer(text, expected):
    assert extract_answer(strip_code(strip_tool_output(text))) == expected
    assert extract_answer(strip_tool_output(text)) is not None  # without strip_code a box was taken


def test_strip_code_keeps_prose_and_output_markers():
    assert strip_code("no code at all") == "no code at all"
    assert strip_code(CELL + "```output" + "So") == "\n```outputSo"
    assert strip_code("a ```python\nx\n``` b <code>y</code> c") == "a  b  c"


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
