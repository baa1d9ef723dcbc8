"""The nano ToRL run: pretrain a tiny model, measure it, train it with GRPO and the tool, measure again.

Everything is real: the vLLM (CPU) rollout engine, the local sandbox, the ToRL reward (+1/-1) and
`TIRGRPOTrainer`. Before/after are measured on held-out problems at temperature 0 (greedy, as ToRL
evaluates), with the trainer's own colocated vLLM engine (weights synced after training).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torl.nano.evaluate import NanoScores, evaluate_nano, nano_table, summarize_nano
from torl.nano.pretrain import PretrainConfig, default_cache_dir, pick_threads, pretrain
from torl.nano.tasks import NanoProblem, make_problems

NANO_ERROR_MESSAGE = "NameError: name 'y' is not defined"
"""The `error` perturbation of the nano run's counterfactuals: the failure of the buggy cells in its data,
after which the model learned to fall back to hand arithmetic. An error text it never saw it copies into
its box like any output, so that removal would say more about the message than about the tool."""


@dataclass
class NanoConfig:
    """The whole nano run. Defaults: the README run (~10 minutes on 2 quiet CPU cores)."""

    output_dir: str = "nano-run"
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    cache_dir: str | None = None
    """Where pretrained models are cached (default: $TORL_CACHE/nano or ~/.cache/torl/nano)."""
    seed: int = 0
    """Seed of the RL run (sampling, data order); the pretraining seed is `pretrain.seed`."""
    steps: int = 30
    prompts_per_step: int = 16
    num_generations: int = 8
    learning_rate: float = 3e-4
    temperature: float = 1.0
    max_completion_length: int = 96
    train_problems: int = 2000
    train_large_share: float = 0.7
    """RL problems are mostly large: small ones are right either way and give no signal (zero advantage)."""
    eval_problems: int = 200
    eval_large_share: float = 0.5
    eval_seed: int = 1_000_003
    eval_samples: int = 4
    """Extra pass@1 estimate over this many samples per problem at the training temperature (0: off)."""
    counterfactual: bool = True
    """Re-run the greedy evaluations' tool calls with the tool disabled, an error and another problem's
    output (`torl.eval.counterfactual`): the reliance on the tool, per problem size."""
    counterfactual_sampled: bool = True
    """The same for the sampled evaluations (`eval_samples`), with the replay control (the recorded output
    again) that measures how often a sampled answer changes by chance."""
    tool_cache: bool = True
    """Answer identical cells of a GRPO group from the tool-result log (`TIRGRPOConfig.tool_cache`)."""
    max_staleness: int | None = None
    """None: synchronous GRPO (`TIRGRPOTrainer`); k: asynchronous (`AsyncTIRGRPOTrainer`), rollouts up to k
    policy versions ahead of training."""

    def __post_init__(self) -> None:
        for name in ("steps", "prompts_per_step", "num_generations", "train_problems", "eval_problems"):
            if getattr(self, name) < 1:
                raise ValueError(f"NanoConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_generations < 2:
            raise ValueError("NanoConfig.num_generations must be >= 2 (GRPO compares samples of a prompt)")
        if self.eval_samples < 0:
            raise ValueError("NanoConfig.eval_samples must be >= 0")
        if self.max_staleness is not None and self.max_staleness < 0:
            raise ValueError(f"NanoConfig.max_staleness must be None or >= 0, got {self.max_staleness}")


def train_eval_split(cfg: NanoConfig) -> tuple[list[NanoProblem], list[NanoProblem]]:
    """RL problems and held-out evaluation problems (no evaluation text appears in the RL set)."""
    train = make_problems(
        cfg.train_problems, cfg.seed + 7, large_share=cfg.train_large_share, cfg=cfg.pretrain.task
    )
    seen = {p.text for p in train}
    pool = make_problems(
        cfg.eval_problems * 3, cfg.eval_seed, large_share=cfg.eval_large_share, cfg=cfg.pretrain.task
    )
    held = [p for p in pool if p.text not in seen]
    small = [p for p in held if p.size == "small"]
    large = [p for p in held if p.size == "large"]
    n_large = round(cfg.eval_problems * cfg.eval_large_share)
    if len(large) < n_large or len(small) < cfg.eval_problems - n_large:
        raise RuntimeError("could not draw enough held-out problems; lower eval_problems")
    return train, large[:n_large] + small[: cfg.eval_problems - n_large]


def _progress_callback(log: Callable[[str], None], total: int):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        t0 = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self.t0 = time.time()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "loss" not in logs and "reward" not in logs:
                return
            g = logs.get
            lag = f"  staleness {g('tir/staleness_mean'):.2f}" if "tir/staleness_mean" in logs else ""
            log(
                f"[grpo] step {state.global_step:>3}/{total}  reward {g('reward', float('nan')):+.3f}  "
                f"accuracy {g('tir/accuracy', float('nan')):.3f}  tool use {g('tir/frac_with_tool_call', float('nan')):.3f}  "
                f"code errors {g('tir/code_error_rate', float('nan')):.3f}  "
                f"cells from the log {g('tir/tool_cache_hit_rate', float('nan')):.3f}{lag}  "
                f"{time.time() - self.t0:.0f}s"
            )

    return Progress()


def run(cfg: NanoConfig | None = None, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the nano job end to end; write results under `cfg.output_dir`; return the results dict."""
    import torch

    threads, setter = torch.get_num_threads(), torch.set_num_threads
    try:
        return _run(cfg, log)
    finally:
        # The run picks torch's thread count for its CPU engine, and vLLM's in-process CPU worker replaces
        # torch.set_num_threads with a no-op: give the caller's process both back (later engines in it,
        # and processes it forks, would otherwise run with the run's count).
        torch.set_num_threads = setter
        setter(threads)


