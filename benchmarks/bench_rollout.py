"""Rollout throughput: asynchronous TIR rollouts against plain generation and against a lockstep loop.

Workload (same run, same engine, tiny random Qwen2 on vLLM): each trajectory's turn ends on one of a few
stop tokens (a geometric turn length of ~200 tokens, as a random model picks them), every stop is a tool
call to a sandbox whose latency is drawn from [50, 500] ms, up to `--calls` calls per trajectory.

Prints three throughputs of model-generated tokens per second and two ratios:
- TIR / plain: the same token counts generated in one single-turn request per trajectory (ignore_eos);
- TIR / lockstep: generate the whole batch's turn, wait for every cell, generate again.

    python benchmarks/bench_rollout.py [--prompts 16] [--n 4] [--calls 3] [--max-new-tokens 600]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
import uuid
from pathlib import Path

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from torl.core import Tool, ToolCall, ToolResult
from torl.rollout import GenerationRequest, Sampling, TIRFormat, TIRRollout


class StopTokenFormat(TIRFormat):
    """Every turn that ends on one of `ids` is one tool call; output rendered as a short ```output block."""

    name = "bench"

    def __init__(self, ids: list[int]) -> None:
        self.ids = ids

    def stop_token_ids(self) -> list[int]:
        return self.ids

    def parse_calls(self, text: str, stopped: bool) -> list[ToolCall]:
        return [ToolCall(code="print(6 * 7)")] if stopped else []

    def render(self, text, calls, results) -> str:
        return "\n```output\n" + "\n".join(r.output.strip() for r in results) + "\n```\n"


class SleepyTool(Tool):
    """A sandbox stand-in whose cells take a random 50-500 ms (seeded)."""

    name = "python"

    def __init__(self, seed: int = 0, lo: float = 0.05, hi: float = 0.5) -> None:
        self.rng = random.Random(seed)
        self.lo, self.hi = lo, hi

    async def run(self, call: ToolCall) -> ToolResult:
        await asyncio.sleep(self.rng.uniform(self.lo, self.hi))
        return ToolResult(output="42\n")


async def plain(engine, trajs, temperature: float) -> tuple[float, int]:
    """Single-turn generation of each trajectory's model-token count (the throughput ceiling)."""
    from vllm import SamplingParams

    async def one(t):
        k = max(1, t.num_model_tokens)
        p = SamplingParams(max_tokens=k, ignore_eos=True, temperature=temperature, logprobs=0)
        async for _ in engine.generate({"prompt_token_ids": t.prompt_ids}, p, uuid.uuid4().hex):
            pass
        return k

    t0 = time.perf_counter()
    counts = await asyncio.gather(*(one(t) for t in trajs))
    return time.perf_counter() - t0, sum(counts)


async def lockstep(rollout: TIRRollout, prompts, n, temperature) -> tuple[float, int]:
    """Generate every live trajectory's turn, wait for all; run every cell, wait for all; repeat."""
    be, fmt, tok = rollout.backend, rollout.format, rollout.tokenizer
    states = []
    for i, p in enumerate(prompts):
        ids = fmt.encode_prompt(p, tok)
        states += [
            {"ids": list(ids), "n_prompt": len(ids), "calls": 0, "model": 0, "done": False} for _ in range(n)
        ]
    t0 = time.perf_counter()
    turn = 0
    while live := [s for s in states if not s["done"]]:

        async def gen(s):
            room = rollout.max_new_tokens - (len(s["ids"]) - s["n_prompt"])
            return await be.generate(
                GenerationRequest(
                    s["ids"], room, Sampling(temperature=temperature), stop_token_ids=tuple(fmt.stop_token_ids())
                )
            )

        outs = await asyncio.gather(*(gen(s) for s in live))
        to_run = []
        for s, o in zip(live, outs):
            s["ids"] += o.token_ids
            s["model"] += len(o.token_ids)
            stopped = o.finish_reason == "stop" and o.stop_reason in fmt.stop_token_ids()
            if not stopped or s["calls"] >= rollout.max_tool_calls:
                s["done"] = True
            else:
                to_run.append(s)
        results = await asyncio.gather(*(rollout.tool.run(ToolCall(code="print(6 * 7)")) for _ in to_run))
        for s, r in zip(to_run, results):
            s["calls"] += 1
            env = fmt.encode_env(fmt.render("", [], [r]), tok)
            room = rollout.max_new_tokens - (len(s["ids"]) - s["n_prompt"])
            s["ids"] += env[:room]
            if len(env) >= room:
                s["done"] = True
        turn += 1
    return time.perf_counter() - t0, sum(s["model"] for s in states)


async def main(args) -> None:
    from torl.testing import build_tiny_model

    path = args.model or build_tiny_model(Path.home() / ".cache" / "torl-test" / "tiny-qwen2")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    rng = random.Random(0)
    stop_ids = rng.sample(range(10, len(tok) - 3), args.stop_tokens)
    fmt = StopTokenFormat(stop_ids)
    rollout = TIRRollout.from_vllm(
        path,
        tool=SleepyTool(),
        tir_format=fmt,
        max_tool_calls=args.calls,
        max_new_tokens=args.max_new_tokens,
        engine_kwargs={"max_model_len": 2048, "dtype": "float32", "max_num_seqs": 256},
    )
    prompts = [f"Problem {i}: what is {i} * {i + 3}? Let me think." for i in range(args.prompts)]
    # warm-up (engine graphs, prefix cache for the prompts is reset by different seeds anyway)
    await rollout.generate(prompts[:2], n=2, temperature=1.0)

    best = {"plain": 0.0, "tir": 0.0, "lock": 0.0}
    for rep in range(args.repeats):  # interleaved, best of: the machine is shared
        t0 = time.perf_counter()
        trajs = await rollout.generate(prompts, n=args.n, temperature=1.0)
        tir_s = time.perf_counter() - t0
        tir_model = sum(t.num_model_tokens for t in trajs)
        best["tir"] = max(best["tir"], tir_model / tir_s)
        plain_s, plain_model = await plain(rollout.backend.engine, trajs, 1.0)
        best["plain"] = max(best["plain"], plain_model / plain_s)
        rollout.tools = {"python": SleepyTool(seed=rep)}
        lock_s, lock_model = await lockstep(rollout, prompts, args.n, 1.0)
        best["lock"] = max(best["lock"], lock_model / lock_s)
        rollout.tools = {"python": SleepyTool(seed=100 + rep)}
    tir_all = sum(len(t.completion_ids) for t in trajs)
    calls = sum(t.num_tool_calls for t in trajs)
    errors = sum(t.finish_reason == "error" for t in trajs)
    await rollout.close()

    tir_tps, lock_tps, plain_tps = best["tir"], best["lock"], best["plain"]
    print(
        f"trajectories {len(trajs)}  tool calls {calls}  errors {errors}  model tokens {tir_model}  "
        f"with tool tokens {tir_all}"
    )
    print(f"(best of {args.repeats}, last run's counts)")
    print(f"plain single-turn : {plain_tps:8.1f} model tok/s")
    print(f"TIR async         : {tir_tps:8.1f} model tok/s")
    print(f"TIR lockstep      : {lock_tps:8.1f} model tok/s")
    print(f"ratio TIR/plain    = {tir_tps / plain_tps:.2f}x   (target >= 0.8x)")
    print(f"ratio TIR/lockstep = {tir_tps / lock_tps:.2f}x   (target >= 1.5x)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model path (default: the cached tiny random Qwen2)")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--calls", type=int, default=3, help="tool-call budget per trajectory")
    ap.add_argument("--max-new-tokens", type=int, default=600)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--stop-tokens", type=int, default=4, help="how many token ids end a turn (turn length)")
    asyncio.run(main(ap.parse_args()))
