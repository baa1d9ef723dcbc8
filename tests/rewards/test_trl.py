"""The rewards inside TRL 1.16's own reward step (`GRPOTrainer._calculate_rewards`), without a model."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest

from torl.rewards import FormatReward, ToRLReward

trl = pytest.importorskip("trl")
accelerate = pytest.importorskip("accelerate")


def test_grpo_trainer_calculates_our_rewards(pool):
    from trl.trainer.utils import get_callable_name

    funcs = [ToRLReward(pool=pool, execution_penalty=-0.5), FormatReward()]
    metrics: dict[str, list[float]] = defaultdict(list)
    trainer = SimpleNamespace(  # just what _calculate_rewards reads
        accelerator=accelerate.Accelerator(cpu=True),
        reward_funcs=funcs,
        reward_processing_classes=[None, None],
        reward_func_names=[get_callable_name(f) for f in funcs],
        state=SimpleNamespace(global_step=0),
        args=SimpleNamespace(report_to=[]),
        environments=None,
        _log_completion_extra=lambda column, values: None,
        _log_metric=lambda name, value: metrics[name].append(value),
    )
    completions = [
        "```python\nprint(x)\n```\n```output\nNameError: name 'x' is not defined\n```\n\\boxed{1/2}",
        "```python\nprint(3)\n```\n```output\n\\boxed{0.5}\n```\n\\boxed{3}",
    ]
    # dataset columns (answer) and rollout extras (trajectories, None here) reach the reward as kwargs
    inputs = [{"prompt": "p", "answer": "0.5", "trajectories": None} for _ in completions]
    rewards = trl.GRPOTrainer._calculate_rewards(trainer, inputs, ["p", "p"], completions, [[1], [2]])
    assert rewards.tolist() == [[0.5, 1.0], [-1.0, 1.0]]
    assert trainer.reward_func_names == ["torl", "format"]
    assert metrics["torl/correct"] == [0.5] and metrics["torl/execution_penalty"] == [-0.25]
