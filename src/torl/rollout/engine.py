"""`TIRRollout`: prompts in, token-exact tool-integrated trajectories out.

Each trajectory is its own asyncio task: it generates until its turn stops on the format's stop string,
runs the code with the tool, appends the tokenized output, and resumes, while the others keep going.

Token exactness: the ids and logprobs the backend sampled are kept as returned (never decoded and
re-encoded); only tool output is tokenized; each turn sends prompt + completion ids so far. A stop string
that ends inside a token keeps the whole token, and the format reads the decoded text of exactly those ids,
so what is rendered and what the model is conditioned on agree.

Segments: a model segment's text is `decode(ids of that turn)`; a tool segment's text is the rendered
environment text (or the decode of its ids when the budget cut it). A multi-byte character split across a
turn boundary decodes to U+FFFD on both sides; only then does the concatenation of segment texts differ
from `decode(completion_ids)` (the ids are exact either way).

Finish reasons: "stop" (the model ended, or stopped with nothing to run, or went past the budget in
"continue" mode), "length" (token budget or max_model_len, tool output included), "max_turns", "error"
(the engine or the tool raised; what was generated is kept and `error` says why).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
import weakref
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

from torl.core import Prompt, Segment, Tool, ToolCall, ToolCallRecord, ToolResult, Trajectory
from torl.rollout.backends import (
    GenerationBackend,
    GenerationRequest,
    HTTPBackend,
    Sampling,
    TransformersBackend,
    VLLMAsyncBackend,
    VLLMSyncBackend,
)
from torl.rollout.formats import BUDGET_SPENT_MESSAGE, INVALID_CALL, TIRFormat, get_format

logger = logging.getLogger(__name__)

OverBudget = Literal["continue", "notify"]


class TIRRollout:
    """Multi-turn tool-integrated rollouts over a generation backend (implements `RolloutPolicy`).

    Args:
        backend: a `GenerationBackend` (see the `from_*` constructors).
        tool: the `Tool` that runs code (None: no tool; every call gets a "no tool" error result).
        tools: several tools, as a list (each under its `name`) or a name -> tool mapping; calls go to the
            tool their `ToolCall.name` names (chat format), a call to an unknown name gets an error result
            the model sees. With one tool, the text formats' code blocks go to it whatever its name.
            The engine starts each tool on first use (`Tool.start`); closing them is the caller's.
        tir_format: "torl" (```python / ```output), "xml" (<code> / <interpreter>), "chat" (JSON tool calls
            through the chat template), or a `TIRFormat` instance.
        max_tool_calls: the tool-call budget per trajectory (ToRL's C).
        max_new_tokens: the completion budget, model and tool tokens together (ToRL: 3072).
        over_budget: past the budget, "continue" (ToRL) generates the last turn without the stop string and
            runs nothing more; "notify" keeps the stop string and answers further calls with an output block
            saying the budget is spent (bounded by `max_turns`).
        max_turns: model turns per trajectory (default: the format's `turns_per_call` x max_tool_calls + 1,
            or + 3 with "notify", + the turns that `max_turn_tokens` may cut).
        max_concurrency: trajectories in flight at once, over all `generate` calls of this engine.
        tool_timeout_s: a wall-clock limit on one tool call, on top of the tool's own limits.
        stateful: open one tool session per trajectory (cells share state) when the tool supports it.
        max_turn_tokens: tokens one model turn may generate (AReaL's 1,024 per call); a turn cut there is
            followed by another turn. None: a turn may use all the room left.
        max_total_tokens: a budget on prompt + completion together (AReaL's 4,000), on top of
            `max_new_tokens`. None: the completion budget only. With `max_turn_tokens`, a turn starts only
            when its full `max_turn_tokens` fit in this total (AReaL's rule).
    """

    def __init__(
        self,
        backend: GenerationBackend,
        *,
        tool: Tool | None = None,
        tools: Sequence[Tool] | Mapping[str, Tool] | None = None,
        tir_format: str | TIRFormat = "torl",
        max_tool_calls: int = 1,
        max_new_tokens: int = 3072,
        over_budget: OverBudget = "continue",
        max_turns: int | None = None,
        max_concurrency: int = 512,
        tool_timeout_s: float | None = None,
        stateful: bool = True,
        max_turn_tokens: int | None = None,
        max_total_tokens: int | None = None,
    ) -> None:
        if over_budget not in ("continue", "notify"):
            raise ValueError(f"over_budget must be 'continue' or 'notify', got {over_budget!r}")
        if max_tool_calls < 0 or max_new_tokens < 1 or max_concurrency < 1:
            raise ValueError("max_tool_calls must be >= 0, max_new_tokens and max_concurrency >= 1")
        if (max_turn_tokens is not None and max_turn_tokens < 1) or (
            max_total_tokens is not None and max_total_tokens < 1
        ):
            raise ValueError("max_turn_tokens and max_total_tokens must be >= 1 (or None)")
        self.backend = backend
        self.tokenizer = backend.tokenizer
        self.tools = tool_map(tool, tools)
        self.format = get_format(tir_format)
        self.format.bind(self.tokenizer, list(self.tools.values()))
        self.max_tool_calls = max_tool_calls
        self.max_new_tokens = max_new_tokens
        self.over_budget = over_budget
        # Default: each call's turns, the last turn (or 3 past a "notify" budget), and the turns cut at
        # max_turn_tokens that the budget leaves room for.
        self.max_turns = max_turns or (
            getattr(self.format, "turns_per_call", 1) * max_tool_calls
            + (1 if over_budget == "continue" else 3)
            + (-(-max_new_tokens // max_turn_tokens) if max_turn_tokens else 0)
        )
        self.max_concurrency = max_concurrency
        self.tool_timeout_s = tool_timeout_s
        self.stateful = stateful
        self.max_turn_tokens = max_turn_tokens
        self.max_total_tokens = max_total_tokens
        self._stop_ids = tuple(self.format.stop_token_ids())
        self._sems: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # one per event loop
        self._batchers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # loop -> {id(tool): _Batcher}
        self._loop_thread: LoopThread | None = None
        self._batches = 0

    # ----- constructors -----

    @classmethod
    def from_vllm(
        cls, model: str, *, tool: Tool | None = None, engine_kwargs: dict | None = None, **kwargs: Any
    ) -> TIRRollout:
        """An in-process vLLM `AsyncLLM` for `model` (prefix caching on, processed logprobs).
        `engine_kwargs` go to vLLM's `AsyncEngineArgs` (e.g. max_model_len, dtype); the rest to `TIRRollout`."""
        return cls(VLLMAsyncBackend.from_model(model, **(engine_kwargs or {})), tool=tool, **kwargs)

    @classmethod
    def from_llm(
        cls, llm: Any, *, tool: Tool | None = None, tokenizer: Any = None, **kwargs: Any
    ) -> TIRRollout:
        """Over an existing synchronous `vllm.LLM` (e.g. TRL's colocated `trainer.llm`); it stays the caller's.
        Create it with `logprobs_mode="processed_logprobs"` (TRL does) for logprobs after temperature."""
        return cls(VLLMSyncBackend(llm, tokenizer), tool=tool, **kwargs)

    @classmethod
    def from_server(
        cls,
        base_urls: str | Sequence[str],
        model: str,
        tokenizer: Any = None,
        *,
        tool: Tool | None = None,
        max_model_len: int | None = None,
        **kwargs: Any,
    ) -> TIRRollout:
        """Over `vllm serve` replicas (OpenAI-compatible /v1/completions with token ids). `tokenizer`: a
        tokenizer or a path/name to load (default: `model`)."""
        if tokenizer is None or isinstance(tokenizer, str):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer or model)
        backend = HTTPBackend(base_urls, model, tokenizer, max_model_len=max_model_len)
        if backend.max_model_len is None:
            backend.max_model_len = backend.query_max_model_len()
        return cls(backend, tool=tool, **kwargs)

    @classmethod
    def from_transformers(
        cls, model: Any, tokenizer: Any = None, *, tool: Tool | None = None, **kwargs: Any
    ) -> TIRRollout:
        """Over a transformers model (or a path to load in float32) and its tokenizer; slow, for debugging."""
        if isinstance(model, str) or tokenizer is None:
            backend = TransformersBackend.from_model(str(model))
        else:
            backend = TransformersBackend(model, tokenizer)
        return cls(backend, tool=tool, **kwargs)

    # ----- public API -----

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """The prompt's token ids as this engine sends them (raw text, or the chat template for messages)."""
        return self.format.encode_prompt(prompt, self.tokenizer)

    async def generate(
        self,
        prompts: Sequence[Prompt],
        n: int = 1,
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        seed: int | None = None,
        max_new_tokens: int | None = None,
        metadata: Sequence[dict] | None = None,
    ) -> list[Trajectory]:
        """Roll out `n` samples of each prompt, prompt-major. Never raises for one bad sample: it comes back
        with `finish_reason="error"` and `error` set.

        `seed`: trajectory k (prompt-major order) samples with seed + k (each turn with a seed derived from it),
        so a run is reproducible; None sends no per-request seeds (the engine's own RNG; faster in vLLM, which
        samples seeded requests one by one). `metadata`: one dict per prompt, copied into its trajectories'.
        """
        if isinstance(prompts, str) or (prompts and isinstance(prompts[0], dict)):
            raise TypeError(
                "prompts must be a sequence of prompts (strings or message lists), not one prompt"
            )
        if n < 1:
            raise ValueError("n must be >= 1")
        if metadata is not None and len(metadata) != len(prompts):
            raise ValueError(f"metadata has {len(metadata)} entries for {len(prompts)} prompts")
        budget = max_new_tokens or self.max_new_tokens
        sampling = Sampling(temperature=temperature, top_p=top_p, top_k=top_k)
        self._batches += 1
        tasks = []
        for i, prompt in enumerate(prompts):
            try:
                ids = self.encode_prompt(prompt)
                err = None
            except Exception as e:  # a bad prompt fails its own samples only
                ids, err = [], f"prompt could not be encoded: {type(e).__name__}: {e}"
            for j in range(n):
                meta = {
                    **(metadata[i] if metadata else {}),
                    "prompt_index": i,
                    "sample_index": j,
                    "seed": None if seed is None else (seed + i * n + j) % (2**31 - 1),
                }
                tasks.append(self._guarded(prompt, ids, err, meta, sampling, budget, (self._batches, i)))
        return list(await asyncio.gather(*tasks))

    async def resume(
        self,
        trajectory: Trajectory,
        call: int,
        result: ToolResult | None = None,
        *,
        later_result: ToolResult | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        seed: int | None = None,
        max_new_tokens: int | None = None,
        metadata: dict | None = None,
    ) -> Trajectory:
        """Roll `trajectory` out again from its tool call number `call`, whose result is replaced by `result`
        (None: the recorded one): a counterfactual rollout that generates only the suffix.

        The prompt and completion ids before the call's output are reused as recorded (never re-tokenized);
        the new observation is rendered by this engine's format and tokenized like any tool output; then
        the model goes on within what is left of the token and tool-call budgets. `later_result`: every
        later call gets it and runs nothing (the tool is off from here on). In a stateful session the cells
        before `call` run again before the first later call (a `CachedTool` holding the recorded results
        answers them without running). `seed`: default the trajectory's own, so that the recorded result
        at temperature 0 gives back the recorded trajectory. Metadata: the original's, plus `resumed`
        (`call`, `prefix_tokens`). Never raises for a failed rollout (`finish_reason="error"`).

        Raises:
            ValueError: no such call, or its output is not in the trajectory's segments.
        """
        if not 0 <= call < len(trajectory.tool_calls):
            raise ValueError(f"the trajectory has {len(trajectory.tool_calls)} tool calls, no call {call}")
        rec = trajectory.tool_calls[call]
        seg_i = rec.output_segment
        segs = trajectory.segments
        if (
            seg_i is None
            or not 1 <= seg_i < len(segs)
            or segs[seg_i].kind != "tool"
            or segs[seg_i - 1].kind != "model"
        ):
            raise ValueError(f"tool call {call} has no rendered output after a model turn: cannot resume it")
        same_turn = [r for r in trajectory.tool_calls if r.output_segment == seg_i]
        results = [result if r is rec and result is not None else r.result for r in same_turn]
        start = segs[seg_i].start
        seed = trajectory.metadata.get("seed") if seed is None else seed
        drop = ("timings", "pred", "rule", "advantage", "counterfactual", "resumed", "provenance")
        drop += ("perturbation",)  # the results of this trajectory, not of the one resumed
        meta = {k: v for k, v in trajectory.metadata.items() if k not in drop}
        meta.update(metadata or {}, seed=seed, resumed={"call": call, "prefix_tokens": start})
        budget = max_new_tokens or self.max_new_tokens
        sampling = Sampling(temperature=temperature, top_p=top_p, top_k=top_k)
        async with self._sem():
            st = _State(trajectory.prompt, trajectory.prompt_ids, meta, ("resume", id(trajectory)))
            st.completion = list(trajectory.completion_ids[:start])
            st.logprobs = list(trajectory.logprobs[:start])
            st.mask = list(trajectory.env_mask[:start])
            st.segments = [s.model_copy() for s in segs[:seg_i]]
            st.records = [r.model_copy() for r in trajectory.tool_calls if (r.output_segment or 0) < seg_i]
            st.replay = [r.call.model_copy(update={"session": None}) for r in st.records]
            st.turns = rec.turn + 1
            st.calls_used = len(st.records) + len(same_turn)
            st.tool_off = later_result
            try:
                env_text = self.format.render(segs[seg_i - 1].text, [r.call for r in same_turn], results)
                seg, cut = self._add_env(st, env_text, budget)
                st.records += [
                    r.model_copy(update={"result": res, "output_segment": seg})
                    for r, res in zip(same_turn, results, strict=True)
                ]
                if cut:
                    st.finish = "length"
                else:
                    await self._rollout(st, sampling, budget)
            except Exception as e:  # as in generate: keep what there is, mark the error
                st.finish, st.error = "error", f"{type(e).__name__}: {e}"
            return st.trajectory()

    def generate_sync(self, prompts: Sequence[Prompt], n: int = 1, **sampling: Any) -> list[Trajectory]:
        """`generate` for synchronous callers (e.g. TRL's `rollout_func`); works from any thread, repeatedly.
        All calls run on one private event loop thread, so backends and tools stay on one loop."""
        return self._run(self.generate(prompts, n, **sampling))

    async def close(self) -> None:
        """Release the backend (an engine this object started; a `vllm.LLM` passed in stays alive)."""
        await self.backend.close()

    def close_sync(self) -> None:
        """`close` for synchronous callers; also stops the private loop thread."""
        if self._loop_thread is not None:
            self._run(self.close())
            self._loop_thread.stop()
            self._loop_thread = None
        else:
            asyncio.run(self.close())

    # ----- internals -----

    def _run(self, coro: Coroutine) -> Any:
        if self._loop_thread is None:
            self._loop_thread = LoopThread("torl-rollout-loop")
        return self._loop_thread.run(coro)

    def _batcher(self, tool: Tool) -> _Batcher:
        per_loop = self._batchers.setdefault(asyncio.get_running_loop(), {})
        if id(tool) not in per_loop:
            per_loop[id(tool)] = _Batcher(tool)
        return per_loop[id(tool)]

    def _sem(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        sem = self._sems.get(loop)
        if sem is None:
            sem = self._sems[loop] = asyncio.Semaphore(self.max_concurrency)
        return sem

    async def _guarded(self, prompt, prompt_ids, err, meta, sampling, budget, affinity) -> Trajectory:
        if err is not None:
            return Trajectory(
                prompt=prompt, prompt_ids=prompt_ids, finish_reason="error", error=err, metadata=meta
            )
        async with self._sem():
            state = _State(prompt, prompt_ids, meta, affinity)
            try:
                await self._rollout(state, sampling, budget)
            except Exception as e:  # engine or tool crash: keep what was generated, mark the error
                state.finish, state.error = "error", f"{type(e).__name__}: {e}"
            return state.trajectory()

    @property
    def tool(self) -> Tool | None:
        """The tool when there is exactly one (None otherwise)."""
        return next(iter(self.tools.values())) if len(self.tools) == 1 else None

    async def _rollout(self, st: _State, sampling: Sampling, budget: int) -> None:
        try:
            await self._loop_turns(st, sampling, budget)
        finally:
            for name, session in st.sessions.items():
                if session is None:
                    continue
                try:
                    await self.tools[name].close_session(session)
                except Exception as e:  # the trajectory is done; a leaked session is the tool's to reap
                    logger.warning("closing %s session %s failed: %s", name, session, e)

    async def _loop_turns(self, st: _State, sampling: Sampling, budget: int) -> None:
        fmt, tok = self.format, self.tokenizer
        max_len = self.backend.max_model_len
        calls_left = self.max_tool_calls - st.calls_used
        seed = st.meta["seed"]
        if max_len and len(st.prompt_ids) >= max_len:
            raise ValueError(f"prompt of {len(st.prompt_ids)} tokens does not fit max_model_len {max_len}")
        turns: list[str] = []  # the decoded model turns, which the format reads
        while True:
            room = self._room(st, budget)
            if room <= 0 or self._turn_does_not_fit(st):
                st.finish = "length"
                return
            if st.turns >= self.max_turns:
                st.finish = "max_turns"
                return
            use_stop = calls_left > 0 or self.over_budget == "notify"
            stops = tuple(fmt.turn_stop(turns)) if use_stop else ()
            t0 = time.perf_counter()
            turn_seed = None if seed is None else (seed * 1_000_003 + st.turns) % (2**31 - 1)
            request = GenerationRequest(
                st.prompt_ids + st.completion,
                max_tokens=min(room, self.max_turn_tokens or room),
                sampling=replace(sampling, seed=turn_seed),
                stop=stops,
                stop_token_ids=self._stop_ids,
                affinity=st.affinity,
            )
            out = await self.backend.generate(request)
            st.gen_s += time.perf_counter() - t0
            if len(out.logprobs) != len(out.token_ids):
                raise RuntimeError(
                    f"backend returned {len(out.token_ids)} ids and {len(out.logprobs)} logprobs"
                )
            text = tok.decode(out.token_ids, skip_special_tokens=False)
            seg = Segment(kind="model", text=text, start=0, end=0, version=getattr(out, "version", None))
            st.add(seg, out.token_ids, out.logprobs, 1)
            turns.append(text)
            turn = st.turns
            st.turns += 1
            if out.finish_reason == "abort":
                raise RuntimeError("generation was aborted by the engine")
            if out.finish_reason == "length":
                if self.max_turn_tokens and len(out.token_ids) >= self.max_turn_tokens:
                    continue  # the turn's own cap, not the budget: the next turn goes on (AReaL)
                st.finish = "length"
                return
            stopped = out.stop_reason is not None and (
                out.stop_reason in stops or out.stop_reason in self._stop_ids
            )
            calls = fmt.turn_calls(turns, stopped)
            if calls == "spend" and calls_left > 0:  # ToRL: a round that stopped on its marker is a call
                calls_left -= 1
                continue
            if calls == "continue":
                continue
            if not calls or isinstance(calls, str):
                st.finish = "stop"
                return
            if calls_left <= 0 and self.over_budget == "continue":  # ToRL: past the budget nothing runs
                st.finish = "stop"
                return
            if st.turns >= self.max_turns:  # no turn left to read an answer: run nothing more
                st.finish = "max_turns"
                return
            if calls_left <= 0:
                env_text = fmt.render_budget_spent(text, calls)
                results = None
            else:
                run, extra = calls[:calls_left], calls[calls_left:]
                calls_left -= len(run)
                t0 = time.perf_counter()
                results = list(await asyncio.gather(*(self._call_tool(c, st) for c in run)))
                st.tool_s += time.perf_counter() - t0
                # Calls past the budget in the same turn are answered, not run (chat templates want an answer each).
                spent = [ToolResult(output=BUDGET_SPENT_MESSAGE) for _ in extra]
                env_text = fmt.render(text, calls, results + spent)
                calls = run
            seg_index, cut = self._add_env(st, env_text, budget)
            for c, r in zip(calls, results or []):
                st.records.append(ToolCallRecord(call=c, result=r, turn=turn, output_segment=seg_index))
            if cut:
                st.finish = "length"
                return

    def _turn_does_not_fit(self, st: _State) -> bool:
        """AReaL's rule: with both budgets, a turn starts only when its full `max_turn_tokens` fit the total."""
        if not (self.max_turn_tokens and self.max_total_tokens):
            return False
        return self.max_total_tokens - len(st.prompt_ids) - len(st.completion) < self.max_turn_tokens

    def _add_env(self, st: _State, env_text: str, budget: int) -> tuple[int, bool]:
        """Append the tool output as a segment, cut to the room left: its index, and whether it was cut."""
        env_ids = self.format.encode_env(env_text, self.tokenizer)
        room = self._room(st, budget)
        cut = len(env_ids) > room
        if cut:
            env_ids = env_ids[: max(room, 0)]
            env_text = self.tokenizer.decode(env_ids, skip_special_tokens=False)
        seg = st.add(Segment(kind="tool", text=env_text, start=0, end=0), env_ids, [0.0] * len(env_ids), 0)
        return seg, cut

    def _room(self, st: _State, budget: int) -> int:
        """Tokens the trajectory may still add: completion budget, total budget, model length."""
        used = len(st.completion)
        room = budget - used
        for cap in (self.max_total_tokens, self.backend.max_model_len):
            if cap:
                room = min(room, cap - len(st.prompt_ids) - used)
        return room

    def _route(self, call: ToolCall) -> tuple[str, Tool] | str:
        """The (name, tool) a call goes to, or the error the model sees."""
        tool = self.tools.get(call.name)
        if tool is not None:
            return call.name, tool
        if len(self.tools) == 1 and not self.format.named_calls:  # a code block: the one tool runs it
            return next(iter(self.tools.items()))
        if not self.tools:
            return "no tool is configured"
        return f"unknown tool {call.name!r}; available: {', '.join(sorted(self.tools))}"

    async def _call_tool(self, call: ToolCall, st: _State) -> ToolResult:
        if call.name == INVALID_CALL:
            return ToolResult.failure("error", str(call.arguments.get("error", "invalid tool call")))
        if st.tool_off is not None:  # a counterfactual rollout with the tool turned off
            return st.tool_off
        route = self._route(call)
        if isinstance(route, str):
            return ToolResult.failure("sandbox_error" if not self.tools else "error", route)
        name, tool = route
        if self.format.named_calls:
            missing = [k for k in (tool.parameters or {}).get("required", []) if k not in call.arguments]
            if missing:
                return ToolResult.failure("error", f"{name}: missing argument(s) {', '.join(missing)}")
        t0 = time.perf_counter()
        try:
            await tool.start()  # once, on first use, on this loop
        except Exception as e:
            raise RuntimeError(f"tool {name!r} could not start: {type(e).__name__}: {e}") from e
        if name not in st.sessions:  # on its first call: no call, no session
            st.sessions[name] = await tool.open_session() if self.stateful else None
            if st.sessions[name] is not None:  # a resumed trajectory: its earlier cells again, in order
                for prior in st.replay:
                    if self._route(prior) != route:
                        continue
                    await tool.run(prior.model_copy(update={"session": st.sessions[name]}))
        call = call.model_copy(update={"session": st.sessions[name]})
        try:
            coro = self._batcher(tool).submit(call) if _batches(tool) else tool.run(call)
            if self.tool_timeout_s is not None:
                result = await asyncio.wait_for(coro, self.tool_timeout_s)
            else:
                result = await coro
        except TimeoutError:
            result = ToolResult.failure("timeout", f"tool call exceeded {self.tool_timeout_s} s")
        # The latency the trajectory saw: from the request to the reply, queueing included.
        return result.model_copy(update={"duration_s": time.perf_counter() - t0})


def _batches(tool: Tool) -> bool:
    """True when the tool runs a batch of calls more cheaply than one by one (it overrides `run_many`)."""
    return type(tool).run_many is not Tool.run_many


class _Batcher:
    """Sends a tool the calls of every trajectory that is ready in the same loop iteration as one `run_many`:
    the first call waits one `call_soon` for the others, then the batch goes out."""

    def __init__(self, tool: Tool) -> None:
        self.tool = tool
        self.pending: list[tuple[ToolCall, asyncio.Future]] = []

    def submit(self, call: ToolCall) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.pending.append((call, fut))
        if len(self.pending) == 1:
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        task = asyncio.ensure_future(self.tool.run_many([c for c, _ in batch]))

        def settle(t: asyncio.Task) -> None:
            error = None if t.cancelled() else t.exception()
            results = [] if t.cancelled() or error else list(t.result())
            if not t.cancelled() and error is None and len(results) != len(batch):
                error = RuntimeError(f"{type(self.tool).__name__}.run_many gave {len(results)} results "
                                     f"for {len(batch)} calls")
            for i, (_, fut) in enumerate(batch):
                if fut.done():  # the caller gave up (a timeout)
                    continue
                if t.cancelled():
                    fut.cancel()
                elif error is not None:
                    fut.set_exception(error)
                else:
                    fut.set_result(results[i])

        task.add_done_callback(settle)


def tool_map(tool: Tool | None, tools: Sequence[Tool] | Mapping[str, Tool] | None) -> dict[str, Tool]:
    """Name -> tool from `tool=` or `tools=` (a list, each under its `name`, or a mapping); checks both."""
    if tool is not None and tools is not None:
        raise ValueError("pass tool= or tools=, not both")
    if tools is None:
        tools = [] if tool is None else [tool]
    items = list(tools.items()) if isinstance(tools, Mapping) else [(getattr(t, "name", ""), t) for t in tools]
    out: dict[str, Tool] = {}
    for name, t in items:
        if not isinstance(t, Tool):
            raise TypeError(f"tools must be torl Tool objects, got {type(t).__name__}")
        if not name:
            raise ValueError(f"{type(t).__name__} has no name: set its `name`, or pass a name -> tool mapping")
        if name in out:
            raise ValueError(f"two tools are named {name!r}: give them distinct names")
        out[name] = t
    return out


class LoopThread:
    """An event loop on a daemon thread, for synchronous callers of async code: every coroutine given to
    `run` runs there, so backends and tools stay on one loop across calls and threads."""

    def __init__(self, name: str = "torl-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine) -> Any:
        """Run `coro` on the loop and wait for its result (from any thread but the loop's own). The wait wakes
        up often, so Ctrl-C reaches the caller even when the signal lands on another thread; the coroutine is
        then cancelled."""
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            while True:
                try:
                    return fut.result(timeout=0.2)
                except concurrent.futures.TimeoutError:
                    if fut.done():  # the coroutine's own TimeoutError
                        raise
        except BaseException:
            fut.cancel()
            raise

    def stop(self, timeout_s: float = 10.0) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout_s)


class _State:
    """The growing record of one trajectory."""

    def __init__(self, prompt: Prompt, prompt_ids: list[int], meta: dict, affinity: Any = None) -> None:
        self.prompt, self.prompt_ids, self.meta, self.affinity = prompt, list(prompt_ids), meta, affinity
        self.completion: list[int] = []
        self.logprobs: list[float] = []
        self.mask: list[int] = []
        self.segments: list[Segment] = []
        self.records: list[ToolCallRecord] = []
        self.turns = 0
        self.finish = "stop"
        self.error: str | None = None
        self.gen_s = 0.0
        self.tool_s = 0.0
        self.sessions: dict[str, str | None] = {}
        """Tool name -> this trajectory's session (opened on the tool's first call)."""
        self.calls_used = 0
        """Tool calls already spent (a resumed trajectory starts with its prefix's)."""
        self.replay: list[ToolCall] = []
        """Cells of a resumed prefix, run again in a new session before its first call."""
        self.tool_off: ToolResult | None = None
        """When set, every tool call gets this result and runs nothing."""

    def add(self, seg: Segment, ids: list[int], lps: list[float], mask: int) -> int:
        start = len(self.completion)
        self.completion += ids
        self.logprobs += lps
        self.mask += [mask] * len(ids)
        self.segments.append(seg.model_copy(update={"start": start, "end": len(self.completion)}))
        return len(self.segments) - 1

    def trajectory(self) -> Trajectory:
        meta = {**self.meta, "timings": {"generation_s": self.gen_s, "tool_s": self.tool_s}}
        return Trajectory(
            prompt=self.prompt,
            prompt_ids=self.prompt_ids,
            completion_ids=self.completion,
            logprobs=self.logprobs,
            env_mask=self.mask,
            segments=self.segments,
            tool_calls=self.records,
            num_turns=self.turns,
            finish_reason=self.finish,
            error=self.error,
            metadata=meta,
        )
