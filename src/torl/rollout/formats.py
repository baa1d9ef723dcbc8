"""TIR formats: how a prompt is encoded, where a turn stops, which code runs, how results come back.

A format never re-encodes what the model wrote: it reads the decoded text of a turn to find the code,
and returns the *environment* text to append, which the engine tokenizes on its own.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from torl.core import Prompt, ToolCall, ToolResult
from torl.rollout.prompts import PYTHON_TOOL_SCHEMA

EMPTY_OUTPUT_MESSAGE = "Timeout Error"
"""What ToRL shows for a cell with no output (ToRL reports empty output as a timeout)."""
TIMEOUT_MESSAGE = "Timeout Error"
"""What is shown for a cell that hit its time limit."""
INVALID_CALL = "invalid_call"
"""`ToolCall.name` of a call that could not be parsed; the engine answers it with its `arguments["error"]`."""
BUDGET_SPENT_MESSAGE = "Tool-call budget exhausted: no more code will be run. Give the final answer."
"""The observation used by `over_budget="notify"` for a call past the tool-call budget."""


def torl_observation(
    result: ToolResult, *, empty_message: str = EMPTY_OUTPUT_MESSAGE, max_chars: int = 256
) -> str:
    """ToRL's observation text of one result.

    stdout stripped; on error only the last line of the traceback; empty output and timeouts become
    `empty_message`; output of `max_chars` (256) characters or more becomes its first half + "..." + its last
    half (128 + "..." + 128).
    """
    if result.status == "timeout":
        text = TIMEOUT_MESSAGE
    elif result.status != "ok":
        lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
        text = (result.error or "").strip().splitlines()[-1:] or lines[-1:] or [result.status]
        text = text[0].strip()
    else:
        text = result.output.strip()
    if not text:
        text = empty_message
    if len(text) >= max_chars:
        half = max_chars // 2
        text = text[:half] + "..." + text[-half:]
    return text


def _tokenize_plain(tokenizer: Any, text: str) -> list[int]:
    """Token ids of environment text, with special-token strings in it kept as plain text."""
    return list(tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


class TIRFormat(ABC):
    """How tool use looks in the text. Subclass it to support a new convention.

    The engine calls, per trajectory: `encode_prompt` once; then per turn `stop_strings` for the request,
    `parse_calls` on the decoded model turn, and `render` (or `render_budget_spent`) for the text to append,
    tokenized by `encode_env`.
    """

    name: str = "format"
    stop: ClassVar[list[str]] = []
    """Stop strings of a turn that may call a tool (included in the output)."""
    named_calls: ClassVar[bool] = False
    """True when the model names the tool it calls (JSON tool calls); False for code blocks, which the
    engine sends to its one tool whatever that tool's name."""

    tokenizer: Any = None

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

    @abstractmethod
    def render(self, text: str, calls: Sequence[ToolCall], results: Sequence[ToolResult]) -> str:
        """The environment text appended after a model turn `text` whose `calls` gave `results`."""

    def render_budget_spent(self, text: str, calls: Sequence[ToolCall]) -> str:
        """The environment text for calls past the tool-call budget (`over_budget="notify"`)."""
        return self.render(text, calls, [ToolResult(output=BUDGET_SPENT_MESSAGE) for _ in calls])

    def encode_env(self, text: str, tokenizer: Any) -> list[int]:
        """Token ids of environment text (special-token strings in tool output stay plain text)."""
        return _tokenize_plain(tokenizer, text)


class _ObservedFormat(TIRFormat):
    """A format whose tool results are rendered as ToRL observations (stdout, last traceback line, truncation)."""

    def __init__(self, *, empty_message: str = EMPTY_OUTPUT_MESSAGE, max_chars: int = 256) -> None:
        self.empty_message = empty_message
        self.max_chars = max_chars

    def observation(self, results: Sequence[ToolResult]) -> str:
        return "\n".join(
            torl_observation(r, empty_message=self.empty_message, max_chars=self.max_chars) for r in results
        )


class ToRLFormat(_ObservedFormat):
    """ToRL / Qwen2.5-Math-TIR: ```python ... ``` then ```output ... ```.

    The model writes ```` ```output ```` itself (the stop string); only the last closed ```python block of the
    turn runs; the system appends `("\\n" if needed) + observation + "\\n```\\n"`.
    """

    name = "torl"
    stop: ClassVar[list[str]] = ["```output"]
    _block = re.compile(r"```python\n(.*?)```", re.DOTALL)

    def parse_calls(self, text: str, stopped: bool) -> list[ToolCall]:
        if not stopped:
            return []
        blocks = self._block.findall(text)
        return [ToolCall(code=blocks[-1])] if blocks else []

    def render(self, text: str, calls: Sequence[ToolCall], results: Sequence[ToolResult]) -> str:
        obs = self.observation(results)
        return ("" if text.endswith("\n") else "\n") + obs + "\n```\n"


class XMLFormat(_ObservedFormat):
    """XML tags, as in ZERO-TIR-style work: <code> ... </code> then <interpreter> ... </interpreter>.

    Stops on "</code>"; the last <code> block of the turn runs; the system appends
    `("\\n" if needed) + "<interpreter>\\n" + observation + "\\n</interpreter>\\n"` (ToRL's observation rules).
    """

    name = "xml"
    stop: ClassVar[list[str]] = ["</code>"]
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
        obs = self.observation(results)
        return ("" if text.endswith("\n") else "\n") + "<interpreter>\n" + obs + "\n</interpreter>\n"


