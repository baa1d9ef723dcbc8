"""ToRL's format (Qwen2.5-Math-TIR): ```python ... ``` then ```output ... ```, raw-text prompt.

`ToRLFormat()` is torl's reading of it; `ToRLFormat(exact=True)` (registered as "torl_exact") replays the
rules of ToRL's verl fork where they differ (see docs/recipes.md, "Exact modes").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from torl.core import ToolCall, ToolResult
from torl.rollout.formats.base import NoCall, TIRFormat, cut_middle, split_output, strip_fenced_code

TORL_PROMPT_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it.\n"
    "User: Please integrate natural language reasoning with programs to solve the problem above, "
    "and put your final answer within \\boxed{{}}.\n{problem}\nAssistant:\n"
)
"""ToRL's `tir_base_0309` prompt for base models (raw text, no chat template); `{problem}` is the question."""

TORL_TIMEOUT_TEXT = "timeout_decorator.timeout_decorator.TimeoutError: 'Timed Out'"
"""What ToRL shows for a cell whose observation is empty (no output, a timeout, an error without text)."""
TORL_UNKNOWN_ERROR = "UnknownError"
"""What ToRL shows when the sandbox could not be reached or answered nonsense."""
_STOP = "```output"


def torl_prompt(problem: str) -> str:
    """ToRL's exact prompt for a problem (raw text ending in "Assistant:\\n")."""
    return TORL_PROMPT_TEMPLATE.format(problem=problem)


def torl_program(text: str) -> str:
    """The code ToRL runs for a round's text (its stop string "```output" already cut off), by its line
    rules: a line that starts or ends with "```python" opens a block (and forgets earlier ones), a line
    that starts with "```" closes it, the lines between are the code. "" when there is no block or the
    last one is never closed."""
    code: list[str] = []
    inside = False
    for line in text.split("\n"):
        if line.startswith("```python") or line.endswith("```python"):
            code, inside = [], True
        elif line.startswith("```"):
            inside = False
        elif inside:
            code.append(line + "\n")
    return "" if inside else "".join(code)


def torl_exact_observation(result: ToolResult, max_chars: int = 256) -> tuple[str, bool]:
    """ToRL's observation of a result and whether it counts as a pass (its `execution_pass`).

    As SandboxFusion returns a run (return code, stdout, stderr; see `split_output`): stdout when the exit
    code is 0 or stdout is not empty (a pass, even after an exception), else stderr; text containing
    "Error" is cut to its last line; empty text becomes `TORL_TIMEOUT_TEXT`; an unreachable sandbox gives
    `TORL_UNKNOWN_ERROR`; `max_chars` (256) or more become 128 + "..." + 128.
    """
    if result.status == "sandbox_error":
        text, passed = TORL_UNKNOWN_ERROR, False
    else:
        stdout, stderr = split_output(result)
        passed = result.status == "ok" or bool(stdout)
        text = stdout if passed else stderr.strip()
    if "Error" in text:
        text = text.strip().split("\n")[-1]
    if not text.strip():
        text = TORL_TIMEOUT_TEXT
    return cut_middle(text.strip(), max_chars), passed


class ToRLFormat(TIRFormat):
    """ToRL / Qwen2.5-Math-TIR: ```python ... ``` then ```output ... ```.

    The model writes ```` ```output ```` itself (the stop string); only the last closed ```python block of the
    turn runs; the system appends `("\\n" if needed) + observation + "\\n```\\n"`. A turn that stops on
    ```` ```output ```` with no closed block before it ends the trajectory.

    Args:
        exact: replay ToRL's verl fork: ToRL's observation rules (`torl_exact_observation`), its line
            rules for the code (`torl_program`: the "```" of "```output" does not close a block, an unclosed
            last block runs nothing), and a ```` ```output ```` with no code to run spends one call of the
            budget and generation goes on (nothing is appended).
        empty_message, max_chars: as for `TIRFormat` (ToRL's: "Timeout Error"-style text, 256).
    """

    name = "torl"
    prompt_template = TORL_PROMPT_TEMPLATE
    stop: ClassVar[list[str]] = [_STOP]
    env_fences = ("```output", "```")
    code_fences = ("```python", "```")
    _block = re.compile(r"```python\n(.*?)```", re.DOTALL)

    def __init__(self, *, exact: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.exact = exact

    def strip_code(self, text: str) -> str:
        return strip_fenced_code(text)

    def observation(self, result: ToolResult) -> str:
        if self.exact:
            return torl_exact_observation(result, self.max_chars)[0]
        return super().observation(result)

    def parse_calls(self, text: str, stopped: bool) -> list[ToolCall]:
        if not stopped:
            return []
        if self.exact:
            code = torl_program(text[: text.find(_STOP)] if _STOP in text else text)
            return [ToolCall(code=code)] if code else []
        blocks = self._block.findall(text)
        return [ToolCall(code=blocks[-1])] if blocks else []

    def turn_calls(self, turns: Sequence[str], stopped: bool) -> list[ToolCall] | NoCall:
        calls = self.parse_calls(turns[-1], stopped)
        if calls:
            return calls
        # ToRL: a round that stopped on ```output counts as a call even with nothing to run
        return "spend" if self.exact and stopped else "end"

    def render(self, text: str, calls: Sequence[ToolCall], results: Sequence[ToolResult]) -> str:
        obs = self.observations(results)
        return ("" if text.endswith("\n") else "\n") + obs + "\n```\n"

    def __repr__(self) -> str:
        return "ToRLFormat(exact=True)" if self.exact else "ToRLFormat()"


class ToRLExactFormat(ToRLFormat):
    """`ToRLFormat(exact=True)` under its own name, "torl_exact", for configs that take a format name."""

    name = "torl_exact"

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("exact", True)
        super().__init__(**kwargs)
