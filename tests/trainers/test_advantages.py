"""AReaL ZERO-TIR-RL's group advantages (`advantage_mode="zero_tir"`): golden values, and one real GRPO
step on the tiny model that uses them."""

from __future__ import annotations

import math
import os

import pytest
import torch

from torl.trainers.advantages import zero_tir_advantages

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def test_zero_tir_advantages_golden():
    nan = float("nan")
    rewards = torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, nan, 0, 0])
    adv, keep = zero_tir_advantages(rewards, 4)
    # (r - 0.25) / (sqrt(0.1875) + 1e-6): population std; TRL: sample std 0.5 + 1e-4 gives 1.4997
    assert adv[:4].tolist() == pytest.approx([1.7320468, -0.5773489, -0.5773489, -0.5773489], abs=1e-6)
    assert keep.tolist() == [True] * 4 + [False] * 4 + [True] * 8  # the all-zero group is dropped
    assert adv[4:12].tolist() == [0.0] * 8
    # a missing reward (NaN) is left out of its group's mean and std and gets advantage 0
    assert adv[12:].tolist() == pytest.approx([1.4142106, 0.0, -0.7071053, -0.7071053], abs=1e-6)
    # mean 0 drops a group whatever the scale: meant for 1 / 0 rewards (with +1 / -1 it drops 2-of-4 groups)
    assert zero_tir_advantages(torch.tensor([1.0, -1, -1, 1]), 4)[1].tolist() == [False] * 4
    with pytest.raises(ValueError, match="multiple of 4"):
        zero_tir_advantages(torch.zeros(6), 4)


def test_one_step_with_zero_tir_advantages(tir_model_path, tmp_path):
    """A real GRPO step: the trajectories carry AReaL's advantages of their rewards, and the share of
    dropped groups is logged."""
    from datasets import Dataset

    from torl.rewards import MathAnswerReward
    from torl.rollout import torl_prompt
    from torl.tools import LocalSandbox, PythonTool
    from torl.trainers import TIRGRPOConfig, TIRGRPOTrainer

    ds = Dataset.from_dict({"prompt": [torl_prompt("What is 12 * 34 + 5?"), torl_prompt("What is 7 * 8?")] * 2,
                            "answer": ["413", "0"] * 2})  # the second: never right, a dropped group
    args = TIRGRPOConfig(
        output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to=[], logging_steps=1, seed=1,
        per_device_train_batch_size=8, num_generations=4, max_steps=1, learning_rate=1e-4,
        max_completion_length=96, temperature=1.3, max_tool_calls=2, save_strategy="no",
        save_trajectories_steps=0, advantage_mode="zero_tir", loss_type="dapo",
    )
    trainer = TIRGRPOTrainer(model=tir_model_path, reward_funcs=[MathAnswerReward()], args=args, train_dataset=ds,
                             tool=PythonTool(LocalSandbox(timeout_s=5, workers=1)))
    try:
        trainer.train()
    finally:
        trainer.close()
    trajs = trainer.last_trajectories
    rewards = torch.tensor([t.reward_breakdown["math_answer"] for t in trajs])
    want, keep = zero_tir_advantages(rewards, 4)
    assert keep.any() and not keep.all() and want.abs().max() > 0  # a mixed group and a dropped one
    assert [t.metadata["advantage"] for t in trajs] == pytest.approx(want.tolist(), abs=1e-5)
    (log,) = [h for h in trainer.state.log_history if "loss" in h]
    assert log["zero_tir/dropped_groups"] == pytest.approx(1.0 - keep.float().mean().item())
    assert math.isfinite(log["loss"])
