"""Generation backends: token ids in, sampled token ids and their logprobs out.

Every backend keeps the sampled ids exactly as the engine returned them (a stop string that ends inside
a token keeps that whole token: those are the ids the model is conditioned on next turn).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import queue
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

logger = logging.getLogger(__name__)

GenFinish = Literal["stop", "length", "abort"]


@dataclass(frozen=True)
class Sampling:
    """How to sample: the hyperparameters a rollout keeps for all its turns."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    """0: no top-k."""
    seed: int | None = None
    """None: the engine's own RNG (fast); an int: reproducible, per request."""


@dataclass(frozen=True)
class GenerationRequest:
    """One turn to sample: the context so far, a token budget, where to stop, how to sample.

    Stop strings and stop tokens stay in the output (the engine needs the exact ids it sampled);
    special tokens are never skipped; the sampled tokens' logprobs come back with them.
    """

    prompt_ids: list[int]
    max_tokens: int
    sampling: Sampling = field(default_factory=Sampling)
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    affinity: Any = None
    """Requests with the same key should go to the same replica (prefix cache); one-engine backends ignore it."""


@dataclass
class GenerationOutput:
    """One generation call's result. `stop_reason` is the stop string or stop token id that ended it
    (None for EOS or length). A logprob the engine did not return is NaN."""

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: GenFinish
    stop_reason: str | int | None = None
    version: int | None = None
    """The policy version the request ran under (set by `VersionedBackend`; None when not tracked)."""


@runtime_checkable
class GenerationBackend(Protocol):
    """What the rollout engine needs from an inference engine."""

    tokenizer: Any
    max_model_len: int | None

    async def generate(self, request: GenerationRequest) -> GenerationOutput:
        """Sample a continuation of `request.prompt_ids`."""
        ...

    async def close(self) -> None: ...


def _sampling_params(request: GenerationRequest, seed: int | None):
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    sp = request.sampling
    return SamplingParams(
        n=1,
        max_tokens=request.max_tokens,
        temperature=sp.temperature,
        top_p=sp.top_p,
        top_k=sp.top_k if sp.top_k and sp.top_k > 0 else 0,
        seed=seed,
        stop=list(request.stop) or None,
        stop_token_ids=list(request.stop_token_ids) or None,
        include_stop_str_in_output=True,
        logprobs=0,
        skip_special_tokens=False,
        output_kind=RequestOutputKind.FINAL_ONLY,
    )


def _from_vllm_output(out: Any) -> GenerationOutput:
    """Convert a finished vLLM `RequestOutput` (n=1)."""
    c = out.outputs[0]
    ids = list(c.token_ids)
    lps: list[float] = []
    if c.logprobs is None:  # not returned: NaN, which TRL reads as "no correction" (ratio 1)
        lps = [math.nan] * len(ids)
    else:
        for tid, pos in zip(ids, c.logprobs):
            lps.append(float(pos[tid].logprob))
    fin = c.finish_reason if c.finish_reason in ("stop", "length") else "abort"
    return GenerationOutput(ids, lps, fin, c.stop_reason)


VLLM_DEFAULTS: dict[str, Any] = {"enable_prefix_caching": True, "logprobs_mode": "processed_logprobs"}
"""Engine arguments the rollout needs: prefix caching (samples share prompts, turns share prefixes) and
logprobs after temperature (for the trainer's importance correction)."""

CPU_SEED_BUG = (
    "vLLM on CPU kills its engine on a seeded request whose prefill is chunked (torch CPU generators have "
    "no offset: vllm gpu_model_runner._bookkeeping_sync), so per-request seeds are dropped on this engine. "
    "For reproducible sampling on CPU build it with enable_chunked_prefill=False "
    "(and max_num_batched_tokens >= max_model_len)."
)
_warned_seed = False


def _safe_seed(seed: int | None, unsafe: bool) -> int | None:
    global _warned_seed
    if seed is None or not unsafe:
        return seed
    if not _warned_seed:
        _warned_seed = True
        logger.warning(CPU_SEED_BUG)
    return None


def _seeds_unsafe(vllm_config: Any) -> bool:
    """True on vLLM CPU with chunked prefill on: a seeded request there can kill the engine."""
    try:
        from vllm.platforms import current_platform

        return bool(current_platform.is_cpu() and vllm_config.scheduler_config.enable_chunked_prefill)
    except Exception:
        return False


def select_cuda_device(device: int | None) -> None:
    """Make `device` this thread's current CUDA device (a new thread starts on device 0). None: no-op."""
    if device is None:
        return
    import torch

    if torch.cuda.current_device() != device:
        torch.cuda.set_device(device)


