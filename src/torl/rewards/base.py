"""What every reward shares: reading samples (trajectories or plain completions), batch and async scoring,
the TRL `reward_funcs` call convention, and weighted combination."""

from __future__ import annotations

import asyncio
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from torl.core import RewardOutput, Trajectory
from torl.rewards.extract import formats_of, strip_tool_output
from torl.rollout.formats.base import guess_status

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """What a reward looks at: the model's own text and the status of each tool call.

    Built from a `Trajectory` (precise: `model_text` and recorded tool results) or, when only the rendered
    completion is known, from its text (tool output blocks removed; tool statuses guessed from the output:
    a traceback, an `...Error:` last line or a timeout notice counts as a failure).
    """

    text: str
    tool_statuses: tuple[str, ...] = ()
    precise: bool = False
    response: str | None = None
    """The whole response, tool output included (ToRL takes its answer from it); None: same as `text`."""
    question: str | None = None
    """The problem text, when the dataset has a `problem` (or `question`) column."""
    trajectory: Trajectory | None = field(default=None, repr=False, compare=False)
    """The trajectory itself, when the sample was made from one (cells, outputs and segments)."""

    @property
    def num_tool_calls(self) -> int:
        return len(self.tool_statuses)

    @property
    def num_tool_failures(self) -> int:
        return sum(s != "ok" for s in self.tool_statuses)

    @classmethod
    def from_text(cls, completion: str | list[dict[str, Any]], tir_format: Any = None) -> Sample:
        """From a completion as TRL passes it: a string, or a list of chat messages. Tool output is found
        by `tir_format` (a name or `TIRFormat`; None: any registered format)."""
        text = _completion_text(completion)
        fmt = formats_of(tir_format)
        outputs = next((o for f in fmt if (o := f.env_outputs(text))), [])
        statuses = tuple(guess_status(o) for o in outputs)
        return cls(strip_tool_output(text, tir_format), statuses, precise=False, response=text)

    @classmethod
    def from_trajectory(
        cls, trajectory: Trajectory | Mapping[str, Any] | str, completion: Any = None
    ) -> Sample:
        """From a torl `Trajectory`, its dict or its JSON. Without segments, falls back to `completion`'s text."""
        if isinstance(trajectory, str):
            try:
                trajectory = json.loads(trajectory)
            except ValueError as e:
                raise ValueError(f"a trajectory given as a string must be its JSON: {e}") from e
        traj = None
        if isinstance(trajectory, Trajectory):
            traj = trajectory
            segments = [(s.kind, s.text) for s in trajectory.segments]
            statuses = tuple(r.result.status for r in trajectory.tool_calls)
        elif isinstance(trajectory, Mapping):
            try:
                segments = [(s["kind"], s["text"]) for s in trajectory.get("segments") or []]
                statuses = tuple(
                    (c.get("result") or {}).get("status", "ok") for c in trajectory.get("tool_calls") or []
                )
            except (TypeError, KeyError, AttributeError) as e:
                raise ValueError(f"not a torl Trajectory dict (segments need 'kind' and 'text'): {e}") from e
        else:
            raise TypeError(
                f"trajectories must hold torl Trajectory objects or dicts, got {type(trajectory).__name__}"
            )
        if not segments:
            if completion is None:
                return cls("", statuses, precise=True, trajectory=traj)
            text = _completion_text(completion)
            return cls(strip_tool_output(text), statuses, precise=True, response=text, trajectory=traj)
        model = "".join(t for k, t in segments if k == "model")
        return cls(model, statuses, precise=True, response="".join(t for _, t in segments), trajectory=traj)


def _completion_text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):  # chat messages; tool messages are tool output, left out
        parts = []
        for m in completion:
            if not isinstance(m, Mapping):
                raise TypeError(
                    f"a conversational completion must be a list of dicts, got {type(m).__name__}"
                )
            if m.get("role", "assistant") != "assistant":
                continue
            content = m.get("content") or ""
            if isinstance(content, list):
                content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
            parts.append(str(content))
        return "\n".join(parts)
    raise TypeError(f"a completion must be a str or a list of messages, got {type(completion).__name__}")


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


