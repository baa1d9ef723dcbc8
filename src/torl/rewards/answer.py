"""Correctness rewards: `MathAnswerReward` (1/0 by default) and `ToRLReward` (+1/-1, optional execution penalty)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

from torl.core import RewardOutput
from torl.rewards import originals
from torl.rewards.base import BatchReward, Sample
from torl.rewards.extract import AnswerFormat, extract_answer, strip_code
from torl.rewards.pool import VerifyPool, default_pool
from torl.rewards.shaping import ExecutionPenalty
from torl.rewards.verify import SCORERS, Scorer, Verdict

logger = logging.getLogger(__name__)

AnswerSource = Literal["prose", "response"]


class MathAnswerReward(BatchReward):
    """Is the final answer of the model's own text equal to the reference? Verified with math-verify.

    The final answer is the last `\\boxed{}` of the model's own prose (a box inside a code cell or in tool
    output does not count), or the last `<answer>...</answer>` with `answer_format="answer_tag"`
    (ZERO-TIR, reward 1/0). `answer_source="response"` takes it from the whole response instead, tool
    output and code included, as ToRL does.
    Verification runs in a `VerifyPool` (hard per-item time limit); an item that could not be verified
    scores `on_failure` (None by default: TRL 1.16 gives a sample that every reward function scores None
    advantage 0, outside its group's baseline; beside other reward functions a None counts as 0), and the
    reason is logged.
    Timeouts come mostly from pathological predictions (e.g. `10^{10^{10}}`): if the `unverified` rate
    climbs during training, the policy may be dodging the wrong-answer score; set `on_failure=wrong`.

    Args:
        answer_format: `"boxed"` or `"answer_tag"` (default: the format's, else `"boxed"`).
        tir_format: the TIR format of the completions (a name or `TIRFormat`): where tool output is in a
            plain-text completion, and the default `answer_format`. None: any registered format, boxed.
        correct: score of a correct answer.
        wrong: score of a wrong answer.
        no_answer: score when there is no final answer (default: `wrong`).
        on_failure: score when verification timed out or crashed.
        pool: the verification pool (default: the shared `default_pool()`).
        timeout_s: per-item time limit (default: the pool's).
        name: name in logs and breakdowns.
        answer_source: `"prose"` (the model's text without code cells) or `"response"` (everything).
        rel_tol: accept numbers within this relative error (e.g. 1e-4, the Qwen2.5-Math grader's);
            None (default): numbers must be exact.
        scorer: whose answer check: `"default"` (torl's rules), `"torl"` (ToRL's: its last-box pattern,
            exact / `normalize_final_answer` / math-verify; boxed answers) or `"zero_tir"` (AReaL
            ZERO-TIR-RL's: the last closed `<answer>`, the Qwen2.5-Math extraction on both sides; see
            `torl.rewards.originals`). `rel_tol` and the question apply to "default" only.

    Breakdown: `correct` (1/0, None if unverified), `has_answer` (1/0), `unverified` (1/0). Each output's
    `rule` names the answer rule that decided. The problem text (a `problem` or `question` column, or
    `questions=` of `score_batch`) lets `a = 4, r = 0` count for a question that asks for `a`.
    """

    name = "math_answer"

    def __init__(
        self,
        *,
        answer_format: AnswerFormat | None = None,
        tir_format: Any = None,
        correct: float = 1.0,
        wrong: float = 0.0,
        no_answer: float | None = None,
        on_failure: float | None = None,
        pool: VerifyPool | None = None,
        timeout_s: float | None = None,
        name: str | None = None,
        answer_source: AnswerSource = "prose",
        rel_tol: float | None = None,
        scorer: Scorer = "default",
    ) -> None:
        super().__init__(name, tir_format)
        if scorer not in SCORERS:
            raise ValueError(f"unknown scorer {scorer!r}: use one of {', '.join(SCORERS)}")
        if answer_format is None and scorer != "default":
            answer_format = "boxed" if scorer == "torl" else "answer_tag"
        if answer_format is None:
            answer_format = self.tir_format.answer_format if self.tir_format is not None else "boxed"
        if scorer != "default" and answer_format != ("boxed" if scorer == "torl" else "answer_tag"):
            raise ValueError(f"scorer={scorer!r} reads {'boxed' if scorer == 'torl' else 'answer_tag'} answers, "
                             f"not answer_format={answer_format!r}")
        if answer_format not in ("boxed", "answer_tag"):
            raise ValueError(f"unknown answer_format {answer_format!r}: use 'boxed' or 'answer_tag'")
        if answer_source not in ("prose", "response"):
            raise ValueError(f"unknown answer_source {answer_source!r}: use 'prose' or 'response'")
        if rel_tol is not None and not 0 <= rel_tol < 1:
            raise ValueError(f"rel_tol must be in [0, 1), got {rel_tol}")
        self.answer_format: AnswerFormat = answer_format
        self.answer_source: AnswerSource = answer_source
        self.rel_tol = rel_tol
        self.scorer: Scorer = scorer
        self.correct = float(correct)
        self.wrong = float(wrong)
        self.no_answer = self.wrong if no_answer is None else float(no_answer)
        self.on_failure = on_failure
        self.timeout_s = timeout_s
        self._pool = pool

    @property
    def pool(self) -> VerifyPool:
        """The pool that verifies answers (the shared `default_pool()` unless one was given)."""
        return self._pool if self._pool is not None else default_pool()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_pool"] = None  # a pool holds processes: the unpickled reward uses the default pool
        return state

    def _extract(
        self, samples: Sequence[Sample], answers: Sequence[str | None]
    ) -> list[tuple[str, str] | None]:
        if len(samples) != len(answers):
            raise ValueError(f"{len(samples)} samples but {len(answers)} answers")
        return [
            (pred, ref)
            if (pred := self._find_answer(self._answer_text(s))) is not None and ref and ref.strip()
            else None
            for s, ref in zip(samples, answers, strict=True)
        ]

    def _find_answer(self, text: str) -> str | None:
        if self.scorer == "torl":
            return originals.torl_last_boxed(text)
        if self.scorer == "zero_tir":
            return originals.zero_tir_answer(text)
        return extract_answer(text, self.answer_format)

    def _answer_text(self, s: Sample) -> str:
        if self.answer_source == "response":
            return s.response if s.response is not None else s.text
        return strip_code(s.text, self.tir_format)

    @staticmethod
    def _pending(samples: Sequence[Sample], pairs: list[tuple[str, str] | None]) -> tuple[list, list]:
        """The pairs to verify and their questions."""
        kept = [(p, s.question) for s, p in zip(samples, pairs, strict=True) if p is not None]
        return [p for p, _ in kept], [q for _, q in kept]

    def _outputs(
        self, pairs: list[tuple[str, str] | None], verdicts: list[Verdict], answers: Sequence[str | None]
    ) -> list[RewardOutput]:
        it = iter(verdicts)
        outputs = []
        for pair, ref in zip(pairs, answers, strict=True):
            if not ref or not ref.strip():
                logger.warning("%s: sample without a reference answer scored None", self.name)
                outputs.append(
                    RewardOutput(score=None, breakdown={"correct": None}, reason="no reference answer")
                )
            elif pair is None:
                outputs.append(
                    RewardOutput(
                        score=self.no_answer,
                        breakdown={"correct": 0.0, "has_answer": 0.0, "unverified": 0.0},
                        reason="no final answer",
                        rule="no_answer",
                    )
                )
            else:
                v = next(it)
                if v.correct is None:
                    outputs.append(
                        RewardOutput(
                            score=self.on_failure,
                            breakdown={"correct": None, "has_answer": 1.0, "unverified": 1.0},
                            reason=f"verification {v.method}: {v.reason}",
                            answer=pair[0],
                            rule=v.method,
                        )
                    )
                else:
                    outputs.append(
                        RewardOutput(
                            score=self.correct if v.correct else self.wrong,
                            breakdown={"correct": float(v.correct), "has_answer": 1.0, "unverified": 0.0},
                            answer=pair[0],
                            rule=v.method,
                        )
                    )
        return outputs

    def score_samples(self, samples: Sequence[Sample], answers: Sequence[str | None]) -> list[RewardOutput]:
        pairs = self._extract(samples, answers)
        pending, questions = self._pending(samples, pairs)
        verdicts = self.pool.verify_many(
            pending, self.timeout_s, questions=questions, rel_tol=self.rel_tol, scorer=self.scorer
        )
        return self._outputs(pairs, verdicts, answers)

    async def ascore_samples(
        self, samples: Sequence[Sample], answers: Sequence[str | None]
    ) -> list[RewardOutput]:
        pairs = self._extract(samples, answers)
        pending, questions = self._pending(samples, pairs)
        verdicts = await self.pool.averify_many(
            pending, self.timeout_s, questions=questions, rel_tol=self.rel_tol, scorer=self.scorer
        )
        return self._outputs(pairs, verdicts, answers)


class ToRLReward(MathAnswerReward):
    """ToRL's reward: +1 correct, -1 wrong or no `\\boxed{}` answer, plus an optional execution penalty.

    `execution_penalty` (e.g. -0.5) is added when code was run and no call succeeded (ToRL's
    `execution_passes == 0`). Default 0.0 (off): in ToRL the penalty was an ablation that did not help,
    and its main results leave it out.

    `penalize_no_code` (default False) says whether a response without any code also takes the penalty.
    ToRL's code does that (no code means zero passing executions) but its paper describes only failed
    code; we follow the paper by default because "did not use the tool" is a different signal from "the
    tool failed" (reward tool use on purpose with `ToolUseReward`). Set True to reproduce ToRL's code.

    `exact=True` replays ToRL's reward: `scorer="torl"`, `answer_source="response"` (a box in tool output
    counts), an answer it cannot verify scores `wrong` (-1; `on_failure` unless given), and
    `penalize_no_code=True`. The default reads the model's own prose with torl's rules and scores an
    unverifiable answer None.

    Breakdown: `correct`, `has_answer`, `unverified`, `execution_penalty`.
    """

    name = "torl"

    def __init__(
        self,
        *,
        execution_penalty: float = 0.0,
        penalize_no_code: bool = False,
        answer_format: AnswerFormat | None = None,
        tir_format: Any = None,
        correct: float = 1.0,
        wrong: float = -1.0,
        no_answer: float | None = None,
        on_failure: float | None = None,
        pool: VerifyPool | None = None,
        timeout_s: float | None = None,
        name: str | None = None,
        answer_source: AnswerSource = "prose",
        rel_tol: float | None = None,
        scorer: Scorer = "default",
        exact: bool = False,
    ) -> None:
        if exact:
            scorer, answer_source, penalize_no_code = "torl", "response", True
            on_failure = wrong if on_failure is None else on_failure
        self.exact = exact
        super().__init__(
            scorer=scorer,
            answer_source=answer_source,
            rel_tol=rel_tol,
            answer_format=answer_format,
            tir_format=tir_format,
            correct=correct,
            wrong=wrong,
            no_answer=no_answer,
            on_failure=on_failure,
            pool=pool,
            timeout_s=timeout_s,
            name=name,
        )
        self.penalty = ExecutionPenalty(penalty=execution_penalty, penalize_no_code=penalize_no_code)

    def _add_penalty(self, samples: Sequence[Sample], outputs: list[RewardOutput]) -> list[RewardOutput]:
        for s, out in zip(samples, outputs, strict=True):
            p = self.penalty.penalty_for(s)
            out.breakdown["execution_penalty"] = p
            if out.score is not None:
                out.score += p
        return outputs

    def score_samples(self, samples: Sequence[Sample], answers: Sequence[str | None]) -> list[RewardOutput]:
        return self._add_penalty(samples, super().score_samples(samples, answers))

    async def ascore_samples(
        self, samples: Sequence[Sample], answers: Sequence[str | None]
    ) -> list[RewardOutput]:
        return self._add_penalty(samples, await super().ascore_samples(samples, answers))
