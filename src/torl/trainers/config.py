"""`TIRGRPOConfig`: TRL's `GRPOConfig` plus the tool-integrated rollout settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

__all__ = ["TIRGRPOConfig"]


@dataclass
class TIRGRPOConfig(GRPOConfig):
    """`GRPOConfig` with the settings of the torl rollout engine, metrics and trajectory dumps.

    Every GRPO option keeps TRL's meaning (loss_type "dapo" / "dr_grpo" / "grpo" ..., beta, epsilon,
    `vllm_importance_sampling_correction`, `mask_truncated_completions`, `use_vllm` + `vllm_mode`...).
    `max_completion_length` is the whole response budget, model and tool-output tokens together (ToRL's
    "max response length"); `temperature`, `top_p` and `top_k` are the rollout's sampling settings.
    TRL's `min_p`, `repetition_penalty` and `generation_kwargs` are not used by the torl engine: setting
    them is an error.
    """

    tir_format: str = field(
        default="torl",
        metadata={"help": "How tool use looks in the text: 'torl' (```python / ```output), 'xml', or 'chat'."},
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
    vllm_served_model_name: str | None = field(
        default=None,
        metadata={"help": "Server mode: the model name the `vllm serve` replica answers to (default: asked)."},
    )

    def __post_init__(self) -> None:
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