class BatchReward(ABC):
    """Base class of torl rewards.

    A reward scores samples in batches (`score_batch`, `ascore_batch`), one trajectory (`score`, the
    `torl.Reward` protocol), or is called by TRL as a `reward_funcs` entry. Subclasses implement
    `score_samples` (and `ascore_samples` when they wait on something).
    """

    name: str = "reward"
    needs_answer: bool = True
    """False for rewards that ignore the reference answer (format, tool use)."""
    tir_format: Any = None
    """The TIR format whose text this reward reads (a name or `TIRFormat`; None: any registered one)."""

    def __init__(self, name: str | None = None, tir_format: Any = None) -> None:
        if name is not None:
            self.name = name
        if tir_format is not None:
            from torl.rollout.formats import get_format

            self.tir_format = get_format(tir_format)
        self.__name__ = self.name  # TRL logs reward functions under __name__

    @abstractmethod
    def score_samples(self, samples: Sequence[Sample], answers: Sequence[str | None]) -> list[RewardOutput]:
        """Score a batch of samples against their reference answers (same length)."""

    async def ascore_samples(
        self, samples: Sequence[Sample], answers: Sequence[str | None]
    ) -> list[RewardOutput]:
        """Async `score_samples`; the default runs it inline (fine for cheap, pure-Python rewards)."""
        return self.score_samples(samples, answers)

    def score(self, trajectory: Trajectory, answer: str | None) -> RewardOutput:
        """Score one trajectory (the `torl.Reward` protocol)."""
        return self.score_batch([trajectory], [answer])[0]

    def score_batch(
        self,
        trajectories: Sequence[Trajectory | Mapping[str, Any]],
        answers: Sequence[str | None],
        questions: Sequence[str | None] | None = None,
    ) -> list[RewardOutput]:
        """Score trajectories (or their dicts) against reference answers (`questions`: the problem texts)."""
        return self.score_samples(*self._prepare(trajectories, answers, questions))

    async def ascore_batch(
        self,
        trajectories: Sequence[Trajectory | Mapping[str, Any]],
        answers: Sequence[str | None],
        questions: Sequence[str | None] | None = None,
    ) -> list[RewardOutput]:
        """Async `score_batch`: does not block the event loop while answers are verified."""
        return await self.ascore_samples(*self._prepare(trajectories, answers, questions))

    def score_trajectories(
        self,
        trajectories: Sequence[Trajectory],
        answers: Sequence[str | None] | None = None,
        questions: Sequence[str | None] | None = None,
    ) -> list[RewardOutput]:
        """Score trajectories and write the result onto them (see `record`); `answers` and `questions`
        default to each trajectory's `metadata["answer"]` and `metadata["problem"]`. The one way
        evaluation, the nano run and rescoring score (training goes through TRL's call, which records too)."""
        answers = _answers_of(trajectories, answers)
        questions = questions if questions is not None else [t.metadata.get("problem") for t in trajectories]
        outputs = self.score_batch(trajectories, answers, questions)
        for t, out in zip(trajectories, outputs, strict=True):
            self.record(t, out, total=True)
        return outputs

    async def ascore_trajectories(
        self,
        trajectories: Sequence[Trajectory],
        answers: Sequence[str | None] | None = None,
        questions: Sequence[str | None] | None = None,
    ) -> list[RewardOutput]:
        """Async `score_trajectories`."""
        answers = _answers_of(trajectories, answers)
        questions = questions if questions is not None else [t.metadata.get("problem") for t in trajectories]
        outputs = await self.ascore_batch(trajectories, answers, questions)
        for t, out in zip(trajectories, outputs, strict=True):
            self.record(t, out, total=True)
        return outputs

    def record(self, trajectory: Trajectory, output: RewardOutput, *, total: bool = False) -> None:
        """Write a score onto its trajectory: `reward_breakdown[name]` and `[name/part]`, the one
        `reward_breakdown["correct"]` (read it as `Trajectory.correct`), `metadata["pred"]` and
        `metadata["rule"]` (which check decided) when this reward judges answers, and `reward` itself when this reward is the total (`total=True`)."""
        bd = trajectory.reward_breakdown
        bd[self.name] = output.score
        bd.update({f"{self.name}/{k}": v for k, v in output.breakdown.items()})
        if "correct" in output.breakdown:
            bd["correct"] = output.breakdown["correct"]
            trajectory.metadata["pred"] = output.answer
            trajectory.metadata["rule"] = output.rule
        if total:
            trajectory.reward = output.score

    def _prepare(
        self, trajectories: Sequence[Any], answers: Sequence[Any], questions: Sequence[Any] | None = None
    ) -> tuple[list[Sample], list[str | None]]:
        if len(trajectories) != len(answers):
            raise ValueError(f"{len(trajectories)} trajectories but {len(answers)} answers")
        samples = _with_questions([Sample.from_trajectory(t) for t in trajectories], questions)
        return samples, _answers(answers)

    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Sequence[Any] | None = None,
        answer: Sequence[Any] | None = None,
        trajectories: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        """TRL `reward_funcs` entry: one score (or None) per completion.

        With `trajectories` (torl Trajectory objects or dicts, as returned by the rollout engine), the
        model's own text and the recorded tool results are used, and each result is written onto its
        `Trajectory` (`record`: breakdown, correctness, answer; TRL owns the total); otherwise the completion
        text, with the format's tool output ignored. The breakdown means are logged through TRL's
        `log_metric` as `<name>/<part>`.
        """
        question = kwargs.get("problem") if kwargs.get("problem") is not None else kwargs.get("question")
        samples = _with_questions(self._samples(completions, trajectories), question)
        if answer is None:
            answer = (
                kwargs.get("solution") if kwargs.get("solution") is not None else kwargs.get("ground_truth")
            )
        if answer is None:
            if self.needs_answer:
                raise ValueError(
                    f"reward {self.name!r} needs reference answers: give the dataset an 'answer' column"
                )
            answer = [None] * len(samples)
        if len(answer) != len(samples):
            raise ValueError(f"{len(samples)} completions but {len(answer)} answers")
        outputs = self.score_samples(samples, _answers(answer))
        for t, out in zip(trajectories or [], outputs, strict=False):
            if isinstance(t, Trajectory):
                self.record(t, out)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            for key in sorted({k for o in outputs for k in o.breakdown}):
                m = _mean([o.breakdown.get(key) for o in outputs])
                if m is not None:
                    log_metric(f"{self.name}/{key}", m)
        return [o.score for o in outputs]

    def _samples(self, completions: Sequence[Any], trajectories: Sequence[Any] | None) -> list[Sample]:
        if trajectories is None:
            return [Sample.from_text(c, self.tir_format) for c in completions]
        if len(trajectories) != len(completions):
            raise ValueError(f"{len(completions)} completions but {len(trajectories)} trajectories")
        return [
            Sample.from_text(c, self.tir_format) if t is None else Sample.from_trajectory(t, c)
            for t, c in zip(trajectories, completions, strict=True)
        ]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _answers_of(trajectories: Sequence[Trajectory], answers: Sequence[Any] | None) -> list[str | None]:
    if answers is None:
        answers = [t.metadata.get("answer") for t in trajectories]
    if len(answers) != len(trajectories):
        raise ValueError(f"{len(trajectories)} trajectories but {len(answers)} answers")
    return _answers(answers)


