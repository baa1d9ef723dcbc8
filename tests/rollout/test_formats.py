"""TIR formats: code extraction, ToRL observation rules, rendering (no engine)."""

from __future__ import annotations

import pytest

from torl.core import ToolCall, ToolResult
from torl.rollout import (
    BUDGET_SPENT_MESSAGE,
    EMPTY_OUTPUT_MESSAGE,
    ChatToolFormat,
    ToRLFormat,
    XMLFormat,
    get_format,
    torl_observation,
    torl_prompt,
)
from torl.rollout.formats import INVALID_CALL
from torl.testing import TORL_PROMPT_TEMPLATE

from .conftest import TRANSCRIPTS


def test_torl_prompt_is_byte_exact():
    p = torl_prompt("What is 1+1?")
    assert p == (
        "A conversation between User and Assistant. The user asks a question, and the Assistant solves it.\n"
        "User: Please integrate natural language reasoning with programs to solve the problem above, and put "
        "your final answer within \\boxed{}.\nWhat is 1+1?\nAssistant:\n"
    )
    assert TRANSCRIPTS["torl"].prompt == TORL_PROMPT_TEMPLATE.format(problem="What is 12 * 34 + 5?")


def test_observation_rules():
    assert torl_observation(ToolResult(output="  413\n\n")) == "413"
    tb = "Traceback (most recent call last):\n  File \"<cell>\", line 1\nNameError: name 'a' is not defined\n"
    assert torl_observation(ToolResult(output=tb, status="error")) == "NameError: name 'a' is not defined"
    assert torl_observation(ToolResult(output="partial\n", status="error", error="ZeroDivisionError: x")) == (
        "ZeroDivisionError: x"
    )
    assert torl_observation(ToolResult(output="")) == EMPTY_OUTPUT_MESSAGE
    assert torl_observation(ToolResult(output="", status="timeout", error="timed out")) == "Timeout Error"
    assert torl_observation(ToolResult(output="", status="sandbox_error")) == "sandbox_error"
    s255 = "a" * 254 + "b"
    assert torl_observation(ToolResult(output=s255)) == s255
    s256 = "x" * 100 + "y" * 56 + "z" * 100
    out = torl_observation(ToolResult(output=s256))
    assert out == s256[:128] + "..." + s256[-128:] and len(out) == 259


def test_torl_runs_only_last_closed_block():
    f = ToRLFormat()
    text = "a\n```python\nprint(1)\n```\nb\n```python\nx = 2\nprint(x)\n```\n```output"
    assert f.parse_calls(text, stopped=True) == [ToolCall(code="x = 2\nprint(x)\n")]
    assert f.parse_calls(text, stopped=False) == []  # finished without the stop string: nothing runs
    assert f.parse_calls("```python\nprint(1)\n```output", stopped=True) == [ToolCall(code="print(1)\n")]
    assert f.parse_calls(
        "text\n```python\nprint(1)\n```output", stopped=True
    )  # closing fence = ``` of ```output
    assert f.parse_calls("no code at all ```output", stopped=True) == []
    # an unclosed block after a closed one: the closed one is the last *closed* block
    assert f.parse_calls("```python\nprint(1)\n```\n```python\nprint(2)", stopped=True) == [
        ToolCall(code="print(1)\n")
    ]


def test_torl_render_matches_transcript():
    t = TRANSCRIPTS["torl"]
    f = ToRLFormat()
    (_, m0), (_, t0) = t.segments[0], t.segments[1]
    assert f.render(m0, [ToolCall(code="")], [ToolResult(output="413\n")]) == t0
    assert f.render(m0 + "\n", [ToolCall(code="")], [ToolResult(output="413\n")]) == "413\n```\n"


def test_xml_format():
    t = TRANSCRIPTS["xml"]
    f = XMLFormat()
    m0, t0 = t.segments[0][1], t.segments[1][1]
    assert f.parse_calls(m0, stopped=True) == [ToolCall(code="print(7 * 6)\n")]
    assert f.parse_calls(m0, stopped=False) == []
    assert f.render(m0, [ToolCall(code="")], [ToolResult(output="42\n")]) == t0
    assert f.stop == ["</code>"]


def test_chat_format_parse_and_render(tir_tokenizer):
    t = TRANSCRIPTS["chat"]
    f = ChatToolFormat()
    f.bind(tir_tokenizer)
    m0, t0 = t.segments[0][1], t.segments[1][1]
    calls = f.parse_calls(m0, stopped=True)
    assert calls == [ToolCall(code="print(7 + 8)", name="python", arguments={"code": "print(7 + 8)"})]
    assert f.render(m0, calls, [ToolResult(output="15\n")]) == t0
    # its token ids are those of the chat template's own rendering of the tool turn
    ids = f.encode_env(t0, tir_tokenizer)
    assert tir_tokenizer.convert_tokens_to_ids("<|im_start|>") in ids
    assert f.stop_token_ids() == [tir_tokenizer.convert_tokens_to_ids("<|im_end|>")]
    # prompt ids: the chat template with the tool schema
    full = tir_tokenizer.apply_chat_template(
        t.prompt, tools=t.tools, add_generation_prompt=True, tokenize=False
    )
    assert tir_tokenizer.decode(f.encode_prompt(t.prompt, tir_tokenizer)) == full
    with pytest.raises(TypeError):
        f.encode_prompt("raw text", tir_tokenizer)


