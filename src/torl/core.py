"""Core types: `Tool`, `ToolCall`, `ToolResult`, `Trajectory`, and the `RolloutPolicy` and `Reward` protocols.

Everything here is plain pydantic and standard library: importing it never imports torch, vllm or docker.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ToolStatus = Literal["ok", "error", "timeout", "memory", "killed", "sandbox_error"]
"""Outcome of one tool call: ran fine, raised, hit the wall-clock limit, hit the memory limit,
was killed by another limit (processes, CPU, signal), or the sandbox itself failed."""

FinishReason = Literal["stop", "length", "max_turns", "error"]
"""Why a rollout ended: the model finished, the token budget ran out, the turn budget ran out,
or something failed (see `Trajectory.error`)."""

Message = dict[str, Any]
Prompt = str | list[Message]
"""A raw-text prompt (used as is) or a list of chat messages (rendered by the chat template)."""


class ToolCall(BaseModel):
    """One request to a tool: the code (or query text) the model wrote, and optional structured arguments."""

    model_config = ConfigDict(extra="forbid")

    code: str = ""
    name: str = "python"
    """The tool to call: text formats name their code tool ("python"); chat tool calls name any tool."""
    arguments: dict[str, Any] = Field(default_factory=dict)
    session: str | None = None
    """Session id for stateful tools (cells of one trajectory share state); None = stateless."""


class ToolResult(BaseModel):
    """What a tool call gave back. `output` is what a person would see (stdout, or the traceback on error)."""

    model_config = ConfigDict(extra="forbid")

    output: str = ""
    status: ToolStatus = "ok"
    truncated: bool = False
    """True when the output was cut at the output-size limit."""
    error: str | None = None
    """A short reason when `status` is not "ok" (e.g. "NameError: name 'a' is not defined")."""
    duration_s: float = 0.0
    cached: bool = False
    """True when the result was served from a tool-result log (`torl.tools.CachedTool`), not run again."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def failure(cls, status: ToolStatus, error: str, output: str = "", duration_s: float = 0.0) -> ToolResult:
        return cls(output=output, status=status, error=error, duration_s=duration_s)


PYTHON_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"code": {"type": "string", "description": "The Python code to run."}},
    "required": ["code"],
}
"""JSON schema of a code tool's arguments: one string, `code` (what the text formats send as `ToolCall.code`)."""