class ChatToolFormat(TIRFormat):
    """The model's native JSON tool calls through its chat template (Qwen2.5 style).

    The assistant writes `<tool_call>{"name": ..., "arguments": {"code": ...}}</tool_call>` and ends its turn
    (the end-of-turn token, e.g. <|im_end|>). Every call of the turn runs; the tool turn appended is exactly
    what the chat template renders for the tool messages, from the end of the assistant turn to the next
    assistant header (`render` returns that text; special tokens in it are real special tokens).
    Prompts must be message lists; `tools` (default: the Python tool schema) go to the chat template.
    """

    name = "chat"
    named_calls: ClassVar[bool] = True
    _call = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)

    def __init__(
        self,
        *,
        tools: list[dict] | None = None,
        end_of_turn: str = "<|im_end|>",
        empty_message: str = EMPTY_OUTPUT_MESSAGE,
        max_chars: int = 256,
    ) -> None:
        self._given_tools = tools
        self.tools = [PYTHON_TOOL_SCHEMA] if tools is None else tools
        self.end_of_turn = end_of_turn
        self.empty_message = empty_message
        self.max_chars = max_chars

    def bind(self, tokenizer: Any, tools: Sequence[Any] = ()) -> None:
        """Also takes the engine's tools' schemas for the chat template, unless `tools=` was given."""
        super().bind(tokenizer, tools)
        if self._given_tools is None and tools:
            self.tools = [t.schema() for t in tools]

    def stop_token_ids(self) -> list[int]:
        tok = self.tokenizer
        tid = tok.convert_tokens_to_ids(self.end_of_turn)
        if tid is None or (tid == tok.unk_token_id and self.end_of_turn != tok.unk_token):
            raise ValueError(f"end-of-turn token {self.end_of_turn!r} is not in the tokenizer's vocabulary")
        return [tid]

    def encode_prompt(self, prompt: Prompt, tokenizer: Any) -> list[int]:
        if isinstance(prompt, str):
            raise TypeError("the chat tool-call format needs a list of messages, not a raw string prompt")
        return list(
            tokenizer.apply_chat_template(
                list(prompt),
                tools=self.tools or None,
                add_generation_prompt=True,
                tokenize=True,
                return_dict=False,
            )
        )

    def parse_calls(self, text: str, stopped: bool) -> list[ToolCall]:
        calls = []
        for body in self._call.findall(text):
            try:
                obj = json.loads(body.strip())
                name = str(obj.get("name", "python"))
                args = obj.get("arguments", {})
                if isinstance(args, str):
                    args = json.loads(args)
                if not isinstance(args, dict):
                    raise TypeError('"arguments" is not an object')
                code = args.get("code", "")
                if not isinstance(code, str):
                    raise TypeError('"code" is not a string')
                calls.append(ToolCall(code=code, name=name, arguments=args))
            except (ValueError, AttributeError, TypeError) as e:
                # A malformed call is still a call: it is answered with the error, so the model sees it.
                calls.append(
                    ToolCall(
                        code="",
                        name=INVALID_CALL,
                        arguments={"raw": body, "error": f"invalid tool call: {e}"},
                    )
                )
        return calls

    def observation(self, result: ToolResult) -> str:
        return torl_observation(result, empty_message=self.empty_message, max_chars=self.max_chars)

    def render(self, text: str, calls: Sequence[ToolCall], results: Sequence[ToolResult]) -> str:
        tok = self.tokenizer
        if tok is None:
            raise RuntimeError("ChatToolFormat.render called before bind(tokenizer)")
        tool_calls = [
            {"type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls
        ]
        base = [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": "", "tool_calls": tool_calls},
        ]
        tool_msgs = [
            {"role": "tool", "name": c.name, "content": self.observation(r)} for c, r in zip(calls, results)
        ]
        prefix = tok.apply_chat_template(base, tools=self.tools or None, tokenize=False)
        full = tok.apply_chat_template(
            base + tool_msgs, tools=self.tools or None, tokenize=False, add_generation_prompt=True
        )
        if not full.startswith(prefix):
            raise ValueError(
                "the chat template does not render tool messages as a suffix of the conversation"
            )
        cut = prefix.rfind(self.end_of_turn)
        if cut < 0:
            raise ValueError(f"the chat template does not end an assistant turn with {self.end_of_turn!r}")
        # From just after the end-of-turn token the model wrote, to the next assistant header.
        return prefix[cut + len(self.end_of_turn) :] + full[len(prefix) :]

    def encode_env(self, text: str, tokenizer: Any) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])


FORMATS: dict[str, type[TIRFormat]] = {"torl": ToRLFormat, "xml": XMLFormat, "chat": ChatToolFormat}


def get_format(fmt: str | TIRFormat) -> TIRFormat:
    """A format instance from a name ("torl", "xml", "chat") or an instance (returned as is)."""
    if isinstance(fmt, TIRFormat):
        return fmt
    try:
        return FORMATS[fmt]()
    except KeyError:
        raise ValueError(
            f"unknown tir_format {fmt!r}; choose one of {sorted(FORMATS)} or pass a TIRFormat"
        ) from None
