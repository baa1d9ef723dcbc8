"""Group advantages of the originals, where TRL's differ (`TIRGRPOConfig.advantage_mode`)."""

from __future__ import annotations

import torch

__all__ = ["zero_tir_advantages"]


def zero_tir_advantages(rewards: torch.Tensor, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """AReaL ZERO-TIR-RL's GRPO advantages of a batch of `group`-sized groups, and which rows to keep.

    Per group: (reward - mean) / (population std + 1e-6); a group whose mean reward is 0 is dropped (AReaL
    returns no sample for it), and so is one where no reward could be computed (NaN rewards count as
    missing, their advantage is 0). TRL instead divides by the sample std + 1e-4 and keeps every group.
    """
    if rewards.dim() != 1 or group < 1 or rewards.numel() % group:
        raise ValueError(f"rewards must be 1-D with a multiple of {group} entries, got shape {tuple(rewards.shape)}")
    r = rewards.view(-1, group).double()
    mean = torch.nanmean(r, dim=1, keepdim=True)
    std = torch.nanmean((r - mean) ** 2, dim=1, keepdim=True).sqrt()
    adv = torch.nan_to_num((r - mean) / (std + 1e-6), nan=0.0)
    keep = (mean.squeeze(1) != 0) & ~torch.isnan(mean.squeeze(1))
    return adv.view(-1).to(rewards.dtype), keep.repeat_interleave(group)
