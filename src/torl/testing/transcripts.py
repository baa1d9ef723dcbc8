"""Fixed tool-using transcripts that the tiny TIR test model memorises.

A transcript is a prompt plus segments, each ("model", text) or ("tool", text). Segments are tokenized
one by one, as the rollout engine does (it never re-tokenizes model text and tokenizes each tool output
on its own), so that at temperature 0 the trained model reproduces the model segments token for token
when the engine feeds it the same tool outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torl.rollout.formats import PYTHON_TOOL_SCHEMA, TORL_PROMPT_TEMPLATE, XML_PROMPT_TEMPLATE


@dataclass(frozen=True)
class Transcript:
    """A prompt (raw text, or chat messages) and the completion as ("model" | "tool", text) segments."""

    name: str
    prompt: str | list[dict]
    segments: list[tuple[str, str]] = field(default_factory=list)
    answer: str = ""
    tools: list[dict] | None = None
    """Tool schemas passed to the chat template with a message prompt (None: no tools)."""

    @property
    def model_segments(self) -> list[str]:
        return [t for k, t in self.segments if k == "model"]


# ToRL format: the model closes its cell and writes ```output itself (the stop string); the system adds
# "\n{observation}\n```\n". Two cells, then a boxed answer that uses the first output.
TORL_TWO_CALLS = Transcript(
    name="torl",
    prompt=TORL_PROMPT_TEMPLATE.format(problem="What is 12 * 34 + 5?"),
    segments=[
        ("model", "I will compute it with Python.\n```python\nprint(12 * 34 + 5)\n```\n```output"),
        ("tool", "\n413\n```\n"),
        ("model", "Let me check it.\n```python\nprint(413 - 5)\n```\n```output"),
        ("tool", "\n408\n```\n"),
        ("model", "So the answer is \\boxed{413}.<|endoftext|>"),
    ],
    answer="413",
)

# XML-tag format: the model closes <code> (the stop string "</code>"); the system adds
# "\n<interpreter>\n{observation}\n</interpreter>\n".
XML_ONE_CALL = Transcript(
    name="xml",
    prompt=XML_PROMPT_TEMPLATE.format(problem="What is 7 * 6?"),
    segments=[
        ("model", "Let me compute.\n<code>\nprint(7 * 6)\n</code>"),
        ("tool", "\n<interpreter>\n42\n</interpreter>\n"),
        ("model", "The answer is \\boxed{42}.<|endoftext|>"),
    ],
    answer="42",
)

# Chat format with native JSON tool calls (Qwen2.5 style): the assistant turn ends with <|im_end|>; the tool
# turn is what the chat template renders for a tool message, from the "\n" after <|im_end|> to the next
# assistant header.
CHAT_ONE_CALL = Transcript(
    name="chat",
    prompt=[{"role": "user", "content": "What is 7 + 8?"}],
    segments=[
        ("model", '<tool_call>\n{"name": "python", "arguments": {"code": "print(7 + 8)"}}\n</tool_call><|im_end|>'),
        ("tool", "\n<|im_start|>user\n<tool_response>\n15\n</tool_response><|im_end|>\n<|im_start|>assistant\n"),
        ("model", "The answer is \\boxed{15}.<|im_end|>"),
    ],
    answer="15",
    tools=[PYTHON_TOOL_SCHEMA],
)

DEFAULT_TRANSCRIPTS: list[Transcript] = [TORL_TWO_CALLS, XML_ONE_CALL, CHAT_ONE_CALL]

CALCULATOR_SCHEMA: dict = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate arithmetic (numbers, + - * / ** %, variables) and print() the results.",
        "parameters": PYTHON_TOOL_SCHEMA["function"]["parameters"],
    },
}
"""The schema of examples/custom_tool's `CalculatorTool` (its `schema()`)."""

# Two tools called by name in one assistant turn: Python and the calculator; the tool turn holds both
# responses, in call order. (Not in DEFAULT_TRANSCRIPTS: a model of its own memorises it.)
CHAT_TWO_TOOLS = Transcript(
    name="chat_two_tools",
    prompt=[{"role": "user", "content": "What is 6 * 7 + 2 + 2?"}],
    segments=[
        (
            "model",
            (
                '<tool_call>\n{"name": "python", "arguments": {"code": "print(6 * 7)"}}\n</tool_call>\n'
                '<tool_call>\n{"name": "calculator", "arguments": {"code": "print(2 + 2)"}}\n</tool_call><|im_end|>'
            ),
        ),
        (
            "tool",
            (
                "\n<|im_start|>user\n<tool_response>\n42\n</tool_response>\n<tool_response>\n4\n"
                "</tool_response><|im_end|>\n<|im_start|>assistant\n"
            ),
        ),
        ("model", "The answer is \\boxed{46}.<|im_end|>"),
    ],
    answer="46",
    tools=[PYTHON_TOOL_SCHEMA, CALCULATOR_SCHEMA],
)


def corpus_seed_texts() -> list[str]:
    """Texts every tokenizer corpus includes, so the transcripts tokenize compactly."""
    out = []
    for t in DEFAULT_TRANSCRIPTS:
        out.append(t.prompt if isinstance(t.prompt, str) else str(t.prompt))
        out.extend(text for _, text in t.segments)
    return out * 20
