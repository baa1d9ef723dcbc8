"""Real GRPO steps with the transformers backend (the trainer's own model generates): training, a failing
trajectory in the batch, and checkpoint/resume that reproduces the uninterrupted run exactly."""

from __future__ import annotations

import math
import os

import pytest
import torch

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

def _dataset():
    """Four rows of the problem the TIR model knows (mixed rewards at temperature 1), told apart by id."""
    from datasets import Dataset

    from torl.data import torl_prompt

    return Dataset.from_dict({"prompt": [torl_prompt("What is 12 * 34 + 5?")] * 4, "answer": ["413"] * 4,
                              "id": ["a", "b", "c", "d"]})


def _args(out, **kw):
    from torl.trainers import TIRGRPOConfig

    base = {
        "output_dir": str(out), "use_cpu": True, "bf16": False, "report_to": [], "logging_steps": 1, "seed": 0,
        "per_device_train_batch_size": 8, "num_generations": 4, "max_steps": 4, "learning_rate": 1e-4,
        "max_completion_length": 96, "temperature": 1.0, "max_tool_calls": 2, "save_trajectories_steps": 1,
        "save_strategy": "steps", "save_steps": 2,
    }
    return TIRGRPOConfig(**{**base, **kw})


def _trainer(model_path, args, **kw):
    from torl.rewards import ToRLReward
    from torl.tools import LocalSandbox, PythonTool
    from torl.trainers import TIRGRPOTrainer

    kw.setdefault("tool", PythonTool(LocalSandbox(timeout_s=5, workers=1)))
    return TIRGRPOTrainer(model=model_path, reward_funcs=[ToRLReward()], args=args, train_dataset=_dataset(), **kw)


def _weights(trainer):
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters()}


@pytest.fixture(scope="module")
def full_run(tir_model_path, tmp_path_factory):
    """4 uninterrupted steps, checkpoints at steps 2 and 4."""
    out = tmp_path_factory.mktemp("tir-hf-full")
    trainer = _trainer(tir_model_path, _args(out))
    before = _weights(trainer)
    trainer.train()
    yield trainer, before, out
    trainer.close()


def test_transformers_backend_trains(full_run):
    trainer, before, out = full_run
    assert trainer.state.global_step == 4
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 4 and all(math.isfinite(h["loss"]) for h in logs)
    assert any(not torch.equal(p.detach(), before[n]) for n, p in trainer.model.named_parameters())
    assert all("tir/tool_calls" in h and "tir/accuracy" in h for h in logs)
    # No vLLM here: TRL computes no importance ratio, the env mask still reaches the loss.
    assert not any("sampling/importance_sampling_ratio/mean" in h for h in logs)
    assert (out / "checkpoint-2" / "optimizer.pt").exists()


def test_resume_continues_the_run_exactly(full_run, tir_model_path, tmp_path_factory):
    """Resuming from step 2 restores step, optimizer and data order: steps 3-4 repeat the full run's."""
    from torl.core import load_jsonl

    trainer, _, out = full_run
    saved_opt = torch.load(out / "checkpoint-2" / "optimizer.pt", weights_only=False)["state"]
    out2 = tmp_path_factory.mktemp("tir-hf-resumed")
    resumed = _trainer(tir_model_path, _args(out2))
    seen = {}

    from transformers import TrainerCallback

    class Peek(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if "opt" not in seen:
                seen["step"] = state.global_step
                seen["opt"] = {k: {n: v.clone() for n, v in s.items() if torch.is_tensor(v)}
                               for k, s in resumed.optimizer.state_dict()["state"].items()}

    resumed.add_callback(Peek())
    resumed.train(resume_from_checkpoint=str(out / "checkpoint-2"))
    resumed.close()
    assert seen["step"] == 2 and resumed.state.global_step == 4
    assert seen["opt"].keys() == saved_opt.keys()
    for k in saved_opt:
        assert torch.equal(seen["opt"][k]["exp_avg"], saved_opt[k]["exp_avg"])
    # Same prompts, same samples, same rewards at steps 3 and 4 (data order and rollout seeds follow the step).
    for step in (2, 3):
        a = load_jsonl(out / "trajectories" / f"step_{step:06d}.jsonl")
        b = load_jsonl(out2 / "trajectories" / f"step_{step:06d}.jsonl")
        assert [t.metadata["id"] for t in a] == [t.metadata["id"] for t in b]
        assert [t.completion_ids for t in a] == [t.completion_ids for t in b]
        assert [t.reward for t in a] == [t.reward for t in b]
    assert not (out2 / "trajectories" / "step_000000.jsonl").exists()
    for n, p in resumed.model.named_parameters():
        torch.testing.assert_close(p.detach(), dict(trainer.model.named_parameters())[n].detach())


def test_a_failing_trajectory_does_not_kill_the_batch(tir_model_path, tmp_path):
    """A rollout that fails gets no loss, no reward and a zero advantage; the step goes on."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from torl.core import Trajectory
    from torl.rollout.engine import TIRRollout

    class OneFails:
        """The real engine, except that sample 0 of each batch comes back as an engine error."""

        def __init__(self, engine):
            self.engine = engine

        async def generate(self, prompts, n=1, **sampling):
            out = await self.engine.generate(prompts, n, **sampling)
            out[0] = Trajectory(prompt=out[0].prompt, prompt_ids=out[0].prompt_ids, finish_reason="error",
                                error="RuntimeError: engine died")
            return out

    model = AutoModelForCausalLM.from_pretrained(tir_model_path, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(tir_model_path)
    engine = TIRRollout.from_transformers(model, tok, max_new_tokens=64)  # no tool: calls get an error result
    trainer = _trainer(model, _args(tmp_path, max_steps=1, save_strategy="no"), tool=None,
                       rollout=OneFails(engine), processing_class=tok)
    seen = []
    compute = trainer._compute_loss

    def spy(m, inputs):
        seen.append(trainer.last_trajectories)
        return compute(m, inputs)

    trainer._compute_loss = spy
    trainer.train()
    trainer.close()
    assert trainer.state.global_step == 1
    failed = [t for t in seen[0] if t.finish_reason == "error"]
    assert len(failed) == 1
    assert failed[0].reward is None and failed[0].metadata["advantage"] == 0.0
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert math.isfinite(logs[0]["loss"]) and logs[0]["tir/error_rate"] == pytest.approx(1 / 8)


def test_evaluate_logs_and_saves_trajectories(full_run):
    """Evaluation goes through the same rollout (after train(): the tool is still up)."""
    from torl.core import load_jsonl

    trainer, _, out = full_run
    metrics = trainer.evaluate(eval_dataset=_dataset())
    assert "eval_tir/tool_calls" in metrics and "eval_tir/accuracy" in metrics
    saved = load_jsonl(out / "trajectories" / "eval_step_000004.jsonl")
    assert len(saved) == 4 * 4 and all(t.metadata["mode"] == "eval" for t in saved)
    assert any(r.result.ok for t in saved for r in t.tool_calls)


def test_a_tool_that_cannot_start_stops_training_with_its_cause(tir_model_path, tmp_path):
    from torl.core import Tool

    class Broken(Tool):
        name = "python"

        async def start(self):
            raise ConnectionError("no Docker engine at unix:///var/run/docker.sock")

        async def run(self, call):
            raise AssertionError("never reached")

    trainer = _trainer(tir_model_path, _args(tmp_path, max_steps=1, save_strategy="no"), tool=Broken())
    with pytest.raises(RuntimeError, match="tool .python. could not start: ConnectionError.*no Docker engine"):
        trainer.train()
    trainer.close()