def _engine_cuda_device(llm: Any) -> int | None:
    """The CUDA device of an in-process vLLM engine: its worker's, else the caller's current one."""
    import torch

    if not torch.cuda.is_available():
        return None
    try:
        dev = llm.llm_engine.model_executor.driver_worker.worker.device
    except AttributeError:  # engine core in another process, or an engine without that attribute
        dev = None
    if isinstance(dev, torch.device) and dev.type == "cuda" and dev.index is not None:
        return dev.index
    return torch.cuda.current_device()


class VLLMAsyncBackend:
    """vLLM's in-process asynchronous engine (`AsyncLLM`)."""

    def __init__(self, engine: Any, tokenizer: Any, *, owns_engine: bool = True) -> None:
        self.engine = engine
        self.tokenizer = tokenizer
        self.max_model_len = int(engine.model_config.max_model_len)
        self._owns = owns_engine
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seeds_unsafe = _seeds_unsafe(engine.vllm_config)

    @classmethod
    def from_model(cls, model: str, **engine_kwargs: Any) -> VLLMAsyncBackend:
        """Start an `AsyncLLM` for `model` (extra keyword arguments go to vLLM's `AsyncEngineArgs`)."""
        from transformers import AutoTokenizer
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        kwargs = {**VLLM_DEFAULTS, **engine_kwargs}
        from vllm.platforms import current_platform

        if current_platform.is_cpu() and "enable_chunked_prefill" not in kwargs:
            # Without chunked prefill, seeded sampling is safe on CPU (see CPU_SEED_BUG).
            kwargs["enable_chunked_prefill"] = False
            n = kwargs.get("max_model_len") or 8192
            kwargs.setdefault("max_num_batched_tokens", max(int(n), 2048))
        engine = AsyncLLM.from_engine_args(AsyncEngineArgs(model=str(model), **kwargs))
        tok = AutoTokenizer.from_pretrained(kwargs.get("tokenizer") or str(model))
        return cls(engine, tok)

    async def generate(self, request: GenerationRequest) -> GenerationOutput:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                "this AsyncLLM runs on the event loop that first used it; call it from that loop only "
                "(or use TIRRollout.generate_sync for every call)"
            )
        params = _sampling_params(request, _safe_seed(request.sampling.seed, self._seeds_unsafe))
        final = None
        async for out in self.engine.generate(
            {"prompt_token_ids": list(request.prompt_ids)}, params, uuid.uuid4().hex
        ):
            final = out
        if final is None:
            raise RuntimeError("vLLM returned no output")
        return _from_vllm_output(final)

    async def close(self) -> None:
        if self._owns and self.engine is not None:
            engine, self.engine = self.engine, None
            engine.shutdown()
            # vLLM keeps a reference until interpreter exit, where its __del__ shuts down again and fails
            # noisily on torn-down modules: it is shut down already, so that second call is skipped.
            engine.__class__ = type("ClosedAsyncLLM", (type(engine),), {"__del__": lambda self: None})


