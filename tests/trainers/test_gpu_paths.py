"""The trainer's GPU and multi-process paths, checked on CPU: CPU defaults, per-request seeds, truncation by
finish reason, the server-mode sync (replicas, checked cache reset, barrier), the weight path of a user's
vLLM engine on GPUs, and the transformers backend under FSDP. Real TRL steps on the tiny model where a step
is what is checked; the NCCL / CUDA / DeepSpeed pieces are stand-ins (their real counterparts run in
test_distributed.py, test_weight_sync_vllm.py and test_fsdp_generation.py)."""

from __future__ import annotations

import logging
import os
from types import SimpleNamespace

import pytest
import torch

from torl.core import Trajectory
from torl.trainers import TIRGRPOConfig, TIRGRPOTrainer
from torl.trainers import config as config_module

from .fake_zero3 import Zero3Sim, cpu_accelerator

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


# ----- item 9: CPU defaults -----

needs_cpu_only = pytest.mark.skipif(
    config_module.has_accelerator(), reason="checks a machine without accelerator"
)


@needs_cpu_only
def test_config_defaults_work_without_an_accelerator(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="torl.trainers.config"):
        args = TIRGRPOConfig(output_dir=str(tmp_path))  # TRL alone: "Your setup doesn't support bf16/gpu"
    assert args.bf16 is False and args.use_cpu is True
    assert "bf16=False" in caplog.text and "use_cpu=True" in caplog.text
    assert TIRGRPOConfig(output_dir=str(tmp_path), bf16=True).bf16 is True  # an explicit choice is kept


@needs_cpu_only
def test_readme_trainer_without_args_on_a_laptop(tiny_model_path, tmp_path, monkeypatch):
    from datasets import Dataset

    monkeypatch.chdir(tmp_path)
    ds = Dataset.from_dict({"prompt": ["What is 1 + 1?"], "answer": ["2"]})
    trainer = TIRGRPOTrainer(
        model=tiny_model_path,
        reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
        train_dataset=ds,
    )
    assert trainer.args.use_cpu and not trainer.args.bf16
    trainer.close()


# ----- item 5: per-request seeds -----


def test_seed_switch_defaults(tmp_path, monkeypatch):
    cpu = TIRGRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False)
    assert cpu.per_request_seeds is True  # on CPU: reproducible runs (and resume) by default
    monkeypatch.setattr(config_module, "has_accelerator", lambda: True)
    gpu = TIRGRPOConfig(output_dir=str(tmp_path), bf16=False)
    assert gpu.per_request_seeds is False  # GPU: vLLM's fast sampler
    assert (
        TIRGRPOConfig(output_dir=str(tmp_path), bf16=False, full_determinism=True).per_request_seeds is True
    )
    assert (
        TIRGRPOConfig(output_dir=str(tmp_path), bf16=False, per_request_seeds=True).per_request_seeds is True
    )


class Scripted:
    """A rollout policy that answers with fixed trajectories, one kind per sample, and records its calls."""

    def __init__(self, tokenizer, kinds) -> None:
        self.tok, self.kinds, self.calls = tokenizer, kinds, []

    async def generate(self, prompts, n=1, **sampling):
        self.calls.append(sampling)
        out = []
        for i, p in enumerate(prompts):
            kind = self.kinds[i % len(self.kinds)]
            text, finish, eos = {
                "stop_string": ("<think>12*34+5</think> <answer>413</answer>", "stop", False),
                "eos": ("The answer is \\boxed{413}.", "stop", True),
                "length": ("Let me compute 12 * 34 = 408, then add", "length", False),
                "budget": (
                    "```python\nprint(12*34+5)\n```\n```output\n413\n```\nSo 413 then ```python",
                    "stop",
                    False,
                ),
            }[kind]
            ids = self.tok(text, add_special_tokens=False)["input_ids"] + (
                [self.tok.eos_token_id] if eos else []
            )
            out.append(
                Trajectory(
                    prompt=p,
                    prompt_ids=self.tok(p)["input_ids"],
                    completion_ids=ids,
                    logprobs=[-1.0] * len(ids),
                    env_mask=[1] * len(ids),
                    finish_reason=finish,
                    metadata={"kind": kind},
                )
            )
        return out


