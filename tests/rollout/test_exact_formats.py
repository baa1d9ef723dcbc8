"""Golden tests of the exact modes: ToRL's verl fork and AReaL's ZERO-TIR-RL example, replayed.

Every expected string and decision below is what the original code gives for that input (worked out from
its source: GAIR-NLP/ToRL `vllm_rollout_spmd.py`, LinkCut-World/AReaL-TIR `examples/zero-tir/train.py`),
written out by hand; beside it, what torl's default does.
"""

from __future__ import annotations

import hashlib

import pytest

from torl.core import ToolCall, ToolResult
from torl.rollout import TIRRollout, get_format, torl_prompt
from torl.rollout.formats import (
    AREAL_ZERO_TIR_SYSTEM_PROMPT,
    TORL_TIMEOUT_TEXT,
    areal_output,
    split_output,
    torl_exact_observation,
    torl_program,
)

from .conftest import LatencyTool, ScriptedBackend

TB = 'Traceback (most recent call last):\n  File "<cell>", line 1, in <module>\n'


def err(output: str, error: str, status: str = "error") -> ToolResult:
    return ToolResult(output=output, status=status, error=error)


# ----------------------------------------------------------------------------------------- ToRL


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Let me compute.\n```python\nprint(1)\n```\n", "print(1)\n"),
        ("```python\nx = 1\n```\ntext\n```python\nprint(x)\n```\n", "print(x)\n"),  # the last block only
        ("```python\nprint(1)\n```\n```python\nprint(2)\n", ""),  # the last block is unclosed: nothing
        ("```python\nprint(1)\n", ""),  # the model wrote ```output right after the code: no closing fence
        ("So: ```python\nprint(3)\n```\n", "print(3)\n"),  # a line that ends with ```python opens
        ("```python3 # note\nprint(4)\n```", "print(4)\n"),  # a line that starts with it too
        ("```python\nprint(5)```\n", ""),  # a fence not at a line start does not close
        ("```python\nprint('a')\n```py\n", "print('a')\n"),  # any line starting with ``` closes
        ("No code at all.\n", ""),
    ],
)
def test_torl_program_line_rules(text, code):
    assert torl_program(text) == code


def test_torl_turn_decisions_exact_and_default():
    exact, default = get_format("torl_exact"), get_format("torl")
    assert exact.exact and not default.exact and repr(exact) == "ToRLFormat(exact=True)"
    cell = "```python\nprint(1)\n```\n```output"
    for fmt in (exact, default):
        assert fmt.turn_calls([cell], True) == [ToolCall(code="print(1)\n")]
        assert fmt.turn_calls([cell], False) == "end"  # ended by EOS or the budget: nothing runs
    # ```output with no code before it: ToRL spends a call and generates on; torl's default ends
    assert exact.turn_calls(["I think it is 4.\n```output"], True) == "spend"
    assert default.turn_calls(["I think it is 4.\n```output"], True) == "end"
    # the ``` of ```output is not a closing fence for ToRL: an unclosed block runs nothing
    raw = "```python\nprint(1)\n```output"
    assert exact.turn_calls([raw], True) == "spend"
    assert default.turn_calls([raw], True) == [ToolCall(code="print(1)\n")]
    # the stop string inside its last token ("```output\n") is cut before the code is read
    assert exact.turn_calls(["```python\nprint(2)\n```\n```output\n"], True) == [ToolCall(code="print(2)\n")]


@pytest.mark.parametrize(
    ("result", "exact", "passed", "default"),
    [
        (ToolResult(output="42\n"), "42", True, "42"),
        (ToolResult(output=""), TORL_TIMEOUT_TEXT, True, "Timeout Error"),
        (
            err(TB + "NameError: name 'a' is not defined\n", "NameError: name 'a' is not defined"),
            "NameError: name 'a' is not defined",
            False,
            "NameError: name 'a' is not defined",
        ),
        # prints, then raises: ToRL shows the stdout and counts a pass
        (err("5\n" + TB + "ValueError: bad\n", "ValueError: bad"), "5", True, "ValueError: bad"),
        # any text with "Error" in it, stdout included, is cut to its last line
        (ToolResult(output="ValueError is a name\nresult 7\n"), "result 7", True, "ValueError is a name\nresult 7"),
        # a traceback without the word "Error" is shown whole
        (
            err(TB + "Exception: boom\n", "Exception: boom"),
            TB + "Exception: boom",
            False,
            "Exception: boom",
        ),
        (
            err('  File "<cell>", line 1\n    print(\n         ^\nSyntaxError: \'(\' was never closed\n',
                "SyntaxError: '(' was never closed"),
            "SyntaxError: '(' was never closed",
            False,
            "SyntaxError: '(' was never closed",
        ),
        (err("1\n2\n", "wall-clock limit (10 s) exceeded", "timeout"), TORL_TIMEOUT_TEXT, False, "Timeout Error"),
        (err("", "sandbox worker failed: gone", "sandbox_error"), "UnknownError", False, "sandbox worker failed: gone"),
        (err("", "SystemExit: 3"), TORL_TIMEOUT_TEXT, False, "SystemExit: 3"),  # no text at all
        (ToolResult(output="x" * 100 + "y" * 200), "x" * 100 + "y" * 28 + "..." + "y" * 128, True, None),
    ],
)
def test_torl_observation_rules(result, exact, passed, default):
    assert torl_exact_observation(result) == (exact, passed)
    assert get_format("torl", exact=True).observation(result) == exact
    if default is not None:
        assert get_format("torl").observation(result) == default
    else:  # the 128 + "..." + 128 cut is the same in both
        assert get_format("torl").observation(result) == exact
    assert TORL_TIMEOUT_TEXT == "timeout_decorator.timeout_decorator.TimeoutError: 'Timed Out'"