class VLLMSyncBackend:
    """A backend over an existing synchronous `vllm.LLM` (what TRL's colocate mode holds as `trainer.llm`).

    One driver thread owns the engine: it adds queued requests with `llm_engine.add_request` and calls
    `llm_engine.step()` while any are unfinished, resolving each request's future as it finishes, so every
    trajectory still proceeds on its own. When idle the thread only waits on its queue, so the caller may use
    the `LLM` (weight sync, sleep/wake) between rollouts. The `LLM` is not shut down by `close()`.

    On CUDA the driver thread first selects the engine's GPU (a new thread starts on GPU 0, where vLLM's
    Triton kernels and copy streams would otherwise land): `device`, else the engine worker's device, else
    the current device when the backend is built.
    """

    def __init__(self, llm: Any, tokenizer: Any = None, *, device: int | None = None) -> None:
        self.llm = llm
        self.device = device if device is not None else _engine_cuda_device(llm)
        """The CUDA device index the driver thread selects (None: no CUDA)."""
        self.engine = llm.llm_engine
        self.tokenizer = tokenizer if tokenizer is not None else llm.get_tokenizer()
        self.max_model_len = int(self.engine.model_config.max_model_len)
        mode = getattr(self.engine.model_config, "logprobs_mode", None)
        self.logprobs_mode = str(getattr(mode, "value", mode))
        self._seeds_unsafe = _seeds_unsafe(self.engine.vllm_config)
        if not self.logprobs_mode.endswith("processed_logprobs"):
            logger.warning(
                "vllm.LLM has logprobs_mode=%s: logprobs are before temperature; build it with "
                "logprobs_mode='processed_logprobs' for the trainer's importance correction",
                self.logprobs_mode,
            )
        if not self.engine.vllm_config.cache_config.enable_prefix_caching:
            logger.warning("vllm.LLM has prefix caching off: every turn re-reads its whole context")
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._drive, name="torl-vllm-driver", daemon=True)
                self._thread.start()

    def _drive(self) -> None:
        select_cuda_device(self.device)
        pending: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future]] = {}

        def settle(rid: str, value: Any = None, exc: BaseException | None = None) -> None:
            loop, fut = pending.pop(rid)

            def _set() -> None:
                if fut.done():
                    return
                if exc is not None:
                    fut.set_exception(exc)
                else:
                    fut.set_result(value)

            try:
                loop.call_soon_threadsafe(_set)
            except RuntimeError:  # the caller's loop is closed; nobody is waiting
                pass

        barriers: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []
        while True:
            if barriers and not pending:  # nothing in flight: `quiesce` callers may use the engine now
                for loop, fut in barriers:
                    _resolve_threadsafe(loop, fut, None)
                barriers.clear()
            items = [] if pending else [self._inbox.get()]  # idle: block until a request arrives
            while True:
                try:
                    items.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            for item in items:
                if item == "stop":
                    self._abort(list(pending))
                    for rid in list(pending):
                        settle(rid, exc=RuntimeError("backend closed"))
                    for loop, fut in barriers:
                        _resolve_threadsafe(loop, fut, None)
                    return
                if item[0] == "barrier":
                    barriers.append((item[1], item[2]))
                    continue
                if item[0] == "abort":  # the caller gave up on it (task cancelled)
                    if item[1] in pending:
                        pending.pop(item[1])
                        self._abort([item[1]])
                    continue
                rid, ids, params, loop, fut = item
                pending[rid] = (loop, fut)
                try:
                    self.engine.add_request(rid, {"prompt_token_ids": ids}, params)
                except Exception as e:  # a bad request fails alone
                    settle(rid, exc=e)
            if not pending:
                continue
            try:
                outputs = self.engine.step()
            except Exception as e:  # engine failure: every waiting request gets it
                self._abort(list(pending))
                for rid in list(pending):
                    settle(rid, exc=e)
                continue
            for out in outputs:
                if out.finished and out.request_id in pending:
                    try:
                        settle(out.request_id, _from_vllm_output(out))
                    except Exception as e:
                        settle(out.request_id, exc=e)

    async def generate(self, request: GenerationRequest) -> GenerationOutput:
        if self._closed:
            raise RuntimeError("backend is closed")
        params = _sampling_params(request, _safe_seed(request.sampling.seed, self._seeds_unsafe))
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        rid = uuid.uuid4().hex
        self._ensure_thread()
        self._inbox.put((rid, list(request.prompt_ids), params, loop, fut))
        try:
            return await fut
        except asyncio.CancelledError:
            self._inbox.put(("abort", rid))
            raise

    async def quiesce(self) -> None:
        """Return once the driver thread has handled every request sent before and has none in flight: the
        caller may then use the `LLM` (e.g. reload weights) until it sends a new request. Requests sent
        meanwhile keep it busy, so stop sending first (`VersionedBackend.pause` does)."""
        if self._closed or self._thread is None or not self._thread.is_alive():
            return
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._inbox.put(("barrier", loop, fut))
        await fut

    def _abort(self, rids: list[str]) -> None:
        if not rids:
            return
        try:
            self.engine.abort_request(rids)
        except Exception as e:  # best effort: the engine may be gone
            logger.debug("abort_request failed: %s", e)

    async def close(self) -> None:
        self._closed = True
        if self._thread is not None and self._thread.is_alive():
            self._inbox.put("stop")
            await asyncio.to_thread(self._thread.join, 30)
        self._thread = None


def _resolve_threadsafe(loop: asyncio.AbstractEventLoop, fut: asyncio.Future, value: Any) -> None:
    def _set() -> None:
        if not fut.done():
            fut.set_result(value)

    try:
        loop.call_soon_threadsafe(_set)
    except RuntimeError:  # the caller's loop is closed; nobody is waiting
        pass


def server_url(url: str) -> str:
    """A vLLM server's base URL as torl calls it: no trailing "/" nor "/v1"."""
    return url.rstrip("/").removesuffix("/v1")


def server_urls(base_urls: str | Sequence[str], who: str) -> list[str]:
    """One base URL or several, normalised (`server_url`); at least one."""
    urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
    if not urls:
        raise ValueError(f"{who} needs at least one base URL")
    return [server_url(u) for u in urls]