def _trainer(model_path, tmp_path, policy=None, **kw):
    from datasets import Dataset
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    base = {
        "output_dir": str(tmp_path),
        "use_cpu": True,
        "bf16": False,
        "report_to": [],
        "logging_steps": 1,
        "save_strategy": "no",
        "per_device_train_batch_size": 4,
        "num_generations": 4,
        "max_steps": 1,
        "max_completion_length": 48,
        "save_trajectories_steps": 0,
        "learning_rate": 1e-4,
    }
    args = TIRGRPOConfig(**{**base, **kw})
    ds = Dataset.from_dict({"prompt": ["What is 12 * 34 + 5?"] * 4, "answer": ["413"] * 4})

    def reward(completions, **kw):
        return [float(i) for i in range(len(completions))]

    rollout = policy(tok) if policy is not None else None
    return TIRGRPOTrainer(
        model=model_path,
        reward_funcs=[reward],
        args=args,
        train_dataset=ds,
        rollout=rollout,
        processing_class=tok,
    )


@pytest.mark.parametrize("on", [False, True])
def test_trainer_sends_seeds_only_when_asked(tiny_model_path, tmp_path, on):
    trainer = _trainer(tiny_model_path, tmp_path, lambda tok: Scripted(tok, ["eos"]), per_request_seeds=on)
    trainer._generate_trajectories(["What is 1 + 1?"], "train")
    trainer.close()
    seed = trainer.rollout.calls[0]["seed"]
    assert (seed is not None) == on


def test_a_policys_coroutines_run_on_this_ranks_gpu(tiny_model_path, tmp_path, monkeypatch):
    """item 1: the trainer's loop thread (where a custom policy's coroutines run) selects the rank's GPU."""
    import threading

    local = threading.local()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: getattr(local, "device", 0))
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: setattr(local, "device", d))
    torch.cuda.set_device(1)  # rank 1's main thread
    seen = []

    class Recording(Scripted):
        async def generate(self, prompts, n=1, **sampling):
            seen.append(torch.cuda.current_device())
            return await super().generate(prompts, n, **sampling)

    trainer = _trainer(tiny_model_path, tmp_path, lambda tok: Recording(tok, ["eos"]))
    trainer._generate_trajectories(["What is 1 + 1?"], "train")
    trainer.close()
    assert seen == [1]


# ----- item 6: truncation by finish reason -----


def test_stop_string_and_budget_endings_stay_in_the_loss(tiny_model_path, tmp_path):
    kinds = ["stop_string", "eos", "length", "budget"]
    trainer = _trainer(
        tiny_model_path, tmp_path, lambda tok: Scripted(tok, kinds), mask_truncated_completions=True
    )
    seen = []
    compute = trainer._compute_loss

    def spy(model, inputs):
        seen.append((inputs, list(trainer.last_trajectories)))
        return compute(model, inputs)

    trainer._compute_loss = spy
    trainer.train()
    trainer.close()
    inputs, trajs = seen[0]
    loss_mask = inputs["completion_mask"] * inputs["tool_mask"]
    by_kind = {}
    for row in range(inputs["completion_ids"].shape[0]):
        ids = inputs["completion_ids"][row].tolist()
        t = next(t for t in trajs if ids[: len(t.completion_ids)] == t.completion_ids)
        by_kind[t.metadata["kind"]] = (loss_mask[row].sum().item(), len(t.completion_ids))
    assert set(by_kind) == set(kinds)
    for kind in ("stop_string", "eos", "budget"):  # ended as the model or the budget meant: trained on
        kept, n = by_kind[kind]
        assert kept == n, (kind, kept, n)
    assert by_kind["length"][0] == 0  # really cut off: masked
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert logs[0]["completions/clipped_ratio"] == pytest.approx(0.25)


