"""The transformers backend (slow, for debugging): all three formats token-exact, logprobs after temperature."""

from __future__ import annotations

import pytest

from torl.rollout import TIRRollout, TransformersBackend

from .conftest import (
    TRANSCRIPTS,
    LatencyTool,
    RecordingBackend,
    check_token_exact,
    check_transcript,
    hf_token_logprobs,
)


@pytest.fixture(scope="module")
def backend(tir_model_path):
    return TransformersBackend.from_model(tir_model_path)


@pytest.mark.parametrize("name", ["torl", "xml", "chat"])
async def test_transcripts_token_exact(backend, tir_tokenizer, name):
    t = TRANSCRIPTS[name]
    rec = RecordingBackend(backend)
    eng = TIRRollout(rec, tool=LatencyTool(), tir_format=name, max_tool_calls=2, max_new_tokens=400)
    (traj,) = await eng.generate([t.prompt], temperature=0.0)
    check_transcript(traj, t, tir_tokenizer)
    check_token_exact(traj, rec.requests)


async def test_sampled_logprobs_and_budget(backend, tir_model_path):
    t = TRANSCRIPTS["torl"]
    eng = TIRRollout(backend, tool=LatencyTool(), max_tool_calls=1, max_new_tokens=60)
    a = await eng.generate([t.prompt], n=2, temperature=1.5, seed=7)
    b = await eng.generate([t.prompt], n=2, temperature=1.5, seed=7)
    assert [x.completion_ids for x in a] == [x.completion_ids for x in b]
    for traj in a:
        assert traj.num_tool_calls <= 1 and len(traj.completion_ids) <= 60
        ref = hf_token_logprobs(tir_model_path, traj.prompt_ids, traj.completion_ids, 1.5)
        assert all(abs(lp - r) < 1e-3 for lp, r, m in zip(traj.logprobs, ref, traj.env_mask) if m)


def test_from_transformers_constructor(tir_model_path):
    eng = TIRRollout.from_transformers(tir_model_path, max_tool_calls=0, max_new_tokens=5)
    (traj,) = eng.generate_sync(["hello"], temperature=0.0)
    assert len(traj.completion_ids) <= 5 and traj.num_tool_calls == 0
    eng.close_sync()