def test_chat_format_bad_and_multiple_calls(tir_tokenizer):
    f = ChatToolFormat()
    f.bind(tir_tokenizer)
    text = (
        '<tool_call>\n{"name": "python", "arguments": {"code": "print(1)"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "python", "arguments": "{\\"code\\": \\"print(2)\\"}"}\n</tool_call>\n'
        "<tool_call>\n{not json}\n</tool_call><|im_end|>"
    )
    calls = f.parse_calls(text, stopped=True)
    assert [c.code for c in calls[:2]] == ["print(1)", "print(2)"]
    assert calls[2].name == INVALID_CALL and "invalid tool call" in calls[2].arguments["error"]
    rendered = f.render(text, calls, [ToolResult(output="1"), ToolResult(output="2"), ToolResult(output="")])
    assert rendered.count("<tool_response>") == 3 and rendered.endswith("<|im_start|>assistant\n")
    assert f.render_budget_spent(text, calls[:1]).count(BUDGET_SPENT_MESSAGE) == 1


def test_special_token_text_in_tool_output_stays_text(tir_tokenizer):
    f = ToRLFormat()
    ids = f.encode_env("\n<|endoftext|>\n```\n", tir_tokenizer)
    assert tir_tokenizer.convert_tokens_to_ids("<|endoftext|>") not in ids
    assert tir_tokenizer.decode(ids) == "\n<|endoftext|>\n```\n"


def test_get_format():
    assert isinstance(get_format("torl"), ToRLFormat)
    f = XMLFormat()
    assert get_format(f) is f
    with pytest.raises(ValueError, match="unknown tir_format"):
        get_format("nope")


@pytest.mark.parametrize(
    ("name", "transcript", "outputs", "prose"),
    [
        ("torl", "Hi\n```python\nprint(4)\n```\n```output\n4\n```\nSo \\boxed{4}.", ["\n4\n"], "Hi\n\n\nSo \\boxed{4}."),
        ("xml", "Hi <code>print(4)</code>\n<interpreter>\n4\n</interpreter>\nSo", ["\n4\n"], "Hi \n\nSo"),
        ("zero_tir", "<think>```python\nprint(4)\n```\n```output\n4\n```\n</think>", ["\n4\n"], "<think>\n\n</think>"),
        ("chat", '<tool_call>{"name": "python"}</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n4\n'
                 "</tool_response><|im_end|>\n<|im_start|>assistant\nSo", ["\n4\n"],
         "<|im_end|>\n<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\nSo"),
    ],
)
def test_each_format_reads_its_own_text_back(name, transcript, outputs, prose):
    """The format owns its text: tool output and code cells come back out of a transcript, and the
    prompt of a problem is the format's."""
    fmt = get_format(name)
    assert fmt.env_outputs(transcript) == outputs
    assert fmt.strip_code(fmt.strip_env(transcript)) == prose
    assert fmt.code_closed(transcript)
    opened = {"torl": "```python\nx", "xml": "<code>x", "zero_tir": "```python\nx", "chat": "<tool_call>{"}[name]
    assert not fmt.code_closed("So " + opened)
    p = fmt.prompt("What is 2 + 2?")
    assert (p if isinstance(p, str) else p[-1]["content"]).endswith("What is 2 + 2?" + ("\nAssistant:\n" if isinstance(p, str) else ""))


def test_the_registry_makes_a_format_known_everywhere():
    from torl.rollout import FORMATS, register_format
    from torl.rollout.formats import ZeroTIRFormat

    class Shouty(ToRLFormat):
        prompt_template = "SOLVE: {problem}\n"

    register_format("shouty", Shouty)
    try:
        assert isinstance(get_format("shouty"), Shouty) and get_format("shouty").prompt("x") == "SOLVE: x\n"
        assert get_format("zero_tir", system_prompt="S").prompt("q")[0] == {"role": "system", "content": "S"}
        assert isinstance(get_format("zero_tir"), ZeroTIRFormat) and get_format("zero_tir").answer_format == "answer_tag"
        with pytest.raises(ValueError, match="unknown tir_format 'nope'"):
            get_format("nope")
        with pytest.raises(TypeError):
            register_format("bad", dict)  # type: ignore[arg-type]
    finally:
        FORMATS.pop("shouty")
