"""`AsyncTIRGRPOTrainer` with the transformers backend (generation runs on a copy of the policy): settings
are checked, a batch where every rollout failed stops both sides, a hung sandbox times out, Ctrl-C and
close() stop the producer, and a resumed run regenerates its queue under the restored weights."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import threading

import pytest
import torch

from torl.core import Tool, ToolCall, ToolResult
from torl.rollout import GenerationOutput, TIRRollout

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def _dataset(prompt: str | None = None, n: int = 8):
    from datasets import Dataset

    from torl.data import torl_prompt

    return Dataset.from_dict({"prompt": [prompt or torl_prompt("What is 12 * 34 + 5?")] * n, "answer": ["413"] * n})


def _args(out, **kw):
    from torl.trainers import AsyncTIRGRPOConfig

    base = {
        "output_dir": str(out), "use_cpu": True, "bf16": False, "report_to": [], "save_strategy": "no",
        "logging_steps": 1, "per_device_train_batch_size": 8, "num_generations": 4, "max_steps": 2,
        "learning_rate": 1e-4, "seed": 0, "max_completion_length": 64, "max_tool_calls": 1,
        "save_trajectories_steps": 0, "max_staleness": 1,
    }
    return AsyncTIRGRPOConfig(**{**base, **kw})


def _trainer(model_path, args, dataset=None, **kw):
    from torl.rewards import ToRLReward
    from torl.trainers import AsyncTIRGRPOTrainer

    return AsyncTIRGRPOTrainer(model=model_path, reward_funcs=[ToRLReward()], args=args,
                               train_dataset=dataset or _dataset(), **kw)


def test_settings_are_checked(tir_model_path, tmp_path):
    from torl.trainers import AsyncTIRGRPOConfig

    for bad, match in (({"max_staleness": -1}, "max_staleness"), ({"stale_trajectories": "keep"}, "stale"),
                       ({"inflight_turns": "pause"}, "inflight_turns"), ({"off_policy_correction": "x"}, "off_policy"),
                       ({"behaviour_weight_cap": 1.0}, "behaviour_weight_cap")):
        with pytest.raises(ValueError, match=match):
            _args(tmp_path, **bad)
    with pytest.raises(ValueError, match="one generation batch per optimizer step"):
        _trainer(tir_model_path, _args(tmp_path, steps_per_generation=2))
    with pytest.raises(TypeError, match="load"):
        _trainer(tir_model_path, _args(tmp_path), weight_sync=object())
    with pytest.raises(TypeError, match="AsyncTIRGRPOConfig"):
        from torl.trainers import TIRGRPOConfig

        _trainer(tir_model_path, TIRGRPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to=[]))
    assert AsyncTIRGRPOConfig(output_dir=str(tmp_path), use_cpu=True).off_policy_correction == "decoupled"


def test_behaviour_weights():
    from torl.trainers import behaviour_weights

    prox = torch.tensor([[0.0, -1.0, -1.0, 0.0, -2.0]])
    behav = torch.tensor([[0.0, -2.0, -1.0, -3.0, float("nan")]])
    mask = torch.tensor([[1, 1, 0, 1, 1]])  # position 2 is a tool token
    w = behaviour_weights(prox, behav, mask, cap=5.0)
    assert torch.allclose(w, torch.tensor([[1.0, math.e, 0.0, 0.0, 1.0]]))  # exp(3) > 5: capped out
    assert behaviour_weights(prox, behav, mask, cap=None)[0, 3].item() == pytest.approx(math.exp(3))


def test_every_rollout_failing_stops_both_sides(tir_model_path, tmp_path):
    """A prompt longer than the model's context fails every rollout (a broken setup, like a dead engine): the
    trainer stops with the cause, the producer is stopped, and the engine's loop is free."""
    trainer = _trainer(tir_model_path, _args(tmp_path), dataset=_dataset("x " * 5000))
    with pytest.raises(RuntimeError, match="every rollout of the batch failed; first error: .*does not fit"):
        trainer.train()
    assert trainer._run_ahead is None
    trainer.rollout._run(asyncio.sleep(0))
    trainer.close()