def _with_questions(samples: list[Sample], questions: Sequence[Any] | None) -> list[Sample]:
    """Attach the problem texts (a dataset's `problem` column); anything but strings is ignored."""
    if questions is None:
        return samples
    if len(questions) != len(samples):
        raise ValueError(f"{len(samples)} samples but {len(questions)} questions")
    return [
        replace(s, question=q) if isinstance(q, str) else s for s, q in zip(samples, questions, strict=True)
    ]


def _answers(answers: Sequence[Any]) -> list[str | None]:
    out: list[str | None] = []
    for a in answers:
        if a is None or isinstance(a, str):
            out.append(a)
        elif isinstance(a, (int, float)) and not isinstance(a, bool):
            out.append(str(a))
        else:
            raise TypeError(f"reference answers must be strings (or numbers), got {type(a).__name__}")
    return out


class WeightedReward(BatchReward):
    """A weighted sum of rewards: `WeightedReward({ToRLReward(): 1.0, FormatReward(): 0.1})`.

    The score is None when a part with a non-zero weight gives None. The breakdown holds each part's
    score under its name and the part's own breakdown under `<part>/<key>`.
    """

    def __init__(
        self, parts: Mapping[BatchReward, float] | Sequence[tuple[BatchReward, float]], name: str = "weighted"
    ) -> None:
        items = list(parts.items()) if isinstance(parts, Mapping) else list(parts)
        if not items:
            raise ValueError("WeightedReward needs at least one part")
        names = [p.name for p, _ in items]
        if len(set(names)) != len(names):
            raise ValueError(f"part names must be distinct, got {names}: pass name= to the parts")
        for p, w in items:
            if not isinstance(p, BatchReward):
                raise TypeError(f"parts must be torl rewards, got {type(p).__name__}")
            if not isinstance(w, (int, float)):
                raise TypeError(f"weights must be numbers, got {w!r}")
        self.parts: list[tuple[BatchReward, float]] = [(p, float(w)) for p, w in items]
        self.needs_answer = any(p.needs_answer for p, _ in self.parts)
        super().__init__(name)

    def score_samples(self, samples: Sequence[Sample], answers: Sequence[str | None]) -> list[RewardOutput]:
        return self._combine([p.score_samples(samples, answers) for p, _ in self.parts])

    async def ascore_samples(
        self, samples: Sequence[Sample], answers: Sequence[str | None]
    ) -> list[RewardOutput]:
        results = await asyncio.gather(*(p.ascore_samples(samples, answers) for p, _ in self.parts))
        return self._combine(list(results))

    def _combine(self, per_part: list[list[RewardOutput]]) -> list[RewardOutput]:
        outputs = []
        for row in zip(*per_part, strict=True):
            total: float | None = 0.0
            reasons = []
            breakdown: dict[str, float | None] = {}
            answer = rule = None
            for (part, weight), out in zip(self.parts, row, strict=True):
                breakdown[part.name] = out.score
                breakdown.update({f"{part.name}/{k}": v for k, v in out.breakdown.items()})
                if "correct" in out.breakdown and "correct" not in breakdown:  # the first judge speaks
                    breakdown["correct"], answer, rule = out.breakdown["correct"], out.answer, out.rule
                if out.reason:
                    reasons.append(f"{part.name}: {out.reason}")
                if weight == 0:
                    continue
                if out.score is None or total is None:
                    total = None
                else:
                    total += weight * out.score
            outputs.append(
                RewardOutput(
                    score=total, breakdown=breakdown, reason="; ".join(reasons) or None, answer=answer, rule=rule
                )
            )
        return outputs
