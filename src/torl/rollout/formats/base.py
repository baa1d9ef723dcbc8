"""`TIRFormat`: everything about how tool use looks in the text, for one convention.

A format owns its text: the prompt of a problem, where a turn stops, what a code block is, how a tool
result is rendered back, and how to take tool output (and code) back out of a transcript. The rollout
engine, the rewards, the data helpers and evaluation all ask the format; nothing else parses this text.

A format never re-encodes what the model wrote: it reads the decoded text of a turn to find the calls, and
returns the *environment* text to append, which the engine tokenizes on its own.
"""

from __future__ import annotations

import functools
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from torl.core import Prompt, ToolCall, ToolResult

AnswerFormat = Literal["boxed", "answer_tag"]
NoCall = Literal["end", "continue", "spend"]
"""What follows a model turn that runs no tool call (`TIRFormat.turn_calls`): "end" the trajectory; "continue"
with another model turn (ZERO-TIR's stop switch); or "spend" one call of the budget on nothing and continue
(ToRL's ```` ```output ```` with no code before it)."""
"""Where the final answer sits: the last `\\boxed{...}` (ToRL), or the last `<answer>...</answer>` (ZERO-TIR)."""

EMPTY_OUTPUT_MESSAGE = "Timeout Error"
"""What ToRL shows for a cell with no output and for a timed-out cell: it reports both as a timeout."""
INVALID_CALL = "invalid_call"
"""`ToolCall.name` of a call that could not be parsed; the engine answers it with its `arguments["error"]`."""
BUDGET_SPENT_MESSAGE = "Tool-call budget exhausted: no more code will be run. Give the final answer."
"""The observation used by `over_budget="notify"` for a call past the tool-call budget."""

_ERROR_LINE = re.compile(
    r"^(?:[\w.]*(?:Error|Exception|Exit|Interrupt)\b|Traceback\b|Timeout|timeout|Time ?out)"
)


def torl_observation(
    result: ToolResult, *, empty_message: str = EMPTY_OUTPUT_MESSAGE, max_chars: int = 256
) -> str:
    """ToRL's observation text of one result.

    stdout stripped; on error only the last line of the traceback; empty output and timeouts become
    `empty_message`; output of `max_chars` (256) characters or more becomes its first half + "..." + its last
    half (128 + "..." + 128).
    """
    if result.status == "timeout":
        text = EMPTY_OUTPUT_MESSAGE
    elif result.status != "ok":
        lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
        text = (result.error or "").strip().splitlines()[-1:] or lines[-1:] or [result.status]
        text = text[0].strip()
    else:
        text = result.output.strip()
    if not text:
        text = empty_message
    return cut_middle(text, max_chars)


def cut_middle(text: str, max_chars: int) -> str:
    """ToRL's cut: text of `max_chars` characters or more becomes its two halves around "..."."""
    if len(text) >= max_chars:
        half = max_chars // 2
        text = text[:half] + "..." + text[-half:]
    return text


_TRACEBACK = "Traceback (most recent call last):"
_COMPILE_ERRORS = ("SyntaxError", "IndentationError", "TabError")


def split_output(result: ToolResult) -> tuple[str, str]:
    """(stdout, stderr) of a result, as a script run would have given them apart.

    torl's sandboxes interleave both streams in `output`; a failed cell's traceback comes last. So: an ok cell
    is all stdout (warnings included); a failed cell's stderr starts at its last "Traceback" header, or is
    all of it for a compile error (nothing ran); a timed-out cell gives nothing (a script's piped stdout
    is block-buffered and lost when it is killed); other failures (an exit code, a signal) are all stdout.
    """
    if result.status == "ok":
        return result.output, ""
    if result.status == "timeout":
        return "", ""
    out = result.output
    i = out.rfind(_TRACEBACK)
    if i >= 0:
        return out[:i], out[i:]
    if (result.error or "").startswith(_COMPILE_ERRORS):
        return "", out or (result.error or "")
    return out, ""


