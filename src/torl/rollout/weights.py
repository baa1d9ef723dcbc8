"""Putting new weights into a running inference engine (what `VersionedBackend.publish` runs while paused).

- `reload_async_llm`: an in-process `AsyncLLM` reloads in place, from tensors or from a checkpoint folder.
- `FolderWeightSync`: `vllm serve` replicas reload from a checkpoint folder both sides can read (no NCCL), through
  vLLM's development endpoints (`VLLM_SERVER_DEV_MODE=1`): `/pause`, `/collective_rpc` (`reload_weights`),
  `/reset_prefix_cache`, `/resume`. It needs no NCCL, so it works on CPU servers too. On GPUs, TRL's server
  mode (`vllm_mode="server"`, NCCL weight transfer) is faster; the async trainer runs it at turn boundaries
  the same way.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from torl.rollout.backends import server_urls

__all__ = ["FolderWeightSync", "reload_async_llm"]


async def reload_async_llm(
    engine: Any, *, path: str | Path | None = None, weights: Iterable[tuple[str, Any]] | None = None
) -> None:
    """Reload an `AsyncLLM`'s weights in place (from a checkpoint folder or `(name, tensor)` pairs) and drop
    its prefix cache. Call it while nothing is generating (inside `VersionedBackend.publish`)."""
    if (path is None) == (weights is None):
        raise ValueError("pass path= or weights=, not both")
    kwargs: dict[str, Any] = {"is_checkpoint_format": True}
    if path is not None:
        kwargs["weights_path"] = str(path)
    else:
        kwargs["weights_iterator"] = list(weights or [])
    await engine.collective_rpc("reload_weights", kwargs=kwargs)
    await engine.reset_prefix_cache()


class FolderWeightSync:
    """Pushes a model's weights to `vllm serve` replicas through a shared folder.

    Start the servers with `VLLM_SERVER_DEV_MODE=1` in their environment (for the development endpoints).
    `load(model)` saves the model (safetensors) under `folder` (default: a temporary folder), then for each
    replica: `/pause?mode=wait`, `reload_weights` from that folder, `/reset_prefix_cache`, `/resume`.

    Args:
        base_urls: one replica or several (data parallel), e.g. "http://127.0.0.1:8000".
        folder: where the checkpoint is written; it must be readable by the servers at the same path.
        timeout_s: the limit of each HTTP call.
    """

    def __init__(self, base_urls: str | Sequence[str], *, folder: str | Path | None = None,
                 timeout_s: float = 600.0) -> None:
        self.base_urls = server_urls(base_urls, "FolderWeightSync")
        self.timeout_s = timeout_s
        self._own_folder = folder is None
        self.folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="torl-weights-"))
        self.loads = 0

    def load(self, model: Any) -> None:
        """Write `model`'s weights and make every replica reload them."""
        self.folder.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(self.folder, safe_serialization=True)
        for url in self.base_urls:
            self._post(url, "/pause", params={"mode": "wait"})
            try:
                self._post(url, "/collective_rpc",
                           json={"method": "reload_weights", "kwargs": {"weights_path": str(self.folder)}})
                self._post(url, "/reset_prefix_cache")
            finally:
                self._post(url, "/resume")
        self.loads += 1

    def _post(self, url: str, path: str, **kw: Any) -> Any:
        import httpx

        r = httpx.post(url + path, timeout=self.timeout_s, **kw)
        if r.status_code == 404:
            raise RuntimeError(f"{url}{path} is not served: start `vllm serve` with VLLM_SERVER_DEV_MODE=1 "
                               "(the pause/resume and reload endpoints are development endpoints)")
        if r.status_code != 200:
            raise RuntimeError(f"{url}{path} answered {r.status_code}: {r.text[:500]}")
        return r

    def close(self) -> None:
        """Remove the temporary folder (a folder given by the caller stays)."""
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)
