"""Run an evaluation: sample k solutions per problem with a rollout engine, score them, save as they finish.

Finished problems are appended to a JSON Lines file (all k samples in one write); a rerun with the same
file and settings skips them, so a crash loses at most the problems that were in flight.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from torl.core import Prompt, RolloutPolicy, Trajectory
from torl.errors import ConfigError, UserError
from torl.eval.counterfactual import CounterfactualSettings, needs_counterfactual, run_counterfactuals
from torl.eval.data import Problem
from torl.eval.metrics import summarize

logger = logging.getLogger(__name__)

Key = tuple[str, str]


class EvalError(UserError, RuntimeError):
    """An evaluation cannot go on (settings differ from a results file's, a file is corrupt, the engine failed)."""


@dataclass(frozen=True)
class EvalSettings:
    """What was sampled and how; a results file can only be resumed with the same settings.

    `temperature=None` means ToRL's defaults: greedy (0.0) when `k == 1`, else 1.0.
    `max_new_tokens`, `max_tool_calls` and `tir_format` describe the engine (they are recorded and
    checked on resume; the engine itself is built with them by the caller).
    """

    k: int = 1
    temperature: float | None = None
    top_p: float = 1.0
    max_new_tokens: int | None = None
    max_tool_calls: int | None = None
    tir_format: str = "torl"
    answer_format: str = "boxed"
    model: str = ""
    seed: int | None = None
    """Base sampling seed (problem i, sample j uses seed + i * k + j); None: fresh seeds."""

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"k must be at least 1, got {self.k}")
        if self.temperature is not None and self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_tool_calls is not None and self.max_tool_calls < 0:
            raise ConfigError(f"max_tool_calls must be >= 0, got {self.max_tool_calls}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    @property
    def sampling_temperature(self) -> float:
        if self.temperature is not None:
            return self.temperature
        return 0.0 if self.k == 1 else 1.0

    def sampling(self, index: int = 0) -> dict[str, Any]:
        """Keyword arguments for `RolloutPolicy.generate` (besides `n`) for the problem at `index`."""
        out: dict[str, Any] = {"temperature": self.sampling_temperature}
        if self.top_p != 1.0:
            out["top_p"] = self.top_p
        if self.seed is not None:
            out["seed"] = self.seed + index * self.k
        return out

    def fingerprint(self) -> dict[str, Any]:
        d = asdict(self)
        d["temperature"] = self.sampling_temperature
        return d


@dataclass
class EvalResult:
    """Scored trajectories of the problems asked for (saved ones included) and their summary."""

    trajectories: list[Trajectory]
    summary: dict[str, Any]
    settings: EvalSettings
    generated: int = 0
    """How many problems were generated in this run (the others came from the results file)."""
    output: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def default_reward(settings: EvalSettings, scorer: str = "default") -> Any:
    """The reward evaluation scores with: `MathAnswerReward` (1 / 0) reading `settings.answer_format`.

    `scorer="torl"` or `"zero_tir"` scores on that original's scale instead: its own answer check on the
    whole response (tool output included), and an answer it cannot verify is wrong.
    """
    from torl.rewards import MathAnswerReward

    if scorer == "default":
        return MathAnswerReward(answer_format=settings.answer_format, name="eval")
    try:
        return MathAnswerReward(answer_format=settings.answer_format, name="eval", scorer=scorer,
                                answer_source="response", on_failure=0.0)
    except ValueError as e:
        raise ConfigError(f"--scorer {scorer}: {e}") from None


def scorer_of(reward: Any) -> str:
    """The name of a reward's answer check (`MathAnswerReward.scorer`; "default" for other rewards)."""
    return str(getattr(reward, "scorer", "default"))


async def score_trajectories(trajectories: Sequence[Trajectory], reward: Any) -> None:
    """Score finished samples with the one scoring path (`reward.ascore_trajectories`): sets `reward`,
    `reward_breakdown["correct"]` (`Trajectory.correct`) and `metadata["pred"]`, and for samples that used
    the tool `metadata["provenance"]` (`torl.rewards.record_provenance`). A failed rollout is wrong."""
    from torl.rewards.provenance import record_provenance

    await reward.ascore_trajectories(trajectories)
    for t in trajectories:
        if not fail_errored(t) and t.tool_calls:
            record_provenance(t)


def fail_errored(t: Trajectory) -> bool:
    """A failed rollout (finish reason "error") scores as wrong, with no answer; whether it was one."""
    if t.finish_reason != "error":
        return False
    t.reward, t.metadata["pred"] = 0.0, None
    t.reward_breakdown["correct"] = 0.0
    return True


async def summarize_rescored(trajectories: Sequence[Trajectory], reward: Any) -> dict[str, Any]:
    """The `summarize` of copies of `trajectories` judged again by `reward` (the originals are untouched)."""
    copies = [t.model_copy(deep=True) for t in trajectories]
    await score_trajectories(copies, reward)
    return summarize(copies)


def _key(t: Trajectory) -> Key:
    return str(t.metadata.get("benchmark")), str(t.metadata.get("problem_id"))


class ResultsFile:
    """The JSON Lines file of finished problems: each line a scored `Trajectory` whose metadata holds
    `benchmark`, `problem_id`, `sample`, `answer`, `pred`, `correct` and `eval_settings`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def load(self, settings: EvalSettings, retry_errors: bool = False) -> dict[Key, list[Trajectory]]:
        """Finished problems, keyed by (benchmark, problem id).

        A torn last line (a crash during a write) and incomplete problems are dropped and the file is
        rewritten without them; with `retry_errors`, problems with a failed rollout are dropped too.

        Raises:
            EvalError: a line in the middle is corrupt, or the file was made with other settings.
        """
        if not self.path.exists():
            return {}
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        dirty = False
        if lines and lines[-1].strip():  # no final newline: a write was cut short
            logger.warning("%s: dropping a torn last line (an interrupted write)", self.path)
            lines, dirty = lines[:-1], True
        groups: dict[Key, list[Trajectory]] = defaultdict(list)
        want = settings.fingerprint()
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                t = Trajectory.from_json(line)
            except ValidationError as e:
                raise EvalError(f"{self.path}:{n}: not a trajectory ({e.errors()[0]['msg']})") from None
            have = t.metadata.get("eval_settings")
            if have != want:
                diff = ", ".join(
                    f"{k}={(have or {}).get(k)!r} (now {v!r})"
                    for k, v in want.items()
                    if (have or {}).get(k) != v
                )
                raise EvalError(
                    f"{self.path} holds results made with other settings: {diff}. "
                    "Use another output folder, or --overwrite to start over."
                )
            groups[_key(t)].append(t)
        done: dict[Key, list[Trajectory]] = {}
        for key, ts in groups.items():
            ts.sort(key=lambda t: t.metadata.get("sample", 0))
            if [t.metadata.get("sample") for t in ts] != list(range(settings.k)):
                dirty = True
                continue
            if retry_errors and any(t.finish_reason == "error" for t in ts):
                dirty = True
                continue
            done[key] = ts
        if dirty:
            self._rewrite([t for ts in done.values() for t in ts])
        return done

    def _rewrite(self, trajectories: Sequence[Trajectory]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            f.writelines(t.to_json() + "\n" for t in trajectories)
        os.replace(tmp, self.path)

    @property
    def counterfactual_path(self) -> Path:
        """Where the counterfactual runs of these results go (`<name>_counterfactual.jsonl` beside it)."""
        return self.path.with_name(self.path.stem + "_counterfactual.jsonl")

    def update(self, trajectories: Sequence[Trajectory]) -> None:
        """Rewrite the file with `trajectories` in place of the saved samples they stand for (same
        benchmark, problem id and sample), e.g. after counterfactual runs were added to their metadata."""
        new = {_sample_key(t): t for t in trajectories}
        lines = self.path.read_text(encoding="utf-8").splitlines() if self.path.exists() else []
        saved = [Trajectory.from_json(line) for line in lines if line.strip()]
        self._rewrite([new.pop(_sample_key(t), t) for t in saved] + list(new.values()))

    def save_counterfactual(self, runs: Sequence[Trajectory]) -> None:
        """Save counterfactual runs, replacing earlier runs of the same original samples."""
        p = self.counterfactual_path
        redone = {_of_key(t) for t in runs}
        old = []
        if p.exists():
            old = [t for line in p.read_text(encoding="utf-8").splitlines() if line.strip()
                   if _of_key(t := Trajectory.from_json(line)) not in redone]
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text("".join(t.to_json() + "\n" for t in [*old, *runs]), encoding="utf-8")
        os.replace(tmp, p)

    def append(self, trajectories: Sequence[Trajectory]) -> None:
        """Append the samples of one problem in a single write, flushed to disk."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(t.to_json() + "\n" for t in trajectories)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def _sample_key(t: Trajectory) -> tuple[str, str, str]:
    return (*_key(t), str(t.metadata.get("sample")))


def _of_key(t: Trajectory) -> tuple[str, str, str]:
    of = (t.metadata.get("perturbation") or {}).get("of") or {}
    return str(of.get("benchmark")), str(of.get("problem_id")), str(of.get("sample"))


def check_against(done: dict[Key, list[Trajectory]], problems: Sequence[Problem]) -> None:
    """Raise `EvalError` if a saved problem's reference answer differs from the data's (stale results)."""
    for p in problems:
        ts = done.get((p.benchmark, p.id))
        if ts and ts[0].metadata.get("answer") != p.answer:
            raise EvalError(
                f"saved results for {p.benchmark}/{p.id} have reference answer "
                f"{ts[0].metadata.get('answer')!r} but the data says {p.answer!r}; use another output folder"
            )


def default_prompt(problem: str) -> Prompt:
    """ToRL's base-model prompt (`torl.rollout.torl_prompt`)."""
    return prompt_for("torl")(problem)


def _progress(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, desc="eval", unit="problem", disable=not enabled, dynamic_ncols=True
    )


async def evaluate(
    policy: RolloutPolicy,
    problems: Sequence[Problem],
    settings: EvalSettings | None = None,
    *,
    output: str | Path | None = None,
    prompt_fn: Callable[[str], Prompt] | None = None,
    concurrency: int = 32,
    progress: bool = True,
    retry_errors: bool = False,
    reward: Any = None,
    counterfactual: CounterfactualSettings | None = None,
) -> EvalResult:
    """Sample `settings.k` solutions per problem with `policy`, score them, and summarize.

    Args:
        policy: the rollout engine (e.g. `TIRRollout.from_vllm(...)`), the same one training uses.
        problems: from `load_problems` (several benchmarks may be mixed).
        settings: sampling settings (default: greedy, k=1).
        output: JSON Lines file of finished problems; problems already in it are skipped.
        prompt_fn: problem text -> prompt (default: ToRL's base-model template).
        concurrency: problems in flight at once (each asks for k samples).
        progress: show a progress bar.
        retry_errors: redo saved problems whose rollouts failed.
        reward: the torl reward that judges the samples (default `default_reward(settings)`: 1 / 0 on
            `settings.answer_format`); training's reward object works too.
        counterfactual: also re-run every tool call with its output perturbed (`torl.eval.counterfactual`;
            `policy` must be a `TIRRollout`): the outcomes go into each sample's
            `metadata["counterfactual"]` and the summary, the runs into `<output>_counterfactual.jsonl`
            and `EvalResult.extra["counterfactual"]`. Saved samples with outcomes are not run again.

    Raises:
        EvalError: the results file conflicts with these settings or data, or generation failed
            (problems finished before the failure stay saved).
    """
    settings = settings or EvalSettings()
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    keys = [(p.benchmark, p.id) for p in problems]
    if len(set(keys)) != len(keys):
        raise ValueError("problems must have unique (benchmark, id) pairs")
    store = ResultsFile(output) if output is not None else None
    done = store.load(settings, retry_errors) if store else {}
    check_against(done, problems)
    todo = [p for p in problems if (p.benchmark, p.id) not in done]
    prompt_fn = prompt_fn or default_prompt
    reward = reward or default_reward(settings)
    scorer = scorer_of(reward)
    stale = [t for ts in done.values() for t in ts if t.metadata.get("scorer", "default") != scorer]
    if stale:  # saved with another answer check: judged again (generation stays as it was)
        await score_trajectories(stale, reward)
        for t in stale:
            t.metadata["scorer"] = scorer
    sem = asyncio.Semaphore(concurrency)
    results: dict[Key, list[Trajectory]] = {k: done[k] for k in keys if k in done}

    index = {k: i for i, k in enumerate(keys)}

    async def one(p: Problem) -> tuple[Problem, list[Trajectory]]:
        sampling = settings.sampling(index[(p.benchmark, p.id)])
        async with sem:
            trajs = await policy.generate([prompt_fn(p.problem)], n=settings.k, **sampling)
        if len(trajs) != settings.k:
            raise EvalError(
                f"the engine returned {len(trajs)} samples for {p.benchmark}/{p.id}, expected {settings.k}"
            )
        for i, t in enumerate(trajs):
            t.metadata.update(
                benchmark=p.benchmark,
                problem_id=p.id,
                sample=i,
                answer=p.answer,
                problem=p.problem,
                eval_settings=settings.fingerprint(),
                scorer=scorer,
            )
        await score_trajectories(trajs, reward)
        return p, trajs

    def finish(p: Problem, trajs: list[Trajectory]) -> None:
        if store:
            store.append(trajs)
        results[(p.benchmark, p.id)] = trajs
        bar.update(1)

    bar = _progress(len(problems), len(problems) - len(todo), progress and bool(todo))
    tasks = [asyncio.ensure_future(one(p)) for p in todo]
    try:
        for fut in asyncio.as_completed(tasks):
            try:
                finish(*await fut)
            except EvalError:
                raise
            except Exception as e:
                raise EvalError(f"generation failed: {type(e).__name__}: {e}") from e
    except BaseException:
        # save problems that finished alongside the failure before giving up
        for t in tasks:
            if t.done() and not t.cancelled() and t.exception() is None:
                p, trajs = t.result()
                if (p.benchmark, p.id) not in results:
                    finish(p, trajs)
        raise
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        bar.close()
    ordered = [t for k in keys for t in results[k]]
    extra: dict[str, Any] = {}
    if counterfactual is not None:
        extra["counterfactual"] = await _counterfactual(policy, ordered, counterfactual, reward, store)
    return EvalResult(
        trajectories=ordered,
        summary=summarize(ordered),
        settings=settings,
        generated=len(todo),
        output=Path(output) if output is not None else None,
        extra=extra,
    )


async def _counterfactual(
    policy: Any, trajectories: list[Trajectory], settings: CounterfactualSettings, reward: Any,
    store: ResultsFile | None,
) -> list[Trajectory]:
    todo = [t for t in trajectories if needs_counterfactual(t, settings)]
    if not todo:
        return []
    if not hasattr(policy, "resume"):
        raise EvalError(f"counterfactual runs resume rollouts: {type(policy).__name__} has no resume()")
    try:
        runs = await run_counterfactuals(policy, todo, settings, reward=reward, pool=trajectories)
    except Exception as e:
        raise EvalError(f"counterfactual runs failed: {type(e).__name__}: {e}") from e
    if store:
        store.update(todo)
        store.save_counterfactual(runs)
    return runs


def prompt_for(tir_format: str) -> Callable[[str], Prompt]:
    """The prompt builder of a TIR format (`TIRFormat.prompt`): ToRL's raw text for "torl", the XML-tag
    text for "xml", chat messages for "chat" and "zero_tir"."""
    from torl.rollout.formats import get_format

    return get_format(tir_format).prompt


async def evaluate_model(
    model: str,
    problems: Sequence[Problem],
    settings: EvalSettings | None = None,
    *,
    sandbox: str = "auto",
    engine_kwargs: dict[str, Any] | None = None,
    output: str | Path | None = None,
    concurrency: int = 32,
    progress: bool = True,
    retry_errors: bool = False,
    scorer: str = "default",
    counterfactual: CounterfactualSettings | None = None,
) -> EvalResult:
    """Evaluate a model (a local path or hub id) with the Python tool: builds the vLLM rollout engine the
    trainer uses, runs `evaluate`, closes the engine. The engine is only started when some problem is
    not in `output` yet.

    Args:
        model: model path or name for vLLM.
        problems: from `load_problems`.
        settings: sampling and engine settings; `settings.model` is set to `model` when empty.
        sandbox: the sandbox kind (`torl.tools.make_sandbox`): "auto" (Docker when its image is there,
            else local), "local" or "docker".
        engine_kwargs: vLLM engine arguments (e.g. `gpu_memory_utilization`, `max_model_len`).
        output, concurrency, progress, retry_errors, counterfactual: as for `evaluate`.
        scorer: the answer check (`default_reward`): "default", "torl" or "zero_tir".
    """
    import dataclasses

    settings = settings or EvalSettings()
    if not settings.model:
        settings = dataclasses.replace(settings, model=model)
    reward = default_reward(settings, scorer)
    if output is not None:
        done = ResultsFile(output).load(settings, retry_errors)
        check_against(done, problems)
        if all((p.benchmark, p.id) in done for p in problems):
            ordered = [t for p in problems for t in done[(p.benchmark, p.id)]]
            if counterfactual is None or not any(needs_counterfactual(t, counterfactual) for t in ordered):
                return await evaluate(_NoPolicy(), problems, settings, output=output, progress=False,
                                      retry_errors=retry_errors, reward=reward)
    from torl.tools import make_sandbox

    tool = make_sandbox(sandbox)  # an unknown kind raises ConfigError here, before anything starts
    try:
        engine = await _open_engine(model, settings, tool, engine_kwargs or {})
    except Exception as e:
        raise EvalError(f"could not start the engine for {model!r}: {type(e).__name__}: {e}") from e
    try:
        return await evaluate(
            engine,
            problems,
            settings,
            output=output,
            prompt_fn=prompt_for(settings.tir_format),
            concurrency=concurrency,
            progress=progress,
            retry_errors=retry_errors,
            reward=reward,
            counterfactual=counterfactual,
        )
    finally:
        await _close(engine, tool)


class _NoPolicy:
    """Stands in for the engine when every problem is already in the results file."""

    async def generate(self, *args: Any, **kwargs: Any) -> list[Trajectory]:
        raise EvalError("no engine was started: every problem should have been in the results file")


async def _open_engine(model: str, settings: EvalSettings, tool: Any, kwargs: dict[str, Any]) -> Any:
    from torl.rollout import TIRRollout

    await tool.start()
    try:
        rollout: dict[str, Any] = {}
        if settings.max_tool_calls is not None:
            rollout["max_tool_calls"] = settings.max_tool_calls
        if settings.max_new_tokens is not None:
            rollout["max_new_tokens"] = settings.max_new_tokens
        return TIRRollout.from_vllm(
            model, tool=tool, tir_format=settings.tir_format, engine_kwargs=kwargs, **rollout
        )
    except BaseException:
        await tool.close()
        raise


async def _close(engine: Any, tool: Any) -> None:
    try:
        await engine.close()
    finally:
        await tool.close()
