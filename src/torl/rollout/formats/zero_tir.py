"""The ZERO-TIR format (AReaL's ZERO-TIR-RL): chat template, <think>/<answer>, ```python cells, ```output.

The model writes ```` ```python ```` ... ```` ``` ````; the turn stops at the closing fence, the cell runs (in
the trajectory's session, so state carries over), and the system appends
```` ```output\\n{stdout/stderr}\\n```\\n ````. An empty output becomes a hint to use `print()`; output over
2000 characters is cut. The trajectory ends on `</answer>`, EOS, or a budget.

AReaL switches stop strings (```` ```python ```` then ```` ``` ````); torl's default uses one stop string,
```` ```\\n ````, after a ```` ```python ```` block. `ZeroTIRFormat(exact=True)` (registered as "zero_tir_exact")
replays AReaL's example byte for byte where torl can (see docs/recipes.md, "Exact modes").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

from torl.core import Prompt, ToolCall, ToolResult
from torl.rollout.formats.base import NoCall, TIRFormat, split_output, strip_fenced_code

ZERO_TIR_SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The Assistant first thinks about the reasoning process in the mind and then provides the user with the "
    "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
    "The Assistant can write Python code in ```python ``` blocks to help; the output of each block is shown "
    "to it in an ```output ``` block. Every code block inherits the global state (variables, imports, "
    "functions) of the earlier code blocks."
)
"""A ZERO-TIR-style system prompt (<think>/<answer> tags, Python in ```python blocks, stateful cells)."""

AREAL_ZERO_TIR_SYSTEM_PROMPT = (
    "\nYou are a helpful assistant. The User asks a question, and the Assistant solves it. \n"
    "The Assistant first thinks about the reasoning process in the mind and then provides the User with the "
    "answer. The reasoning process is enclosed within <think> </think> and answer is enclosed within "
    "<answer> </answer> tags, respectively, i.e., <think> reasoning process here </think> <answer> answer "
    "here </answer>. And your final answer will be extracted automatically by the \\boxed{{}} tag.\n"
    "In your reasoning-process, You can use python-code to solve your problem. Put the code within ```python "
    "and ``` tags. The script will be executed immediately and output will be returned.\n"
    "Every code block inherits the global state (variables, imports, and definitions) from earlier code "
    "blocks.\n"
)
"""AReaL's ZERO-TIR-RL system prompt, byte for byte (its `{{}}` is literal: the string is never formatted)."""

EMPTY_HINT = "No output. Use print() to show the values you need."
MAX_CHARS = 2000
AREAL_EMPTY_HINT = "No output. Let me use `print()` to see the result and try again.\n"
"""AReaL's text for a cell whose stdout and stderr are blank."""
AREAL_THINK = "<think>\n"
"""What AReaL appends to the rendered chat prompt."""
_OPEN, _CLOSE, _ANSWER_END = "```python", "```", "</answer>"
_CELL = re.compile(r"```python(.*?)```", re.DOTALL)


def zero_tir_messages(problem: str, system_prompt: str = ZERO_TIR_SYSTEM_PROMPT) -> list[dict[str, str]]:
    """ZERO-TIR-style chat messages for a problem: the system prompt, then the problem as the user turn."""
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": problem}]


def areal_output(result: ToolResult, timeout_s: float = 5) -> str:
    """AReaL's tool output block: `"\\n```output\\n" + stdout + "\\n" + stderr + "\\n```\\n"`, its hint when
    both are blank, cut to 2,000 characters + "\\n...[truncated]". A timeout's stderr is its executor's
    "Execution timed out after {timeout_s} seconds.\\n" (see `split_output` for how streams are told apart)."""
    stdout, stderr = split_output(result)
    if result.status == "timeout":
        stderr = f"Execution timed out after {timeout_s:g} seconds.\n"
    elif result.status == "sandbox_error" and not stderr:
        stderr = result.error or "sandbox error"
    res = stdout + "\n" + stderr
    if not res.strip():
        res = AREAL_EMPTY_HINT
    if len(res) > MAX_CHARS:
        res = res[:MAX_CHARS] + "\n...[truncated]"
    return "\n```output\n" + res + "\n```\n"


def _phases(turns: Sequence[str]) -> list[bool]:
    """For each turn, whether it was generated inside a cell (AReaL's stop "```" instead of "```python")."""
    inside, out = False, []
    for text in turns:
        out.append(inside)
        if _ANSWER_END in text:
            continue
        if not inside and _OPEN in text:
            inside = True
        elif inside and _CLOSE in text:
            inside = False
    return out


