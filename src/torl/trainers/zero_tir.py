"""The ZERO-TIR tool format (AReaL's ZERO-TIR-RL), as a torl `TIRFormat`.

The model writes ```` ```python ```` ... ```` ``` ````; the turn stops at the closing fence, the cell runs (in
the trajectory's session, so state carries over), and the system appends
```` ```output\\n{stdout/stderr}\\n```\\n ````. An empty output becomes a hint to use `print()`; output over
2000 characters is cut. The trajectory ends on `</answer>`, EOS, or a budget.

AReaL switches stop strings (```` ```python ```` then ```` ``` ````); one stop string, ```` ```\\n ```` after a
```` ```python ```` block, gives the same turns. `register()` makes it `tir_format="zero_tir"` (the recipe
runner does it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from torl.core import ToolCall, ToolResult
from torl.rollout.formats import FORMATS, TIRFormat

EMPTY_HINT = "No output. Use print() to show the values you need."
MAX_CHARS = 2000


class ZeroTIRFormat(TIRFormat):
    """```python cells closed by ``` and a newline; results in ```output blocks; ends at </answer>."""

    name = "zero_tir"
    stop: ClassVar[list[str]] = ["```\n", "</answer>"]

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
        parts = []
        for r in results:
            out = r.output if r.ok else (r.output or r.error or r.status)
            out = out.strip("\n") or EMPTY_HINT
            if len(out) > MAX_CHARS:
                out = out[:MAX_CHARS] + "\n... (truncated)"
            parts.append(out)
        return "```output\n" + "\n".join(parts) + "\n```\n"


def register() -> None:
    """Make `tir_format="zero_tir"` available to `TIRRollout` and `TIRGRPOConfig`."""
    FORMATS.setdefault("zero_tir", ZeroTIRFormat)
