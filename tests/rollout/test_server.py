"""Real `vllm serve` (a subprocess on a free port) through `TIRRollout.from_server`: token ids in and out
over /v1/completions, two base URLs sharing the load, logprobs after temperature."""

from __future__ import annotations

import pytest

from tests.vllm_server import free_port, vllm_serve
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


@pytest.fixture(scope="module")
def server(tir_model_path):
    # seeded sampling is unsafe on vLLM CPU with chunked prefill
    with vllm_serve(tir_model_path, "tiny-tir", extra=("--no-enable-chunked-prefill",)) as (url, port):
        yield url, port


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
    dead = f"http://127.0.0.1:{free_port()}"
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
