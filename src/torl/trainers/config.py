"""`TIRGRPOConfig`: TRL's `GRPOConfig` plus the tool-integrated rollout settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from trl import GRPOConfig

__all__ = ["TIRGRPOConfig"]

logger = logging.getLogger(__name__)


def has_accelerator() -> bool:
    """Whether torch sees a device to train on other than the CPU (CUDA, XPU, MPS, NPU, HPU, XLA)."""
    import torch
    from transformers.utils import (
        is_torch_hpu_available,
        is_torch_mps_available,
        is_torch_npu_available,
        is_torch_xla_available,
    )

    if torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available()):
        return True
    others = (is_torch_mps_available, is_torch_npu_available, is_torch_hpu_available, is_torch_xla_available)
    return any(available() for available in others)


@dataclass
class TIRGRPOConfig(GRPOConfig):
    """`GRPOConfig` with the settings of the torl rollout engine, metrics and trajectory dumps.

    Every GRPO option keeps TRL's meaning (loss_type "dapo" / "dr_grpo" / "grpo" ..., beta, epsilon,
    `vllm_importance_sampling_correction`, `mask_truncated_completions`, `use_vllm` + `vllm_mode`...).
    `max_completion_length` is the whole response budget, model and tool-output tokens together (ToRL's
    "max response length"); `temperature`, `top_p` and `top_k` are the rollout's sampling settings.
    TRL's `min_p`, `repetition_penalty` and `generation_kwargs` are not used by the torl engine: setting
    them is an error. `mask_truncated_completions` masks the trajectories cut off by the token or turn
    budget (`finish_reason` "length" or "max_turns"), not those that ended on a stop string.

    On a machine without an accelerator, the settings left unset default to what runs there: `use_cpu=True`
    and `bf16=False` (TRL's default, bf16, needs a GPU); what was chosen is logged, explicit values are kept.
    """

    tir_format: str = field(
        default="torl",
        metadata={"help": "How tool use looks in the text: a registered format, e.g. 'torl' (```python / ```output), "
                  "'xml', 'chat', 'zero_tir', or the originals' exact rules 'torl_exact', 'zero_tir_exact'."},
    )
    max_tool_calls: int = field(
        default=1, metadata={"help": "Tool-call budget per trajectory (ToRL's C; their main results use 1)."}
    )
    over_budget: str = field(
        default="continue",
        metadata={"help": "Past the budget: 'continue' (ToRL: last turn without the stop string) or 'notify'."},
    )
    max_turns: int | None = field(
        default=None, metadata={"help": "Model turns per trajectory (default: the engine's, from max_tool_calls)."}
    )
    tool_timeout_s: float | None = field(
        default=None, metadata={"help": "Wall-clock limit of one tool call, on top of the tool's own limits."}
    )
    stateful_tool: bool = field(
        default=True, metadata={"help": "One tool session per trajectory, so cells share state (ZERO-TIR)."}
    )
    tool_cache: bool = field(
        default=False,
        metadata={
            "help": "Answer a cell already run with the same earlier cells of its session from a tool-result "
            "log (torl.tools.CachedTool): identical cells of a GRPO group run once. Cells that read clocks, "
            "randomness or files are never cached (torl.tools.is_cacheable; `# torl: nocache` declares one)."
        },
    )
    tool_cache_log: str | None = field(
        default=None,
        metadata={"help": "With tool_cache: also keep the log in this JSON Lines file (read back at start)."},
    )
    rollout_max_concurrency: int = field(
        default=512, metadata={"help": "Trajectories in flight at once in the rollout engine."}
    )
    save_trajectories_steps: int = field(
        default=10,
        metadata={"help": "Save the sampled trajectories (JSON Lines) every this many steps; 0 turns it off."},
    )
    trajectories_dir: str | None = field(
        default=None, metadata={"help": "Where trajectory files go (default: <output_dir>/trajectories)."}
    )
    vllm_dtype: str | None = field(
        default=None,
        metadata={
            "help": "dtype of the colocated vLLM engine that torl builds on CPU (default: the policy's dtype). "
            "On GPUs TRL builds the engine and this is not used."
        },
    )
    per_request_seeds: bool | None = field(
        default=None,
        metadata={
            "help": "Send a seed with every generation request, so that rollouts replay exactly (a resumed "
            "run samples what the uninterrupted one did). It costs speed in vLLM: seeded requests are "
            "sampled row by row with their own generators and skip the fast (FlashInfer) sampler on GPUs. "
            "Default (None): on without an accelerator or with full_determinism=True, off otherwise."
        },
    )
    vllm_served_model_name: str | None = field(
        default=None,
        metadata={"help": "Server mode: the model name the `vllm serve` replica answers to (default: asked)."},
    )

    max_turn_tokens: int | None = field(
        default=None,
        metadata={"help": "Tokens one model turn may generate (AReaL ZERO-TIR: 1024); a turn starts only when they "
                  "fit. None: all the room left."},
    )
    max_total_tokens: int | None = field(
        default=None,
        metadata={"help": "Budget on prompt + completion tokens together (AReaL ZERO-TIR: 4000). None: only "
                  "max_completion_length."},
    )
    advantage_mode: str = field(
        default="trl",
        metadata={"help": "'trl' (TRL's GRPO advantages) or 'zero_tir' (AReaL ZERO-TIR-RL: population std + 1e-6, "
                  "groups with mean reward 0 left out of the loss)."},
    )

    def __post_init__(self) -> None:
        accelerator = has_accelerator()
        if not accelerator:
            chosen = []
            if self.bf16 is None:  # TRL would pick bf16, which TrainingArguments rejects without a GPU
                self.bf16 = False
                chosen.append("bf16=False")
            if not self.use_cpu:
                self.use_cpu = True
                chosen.append("use_cpu=True")
            if chosen:
                logger.warning("no accelerator found: TIRGRPOConfig uses %s", ", ".join(chosen))
        if self.per_request_seeds is None:
            on_cpu = not accelerator or self.use_cpu
            self.per_request_seeds = on_cpu or bool(self.full_determinism)
            why = "CPU" if on_cpu else "full_determinism" if self.full_determinism else "GPU: faster unseeded"
            logger.info("per_request_seeds=%s (%s)", self.per_request_seeds, why)
        super().__post_init__()
        if self.max_tool_calls < 0:
            raise ValueError(f"max_tool_calls must be >= 0, got {self.max_tool_calls}")
        if self.over_budget not in ("continue", "notify"):
            raise ValueError(f"over_budget must be 'continue' or 'notify', got {self.over_budget!r}")
        if self.save_trajectories_steps < 0:
            raise ValueError(f"save_trajectories_steps must be >= 0, got {self.save_trajectories_steps}")
        if self.tool_cache_log and not self.tool_cache:
            raise ValueError("tool_cache_log needs tool_cache=True")
        if self.rollout_max_concurrency < 1:
            raise ValueError(f"rollout_max_concurrency must be >= 1, got {self.rollout_max_concurrency}")
        for name in ("max_turn_tokens", "max_total_tokens"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (or None), got {getattr(self, name)}")
        if self.advantage_mode not in ("trl", "zero_tir"):
            raise ValueError(f"advantage_mode must be 'trl' or 'zero_tir', got {self.advantage_mode!r}")