def _run(cfg: NanoConfig | None, log: Callable[[str], None]) -> dict[str, Any]:
    cfg = cfg or NanoConfig()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    t_start = time.time()
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    log("== 1/4 pretraining the nano model (built once, then cached) ==")
    model_dir = pretrain(cfg.pretrain, cfg.cache_dir or default_cache_dir(), log=log)
    t_pretrain = time.time() - t_start

    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer

    from torl.core import ToolResult
    from torl.rewards import ToRLReward
    from torl.rollout import TIRRollout
    from torl.tools import LocalSandbox, PythonTool
    from torl.trainers import AsyncTIRGRPOConfig, AsyncTIRGRPOTrainer, TIRGRPOConfig, TIRGRPOTrainer

    train, held_out = train_eval_split(cfg)
    ds = Dataset.from_dict(
        {
            "prompt": [p.prompt for p in train],
            "answer": [p.answer for p in train],
            "size": [p.size for p in train],
        }
    )
    sync = cfg.max_staleness is None
    config_cls, trainer_cls = (TIRGRPOConfig, TIRGRPOTrainer) if sync else (AsyncTIRGRPOConfig, AsyncTIRGRPOTrainer)
    args = config_cls(
        **({} if sync else {"max_staleness": cfg.max_staleness}),
        output_dir=str(out / "trainer"),
        max_steps=cfg.steps,
        per_device_train_batch_size=cfg.prompts_per_step * cfg.num_generations,
        num_generations=cfg.num_generations,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        beta=0.0,
        temperature=cfg.temperature,
        max_completion_length=cfg.max_completion_length,
        max_tool_calls=1,
        use_vllm=True,
        vllm_mode="colocate",
        vllm_max_model_length=256,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=False,
        save_trajectories_steps=1,
        disable_tqdm=True,
        tool_cache=cfg.tool_cache,
    )
    torch.set_num_threads(pick_threads())  # before vLLM starts: its CPU worker then locks the count
    tool = PythonTool(LocalSandbox(timeout_s=5, preload=()))
    mode = "synchronous" if sync else f"asynchronous, max_staleness={cfg.max_staleness}"
    log(f"== 2/4 building the trainer ({mode}; colocated vLLM engine, local sandbox, ToRL reward) ==")
    trainer = trainer_cls(
        model=str(model_dir),
        tool=tool,
        reward_funcs=[ToRLReward()],
        args=args,
        train_dataset=ds,
        callbacks=[_progress_callback(log, cfg.steps)],
    )
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # our progress line replaces the raw log dicts
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    llm = trainer.vllm_generation.llm

    def measure(name: str) -> dict[str, NanoScores]:
        """Greedy scores (and sampled pass@1 when `eval_samples`); trajectories to eval_<name>.jsonl."""

        async def go() -> dict[str, NanoScores]:
            from torl.core import save_jsonl
            from torl.eval.counterfactual import CounterfactualSettings, run_counterfactuals

            reward = ToRLReward()
            trace = f'Traceback (most recent call last):\n  File "<cell>", line 2, in <module>\n{NANO_ERROR_MESSAGE}\n'
            error = ToolResult.failure("error", NANO_ERROR_MESSAGE, output=trace)

            async with PythonTool(LocalSandbox(timeout_s=5, preload=())) as eval_tool:
                engine = TIRRollout.from_llm(
                    llm,
                    tool=eval_tool,
                    tokenizer=tokenizer,
                    tir_format="torl",
                    max_tool_calls=1,
                    max_new_tokens=cfg.max_completion_length,
                )
                _, trajs = await evaluate_nano(engine, held_out, temperature=0.0, seed=cfg.seed)
                t0 = time.time()
                if cfg.counterfactual:
                    greedy_cf = CounterfactualSettings(temperature=0.0, error=error)
                    await run_counterfactuals(engine, trajs, greedy_cf, reward=reward)
                save_jsonl(trajs, out / f"eval_{name}.jsonl")
                scores = {"greedy": summarize_nano(trajs)}
                if cfg.eval_samples:
                    _, sampled = await evaluate_nano(
                        engine, held_out, n=cfg.eval_samples, temperature=cfg.temperature, seed=cfg.seed + 1
                    )
                    if cfg.counterfactual_sampled:
                        kinds = ("disabled", "error", "swap", "replay")
                        cf = CounterfactualSettings(kinds=kinds, temperature=cfg.temperature, error=error)
                        await run_counterfactuals(engine, sampled, cf, reward=reward)
                    save_jsonl(sampled, out / f"eval_{name}_sampled.jsonl")
                    scores["sampled"] = summarize_nano(sampled)
                cf_seconds[name] = round(time.time() - t0, 1)
                return scores

        return asyncio.run(go())

    cf_seconds: dict[str, float] = {}

    def rows(name: str, scores: dict[str, NanoScores]) -> dict[str, NanoScores]:
        r = {f"{name} greedy": scores["greedy"]}
        if "sampled" in scores:
            r[f"{name} T={cfg.temperature:g}"] = scores["sampled"]
        return r

    try:
        log(f"== 3/4 held-out evaluation before RL ({len(held_out)} problems) ==")
        before = measure("before")
        log(nano_table(rows("before", before)))

        log(
            f"== 4/4 GRPO: {cfg.steps} steps x {cfg.prompts_per_step} prompts x {cfg.num_generations} samples =="
        )
        t_rl = time.time()
        trainer.train()
        t_rl = time.time() - t_rl
        trainer.vllm_generation.sync_weights()  # the engine has the last rollout's weights; take the final ones
        after = measure("after")
        trainer.save_model(str(out / "model"))
    finally:
        trainer.close()  # sandbox workers and the rollout loop thread

    table = nano_table({**rows("before", before), **rows("after", after)})
    metrics_file = out / "metrics.json"
    metrics_file.write_text(json.dumps(trainer.state.log_history, indent=1))
    results = {
        "before": before["greedy"].to_dict(),
        "after": after["greedy"].to_dict(),
        "before_sampled": before["sampled"].to_dict() if "sampled" in before else None,
        "after_sampled": after["sampled"].to_dict() if "sampled" in after else None,
        "seeds": {"pretrain": cfg.pretrain.seed, "rl": cfg.seed, "eval": cfg.eval_seed},
        "model": str(model_dir),
        "config": asdict(cfg),
        "seconds": {
            "pretrain": round(t_pretrain, 1),
            "rl": round(t_rl, 1),
            "counterfactual_and_sampled_eval": cf_seconds,
            "total": round(time.time() - t_start, 1),
        },
    }
    (out / "results.json").write_text(json.dumps(results, indent=1, default=list))
    report = _report(out, metrics_file)
    results["report"] = str(report) if report else None
    log("\n" + table)
    log(
        f"\nseeds: pretrain {cfg.pretrain.seed}, rl {cfg.seed}, eval {cfg.eval_seed}; "
        f"time: {results['seconds']}"
    )
    if report:
        log(f"report: {report}")
    return results


def _report(out: Path, metrics_file: Path) -> Path | None:
    """The HTML report (torl.view): one summary line each for before and after, accuracy, tool use and
    reliance side by side per problem size, the trajectories (with provenance and counterfactual runs)
    and the training curves."""
    try:
        from torl.view import write_report
    except ImportError:
        return None
    files = [out / f"eval_{name}.jsonl" for name in ("before", "after", "before_sampled", "after_sampled")]
    files = [f for f in files if f.exists()]
    return write_report(out / "report.html", files, metrics_file, title="torl nano run")