class HTTPBackend:
    """vLLM servers (`vllm serve`) over HTTP: `/v1/completions` with token ids in and out.

    Several base URLs (data-parallel replicas) are used together: a request goes to the replica its
    `affinity` key went to before (so a trajectory's turns and a prompt's samples hit one prefix cache),
    otherwise to the replica with the fewest requests in flight. Start the servers with
    `--logprobs-mode processed_logprobs` (and prefix caching, vLLM's default) for trainer-grade logprobs.
    On vLLM CPU servers also pass `--no-enable-chunked-prefill` if you send seeds (see `CPU_SEED_BUG`).
    """

    def __init__(
        self,
        base_urls: str | Sequence[str],
        model: str,
        tokenizer: Any,
        *,
        max_model_len: int | None = None,
        timeout_s: float = 600.0,
        max_connections: int = 256,
    ) -> None:
        self.base_urls = server_urls(base_urls, "HTTPBackend")
        self.model = model
        self.tokenizer = tokenizer
        self.max_model_len = max_model_len
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        self._inflight = [0] * len(self.base_urls)
        self.served = [0] * len(self.base_urls)
        """Requests each replica has answered."""
        self._sticky: OrderedDict[Any, int] = OrderedDict()
        self._rr = itertools.count()
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # one client per event loop

    def _client(self):
        import httpx

        loop = asyncio.get_running_loop()
        c = self._clients.get(loop)
        if c is None:
            limits = httpx.Limits(
                max_connections=self.max_connections, max_keepalive_connections=self.max_connections
            )
            c = httpx.AsyncClient(timeout=self.timeout_s, limits=limits)
            self._clients[loop] = c
        return c

    def query_max_model_len(self) -> int | None:
        """The served model's context length from the first replica's /v1/models (None if not reported)."""
        import httpx

        try:
            r = httpx.get(f"{self.base_urls[0]}/v1/models", timeout=10)
            for m in r.json().get("data", []):
                if m.get("id") == self.model and m.get("max_model_len"):
                    return int(m["max_model_len"])
        except (httpx.HTTPError, ValueError):
            pass
        return None

    def _pick(self, affinity: Any) -> int:
        if affinity is not None and affinity in self._sticky:
            self._sticky.move_to_end(affinity)
            return self._sticky[affinity]
        least = min(self._inflight)
        cands = [i for i, k in enumerate(self._inflight) if k == least]
        i = cands[next(self._rr) % len(cands)]
        if affinity is not None:
            self._sticky[affinity] = i
            if len(self._sticky) > 100_000:
                self._sticky.popitem(last=False)
        return i

    async def generate(self, request: GenerationRequest) -> GenerationOutput:
        sp = request.sampling
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": list(request.prompt_ids),
            "max_tokens": request.max_tokens,
            "temperature": sp.temperature,
            "top_p": sp.top_p,
            "top_k": sp.top_k if sp.top_k and sp.top_k > 0 else 0,
            "stop": list(request.stop),
            "stop_token_ids": list(request.stop_token_ids),
            "include_stop_str_in_output": True,
            "skip_special_tokens": False,
            "logprobs": 0,
            "return_token_ids": True,
        }
        if sp.seed is not None:
            body["seed"] = sp.seed
        import httpx

        affinity = request.affinity
        i = self._pick(affinity)
        for attempt in range(len(self.base_urls)):
            self._inflight[i] += 1
            try:
                r = await self._client().post(f"{self.base_urls[i]}/v1/completions", json=body)
                break
            except httpx.ConnectError:
                if attempt == len(self.base_urls) - 1:
                    raise
                logger.warning("replica %s refused the connection; trying another", self.base_urls[i])
            finally:
                self._inflight[i] -= 1
            # Nothing was generated: this affinity key moves to the next replica.
            i = (i + 1) % len(self.base_urls)
            if affinity is not None:
                self._sticky[affinity] = i
        if r.status_code != 200:
            raise RuntimeError(f"{self.base_urls[i]} answered {r.status_code}: {r.text[:500]}")
        self.served[i] += 1
        choice = r.json()["choices"][0]
        ids = list(choice.get("token_ids") or [])
        if choice.get("token_ids") is None:
            raise RuntimeError(
                "the server returned no token_ids (is it a vLLM server with return_token_ids?)"
            )
        # A logprob the server did not return is NaN (TRL: no importance correction for that token), never
        # 0.0, which would claim probability 1 and drive the importance weight toward 0.
        lp = (choice.get("logprobs") or {}).get("token_logprobs") or [None] * len(ids)
        lps = [float(x) if x is not None else math.nan for x in lp]
        if len(lps) != len(ids):
            raise RuntimeError(f"server returned {len(ids)} token ids but {len(lps)} logprobs")
        fin = choice.get("finish_reason")
        return GenerationOutput(ids, lps, fin if fin in ("stop", "length") else "abort", choice.get("stop_reason"))

    async def close(self) -> None:
        for c in list(self._clients.values()):
            try:
                await c.aclose()
            except Exception as e:  # a client of a loop that is gone
                logger.debug("closing an HTTP client failed: %s", e)
        self._clients.clear()