def guess_status(observation: str) -> str:
    """A tool call's status read back from its rendered output (when only text is at hand): a traceback,
    an `...Error:` last line or a timeout notice is a failure."""
    text = observation.strip()
    if "Traceback (most recent call last)" in text:
        return "error"
    last = text.splitlines()[-1].strip() if text else ""
    m = _ERROR_LINE.match(last)
    if m is None:
        return "ok"
    return "timeout" if m.group(0).lower().startswith("time") else "error"


@functools.cache
def _blocks(fences: tuple[str, str]) -> re.Pattern[str]:
    # A marker that ends in a word character must end a word: in a model's own text (tool output taken
    # out) ToRL's "```output" marker runs straight into the model's next words, which are not output.
    start, end = map(re.escape, fences)
    if fences[0][-1:].isalnum():
        start += r"(?!\w)"
    return re.compile(rf"{start}(.*?)(?:{end}|\Z)", re.DOTALL)


_FENCED_CODE = re.compile(r"```(?!output)[^\n`]*(?:\n.*?)?(?:```|\Z)", re.DOTALL)


def strip_fenced_code(text: str) -> str:
    """Markdown code cells of any language (```` ```python ````, ```` ```py ````, a bare ```` ``` ````), closed or
    not, left out; ```` ```output ```` markers stay (for formats whose cells are fenced)."""
    return _FENCED_CODE.sub("", text) if "```" in text else text