class ZeroTIRFormat(TIRFormat):
    """```python cells closed by ``` and a newline; results in ```output blocks; ends at </answer>.

    Args:
        system_prompt: the system message of `prompt()` (exact mode: AReaL's).
        empty_message: what an empty output is shown as (a hint to print).
        max_chars: outputs longer than this are cut, with a "(truncated)" note.
        exact: replay AReaL's ZERO-TIR-RL example: its system prompt with "<think>\\n" after the generation
            prompt, stop strings ["```python", "</answer>"] switched to ["```", "</answer>"] inside a cell,
            the cell's code from just after "```python" to the first "```", and its output block
            (`areal_output`).
        timeout_s: the cell time limit that exact mode's timeout message names (AReaL's: 5 s).
    """

    name = "zero_tir"
    stop: ClassVar[list[str]] = ["```\n", "</answer>"]
    answer_format = "answer_tag"
    env_fences = ("```output", "```")
    code_fences = ("```python", "```")

    def __init__(
        self,
        *,
        system_prompt: str | None = None,
        empty_message: str = EMPTY_HINT,
        max_chars: int = MAX_CHARS,
        exact: bool = False,
        timeout_s: float = 5,
    ) -> None:
        super().__init__(empty_message=empty_message, max_chars=max_chars)
        self.exact = exact
        self.turns_per_call = 2 if exact else 1
        if system_prompt is None:
            system_prompt = AREAL_ZERO_TIR_SYSTEM_PROMPT if exact else ZERO_TIR_SYSTEM_PROMPT
        self.system_prompt = system_prompt
        self.timeout_s = timeout_s

    def prompt(self, problem: str) -> Prompt:
        return zero_tir_messages(problem, self.system_prompt)

    def encode_prompt(self, prompt: Prompt, tokenizer: Any) -> list[int]:
        if not self.exact or isinstance(prompt, str):
            return super().encode_prompt(prompt, tokenizer)
        # AReaL: the chat template as text, "<think>\n" after it, the whole string encoded at once
        text = tokenizer.apply_chat_template(list(prompt), add_generation_prompt=True, tokenize=False)
        return list(tokenizer(text + AREAL_THINK, add_special_tokens=False)["input_ids"])

    def strip_code(self, text: str) -> str:
        return strip_fenced_code(text)

    def observation(self, result: ToolResult) -> str:
        out = result.output if result.ok else (result.output or result.error or result.status)
        out = out.strip("\n") or self.empty_message
        if len(out) > self.max_chars:
            out = out[: self.max_chars] + "\n... (truncated)"
        return out

    def turn_stop(self, turns: Sequence[str]) -> Sequence[str]:
        if not self.exact:
            return self.stop
        inside = _phases([*turns, ""])[-1]
        return [_CLOSE if inside else _OPEN, _ANSWER_END]

    def turn_calls(self, turns: Sequence[str], stopped: bool) -> list[ToolCall] | NoCall:
        if not self.exact:
            return super().turn_calls(turns, stopped)
        text = turns[-1]
        phases = _phases(turns)
        if _ANSWER_END in text:
            return "end"
        if not phases[-1]:
            return "continue" if _OPEN in text else "end"
        if _CLOSE not in text:
            return "end"
        start = len(phases) - 1  # the turn that opened this cell: the last one generated outside a cell
        while start > 0 and phases[start]:
            start -= 1
        m = _CELL.search("".join(turns[start:]))
        return [ToolCall(code=m.group(1))] if m else "continue"

    def parse_calls(self, text: str, stopped: bool) -> list[ToolCall]:
        if not stopped or not text.endswith("```\n"):
            return []
        start = text.rfind("```python\n")
        if start < 0:
            return []
        code = text[start + len("```python\n") : -len("```\n")]
        if "```" in code:  # the fence that stopped us closed some other block
            return []
        return [ToolCall(code=code)]

    def render(self, text: str, calls: Sequence[ToolCall], results: Sequence[ToolResult]) -> str:
        if self.exact:
            return "".join(areal_output(r, self.timeout_s) for r in results)
        return "```output\n" + self.observations(results) + "\n```\n"

    def __repr__(self) -> str:
        return "ZeroTIRFormat(exact=True)" if self.exact else "ZeroTIRFormat()"


class ZeroTIRExactFormat(ZeroTIRFormat):
    """`ZeroTIRFormat(exact=True)` under its own name, "zero_tir_exact", for configs that take a format name."""

    name = "zero_tir_exact"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("exact", True)
        super().__init__(**kwargs)
