"""Prompt templates and the Python tool schema of the shipped TIR formats (plain strings, no dependencies)."""

from __future__ import annotations

TORL_PROMPT_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it.\n"
    "User: Please integrate natural language reasoning with programs to solve the problem above, "
    "and put your final answer within \\boxed{{}}.\n{problem}\nAssistant:\n"
)
"""ToRL's `tir_base_0309` prompt for base models (raw text, no chat template); `{problem}` is the question."""

XML_PROMPT_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it.\n"
    "User: Please integrate natural language reasoning with programs to solve the problem above. "
    "Write Python code between <code> and </code>; its output comes back between <interpreter> and "
    "</interpreter>. Put your final answer within \\boxed{{}}.\n{problem}\nAssistant:\n"
)
"""A raw-text prompt for the XML-tag format (<code>...</code>, then <interpreter>...</interpreter>)."""

PYTHON_TOOL_SCHEMA: dict = {
    "type": "function",
    "function": {
        "name": "python",
        "description": "Run Python code and return what it prints.",
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "The Python code to run."}},
            "required": ["code"],
        },
    },
}
"""The OpenAI-style schema of the Python tool, passed to chat templates by the JSON tool-call format."""


def torl_prompt(problem: str) -> str:
    """ToRL's exact prompt for a problem (raw text ending in "Assistant:\\n")."""
    return TORL_PROMPT_TEMPLATE.format(problem=problem)


def xml_prompt(problem: str) -> str:
    """The XML-tag format's prompt for a problem (raw text ending in "Assistant:\\n")."""
    return XML_PROMPT_TEMPLATE.format(problem=problem)