class Tool(ABC):
    """Base class of tools: subclass it, set `name`, implement `run`.

    One lifecycle for every tool (the shape of verl's create / execute / release):
    - `setup()` acquires resources (processes, containers, connections); `start()` calls it once, on first
      use, under a lock, on the event loop that uses the tool: the rollout engine starts tools itself.
    - `run(call)` runs one call; it must not raise for bad input: the returned `ToolResult` says what went
      wrong. (An exception is an infrastructure failure: the engine ends that trajectory with an error.)
    - `open_session()` / `close_session()` bracket one trajectory for stateful tools.
    - `teardown()` releases everything; `close()` calls it once. A closed tool starts again on next use.

    A tool is an async context manager: `async with MyTool() as tool: await tool.run(ToolCall(code=...))`.
    `name` is what the model calls it by (chat format); `description` and `parameters` make its schema.
    """

    name: str = "tool"
    description: str = "Run Python code and return what it prints."
    parameters: dict[str, Any] = PYTHON_PARAMETERS
    """JSON schema of `ToolCall.arguments` (default: one string, `code`)."""

    _started: bool = False
    _setup_task: Any = None
    _locks: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Tools written against torl 0.1 overrode start/close: they are this lifecycle's setup/teardown.
        for old, new in (("start", "setup"), ("close", "teardown")):
            if old in cls.__dict__ and new not in cls.__dict__:
                setattr(cls, new, cls.__dict__[old])
                setattr(cls, old, getattr(Tool, old))

    async def setup(self) -> None:
        """Acquire resources. Called once by `start`; override it (the default does nothing)."""

    async def teardown(self) -> None:
        """Release every resource. Called once by `close`; override it (the default does nothing)."""

    @abstractmethod
    async def run(self, call: ToolCall) -> ToolResult:
        """Run one call and return its result; never raise for a failure of the call itself."""

    async def run_many(self, calls: Sequence[ToolCall]) -> list[ToolResult]:
        """Run several calls at once; results in order. The engine sends the calls of all trajectories that
        are ready in the same moment together. Override it when a batch is cheaper than its calls one by
        one (the sandboxes do); the default runs `run` concurrently."""
        return list(await asyncio.gather(*(self.run(c) for c in calls)))

    async def open_session(self) -> str | None:
        """Start a stateful session and return its id; stateless tools return None."""
        return None

    async def close_session(self, session: str | None) -> None:
        """Release a session opened by `open_session`."""

    def schema(self) -> dict[str, Any]:
        """The OpenAI-style function schema chat templates get (`name`, `description`, `parameters`)."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    @property
    def started(self) -> bool:
        return self._started

    async def start(self) -> None:
        """Run `setup` unless it already ran; concurrent callers on one loop wait for the first."""
        if self._started or self._setup_task is asyncio.current_task():  # a setup that calls start()
            return
        if self._locks is None:
            self._locks = weakref.WeakKeyDictionary()
        lock = self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:
            if self._started:
                return
            self._setup_task = asyncio.current_task()
            try:
                await self.setup()
                self._started = True
            finally:
                self._setup_task = None

    async def close(self) -> None:
        """Run `teardown` if the tool was started. Safe to call twice."""
        if self._started:
            self._started = False
            await self.teardown()

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Segment(BaseModel):
    """A run of completion tokens of one origin: the model's own text, or tool output inserted by the environment."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["model", "tool"]
    text: str
    start: int
    """Token span in `Trajectory.completion_ids`: [start, end)."""
    end: int
    version: int | None = None
    """Model segments: the policy version (weight update count) that generated them, when the backend
    reports one (asynchronous training); None for tool segments and unversioned backends."""


class ToolCallRecord(BaseModel):
    """A tool call made during a rollout, with its result and where it sits in the completion."""

    model_config = ConfigDict(extra="forbid")

    call: ToolCall
    result: ToolResult
    turn: int
    """Index of the model turn that wrote the call (0-based)."""
    output_segment: int | None = None
    """Index in `Trajectory.segments` of the tool segment that rendered the result (None if not rendered)."""


