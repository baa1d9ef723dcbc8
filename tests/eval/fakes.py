"""Scripted stand-ins for the rollout engine (the real engine runs in test_eval_vllm.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from torl.core import Segment, ToolCall, ToolCallRecord, ToolResult, Trajectory


def make_trajectory(
    parts: Sequence[tuple[str, str] | tuple[str, str, ToolResult]],
    prompt: str = "Q",
    finish_reason: str = "stop",
    metadata: dict | None = None,
    error: str | None = None,
) -> Trajectory:
    """A trajectory from ("model", text) and ("tool", text, result) parts; 1 token per 4 characters."""
    ids: list[int] = []
    mask: list[int] = []
    segments, calls = [], []
    for part in parts:
        kind, text = part[0], part[1]
        n = max(1, len(text) // 4)
        segments.append(Segment(kind=kind, text=text, start=len(ids), end=len(ids) + n))
        ids += [7] * n
        mask += [1 if kind == "model" else 0] * n
        if kind == "tool":
            result = part[2] if len(part) > 2 else ToolResult(output=text.strip())
            calls.append(
                ToolCallRecord(
                    call=ToolCall(code="print(1)"),
                    result=result,
                    turn=len(calls),
                    output_segment=len(segments) - 1,
                )
            )
    return Trajectory(
        prompt=prompt,
        prompt_ids=[1, 2, 3],
        completion_ids=ids,
        logprobs=[0.0] * len(ids),
        env_mask=mask,
        segments=segments,
        tool_calls=calls,
        num_turns=len(calls) + 1,
        finish_reason=finish_reason,
        metadata=dict(metadata or {}),
        error=error,
    )


def solution(answer: str | None, cells: int = 1, failed: int = 0) -> Trajectory:
    """A ToRL-style solution with `cells` code cells (the first `failed` of them raise) and a boxed answer."""
    parts: list = []
    for i in range(cells):
        parts.append(("model", "Compute.\n```python\nprint(1)\n```\n```output"))
        if i < failed:
            parts.append(
                (
                    "tool",
                    "\nNameError: name 'a' is not defined\n```\n",
                    ToolResult(
                        output="Traceback...", status="error", error="NameError: name 'a' is not defined"
                    ),
                )
            )
        else:
            parts.append(("tool", "\n1\n```\n", ToolResult(output="1\n")))
    parts.append(("model", f"So \\boxed{{{answer}}}." if answer is not None else "I give up."))
    return make_trajectory(parts)


class ScriptedPolicy:
    """Answers each prompt with scripted samples: `script[problem text]` is a list of answers (sample j gets
    item j % len); problems in `fail_on` raise. Records every call."""

    def __init__(self, script: dict[str, list[str | None]], cells: int = 1, fail_on: Sequence[str] = ()):
        self.script = script
        self.cells = cells
        self.fail_on = set(fail_on)
        self.calls: list[tuple[str, int, dict]] = []

    async def generate(self, prompts, n: int = 1, **sampling):
        (prompt,) = prompts
        self.calls.append((prompt, n, sampling))
        await asyncio.sleep(0)
        if prompt in self.fail_on:
            raise RuntimeError(f"engine died on {prompt!r}")
        answers = self.script[prompt]
        return [solution(answers[j % len(answers)], cells=self.cells) for j in range(n)]
