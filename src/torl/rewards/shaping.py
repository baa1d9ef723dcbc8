"""Shaping building blocks: format, tool use and execution penalty. None needs the reference answer;
combine them with a correctness reward through `WeightedReward`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from torl.core import RewardOutput
from torl.rewards.base import BatchReward, Sample
from torl.rewards.extract import AnswerFormat, extract_answer


class ExecutionPenalty(BatchReward):
    """`penalty` (e.g. -0.5) when the code failed, else 0.

    Args:
        penalty: the (negative) score of a failed execution.
        when: `"all_failed"` (default, ToRL's `execution_passes == 0`): tool calls were made and none
            succeeded; `"any_failed"`: at least one call failed.
        penalize_no_code: also penalise a response that made no tool call (ToRL's code does, its paper
            does not; see `ToRLReward`).

    Breakdown: `failed` (1/0), `tool_calls`.
    """

    name = "execution_penalty"
    needs_answer = False

    def __init__(
        self,
        penalty: float = -0.5,
        *,
        when: Literal["all_failed", "any_failed"] = "all_failed",
        penalize_no_code: bool = False,
        name: str | None = None,
    ) -> None:
        if when not in ("all_failed", "any_failed"):
            raise ValueError(f"when must be 'all_failed' or 'any_failed', got {when!r}")
        self.penalty = float(penalty)
        self.when = when
        self.penalize_no_code = penalize_no_code
        super().__init__(name)

    def failed(self, sample: Sample) -> bool:
        """Whether `sample` takes the penalty."""
        if sample.num_tool_calls == 0:
            return self.penalize_no_code
        if self.when == "all_failed":
            return sample.num_tool_failures == sample.num_tool_calls
        return sample.num_tool_failures > 0

    def penalty_for(self, sample: Sample) -> float:
        """`penalty` if `sample` takes it, else 0.0."""
        return self.penalty if self.failed(sample) else 0.0

    def score_samples(self, samples: Sequence[Sample], answers: Sequence[str | None]) -> list[RewardOutput]:
        return [
            RewardOutput(
                score=self.penalty_for(s),
                breakdown={"failed": float(self.failed(s)), "tool_calls": float(s.num_tool_calls)},
            )
            for s in samples
        ]


class ToolUseReward(BatchReward):
    """`reward` per tool call, counting at most `max_calls` calls (only successful ones with `successful_only`).

    With the defaults: 1.0 if the model used the tool at least once, else 0.0.
    Breakdown: `tool_calls`, `tool_failures`.
    """

    name = "tool_use"
    needs_answer = False

    def __init__(
        self,
        reward: float = 1.0,
        *,
        max_calls: int = 1,
        successful_only: bool = False,
        name: str | None = None,
    ) -> None:
        if max_calls < 1:
            raise ValueError(f"max_calls must be >= 1, got {max_calls}")
        self.reward = float(reward)
        self.max_calls = max_calls
        self.successful_only = successful_only
        super().__init__(name)

    def score_samples(self, samples: Sequence[Sample], answers: Sequence[str | None]) -> list[RewardOutput]:
        out = []
        for s in samples:
            n = s.num_tool_calls - (s.num_tool_failures if self.successful_only else 0)
            out.append(
                RewardOutput(
                    score=self.reward * min(n, self.max_calls),
                    breakdown={
                        "tool_calls": float(s.num_tool_calls),
                        "tool_failures": float(s.num_tool_failures),
                    },
                )
            )
        return out


class FormatReward(BatchReward):
    """`reward` when the response is well formed, else `penalty`.

    Well formed: it has a final answer in `answer_format` (a `\\boxed{}`, or `<answer>...</answer>`;
    default: the format's), and its last code cell is closed (`TIRFormat.code_closed`: ```` ```python ````
    for "torl" and "zero_tir", `<code>` for "xml", `<tool_call>` for "chat"; default "torl").
    Breakdown: `has_answer`, `code_closed`.
    """

    name = "format"
    needs_answer = False

    def __init__(
        self,
        reward: float = 1.0,
        penalty: float = 0.0,
        *,
        answer_format: AnswerFormat | None = None,
        tir_format: Any = "torl",
        name: str | None = None,
    ) -> None:
        super().__init__(name, tir_format)
        answer_format = answer_format or self.tir_format.answer_format
        if answer_format not in ("boxed", "answer_tag"):
            raise ValueError(f"unknown answer_format {answer_format!r}: use 'boxed' or 'answer_tag'")
        self.reward = float(reward)
        self.penalty = float(penalty)
        self.answer_format: AnswerFormat = answer_format

    def code_closed(self, text: str) -> bool:
        """True unless the text ends inside an unclosed code cell of the format."""
        return self.tir_format.code_closed(text)

    def score_samples(self, samples: Sequence[Sample], answers: Sequence[str | None]) -> list[RewardOutput]:
        out = []
        for s in samples:
            has_answer = extract_answer(self.tir_format.strip_code(s.text), self.answer_format) is not None
            closed = self.code_closed(s.text)
            out.append(
                RewardOutput(
                    score=self.reward if has_answer and closed else self.penalty,
                    breakdown={"has_answer": float(has_answer), "code_closed": float(closed)},
                )
            )
        return out


class ProvenancePenalty(BatchReward):
    """Optional shaping against gaming the checker through the tool: a penalty for each provenance flag
    (`torl.rewards.provenance`). Off unless you add it, e.g.
    `WeightedReward({ToRLReward(): 1.0, ProvenancePenalty(): 1.0})`.

    Args:
        boxed_by_code: when a `\\boxed{}` is in a cell's source or output.
        hardcoded: when a cell prints the final answer as a literal.
        repeated_cell: per cell identical to an earlier one of the trajectory.
        echo_call: per cell that only prints the question back.
        copied: when the final answer was copied from a tool output (0 by default: that is the tool doing
            its job; set it to study derived answers).
        tir_format: the format of plain-text completions (with trajectories, the recorded cells are read).

    Score: the sum of the penalties that apply (0.0 when none). Breakdown: the flags (`copied`,
    `boxed_by_code`, `hardcoded` as 1/0; `repeated_cells`, `echo_calls` as counts).
    """

    name = "provenance"
    needs_answer = False

    def __init__(
        self,
        *,
        boxed_by_code: float = -1.0,
        hardcoded: float = -1.0,
        repeated_cell: float = -0.1,
        echo_call: float = -0.1,
        copied: float = 0.0,
        tir_format: Any = "torl",
        name: str | None = None,
    ) -> None:
        super().__init__(name, tir_format)
        self.weights = {
            "boxed_by_code": float(boxed_by_code),
            "hardcoded": float(hardcoded),
            "repeated_cells": float(repeated_cell),
            "echo_calls": float(echo_call),
            "copied": float(copied),
        }

    def check(self, sample: Sample) -> Any:
        """The `Provenance` of a sample (its trajectory when it has one, else its text)."""
        from torl.rewards.provenance import check_provenance, check_text

        if sample.trajectory is not None:
            return check_provenance(sample.trajectory, question=sample.question, tir_format=self.tir_format)
        text = sample.response or sample.text
        return check_text(text, question=sample.question, tir_format=self.tir_format)

    def score_samples(self, samples: Sequence[Sample], answers: Sequence[str | None]) -> list[RewardOutput]:
        out = []
        for s in samples:
            p = self.check(s)
            flags = {k: float(getattr(p, k)) for k in self.weights}
            score = sum(self.weights[k] * v for k, v in flags.items())
            out.append(RewardOutput(score=score, breakdown=flags))
        return out
