"""DeepSpeed ZeRO-3 as TRL's `DistributedBackend` sees it, without DeepSpeed: outside
`deepspeed.zero.GatheredParameters(params)` every parameter holds an empty shard, inside it the full tensor.
Reading `model.named_parameters()` directly (the defect) gets the empty shards."""

from __future__ import annotations

import contextlib
import sys
from types import SimpleNamespace

import torch


class Zero3Sim:
    def __init__(self, model: torch.nn.Module) -> None:
        self.full = {p: p.data for p in model.parameters()}
        self.gathers = 0
        for p in self.full:
            p.data = torch.empty(0, dtype=p.dtype)

    @contextlib.contextmanager
    def gathered(self, params):
        params = list(params)
        self.gathers += 1
        for p in params:
            p.data = self.full[p]
        try:
            yield
        finally:
            for p in params:
                p.data = torch.empty(0, dtype=p.dtype)

    def install(self, monkeypatch, *dists) -> None:
        """`import deepspeed` finds this; each TRL `DistributedBackend` in `dists` reports stage 3."""
        monkeypatch.setitem(
            sys.modules, "deepspeed", SimpleNamespace(zero=SimpleNamespace(GatheredParameters=self.gathered))
        )
        for d in dists:
            monkeypatch.setattr(d, "zero_stage", 3)


def cpu_accelerator(num_processes: int = 1, process_index: int = 0) -> SimpleNamespace:
    """What TRL's parameter iteration and torl's engines read from an accelerator, on one CPU process."""

    def wait_for_everyone() -> None:
        pass

    return SimpleNamespace(
        process_index=process_index,
        local_process_index=process_index,
        num_processes=num_processes,
        is_main_process=process_index == 0,
        device=torch.device("cpu"),
        unwrap_model=lambda m: m,
        state=SimpleNamespace(deepspeed_plugin=None, fsdp_plugin=None),
        wait_for_everyone=wait_for_everyone,
    )
