"""The XML-tag format: <code> ... </code> then <interpreter> ... </interpreter>, raw-text prompt."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from torl.core import ToolCall, ToolResult
from torl.rollout.formats.base import TIRFormat

XML_PROMPT_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it.\n"
    "User: Please integrate natural language reasoning with programs to solve the problem above. "
    "Write Python code between <code> and </code>; its output comes back between <interpreter> and "
    "</interpreter>. Put your final answer within \\boxed{{}}.\n{problem}\nAssistant:\n"
)
"""A raw-text prompt for the XML-tag format (<code>...</code>, then <interpreter>...</interpreter>)."""


def xml_prompt(problem: str) -> str:
    """The XML-tag format's prompt for a problem (raw text ending in "Assistant:\\n")."""
    return XML_PROMPT_TEMPLATE.format(problem=problem)


class XMLFormat(TIRFormat):
    """XML tags: <code> ... </code> then <interpreter> ... </interpreter>.

    Stops on "</code>"; the last <code> block of the turn runs; the system appends
    `("\\n" if needed) + "<interpreter>\\n" + observation + "\\n</interpreter>\\n"` (ToRL's observation rules).
    """

    name = "xml"
    prompt_template = XML_PROMPT_TEMPLATE
    stop: ClassVar[list[str]] = ["</code>"]
    env_fences = ("<interpreter>", "</interpreter>")
    code_fences = ("<code>", "</code>")
    _block = re.compile(r"<code>(.*?)</code>", re.DOTALL)

    def parse_calls(self, text: str, stopped: bool) -> list[ToolCall]:
        if not stopped:
            return []
        blocks = self._block.findall(text)
        if not blocks:
            return []
        code = blocks[-1].strip("\n")
        return [ToolCall(code=code + "\n")]

    def render(self, text: str, calls: Sequence[ToolCall], results: Sequence[ToolResult]) -> str:
        obs = self.observations(results)
        return ("" if text.endswith("\n") else "\n") + "<interpreter>\n" + obs + "\n</interpreter>\n"
