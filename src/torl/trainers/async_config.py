"""`AsyncTIRGRPOConfig`: `TIRGRPOConfig` plus the settings of asynchronous training (docs/async.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torl.trainers.config import TIRGRPOConfig

__all__ = ["AsyncTIRGRPOConfig"]


@dataclass
class AsyncTIRGRPOConfig(TIRGRPOConfig):
    """`TIRGRPOConfig` plus the asynchronous settings. With `max_staleness=0` and
    `off_policy_correction="trl"` training is exactly `TIRGRPOTrainer`'s."""

    max_staleness: int = field(
        default=1,
        metadata={"help": "How many policy versions a trajectory's oldest model turn may lag the update that "
                          "trains on it (AReaL's max_head_offpolicyness). 0: on-policy, nothing runs ahead."},
    )
    stale_trajectories: str = field(
        default="drop",
        metadata={"help": "A group past the bound when taken (overtaken by faster ones): 'drop' or 'regenerate'."},
    )
    inflight_turns: str = field(
        default="finish",
        metadata={"help": "On new weights, a model turn in flight 'finish'es under the old weights or is "
                          "'abort'ed and regenerated from its turn boundary under the new ones."},
    )
    off_policy_correction: str = field(
        default="decoupled",
        metadata={"help": "'decoupled' (AReaL: PPO ratio against the trainer's proximal logprobs, times the "
                          "behaviour weight pi_prox/pi_behav per token, masked above behaviour_weight_cap) or "
                          "'trl' (TRL's vllm_importance_sampling_correction, as configured)."},
    )
    behaviour_weight_cap: float | None = field(
        default=5.0,
        metadata={"help": "'decoupled': tokens whose behaviour weight exceeds this leave the loss (None: no cap)."},
    )
    weight_sync_timeout_s: float | None = field(
        default=300.0,
        metadata={"help": "inflight_turns='finish': turns still running after this long are aborted."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_staleness < 0:
            raise ValueError(f"max_staleness must be >= 0, got {self.max_staleness}")
        for name, allowed in (("stale_trajectories", ("drop", "regenerate")), ("inflight_turns", ("finish", "abort")),
                              ("off_policy_correction", ("decoupled", "trl"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.behaviour_weight_cap is not None and self.behaviour_weight_cap <= 1.0:
            raise ValueError(f"behaviour_weight_cap must be > 1 or None, got {self.behaviour_weight_cap}")