def test_split_output():
    assert split_output(ToolResult(output="1\n")) == ("1\n", "")
    assert split_output(err("5\n" + TB + "ValueError: x\n", "ValueError: x")) == ("5\n", TB + "ValueError: x\n")
    assert split_output(err("partial\n", "wall-clock limit (5 s) exceeded", "timeout")) == ("", "")
    assert split_output(err("  File x\nIndentationError: bad\n", "IndentationError: bad")) == (
        "",
        "  File x\nIndentationError: bad\n",
    )
    assert split_output(err("out\n", "killed by SIGKILL", "killed")) == ("out\n", "")


async def test_torl_exact_spends_a_call_on_output_without_code(tir_tokenizer):
    """ToRL, C=2: a round that stops on ```output with no code counts as a call; nothing runs or is
    appended; the next round still has the stop string; the round after the budget has none."""
    script = iter(["Let me see.\n```output", "```python\nprint(6 * 7)\n```\n```output", " So \\boxed{42}."])
    b = ScriptedBackend(tir_tokenizer, lambda ids, kw: next(script))
    tool = LatencyTool()
    eng = TIRRollout(b, tool=tool, tir_format="torl_exact", max_tool_calls=2, max_new_tokens=500)
    (t,) = await eng.generate([torl_prompt("q")])
    assert [r[1]["stop"] for r in b.requests] == [["```output"], ["```output"], []]
    assert [s.kind for s in t.segments] == ["model", "model", "tool", "model"]
    assert t.segments[2].text == "\n42\n```\n" and len(tool.calls) == 1
    assert t.finish_reason == "stop" and t.num_turns == 3
    # torl's default ends the trajectory there
    b2 = ScriptedBackend(tir_tokenizer, lambda ids, kw: "Let me see.\n```output")
    (u,) = await TIRRollout(b2, tool=tool, max_tool_calls=2).generate([torl_prompt("q")])
    assert u.num_turns == 1 and u.finish_reason == "stop" and len(b2.requests) == 1


# ----------------------------------------------------------------------------------------- ZERO-TIR


def test_zero_tir_exact_prompt(tir_tokenizer):
    p = AREAL_ZERO_TIR_SYSTEM_PROMPT
    assert p.startswith("\nYou are a helpful assistant. The User asks a question, and the Assistant solves it. \n")
    assert "extracted automatically by the \\boxed{{}} tag.\nIn your reasoning-process, You can" in p
    assert p.endswith("inherits the global state (variables, imports, and definitions) from earlier code blocks.\n")
    assert len(p) == 773 and hashlib.sha256(p.encode()).hexdigest()[:16] == "0617f91ae534b720"
    fmt = get_format("zero_tir_exact")
    msgs = fmt.prompt("What is 2 + 2?")
    assert msgs == [{"role": "system", "content": p}, {"role": "user", "content": "What is 2 + 2?"}]
    ids = fmt.encode_prompt(msgs, tir_tokenizer)
    text = tir_tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert ids == tir_tokenizer(text + "<think>\n", add_special_tokens=False)["input_ids"]
    assert tir_tokenizer.decode(ids).endswith("What is 2 + 2?<|im_end|>\n<|im_start|>assistant\n<think>\n")
    # torl's default: its own system prompt, no "<think>\n"
    default = get_format("zero_tir")
    assert default.prompt("q")[0]["content"] != p
    assert tir_tokenizer.decode(default.encode_prompt(default.prompt("q"), tir_tokenizer)).endswith("assistant\n")


