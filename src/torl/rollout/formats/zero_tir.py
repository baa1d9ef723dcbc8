"""The ZERO-TIR format (AReaL's ZERO-TIR-RL): chat template, <think>/<answer>, ```python cells, ```output.

The model writes ```` ```python ```` ... ```` ``` ````; the turn stops at the closing fence, the cell runs (in
the trajectory's session, so state carries over), and the system appends
```` ```output\\n{stdout/stderr}\\n```\\n ````. An empty output becomes a hint to use `print()`; output over
2000 characters is cut. The trajectory ends on `</answer>`, EOS, or a budget.

AReaL switches stop strings (```` ```python ```` then ```` ``` ````); one stop string, ```` ```\\n ```` after a
```` ```python ```` block, gives the same turns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from torl.core import Prompt, ToolCall, ToolResult
from torl.rollout.formats.base import TIRFormat, strip_fenced_code

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

EMPTY_HINT = "No output. Use print() to show the values you need."
MAX_CHARS = 2000


def zero_tir_messages(problem: str, system_prompt: str = ZERO_TIR_SYSTEM_PROMPT) -> list[dict[str, str]]:
    """ZERO-TIR-style chat messages for a problem: the system prompt, then the problem as the user turn."""
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": problem}]


class ZeroTIRFormat(TIRFormat):
    """```python cells closed by ``` and a newline; results in ```output blocks; ends at </answer>.

    Args:
        system_prompt: the system message of `prompt()`.
        empty_message: what an empty output is shown as (a hint to print).
        max_chars: outputs longer than this are cut, with a "(truncated)" note.
    """

    name = "zero_tir"
    stop: ClassVar[list[str]] = ["```\n", "</answer>"]
    answer_format = "answer_tag"
    env_fences = ("```output", "```")
    code_fences = ("```python", "```")

    def __init__(
        self,
        *,
        system_prompt: str = ZERO_TIR_SYSTEM_PROMPT,
        empty_message: str = EMPTY_HINT,
        max_chars: int = MAX_CHARS,
    ) -> None:
        super().__init__(empty_message=empty_message, max_chars=max_chars)
        self.system_prompt = system_prompt

    def prompt(self, problem: str) -> Prompt:
        return zero_tir_messages(problem, self.system_prompt)

    def strip_code(self, text: str) -> str:
        return strip_fenced_code(text)

    def observation(self, result: ToolResult) -> str:
        out = result.output if result.ok else (result.output or result.error or result.status)
        out = out.strip("\n") or self.empty_message
        if len(out) > self.max_chars:
            out = out[: self.max_chars] + "\n... (truncated)"
        return out

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
        return "```output\n" + "\n".join(self.observation(r) for r in results) + "\n```\n"