class _Hung(Tool):
    """A sandbox that never answers."""

    name = "python"
    calls = 0

    async def run(self, call: ToolCall) -> ToolResult:
        type(self).calls += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def test_a_hung_sandbox_times_out_and_training_goes_on(tir_model_path, tmp_path):
    trainer = _trainer(tir_model_path, _args(tmp_path, tool_timeout_s=0.5, temperature=0.5), tool=_Hung())
    try:
        trainer.train()
        assert trainer.state.global_step == 2
        assert _Hung.calls > 0
        timed_out = [r for t in trainer.last_trajectories for r in t.tool_calls]
        assert timed_out and all(r.result.status == "timeout" for r in timed_out)
    finally:
        trainer.close()


class _Blocking:
    """A backend whose turns never end (an engine that hangs); records that it was cancelled."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer, self.max_model_len = tokenizer, 1024
        self.entered = threading.Event()
        self.cancelled = threading.Event()

    async def generate(self, request) -> GenerationOutput:
        self.entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        pass


def _interrupt_when(event: threading.Event) -> threading.Thread:
    def go() -> None:
        if event.wait(120):
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def test_ctrl_c_stops_the_producer_and_close_releases_the_engine(tir_model_path, tmp_path):
    from transformers import AutoTokenizer

    backend = _Blocking(AutoTokenizer.from_pretrained(tir_model_path))
    rollout = TIRRollout(backend, max_tool_calls=0, max_new_tokens=16)
    with pytest.warns(UserWarning, match="stale policy"):
        trainer = _trainer(tir_model_path, _args(tmp_path), rollout=rollout)
    t = _interrupt_when(backend.entered)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()  # waits for a batch that never comes
    t.join()
    assert backend.cancelled.is_set() and trainer._run_ahead is None  # the producer stopped on the way out
    trainer.close()
    rollout.close_sync()


def test_a_hung_reward_stops_cleanly_on_ctrl_c(tir_model_path, tmp_path):
    """The trainer hangs in a reward while the producer runs ahead (and stops at the bound); Ctrl-C stops
    both sides."""
    import time

    from torl.rewards import ToRLReward
    from torl.trainers import AsyncTIRGRPOTrainer

    entered = threading.Event()

    def hung(prompts, completions, **kw):
        entered.set()
        for _ in range(6000):  # Python code: a Ctrl-C that lands on another thread is seen within 0.1 s
            time.sleep(0.1)

    trainer = AsyncTIRGRPOTrainer(model=tir_model_path, reward_funcs=[ToRLReward(), hung], args=_args(tmp_path),
                                  train_dataset=_dataset())
    t = _interrupt_when(entered)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    t.join()
    assert trainer._run_ahead is None
    trainer.rollout._run(asyncio.sleep(0))  # the engine's loop is free
    trainer.close()


def test_resume_regenerates_the_queue_under_the_restored_weights(tir_model_path, tmp_path):
    first = _trainer(tir_model_path, _args(tmp_path, max_steps=2, save_strategy="steps", save_steps=2))
    first.train()
    first.close()
    ckpt = tmp_path / "checkpoint-2"
    assert ckpt.is_dir()
    resumed = _trainer(tir_model_path, _args(tmp_path, max_steps=3))
    try:
        resumed.train(resume_from_checkpoint=str(ckpt))
        assert resumed.state.global_step == 3 and resumed.policy_version == 2
        trajs = resumed.last_trajectories
        assert {v for t in trajs for v in t.versions} == {2}  # nothing ran ahead of the restored weights
        # the generation copy holds the restored (trained) weights, not the initial ones
        gen = dict(resumed._gen_model.named_parameters())
        from safetensors.torch import load_file

        saved = load_file(str(ckpt / "model.safetensors"))
        name = next(iter(saved))
        assert torch.equal(gen[name], saved[name])
    finally:
        resumed.close()


def test_a_recipe_with_max_staleness_trains_asynchronously(tir_model_path, tmp_path, monkeypatch):
    """`torl train` on the ZERO-TIR recipe with `trainer.max_staleness` set: AReaL's asynchronous mode."""
    from tests.trainers.test_recipes import RECIPES, tiny_recipe_args
    from torl.cli import main as torl_main
    from torl.core import load_jsonl

    monkeypatch.setenv("TORL_DATA_DIR", str(tmp_path))  # the recipe names its data under it (overridden below)
    tiny = tiny_recipe_args(tir_model_path, tmp_path, "trainer.max_staleness=1", steps=2)
    assert torl_main(["train", str(RECIPES / "zero_tir_1.5b.yaml"), "--set", *tiny]) == 0
    saved = load_jsonl(tmp_path / "run" / "trajectories" / "step_000001.jsonl")
    assert saved and all(t.versions and t.metadata["staleness"] <= 1 for t in saved)
