"""Run by test_multiprocess.py under torchrun: 2 CPU processes (gloo), transformers backend, 2 steps."""

import json
import os
import sys

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def main(model_path: str, out: str) -> None:
    from datasets import Dataset

    from torl.data import torl_prompt
    from torl.rewards import ToRLReward
    from torl.tools import LocalSandbox, PythonTool
    from torl.trainers import TIRGRPOConfig, TIRGRPOTrainer

    ds = Dataset.from_dict({"prompt": [torl_prompt("What is 12 * 34 + 5?")] * 4, "answer": ["413"] * 4})
    args = TIRGRPOConfig(
        output_dir=out, use_cpu=True, bf16=False, report_to=[], logging_steps=1, seed=0, save_strategy="no",
        per_device_train_batch_size=2, num_generations=2, max_steps=2, learning_rate=1e-4,
        max_completion_length=96, max_tool_calls=2, save_trajectories_steps=1,
    )
    trainer = TIRGRPOTrainer(model=model_path, reward_funcs=[ToRLReward()], args=args, train_dataset=ds,
                             tool=PythonTool(LocalSandbox(timeout_s=5, workers=1)))
    trainer.train()
    trainer.close()
    local = [{"reward": t.reward_breakdown["torl"], "advantage": t.metadata["advantage"]}
             for t in trainer.last_trajectories]
    with open(os.path.join(out, f"rank{trainer.accelerator.process_index}.json"), "w") as f:
        json.dump({"world": trainer.accelerator.num_processes, "local": local,
                   "logs": [h for h in trainer.state.log_history if "loss" in h]}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
