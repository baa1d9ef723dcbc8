"""Moving the policy's weights to where rollouts are generated, on one process or many.

Every path reads the weights through TRL's own parameter iteration (`VLLMGeneration._iter_named_params`):
it gathers DeepSpeed ZeRO-3 shards, materialises FSDP full parameters and merges PEFT adapters, one tensor
at a time, under the names a Hugging Face checkpoint (and vLLM) uses. Gathering is collective: every
process iterates, also those that push nothing.

- `ParamSource`: that iteration, without an engine.
- `FullWeightsCopy`: an unsharded copy of the policy for the transformers backend when training shards it
  (FSDP): generating with a sharded model runs collectives on every forward, so ranks that generate
  different lengths or numbers of turns wait on each other forever.
- `ServerWeightSync`: server mode, after TRL's push to its server: the same push to every other replica the
  rollout uses, a checked prefix-cache reset on each, then a barrier, so that no rank sends a request
  before every replica holds the new weights.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from trl.distributed import DistributedBackend
from trl.generation.vllm_generation import VLLMGeneration

from torl.rollout.backends import server_url

__all__ = ["FullWeightsCopy", "ParamSource", "ServerWeightSync"]

logger = logging.getLogger(__name__)


class ParamSource(VLLMGeneration):
    """TRL's parameter iteration over `model` (gathers ZeRO-3, FSDP full parameters, merges PEFT), with no
    engine behind it. `named_params()` yields `(name, full tensor)`; call it on every process."""

    def __init__(self, model: Any, accelerator: Any) -> None:  # not super().__init__: it builds an engine
        self.model = model
        self.accelerator = accelerator
        self._dist = DistributedBackend(accelerator)
        self._weight_metadata = None

    def named_params(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Each parameter once, full, under its checkpoint name; valid only until the next one is read."""
        return self._iter_named_params()


class FullWeightsCopy:
    """An unsharded copy of the policy, refreshed from the (sharded) trained model before each rollout.

    Generation on the copy runs no collective, so ranks may generate as much or as little as their
    trajectories need. It costs one full model per process (TRL's own transformers generation under FSDP
    materialises the full parameters too, for the length of the call).

    Args:
        model: the policy as the trainer holds it (TRL's `self.model`).
        accelerator: the trainer's accelerator.
    """

    def __init__(self, model: Any, accelerator: Any) -> None:
        from transformers import AutoModelForCausalLM

        self.source = ParamSource(model, accelerator)
        unwrapped = accelerator.unwrap_model(model)
        base = unwrapped.get_base_model() if hasattr(unwrapped, "get_base_model") else unwrapped
        dtype = next(iter(base.parameters())).dtype
        device = accelerator.device
        with torch.device(device):
            self.model = AutoModelForCausalLM.from_config(base.config, dtype=dtype)
        self.model.eval().requires_grad_(False)
        self.model.generation_config = base.generation_config
        self._params = dict(self.model.named_parameters())
        self.refreshes = 0

    @torch.no_grad()
    def refresh(self) -> None:
        """Copy the trained weights into the copy (collective: call it on every process)."""
        seen = set()
        for name, tensor in self.source.named_params():
            target = self._params.get(name)
            if target is None:
                raise KeyError(f"the trained model has a parameter {name!r} that its unsharded copy lacks")
            target.copy_(tensor.to(device=target.device, dtype=target.dtype).view_as(target))
            seen.add(name)
        missing = set(self._params) - seen
        if missing:
            raise RuntimeError(f"no trained weights for {sorted(missing)[:5]} ... of the generation copy")
        self.refreshes += 1


class ServerWeightSync:
    """Installed as `vllm_generation.sync_weights` in server mode (TRL calls it before each step's rollouts).

    1. TRL's sync: the main process streams the weights to TRL's server (NCCL weight transfer).
    2. The same stream to each other replica in `base_urls`, through one more TRL `VLLMClient` each (its own
       NCCL group, on `group_port + i`).
    3. Each replica's prefix cache is reset, and the answer checked (vLLM refuses while blocks are in use;
       retried, then an error): a cached prefix computed with the old weights would leak into new rollouts.
    4. A barrier: only the main process pushes, but every process sends its own rollout requests.

    Args:
        vllm_generation: TRL's `VLLMGeneration` in server mode.
        base_urls: the replicas the rollout engine sends requests to (default: TRL's server only). List each
            server once: two names for one server would open two weight-transfer groups on it.
        reset_retries / retry_wait_s: how often and how long to retry a refused cache reset.
    """

    def __init__(
        self,
        vllm_generation: Any,
        base_urls: Sequence[str] = (),
        *,
        reset_retries: int = 20,
        retry_wait_s: float = 0.5,
    ) -> None:
        vg = vllm_generation
        if getattr(vg, "mode", None) != "server":
            raise ValueError("ServerWeightSync is for TRL's server mode")
        self.vg = vg
        self.accelerator = vg.accelerator
        self.reset_retries = reset_retries
        self.retry_wait_s = retry_wait_s
        self._push = vg.sync_weights
        self.primary = server_url(vg.server_base_url or f"http://{vg.server_host}:{vg.server_port}")
        urls = list(dict.fromkeys(server_url(u) for u in base_urls)) or [self.primary]
        if self.primary not in urls:
            logger.warning(
                "TRL pushes weights to %s, which the rollout engine does not use (it uses %s); those "
                "replicas are synced too",
                self.primary,
                ", ".join(urls),
            )
        self.urls = [self.primary] + [u for u in urls if u != self.primary]
        self.clients: dict[str, Any] = {}
        if self.accelerator.is_main_process:
            self.clients[self.primary] = vg.vllm_client
            for i, url in enumerate(self.urls[1:], start=1):
                self.clients[url] = self._connect(url, vg.group_port + i)
        self.syncs = 0
        vg.sync_weights = self

    def _connect(self, url: str, group_port: int) -> Any:
        from trl.generation.vllm_client import VLLMClient

        client = VLLMClient(base_url=url, group_port=group_port, connection_timeout=self.vg.server_timeout)
        client.init_communicator(device=self.accelerator.device)
        return client

    def __call__(self) -> None:
        self._push()  # TRL: its server, and its (unchecked) cache reset
        main = self.accelerator.is_main_process
        for url in self.urls[1:]:
            if main:
                self.clients[url].update_named_params(self.vg._weight_metadata, self.vg._iter_named_params())
            else:
                for _ in self.vg._iter_named_params():  # take part in the gathers
                    pass
        if main:
            for url in self.urls:
                self._reset_prefix_cache(url)
        self.accelerator.wait_for_everyone()
        self.syncs += 1

    def _reset_prefix_cache(self, url: str) -> None:
        session = self.clients[url].session
        for attempt in range(self.reset_retries + 1):
            r = session.post(f"{url}/reset_prefix_cache")
            if r.status_code != 200:
                raise RuntimeError(f"{url}/reset_prefix_cache answered {r.status_code}: {r.text[:300]}")
            try:
                ok = bool(r.json().get("success", True))
            except ValueError:  # vLLM < 0.26 answers with an empty body
                ok = True
            if ok:
                return
            if attempt < self.reset_retries:
                time.sleep(self.retry_wait_s)
        raise RuntimeError(
            f"{url} refused to reset its prefix cache {self.reset_retries + 1} times (requests still hold KV "
            "blocks; is another client using this server?): rollouts would reuse prefixes computed with the "
            "old weights"
        )