# ----- items 2 and 4: server mode -----


class _Response:
    def __init__(self, success) -> None:
        self.status_code, self.text, self._success = 200, "", success

    def json(self):
        return {"success": self._success}


class _Client:
    """TRL's VLLMClient at its edges: the NCCL stream and the HTTP session, recorded."""

    def __init__(self, url, events, answers=None) -> None:
        self.base_url, self.events = url, events
        self.answers = list(answers or [])
        self.session = SimpleNamespace(post=self._post)

    def _post(self, url):
        self.events.append(f"reset {url}")
        return _Response(self.answers.pop(0) if self.answers else True)

    def update_named_params(self, metadata, named_params):
        assert metadata == [("w", "float32", [2])]
        self.events.append(f"push {self.base_url}")
        list(named_params)


class _TRLServerSync:
    """The parts of TRL's server-mode VLLMGeneration that the sync touches."""

    mode, server_host, server_port, group_port, server_timeout = "server", "0.0.0.0", 8000, 51216, 1.0

    def __init__(self, accelerator, events, answers=None) -> None:
        self.accelerator, self.events = accelerator, events
        self.server_base_url = "http://gpu-a:8000"
        self.vllm_client = (
            _Client("http://gpu-a:8000", events, answers) if accelerator.is_main_process else None
        )
        self._weight_metadata = None

    def sync_weights(self):
        self.events.append("trl push http://gpu-a:8000")
        self._weight_metadata = [("w", "float32", [2])]

    def _iter_named_params(self):
        self.events.append("gather")
        yield "w", torch.ones(2)


def _server_sync(monkeypatch, rank, urls, answers=None, **kw):
    from torl.trainers.weight_sync import ServerWeightSync

    events = []
    acc = cpu_accelerator(num_processes=2, process_index=rank)
    acc.wait_for_everyone = lambda: events.append("barrier")
    vg = _TRLServerSync(acc, events, answers)
    monkeypatch.setattr(ServerWeightSync, "_connect", lambda self, url, port: _Client(url, events))
    sync = ServerWeightSync(vg, urls, retry_wait_s=0.0, **kw)
    assert vg.sync_weights is sync  # what TRL calls before each step's rollouts
    return vg, events


def test_server_sync_pushes_every_replica_then_resets_then_waits(monkeypatch):
    vg, events = _server_sync(monkeypatch, 0, ["http://gpu-a:8000/v1", "http://gpu-b:8000"])
    vg.sync_weights()
    assert events == [
        "trl push http://gpu-a:8000",
        "push http://gpu-b:8000",
        "gather",
        "reset http://gpu-a:8000/reset_prefix_cache",
        "reset http://gpu-b:8000/reset_prefix_cache",
        "barrier",
    ]


def test_server_sync_other_ranks_gather_and_wait(monkeypatch):
    vg, events = _server_sync(monkeypatch, 1, ["http://gpu-a:8000", "http://gpu-b:8000"])
    vg.sync_weights()
    assert events == ["trl push http://gpu-a:8000", "gather", "barrier"]  # no request of their own


def test_server_sync_checks_the_cache_reset(monkeypatch):
    vg, events = _server_sync(monkeypatch, 0, [], answers=[False, False, True])
    vg.sync_weights()  # refused twice (blocks still in use), then done
    assert events.count("reset http://gpu-a:8000/reset_prefix_cache") == 3 and events[-1] == "barrier"
    vg, events = _server_sync(monkeypatch, 0, [], answers=[False] * 10, reset_retries=3)
    with pytest.raises(RuntimeError, match="refused to reset its prefix cache 4 times"):
        vg.sync_weights()
    assert "barrier" not in events


