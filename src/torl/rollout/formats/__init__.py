"""TIR formats, registered by name: how a prompt looks, where a turn stops, which code runs, how results
come back, and how tool output and code are read back out of a transcript.

| name | code | tool output | prompt |
| --- | --- | --- | --- |
| `torl` | ```` ```python ```` ... ```` ``` ```` | ```` ```output ```` ... ```` ``` ```` | ToRL's raw text |
| `xml` | `<code>` ... `</code>` | `<interpreter>` ... `</interpreter>` | raw text |
| `chat` | `<tool_call>{json}</tool_call>` | the chat template's tool turn | one user message |
| `zero_tir` | ```` ```python ```` ... ```` ``` ```` | ```` ```output ```` ... ```` ``` ```` | system + user messages |

`torl_exact` and `zero_tir_exact` are `ToRLFormat(exact=True)` and `ZeroTIRFormat(exact=True)`: the originals'
rules replayed (docs/recipes.md, "Exact modes").
"""

from __future__ import annotations

from typing import Any

from torl.rollout.formats.base import (
    BUDGET_SPENT_MESSAGE,
    EMPTY_OUTPUT_MESSAGE,
    INVALID_CALL,
    AnswerFormat,
    NoCall,
    TIRFormat,
    guess_status,
    split_output,
    torl_observation,
)
from torl.rollout.formats.chat import PYTHON_TOOL_SCHEMA, ChatToolFormat
from torl.rollout.formats.torl import (
    TORL_PROMPT_TEMPLATE,
    TORL_TIMEOUT_TEXT,
    ToRLExactFormat,
    ToRLFormat,
    torl_exact_observation,
    torl_program,
    torl_prompt,
)
from torl.rollout.formats.xml import XML_PROMPT_TEMPLATE, XMLFormat, xml_prompt
from torl.rollout.formats.zero_tir import (
    AREAL_ZERO_TIR_SYSTEM_PROMPT,
    ZERO_TIR_SYSTEM_PROMPT,
    ZeroTIRExactFormat,
    ZeroTIRFormat,
    areal_output,
    zero_tir_messages,
)

FORMATS: dict[str, type[TIRFormat]] = {
    "torl": ToRLFormat,
    "xml": XMLFormat,
    "chat": ChatToolFormat,
    "zero_tir": ZeroTIRFormat,
    "torl_exact": ToRLExactFormat,
    "zero_tir_exact": ZeroTIRExactFormat,
}
"""The registry: format name -> class (`register_format` adds to it)."""


def register_format(name: str, cls: type[TIRFormat]) -> None:
    """Make `tir_format=name` build `cls()` everywhere (engine, trainer config, recipes, eval, rewards)."""
    if not (isinstance(cls, type) and issubclass(cls, TIRFormat)):
        raise TypeError(f"register_format wants a TIRFormat subclass, got {cls!r}")
    FORMATS[name] = cls


def get_format(fmt: str | TIRFormat, **options: Any) -> TIRFormat:
    """A format instance from a registered name (built with `options`) or an instance (returned as is)."""
    if isinstance(fmt, TIRFormat):
        if options:
            raise ValueError("options go with a format name, not with a format instance")
        return fmt
    try:
        cls = FORMATS[fmt]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown tir_format {fmt!r}; choose one of {sorted(FORMATS)} or pass a TIRFormat"
        ) from None
    return cls(**options)


__all__ = [
    "AREAL_ZERO_TIR_SYSTEM_PROMPT",
    "BUDGET_SPENT_MESSAGE",
    "EMPTY_OUTPUT_MESSAGE",
    "FORMATS",
    "INVALID_CALL",
    "PYTHON_TOOL_SCHEMA",
    "TORL_PROMPT_TEMPLATE",
    "TORL_TIMEOUT_TEXT",
    "XML_PROMPT_TEMPLATE",
    "ZERO_TIR_SYSTEM_PROMPT",
    "AnswerFormat",
    "ChatToolFormat",
    "NoCall",
    "TIRFormat",
    "ToRLExactFormat",
    "ToRLFormat",
    "XMLFormat",
    "ZeroTIRExactFormat",
    "ZeroTIRFormat",
    "areal_output",
    "get_format",
    "guess_status",
    "register_format",
    "split_output",
    "torl_exact_observation",
    "torl_observation",
    "torl_program",
    "torl_prompt",
    "xml_prompt",
    "zero_tir_messages",
]