def test_zero_tir_exact_stop_switching_and_calls():
    fmt = get_format("zero_tir", exact=True)
    out_stops, in_stops = ["```python", "</answer>"], ["```", "</answer>"]
    t1 = "<think>\nLet me compute it.\n```python"
    t2 = "\nx = 6 * 7\nprint(x)\n```"
    assert fmt.turn_stop([]) == out_stops
    assert fmt.turn_calls([t1], True) == "continue"
    assert fmt.turn_stop([t1]) == in_stops
    assert fmt.turn_calls([t1, t2], True) == [ToolCall(code="\nx = 6 * 7\nprint(x)\n")]
    assert fmt.turn_stop([t1, t2]) == out_stops  # reset after the cell ran
    # a turn cut by the per-call token cap stays inside the cell; the code spans the turns
    assert fmt.turn_stop([t1, "\nx = 1\n"]) == in_stops
    assert fmt.turn_calls([t1, "\nx = 1\n", "print(x)\n```"], True) == [ToolCall(code="\nx = 1\nprint(x)\n")]
    # the code starts right after "```python", with what its last token carried
    assert fmt.turn_calls(["go ```python\n", "y = 2\n```"], True) == [ToolCall(code="\ny = 2\n")]
    # the stop "```" fires inside a fence that is not a closing one: that is the end of the code
    assert fmt.turn_calls([t1, "\nprint('```')"], True) == [ToolCall(code="\nprint('")]
    assert fmt.turn_calls([t1, t2, "So </think> <answer>42</answer>"], True) == "end"
    assert fmt.turn_calls(["The answer is 42.<|endoftext|>"], False) == "end"  # EOS
    assert fmt.turn_calls([t1, "\nprint(1)<|endoftext|>"], False) == "end"  # EOS inside the cell
    # torl's default: one stop "```\n", and a "```\n" closing no python block ends the trajectory
    default = get_format("zero_tir")
    assert default.turn_stop([]) == ["```\n", "</answer>"]
    assert default.turn_calls(["```python\nprint(1)\n```\n"], True) == [ToolCall(code="print(1)\n")]
    assert default.turn_calls(["A table:\n```\n"], True) == "end"
    assert fmt.turns_per_call == 2 and default.turns_per_call == 1


@pytest.mark.parametrize(
    ("result", "block"),
    [
        (ToolResult(output="4\n"), "\n```output\n4\n\n\n```\n"),
        (ToolResult(output=""), "\n```output\nNo output. Let me use `print()` to see the result and try again.\n\n```\n"),
        (
            err("5\n" + TB + "ValueError: bad\n", "ValueError: bad"),
            "\n```output\n5\n\n" + TB + "ValueError: bad\n\n```\n",
        ),
        (err("partial\n", "wall-clock limit (5 s) exceeded", "timeout"),
         "\n```output\n\nExecution timed out after 5 seconds.\n\n```\n"),
        (ToolResult(output="7" * 2500), "\n```output\n" + "7" * 2000 + "\n...[truncated]\n```\n"),
        (ToolResult(output="7" * 1999), "\n```output\n" + "7" * 1999 + "\n\n```\n"),  # 2,000 with the "\n"
    ],
)
def test_zero_tir_exact_output_block(result, block):
    assert areal_output(result) == block
    assert get_format("zero_tir_exact").render("", [ToolCall(code="")], [result]) == block


def test_zero_tir_default_output_block():
    fmt = get_format("zero_tir")
    assert fmt.render("", [ToolCall(code="")], [ToolResult(output="4\n")]) == "```output\n4\n```\n"
    assert "(truncated)" in fmt.render("", [ToolCall(code="")], [ToolResult(output="7" * 2500)])


async def test_zero_tir_exact_rollout(tir_tokenizer):
    """The whole loop: stops switched per turn, the cell run after its closing fence, AReaL's output
    block appended, the trajectory ended by </answer>; token budgets with the prompt included."""
    script = iter(["<think>\nI will compute.\n```python", "\nprint(6 * 7)\n```", "Done.</think> <answer>42</answer>"])
    b = ScriptedBackend(tir_tokenizer, lambda ids, kw: next(script))
    fmt = get_format("zero_tir_exact")
    eng = TIRRollout(b, tool=LatencyTool(), tir_format=fmt, max_tool_calls=128, max_new_tokens=4000)
    (t,) = await eng.generate([fmt.prompt("q")])
    assert [r[1]["stop"] for r in b.requests] == [["```python", "</answer>"], ["```", "</answer>"],
                                                    ["```python", "</answer>"]]
    assert [s.kind for s in t.segments] == ["model", "model", "tool", "model"]
    assert t.segments[2].text == "\n```output\n42\n\n\n```\n"
    assert t.tool_calls[0].call.code == "\nprint(6 * 7)\n"
    assert t.finish_reason == "stop" and t.completion_text.endswith("<answer>42</answer>")
    assert eng.max_turns == 2 * 128 + 1


async def test_turn_token_cap_and_total_budget(tir_tokenizer):
    """AReaL's budgets: each turn at most `max_turn_tokens`, a turn cut there is followed by another, and a
    turn starts only while its full allowance fits in the total (prompt included)."""
    b = ScriptedBackend(tir_tokenizer, lambda ids, kw: "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20")
    fmt = get_format("zero_tir_exact")
    prompt = fmt.prompt("q")
    n = len(fmt.encode_prompt(prompt, tir_tokenizer))
    eng = TIRRollout(b, tir_format=fmt, max_turn_tokens=8, max_total_tokens=n + 20, max_new_tokens=4000)
    (t,) = await eng.generate([prompt])
    assert [r[1]["max_tokens"] for r in b.requests] == [8, 8]  # 20 - 8 - 8 = 4 left: no third turn
    assert t.num_turns == 2 and len(t.completion_ids) == 16 and t.finish_reason == "length"
    with pytest.raises(ValueError, match="max_turn_tokens"):
        TIRRollout(b, max_turn_tokens=0)