# ----- item 3: a user's LLM on GPUs -----


def _fake_llm(backend="external_launcher", tp=1, in_process=True, loaded=None):
    pc = SimpleNamespace(
        distributed_executor_backend=backend, tensor_parallel_size=tp, pipeline_parallel_size=1
    )
    engine = SimpleNamespace(vllm_config=SimpleNamespace(parallel_config=pc))
    if in_process:
        model = SimpleNamespace(load_weights=lambda ws: loaded.extend((n, t.clone()) for n, t in ws))
        engine.model_executor = SimpleNamespace(
            driver_worker=SimpleNamespace(model_runner=SimpleNamespace(model=model))
        )
    return SimpleNamespace(llm_engine=engine, reset_prefix_cache=lambda: True)


def test_user_llm_checks():
    from torl.trainers.vllm_colocate import check_user_llm

    check_user_llm(_fake_llm(), num_processes=8)
    check_user_llm(_fake_llm(backend="mp"), num_processes=1)
    with pytest.raises(ValueError, match="external_launcher"):
        check_user_llm(_fake_llm(backend="mp"), num_processes=8)
    with pytest.raises(ValueError, match="tensor_parallel_size=1"):
        check_user_llm(_fake_llm(tp=2), num_processes=1)
    with pytest.raises(ValueError, match="in-process"):
        check_user_llm(_fake_llm(in_process=False), num_processes=1)


def test_gpu_sync_into_a_users_llm_reads_gathered_weights(tiny_model_path, monkeypatch):
    """On GPUs the weights go in as TRL puts them (the engine model's load_weights), read through TRL's
    iteration: under ZeRO-3 each tensor is gathered first."""
    from transformers import AutoModelForCausalLM

    from torl.trainers import vllm_colocate

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    want = {n: p.detach().clone() for n, p in model.named_parameters()}
    loaded: list = []
    monkeypatch.setattr(vllm_colocate, "_on_cpu", lambda: False)
    colocated = vllm_colocate.ColocatedVLLM(model, cpu_accelerator(), llm=_fake_llm(loaded=loaded))
    Zero3Sim(model).install(monkeypatch, colocated._dist)
    colocated.sync_weights()
    assert [n for n, _ in loaded] == list(want)
    assert all(torch.equal(t, want[n]) for n, t in loaded)


# ----- item 8: the transformers backend under FSDP -----


def test_fsdp_generation_uses_an_unsharded_copy(tiny_model_path, tmp_path, monkeypatch):
    trainer = _trainer(tiny_model_path, tmp_path)
    policy = trainer.accelerator.unwrap_model(trainer.model)
    monkeypatch.setattr(trainer._dist, "fsdp_version", 2)
    engine = trainer._build_rollout()
    copy = trainer._full_copy
    assert engine.backend.model is copy.model and copy.model is not policy
    monkeypatch.setattr(copy.source._dist, "fsdp_version", None)  # no real FSDP here: plain reads
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.01)  # a training step
    with trainer._generation_context():
        pass
    with trainer._generation_context():  # same step: no second refresh
        pass
    assert copy.refreshes == 1
    own = dict(copy.model.named_parameters())
    assert all(torch.equal(own[n], p.detach()) for n, p in policy.named_parameters())
    trainer.state.global_step = 1
    with trainer._generation_context():
        pass
    assert copy.refreshes == 2
    trainer.close()


def test_zero3_without_gathering_is_refused_for_the_transformers_backend(
    tiny_model_path, tmp_path, monkeypatch
):
    trainer = _trainer(tiny_model_path, tmp_path, ds3_gather_for_generation=False)
    monkeypatch.setattr(trainer._dist, "zero_stage", 3)
    monkeypatch.setattr(type(trainer.accelerator), "num_processes", property(lambda self: 2))
    with pytest.raises(ValueError, match="ds3_gather_for_generation=True"):
        trainer._build_rollout()
    trainer.close()
