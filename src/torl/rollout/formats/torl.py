"""ToRL's format (Qwen2.5-Math-TIR): ```python ... ``` then ```output ... ```, raw-text prompt."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from torl.core import ToolCall, ToolResult
from torl.rollout.formats.base import TIRFormat, strip_fenced_code

TORL_PROMPT_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it.\n"
    "User: Please integrate natural language reasoning with programs to solve the problem above, "
    "and put your final answer within \\boxed{{}}.\n{problem}\nAssistant:\n"
)
"""ToRL's `tir_base_0309` prompt for base models (raw text, no chat template); `{problem}` is the question."""


def torl_prompt(problem: str) -> str:
    """ToRL's exact prompt for a problem (raw text ending in "Assistant:\\n")."""
    return TORL_PROMPT_TEMPLATE.format(problem=problem)


class ToRLFormat(TIRFormat):
    """ToRL / Qwen2.5-Math-TIR: ```python ... ``` then ```output ... ```.

    The model writes ```` ```output ```` itself (the stop string); only the last closed ```python block of the
    turn runs; the system appends `("\\n" if needed) + observation + "\\n```\\n"`.
    """

    name = "torl"
    prompt_template = TORL_PROMPT_TEMPLATE
    stop: ClassVar[list[str]] = ["```output"]
    env_fences = ("```output", "```")
    code_fences = ("```python", "```")
    _block = re.compile(r"```python\n(.*?)```", re.DOTALL)

    def strip_code(self, text: str) -> str:
        return strip_fenced_code(text)

    def parse_calls(self, text: str, stopped: bool) -> list[ToolCall]:
        if not stopped:
            return []
        blocks = self._block.findall(text)
        return [ToolCall(code=blocks[-1])] if blocks else []

    def render(self, text: str, calls: Sequence[ToolCall], results: Sequence[ToolResult]) -> str:
        obs = "\n".join(self.observation(r) for r in results)
        return ("" if text.endswith("\n") else "\n") + obs + "\n```\n"
