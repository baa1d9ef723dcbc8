"""The model's native JSON tool calls through its chat template (Qwen2.5 style)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from torl.core import PYTHON_PARAMETERS, Prompt, ToolCall, ToolResult
from torl.rollout.formats.base import EMPTY_OUTPUT_MESSAGE, INVALID_CALL, TIRFormat

PYTHON_TOOL_SCHEMA: dict = {
    "type": "function",
    "function": {
        "name": "python",
        "description": "Run Python code and return what it prints.",
        "parameters": PYTHON_PARAMETERS,
    },
}
"""The OpenAI-style schema of the Python tool (what `Sandbox.schema()` gives), for chat templates."""


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
    env_fences = ("<tool_response>", "</tool_response>")
    code_fences = ("<tool_call>", "</tool_call>")
    _call = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)

    def __init__(
        self,
        *,
        tools: list[dict] | None = None,
        end_of_turn: str = "<|im_end|>",
        empty_message: str = EMPTY_OUTPUT_MESSAGE,
        max_chars: int = 256,
    ) -> None:
        super().__init__(empty_message=empty_message, max_chars=max_chars)
        self._given_tools = tools
        self.tools = [PYTHON_TOOL_SCHEMA] if tools is None else tools
        self.end_of_turn = end_of_turn

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