class Trajectory(BaseModel):
    """The token-exact record of one rollout.

    `completion_ids` holds model tokens and tool-output tokens interleaved exactly as the model saw them;
    `logprobs` and `env_mask` have the same length (env tokens: logprob 0.0, mask 0). A logprob the engine
    did not return is NaN (JSON: null), which TRL treats as "no importance correction" for that token.
    """

    model_config = ConfigDict(extra="forbid")

    prompt: Prompt = ""
    prompt_ids: list[int]
    completion_ids: list[int] = Field(default_factory=list)
    logprobs: list[float] = Field(default_factory=list)
    env_mask: list[int] = Field(default_factory=list)
    segments: list[Segment] = Field(default_factory=list)
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    num_turns: int = 0
    finish_reason: FinishReason = "stop"
    error: str | None = None
    reward: float | None = None
    """The total reward, when one reward object scored the trajectory (`score_trajectories`: evaluation, the
    nano run). In training TRL weighs and sums the reward functions itself: read `reward_breakdown[<name>]`
    per function and `metadata["advantage"]`."""
    reward_breakdown: dict[str, float | None] = Field(default_factory=dict)
    """Each reward's score under its name, its parts under `<name>/<part>`, and the one `correct`."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Free-form: prompt index, sample index, seed, reference answer, timings."""

    @field_validator("logprobs", mode="before")
    @classmethod
    def _null_is_nan(cls, v: Any) -> Any:
        # JSON has no NaN: a missing logprob is written as null and read back as NaN.
        return [math.nan if x is None else x for x in v] if isinstance(v, list) else v

    @model_validator(mode="after")
    def _check_alignment(self) -> Trajectory:
        n = len(self.completion_ids)
        if len(self.logprobs) != n or len(self.env_mask) != n:
            raise ValueError(
                f"completion_ids ({n}), logprobs ({len(self.logprobs)}) and env_mask "
                f"({len(self.env_mask)}) must have the same length"
            )
        for seg in self.segments:
            if not 0 <= seg.start <= seg.end <= n:
                raise ValueError(f"segment span [{seg.start}, {seg.end}) outside completion of {n} tokens")
        return self

    @property
    def num_tool_calls(self) -> int:
        return len(self.tool_calls)

    @property
    def completion_text(self) -> str:
        """The rendered transcript: model text and tool output, in order."""
        return "".join(s.text for s in self.segments)

    @property
    def model_text(self) -> str:
        """Only what the model wrote (tool output left out): where the final answer is looked for."""
        return "".join(s.text for s in self.segments if s.kind == "model")

    @property
    def num_model_tokens(self) -> int:
        return sum(self.env_mask)

    @property
    def correct(self) -> bool | None:
        """Whether the final answer was judged correct (`reward_breakdown["correct"]`, written by the
        correctness reward that scored it); None when nothing judged it or it could not be verified."""
        v = self.reward_breakdown.get("correct")
        return None if v is None else v >= 0.5

    @property
    def versions(self) -> list[int]:
        """The policy versions of the model segments, in order (empty when none was recorded)."""
        return [s.version for s in self.segments if s.kind == "model" and s.version is not None]

    @property
    def oldest_version(self) -> int | None:
        """The oldest policy version that wrote part of this trajectory (None when unversioned)."""
        return min(self.versions, default=None)

    @property
    def newest_version(self) -> int | None:
        """The newest policy version that wrote part of this trajectory (None when unversioned)."""
        return max(self.versions, default=None)

    @property
    def tool_failed(self) -> bool:
        """True when at least one tool call did not succeed."""
        return any(not r.result.ok for r in self.tool_calls)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, line: str | bytes) -> Trajectory:
        return cls.model_validate_json(line)


def save_jsonl(trajectories: Iterable[Trajectory], path: str | Path, append: bool = False) -> None:
    """Write trajectories as JSON Lines (one per line)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("a" if append else "w", encoding="utf-8") as f:
        for t in trajectories:
            f.write(t.to_json())
            f.write("\n")


def load_jsonl(path: str | Path) -> list[Trajectory]:
    """Read trajectories written by `save_jsonl`."""
    with Path(path).open(encoding="utf-8") as f:
        return [Trajectory.from_json(line) for line in f if line.strip()]


@runtime_checkable
class RolloutPolicy(Protocol):
    """Turns prompts into trajectories: `n` samples per prompt, returned prompt-major
    (all samples of prompt 0, then prompt 1, ...). Never raises for one bad sample: it returns a
    trajectory with `finish_reason="error"`."""

    async def generate(self, prompts: Sequence[Prompt], n: int = 1, **sampling: Any) -> list[Trajectory]: ...


class RewardOutput(BaseModel):
    """A score (None = could not be scored) and its named parts for logging."""

    model_config = ConfigDict(extra="forbid")

    score: float | None
    breakdown: dict[str, float | None] = Field(default_factory=dict)
    """Named parts (1/0 flags, counts, partial scores); a correctness reward's `correct` is 1/0/None."""
    reason: str | None = None
    answer: str | None = None
    """The final answer the reward read from the trajectory (None when it found none or reads no answer)."""
    rule: str | None = None
    """Which answer rule decided ("exact", "integer", "numeric", "percent", "math_verify", "tolerance",
    "assignment", "asked_variable", "choice", "list", "string_fallback"; "no_answer", "timeout", "error")."""


@runtime_checkable
class Reward(Protocol):
    """Scores a finished trajectory against a reference answer."""

    name: str

    def score(self, trajectory: Trajectory, answer: str) -> RewardOutput: ...

