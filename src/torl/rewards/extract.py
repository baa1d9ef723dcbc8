"""Finding the final answer in a model's text.

Pure string work (no sympy): cheap enough to run in the trainer process for every sample.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

from torl.rollout.formats.base import AnswerFormat

if TYPE_CHECKING:
    from torl.rollout.formats import TIRFormat

_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_ANSWER_OPEN = "<answer>"
_ANSWER_CLOSE = "</answer>"


def strip_tool_output(text: str, tir_format: str | TIRFormat | None = None) -> str:
    """Remove tool output rendered into a transcript (`TIRFormat.strip_env`): that of `tir_format`, or of
    every registered format when it is None (```` ```output ````, `<interpreter>`, `<tool_response>` blocks).

    An unclosed block (a truncated transcript) is removed up to the end of the text. The opening
    ```` ```output ```` marker goes too, so what is left is what the model wrote outside tool output.
    """
    for fmt in formats_of(tir_format):
        text = fmt.strip_env(text)
    return text


def formats_of(tir_format: str | TIRFormat | None) -> list[TIRFormat]:
    """`[get_format(tir_format)]`, or one instance of every registered format for None."""
    from torl.rollout.formats import FORMATS, get_format

    if tir_format is not None:
        return [get_format(tir_format)] if isinstance(tir_format, str) else [tir_format]
    return list(_all_formats(tuple(FORMATS.items())))


@functools.lru_cache(maxsize=4)
def _all_formats(registry: tuple) -> tuple[TIRFormat, ...]:
    return tuple(cls() for _, cls in registry)


def strip_code(text: str, tir_format: str | TIRFormat | None = None) -> str:
    """Remove the code cells the model wrote (`TIRFormat.strip_code`): those of `tir_format`, or of every
    registered format when it is None (```` ```python ````, `<code>`, `<tool_call>` blocks).

    An unclosed cell (a truncated transcript, or a cell the model never closed) is removed up to the end
    of the text. Apply this to the model's own text (`Trajectory.model_text`) or to a transcript after
    `strip_tool_output`, never before it. What is left is the model's prose.
    """
    for fmt in formats_of(tir_format):
        text = fmt.strip_code(text)
    return text


def _braced(text: str, open_at: int) -> tuple[str, int] | None:
    """Content of the brace group opening at `text[open_at] == "{"` and the index after it; None if unclosed."""
    depth = 0
    i = open_at
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":  # skip escaped characters such as \{ and \}
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i], i + 1
        i += 1
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\fbox{...}`, or `\\boxed 5`) in `text`.

    Braces are matched, so nested groups are kept whole. Returns None when there is no box or the last
    one is unclosed (a truncated answer is no answer). `\\boxed{\\boxed{x}}` gives `x`.
    """
    matches = list(_BOX.finditer(text))
    if not matches:
        return None
    end = matches[-1].end()
    rest = text[end:]
    stripped = rest.lstrip()
    if stripped.startswith("{"):
        got = _braced(text, end + (len(rest) - len(stripped)))
        if got is None:
            return None
        content = got[0].strip()
    elif rest[:1].isspace() and stripped:
        # "\boxed 5": one token, up to whitespace or a math delimiter
        content = re.split(r"[\s$]", stripped, maxsplit=1)[0]
    else:
        return None
    inner = last_boxed(content) if content.startswith(("\\boxed", "\\fbox")) else None
    return inner if inner is not None else (content or None)


def _answer_tag(text: str) -> str | None:
    start = text.rfind(_ANSWER_OPEN)
    if start < 0:
        return None
    body = text[start + len(_ANSWER_OPEN) :]
    close = body.find(_ANSWER_CLOSE)
    if close >= 0:  # without a close tag (generation stopped on "</answer>") the rest is the answer
        body = body[:close]
    boxed = last_boxed(body)
    if boxed is not None:
        return boxed
    body = body.strip()
    if len(body) >= 2 and body[0] == "$" and body[-1] == "$":
        body = body.strip("$").strip()
    return body or None


def extract_answer(text: str, answer_format: AnswerFormat = "boxed") -> str | None:
    """The final answer of the model's own text, or None if there is none.

    `text` should be the model's own prose: `strip_code(Trajectory.model_text)`; when only a rendered
    transcript is at hand, `strip_code(strip_tool_output(transcript))` (the rewards do this for you), so
    that a box written inside a code cell, or printed by it, is not taken for the answer.

    Args:
        text: what the model wrote.
        answer_format: `"boxed"`: the content of the last `\\boxed{}` (ToRL). `"answer_tag"`: the content
            of the last `<answer>...</answer>` (ZERO-TIR); a `\\boxed{}` inside it is unwrapped.

    Raises:
        TypeError: `text` is not a string.
        ValueError: unknown `answer_format`.
    """
    if not isinstance(text, str):
        raise TypeError(f"extract_answer expects a str, got {type(text).__name__}")
    if answer_format == "boxed":
        return last_boxed(text)
    if answer_format == "answer_tag":
        return _answer_tag(text)
    raise ValueError(f"unknown answer_format {answer_format!r}: use 'boxed' or 'answer_tag'")
