"""Asynchronous training: steps per hour and model tokens per second, synchronous vs max_staleness=1 and 2.

One run, one colocated vLLM engine (CPU) shared by every configuration, the nano model and task (as
`make nano`: ToRL format, one tool call, the ToRL reward, GRPO), on two sandboxes:
(a) the local sandbox as the nano run uses it; (b) the same sandbox with cells that really sleep 0.5-2 s
(a seeded draw per cell, prepended to the model's code), the long tail TIR suffers from.

Each configuration trains `--steps` steps from the same pretrained model; the rates are measured from the end
of the first step to the end of the last (the first step includes the warm-up and, asynchronously, fills the
queue). Ratios are against the synchronous trainer of the same task in the same run. Idle times are per
step, as the asynchronous trainer logs them (`tir/trainer_idle_s`, `tir/generator_idle_s`).

    python benchmarks/bench_async.py [--steps 8] [--prompts 8] [--n 8] [--tasks a,b] [--staleness 1,2]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import time

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from torl.core import Tool, ToolCall, ToolResult
from torl.testing import WrappingTool


class SleepyCells(WrappingTool):
    """The local sandbox, each cell preceded by a real `time.sleep` of 0.5-2 s (seeded)."""

    def __init__(self, inner: Tool, seed: int = 0, lo: float = 0.5, hi: float = 2.0) -> None:
        super().__init__(inner)
        self.rng, self.lo, self.hi = random.Random(seed), lo, hi

    async def run(self, call: ToolCall) -> ToolResult:
        pause = self.rng.uniform(self.lo, self.hi)
        code = f"import time as _bench_t\n_bench_t.sleep({pause:.3f})\n{call.code}"
        return await self.inner.run(call.model_copy(update={"code": code}))


def build_llm(model_dir: str, max_num_seqs: int):
    from trl.trainer.utils import ensure_master_addr_port
    from vllm import LLM

    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
    ensure_master_addr_port()
    return LLM(model=model_dir, dtype="float32", max_model_len=256, enable_prefix_caching=True,
               logprobs_mode="processed_logprobs", distributed_executor_backend="external_launcher",
               max_num_seqs=max_num_seqs, seed=0)


def run_config(llm, model_dir: str, train_ds, task: str, staleness: int | None, a) -> dict:
    from transformers import TrainerCallback

    from torl.rewards import ToRLReward
    from torl.rollout import TIRRollout
    from torl.tools import LocalSandbox, PythonTool
    from torl.trainers import AsyncTIRGRPOConfig, AsyncTIRGRPOTrainer, TIRGRPOConfig, TIRGRPOTrainer

    sandbox = PythonTool(LocalSandbox(timeout_s=5, workers=a.workers, preload=()))
    tool = SleepyCells(sandbox, seed=a.seed) if task == "b" else sandbox
    rollout = TIRRollout.from_llm(llm, tool=tool, max_tool_calls=1, max_new_tokens=96)
    common = {
        "output_dir": f"/tmp/bench-async-{task}-{staleness}", "max_steps": a.steps,
        "per_device_train_batch_size": a.prompts * a.n, "num_generations": a.n, "learning_rate": 3e-4,
        "lr_scheduler_type": "constant", "warmup_steps": 0, "beta": 0.0, "temperature": 1.0,
        "max_completion_length": 96, "max_tool_calls": 1, "use_vllm": True, "vllm_mode": "colocate",
        "logging_steps": 1, "save_strategy": "no", "report_to": [], "use_cpu": True, "seed": a.seed, "bf16": False,
        "save_trajectories_steps": 0, "disable_tqdm": True,
    }
    if staleness is None:
        trainer_cls, args = TIRGRPOTrainer, TIRGRPOConfig(**common)
    else:
        trainer_cls, args = AsyncTIRGRPOTrainer, AsyncTIRGRPOConfig(**common, max_staleness=staleness)
    ends: list[float] = []
    tokens: list[int] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            ends.append(time.perf_counter())
            tokens.append(sum(t.num_model_tokens for t in trainer.last_trajectories or []))

    trainer = trainer_cls(model=model_dir, reward_funcs=[ToRLReward()], args=args, train_dataset=train_ds,
                          rollout=rollout, callbacks=[Clock()])
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    try:
        trainer.train()
    finally:
        trainer.close()
        rollout._run(tool.close())
        rollout.close_sync()
    span = ends[-1] - ends[0]
    logs = [h for h in trainer.state.log_history if "tir/accuracy" in h]
    out = {
        "steps_per_hour": 3600 * (len(ends) - 1) / span,
        "model_tokens_per_s": sum(tokens[1:]) / span,
        "accuracy": sum(h["tir/accuracy"] for h in logs) / len(logs),
    }
    for key in ("staleness_mean", "trainer_idle_s", "generator_idle_s"):
        vals = [h[f"tir/{key}"] for h in logs[1:] if f"tir/{key}" in h]
        out[key] = sum(vals) / len(vals) if vals else float("nan")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=8, help="training steps per configuration")
    p.add_argument("--prompts", type=int, default=8, help="prompts per step")
    p.add_argument("--n", type=int, default=8, help="samples per prompt (GRPO group)")
    p.add_argument("--workers", type=int, default=32,
                   help="sandbox workers: enough for the cells in flight, so (b) measures the cells' latency, not a queue")
    p.add_argument("--tasks", default="a,b", help="a: the nano task; b: the same with 0.5-2 s cells")
    p.add_argument("--staleness", default="1,2", help="the asynchronous configurations to measure")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads for the trainer and the in-process engine (default: as the nano run picks)")
    a = p.parse_args()

    import torch
    from datasets import Dataset

    from torl.nano.pretrain import PretrainConfig, default_cache_dir, pick_threads, pretrain
    from torl.nano.run import NanoConfig, train_eval_split

    model_dir = str(pretrain(PretrainConfig(), default_cache_dir()))
    train, _ = train_eval_split(NanoConfig(seed=a.seed))
    ds = Dataset.from_dict({"prompt": [x.prompt for x in train], "answer": [x.answer for x in train]})
    threads = a.threads or pick_threads()
    torch.set_num_threads(threads)  # before vLLM starts: its CPU worker then locks the count
    llm = build_llm(model_dir, a.prompts * a.n)
    configs: list[int | None] = [None] + [int(k) for k in a.staleness.split(",") if k]
    results: dict[tuple[str, int | None], dict] = {}
    for task in a.tasks.split(","):
        for k in configs:
            t0 = time.perf_counter()
            results[task, k] = r = run_config(llm, model_dir, ds, task, k, a)
            print(f"[{task}] {'sync' if k is None else f'max_staleness={k}'}: {r}  ({time.perf_counter() - t0:.0f}s)",
                  flush=True)

    print(f"\n{a.steps} steps x {a.prompts} prompts x {a.n} samples per configuration, seed {a.seed}, "
          f"{threads} torch thread(s), {a.workers} sandbox workers, load average {os.getloadavg()[0]:.1f}")
    print(f"{'task':<6}{'trainer':<18}{'steps/h':>9}{'x sync':>8}{'tok/s':>8}{'x sync':>8}{'stale':>7}"
          f"{'trainer idle s':>16}{'gen idle s':>12}")
    for (task, k), r in results.items():
        base = results[task, None]
        name = "synchronous" if k is None else f"max_staleness={k}"
        print(f"{task:<6}{name:<18}{r['steps_per_hour']:>9.0f}{r['steps_per_hour'] / base['steps_per_hour']:>8.2f}"
              f"{r['model_tokens_per_s']:>8.0f}{r['model_tokens_per_s'] / base['model_tokens_per_s']:>8.2f}"
              f"{_num(r['staleness_mean'], 7)}{_num(r['trainer_idle_s'], 16)}{_num(r['generator_idle_s'], 12)}")


def _num(x: float, width: int) -> str:
    return f"{'-':>{width}}" if math.isnan(x) else f"{x:>{width}.2f}"


if __name__ == "__main__":  # vLLM's CPU engine may spawn processes: keep the entry point guarded
    main()