def _tokenize_plain(tokenizer: Any, text: str) -> list[int]:
    """Token ids of environment text, with special-token strings in it kept as plain text."""
    return list(tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


class TIRFormat(ABC):
    """How tool use looks in the text. Subclass it (and `register_format` it) for a new convention.

    The engine calls, per trajectory: `encode_prompt` once; then per turn `turn_stop` for the request's stop
    strings, `turn_calls` on the decoded model turns (by default `stop` and `parse_calls` of the last turn),
    and `render` (or `render_budget_spent`) for the text to append, tokenized by `encode_env`. Rewards and evaluation call `prompt`, `strip_env`, `env_outputs`,
    `strip_code` and `code_closed`.

    Args:
        empty_message: what an empty output is shown as (ToRL: "Timeout Error").
        max_chars: outputs this long or longer are cut to their head + "..." + tail (ToRL: 256).
    """

    name: str = "format"
    stop: ClassVar[list[str]] = []
    """Stop strings of a turn that may call a tool (included in the output)."""
    named_calls: ClassVar[bool] = False
    """True when the model names the tool it calls (JSON tool calls); False for code blocks, which the
    engine sends to its one tool whatever that tool's name."""
    answer_format: ClassVar[AnswerFormat] = "boxed"
    """Where this format's final answer is: the last `\\boxed{}` or the last `<answer>...</answer>`."""
    env_fences: ClassVar[tuple[str, str] | None] = None
    """(opening, closing) marker of tool output in a transcript, e.g. ("```output", "```")."""
    code_fences: ClassVar[tuple[str, str] | None] = None
    """(opening, closing) marker of a code cell the model writes, e.g. ("```python", "```")."""
    turns_per_call: int = 1
    """Model turns one tool call takes (ZERO-TIR's exact mode: 2, one to open the cell, one to write it);
    the engine's default `max_turns` counts with it."""

    tokenizer: Any = None

    def __init__(self, *, empty_message: str = EMPTY_OUTPUT_MESSAGE, max_chars: int = 256) -> None:
        self.empty_message = empty_message
        self.max_chars = max_chars

    # ----- text: prompts, observations, reading transcripts back -----

    prompt_template: ClassVar[str | None] = None
    """A raw-text prompt with a `{problem}` field (None: chat messages)."""

    def prompt(self, problem: str) -> Prompt:
        """The prompt of a problem in this format: `prompt_template` filled in (raw text), else one user
        message for the chat template."""
        if self.prompt_template is not None:
            return self.prompt_template.format(problem=problem)
        return [{"role": "user", "content": problem}]

    def observation(self, result: ToolResult) -> str:
        """The text one tool result is shown as (ToRL's rules by default: see `torl_observation`)."""
        return torl_observation(result, empty_message=self.empty_message, max_chars=self.max_chars)

    def observations(self, results: Sequence[ToolResult]) -> str:
        """The observations of one turn's results, a line each."""
        return "\n".join(self.observation(r) for r in results)

    def strip_env(self, text: str) -> str:
        """A rendered transcript without what the environment added (tool output blocks; an unclosed one,
        as in a cut transcript, up to the end)."""
        return _blocks(self.env_fences).sub("", text) if self.env_fences else text

    def env_outputs(self, text: str) -> list[str]:
        """The tool outputs rendered into a transcript, in order."""
        return [m.group(1) for m in _blocks(self.env_fences).finditer(text)] if self.env_fences else []

    def strip_code(self, text: str) -> str:
        """The model's own text without its code cells (where a final answer the model wrote stands)."""
        return _blocks(self.code_fences).sub("", text) if self.code_fences else text

    def code_closed(self, text: str) -> bool:
        """True unless the text ends inside an unclosed code cell."""
        if not self.code_fences:
            return True
        start, end = self.code_fences
        i = text.rfind(start)
        return i < 0 or end in text[i + len(start) :]

    # ----- the engine's protocol -----

    def bind(self, tokenizer: Any, tools: Sequence[Any] = ()) -> None:
        """Called once by the engine with the model's tokenizer and its tools."""
        self.tokenizer = tokenizer

    def stop_token_ids(self) -> list[int]:
        """Token ids that end a turn besides the model's EOS (e.g. a chat template's end-of-turn token)."""
        return []

    def encode_prompt(self, prompt: Prompt, tokenizer: Any) -> list[int]:
        """Token ids of a prompt: a string is raw text; a list of messages goes through the chat template."""
        if isinstance(prompt, str):
            return list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        return list(
            tokenizer.apply_chat_template(
                list(prompt), add_generation_prompt=True, tokenize=True, return_dict=False
            )
        )

    @abstractmethod
    def parse_calls(self, text: str, stopped: bool) -> list[ToolCall]:
        """The calls to run for a model turn. `stopped` is True when the turn ended on one of `stop`
        (or a `stop_token_ids` token); an empty list ends the trajectory."""

    def turn_stop(self, turns: Sequence[str]) -> Sequence[str]:
        """Stop strings of the next model turn; `turns` are the decoded texts of this trajectory's model
        turns so far. Default: `stop` every turn (ZERO-TIR's exact mode switches them)."""
        return self.stop

    def turn_calls(self, turns: Sequence[str], stopped: bool) -> list[ToolCall] | NoCall:
        """What follows the last of `turns` (`stopped`: it ended on one of its stop strings): the calls to
        run, or a `NoCall` decision. Default: `parse_calls(turns[-1], stopped)`, and "end" without calls."""
        return self.parse_calls(turns[-1], stopped) or "end"

    @abstractmethod
    def render(self, text: str, calls: Sequence[ToolCall], results: Sequence[ToolResult]) -> str:
        """The environment text appended after a model turn `text` whose `calls` gave `results`."""

    def render_budget_spent(self, text: str, calls: Sequence[ToolCall]) -> str:
        """The environment text for calls past the tool-call budget (`over_budget="notify"`)."""
        return self.render(text, calls, [ToolResult(output=BUDGET_SPENT_MESSAGE) for _ in calls])

    def encode_env(self, text: str, tokenizer: Any) -> list[int]:
        """Token ids of environment text (special-token strings in tool output stay plain text)."""
        return _tokenize_plain(tokenizer, text)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