class TransformersBackend:
    """Hugging Face `model.generate`, one request at a time in a worker thread (slow: for debugging and
    tiny CPU runs). Logprobs are those of the processed scores (after temperature, top-k, top-p)."""

    def __init__(self, model: Any, tokenizer: Any, *, max_model_len: int | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        cfg = getattr(model, "config", None)
        self.max_model_len = max_model_len or getattr(cfg, "max_position_embeddings", None)
        self._lock = threading.Lock()

    @classmethod
    def from_model(cls, model: str, **kwargs: Any) -> TransformersBackend:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        m = AutoModelForCausalLM.from_pretrained(str(model), dtype=kwargs.pop("dtype", torch.float32))
        m.eval()
        return cls(m, AutoTokenizer.from_pretrained(str(model)), **kwargs)

    def _generate(self, prompt_ids, max_tokens, temperature, top_p, top_k, seed, stop, stop_token_ids):
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        tok = self.tokenizer
        n_prompt = len(prompt_ids)
        hit: list[str] = []

        class _StopStrings(StoppingCriteria):
            # vLLM's rule: stop once the generated text contains a stop string; the token that completed it stays.
            def __call__(self, input_ids, scores, **kw):
                gen = input_ids[0, n_prompt:].tolist()
                tail = tok.decode(gen[-32:], skip_special_tokens=False)
                for s in stop:
                    if s in tail and s in tok.decode(gen, skip_special_tokens=False):
                        hit.append(s)
                        return torch.ones(1, dtype=torch.bool, device=input_ids.device)
                return torch.zeros(1, dtype=torch.bool, device=input_ids.device)

        eos = self.model.generation_config.eos_token_id
        eos_ids = ([eos] if isinstance(eos, int) else list(eos or [])) + list(stop_token_ids)
        greedy = temperature <= 0
        kw: dict[str, Any] = {
            "max_new_tokens": max_tokens,
            "do_sample": not greedy,
            "eos_token_id": eos_ids,
            "pad_token_id": eos_ids[0] if eos_ids else None,
            "return_dict_in_generate": True,
            "output_scores": True,
            "output_logits": True,
            "stopping_criteria": StoppingCriteriaList([_StopStrings()]) if stop else None,
        }
        if not greedy:
            kw.update(temperature=temperature, top_p=top_p, top_k=top_k if top_k and top_k > 0 else 0)
        with self._lock, torch.no_grad():
            device = next(self.model.parameters()).device
            if device.type == "cuda":  # a worker thread starts on GPU 0
                select_cuda_device(device.index)
            if seed is not None:
                torch.manual_seed(seed)
            inp = torch.tensor([list(prompt_ids)], device=device)
            out = self.model.generate(inp, attention_mask=torch.ones_like(inp), **kw)
        ids = out.sequences[0, n_prompt:].tolist()
        steps = out.logits if greedy else out.scores
        lps = [float(torch.log_softmax(s[0].float(), -1)[t]) for s, t in zip(steps, ids)]
        ids, lps = ids[: len(steps)], lps[: len(steps)]
        if hit:
            return GenerationOutput(ids, lps, "stop", hit[0])
        if ids and ids[-1] in stop_token_ids:
            return GenerationOutput(ids, lps, "stop", ids[-1])
        if ids and ids[-1] in eos_ids:
            return GenerationOutput(ids, lps, "stop", None)
        return GenerationOutput(ids, lps, "length" if len(ids) >= max_tokens else "stop", None)

    async def quiesce(self) -> None:
        """Return once no `generate` call is running in a worker thread (a cancelled call keeps running
        there until it ends): the caller may then change the model's weights."""
        await asyncio.to_thread(lambda: self._lock.acquire() and self._lock.release())

    async def generate(self, request: GenerationRequest) -> GenerationOutput:
        sp = request.sampling
        return await asyncio.to_thread(
            self._generate,
            list(request.prompt_ids),
            request.max_tokens,
            sp.temperature,
            sp.top_p,
            sp.top_k,
            sp.seed,
            list(request.stop),
            list(request.stop_token_ids),
        )

    async def close(self) -> None:
        pass
