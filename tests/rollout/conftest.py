"""Helpers for the rollout tests: tools (the real sandbox when present), a recording backend wrapper,
and a scripted backend for failure paths that a real engine cannot be made to hit on demand."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import pytest

from torl.core import Tool, ToolCall, ToolResult
from torl.rollout import GenerationOutput, GenerationRequest
from torl.testing.transcripts import DEFAULT_TRANSCRIPTS, Transcript

TRANSCRIPTS: dict[str, Transcript] = {t.name: t for t in DEFAULT_TRANSCRIPTS}


class SubprocessTool(Tool):
    """Runs each cell in a fresh `python -c` (used when the sandbox package is not there)."""

    name = "python"

    async def run(self, call: ToolCall) -> ToolResult:
        t0 = time.perf_counter()
        p = await asyncio.create_subprocess_exec(sys.executable, "-c", call.code, stdout=-1, stderr=-1)
        out, err = await p.communicate()
        dt = time.perf_counter() - t0
        if p.returncode:
            lines = err.decode().strip().splitlines()
            return ToolResult(
                output=err.decode(), status="error", error=lines[-1] if lines else "error", duration_s=dt
            )
        return ToolResult(output=out.decode(), duration_s=dt)


def make_tool() -> Tool:
    """The project's `PythonTool(LocalSandbox())` when available, else `SubprocessTool`."""
    try:
        from torl.tools import LocalSandbox, PythonTool

        return PythonTool(LocalSandbox(workers=2, preload=()))
    except Exception:  # pragma: no cover - sandbox package not there yet
        return SubprocessTool()


class LatencyTool(Tool):
    """Answers `print(...)` cells by evaluating the argument, after a fixed or per-code latency (no process)."""

    name = "python"

    def __init__(self, latency: float | dict[str, float] = 0.0) -> None:
        self.latency = latency
        self.calls: list[tuple[float, str]] = []

    async def run(self, call: ToolCall) -> ToolResult:
        self.calls.append((time.perf_counter(), call.code))
        lat = self.latency if isinstance(self.latency, float | int) else self.latency.get(call.code, 0.0)
        await asyncio.sleep(lat)
        code = call.code.strip()
        if code.startswith("print(") and code.endswith(")"):
            return ToolResult(output=f"{eval(code[6:-1], {})}\n")
        return ToolResult(output="")


class RecordingBackend:
    """Wraps a backend and records every request's prompt ids and the backend's answer."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.tokenizer = inner.tokenizer
        self.max_model_len = inner.max_model_len
        self.requests: list[tuple[list[int], dict, GenerationOutput]] = []

    async def generate(self, request: GenerationRequest) -> GenerationOutput:
        out = await self.inner.generate(request)
        self.requests.append((list(request.prompt_ids), _kw(request), out))
        return out

    async def close(self) -> None:
        pass


def _kw(request: GenerationRequest) -> dict:
    """A request as the keyword dict the tests look into (prompt ids left out)."""
    return {
        "max_tokens": request.max_tokens,
        "stop": list(request.stop),
        "stop_token_ids": list(request.stop_token_ids),
        "affinity": request.affinity,
        **asdict(request.sampling),
    }


class ScriptedBackend:
    """Answers each request from a script: a function of (prompt_ids, kwargs) -> text, or raises."""

    def __init__(
        self, tokenizer: Any, script, *, max_model_len: int | None = None, delay: float = 0.0
    ) -> None:
        self.tokenizer = tokenizer
        self.max_model_len = max_model_len
        self.script = script
        self.delay = delay
        self.requests: list[tuple[list[int], dict]] = []

    async def generate(self, request: GenerationRequest) -> GenerationOutput:
        prompt_ids, kw = request.prompt_ids, _kw(request)
        max_tokens, stop = request.max_tokens, request.stop
        self.requests.append((list(prompt_ids), kw))
        if self.delay:
            await asyncio.sleep(self.delay)
        text = self.script(prompt_ids, kw)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        hit = next((s for s in stop if s in text), None)
        fin = "stop"
        if len(ids) > max_tokens:
            ids, fin, hit = ids[:max_tokens], "length", None
        return GenerationOutput(ids, [-0.5] * len(ids), fin, hit)

    async def close(self) -> None:
        pass


def check_token_exact(traj, requests) -> None:
    """Turn by turn: each request's prompt is prompt_ids + the completion so far, and the ids the backend
    returned are the model segment's ids, with their logprobs; env tokens are masked with logprob 0."""
    model_segs = [s for s in traj.segments if s.kind == "model"]
    assert len(model_segs) == len(requests)
    for seg, (sent, _kw, out) in zip(model_segs, requests):
        assert sent == traj.prompt_ids + traj.completion_ids[: seg.start]
        assert traj.completion_ids[seg.start : seg.end] == out.token_ids
        assert traj.logprobs[seg.start : seg.end] == out.logprobs
        assert all(m == 1 for m in traj.env_mask[seg.start : seg.end])
    for seg in traj.segments:
        if seg.kind == "tool":
            assert all(m == 0 for m in traj.env_mask[seg.start : seg.end])
            assert all(lp == 0.0 for lp in traj.logprobs[seg.start : seg.end])
    # the segments tile the completion
    assert [s.start for s in traj.segments[1:]] == [s.end for s in traj.segments[:-1]]
    assert traj.segments[0].start == 0 and traj.segments[-1].end == len(traj.completion_ids)


@pytest.fixture(scope="session")
def tir_tokenizer(tir_model_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tir_model_path)


def hf_token_logprobs(
    model_path: str, prompt_ids: list[int], completion_ids: list[int], temperature: float
) -> list[float]:
    """Logprobs of the completion tokens under a float32 transformers forward pass, after temperature."""
    import torch

    model = _hf_model(model_path)
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt_ids) - 1 : -1].float()
    lp = torch.log_softmax(logits / temperature, -1)
    return lp.gather(1, torch.tensor(completion_ids)[:, None])[:, 0].tolist()


_HF: dict = {}


def _hf_model(path: str):
    import torch
    from transformers import AutoModelForCausalLM

    if path not in _HF:
        _HF[path] = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return _HF[path]


def check_transcript(traj, transcript, tokenizer) -> None:
    """The trajectory is the transcript, token for token, with the transcript's env mask."""
    from torl.testing import encode_transcript

    p, c, m = encode_transcript(tokenizer, transcript)
    assert traj.error is None, traj.error
    assert traj.completion_text == "".join(x for _, x in transcript.segments)
    assert tokenizer.decode(traj.completion_ids, skip_special_tokens=False) == traj.completion_text
    assert traj.prompt_ids == p
    assert traj.completion_ids == c
    assert traj.env_mask == m
    assert [(s.kind, s.text) for s in traj.segments] == list(transcript.segments)
    assert traj.finish_reason == "stop"
