"""The nano ToRL run (what `make nano` runs): a tiny model learns to use a Python tool with GRPO, on CPU.

    python examples/nano/run.py                   # the full run (~10 min on 2 quiet cores)
    python examples/nano/run.py --steps 5 --eval-problems 40 --out /tmp/nano   # a quick look
    python examples/nano/run.py --async           # asynchronous GRPO, rollouts one version ahead

It pretrains a tiny Qwen2 on synthetic arithmetic word problems (cached), measures it on held-out
problems, trains it with torl's TIRGRPOTrainer (vLLM on CPU, local sandbox, ToRL reward), measures it
again, and prints a before/after table; the HTML report (trajectories, training curves) goes to
<out>/report.html.
"""

from __future__ import annotations

import argparse
import os


def main() -> None:
    from torl.nano.pretrain import PretrainConfig
    from torl.nano.run import NanoConfig, run

    d = NanoConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=d.output_dir, help="output folder (results.json, report.html, model)")
    p.add_argument("--steps", type=int, default=d.steps, help="GRPO steps")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the RL run")
    p.add_argument("--pretrain-seed", type=int, default=PretrainConfig().seed, help="seed of the pretraining")
    p.add_argument("--pretrain-steps", type=int, default=PretrainConfig().steps, help="pretraining steps")
    p.add_argument("--eval-problems", type=int, default=d.eval_problems, help="held-out problems")
    p.add_argument("--cache-dir", default=None, help="pretrained model cache (default ~/.cache/torl/nano)")
    p.add_argument("--async", dest="max_staleness", type=int, nargs="?", const=1, default=None, metavar="K",
                   help="train asynchronously, rollouts up to K policy versions ahead (default K: 1)")
    a = p.parse_args()
    cfg = NanoConfig(
        output_dir=a.out,
        steps=a.steps,
        seed=a.seed,
        eval_problems=a.eval_problems,
        cache_dir=a.cache_dir,
        max_staleness=a.max_staleness,
        pretrain=PretrainConfig(seed=a.pretrain_seed, steps=a.pretrain_steps),
    )
    run(cfg)


if __name__ == "__main__":  # vLLM's CPU engine may spawn processes: keep the entry point guarded
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
