"""Two training processes (torchrun, gloo on CPU): rewards, advantages, metrics and dumps are gathered
across ranks as on a multi-GPU run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from torl.core import load_jsonl

pytestmark = pytest.mark.slow


def test_two_processes(tir_model_path, tmp_path):
    from torl.rewards import ToRLReward

    script = Path(__file__).with_name("mp_train.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), tir_model_path, str(tmp_path)]
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 for r in ranks)
    reward = ToRLReward()
    for step in (0, 1):
        saved = load_jsonl(tmp_path / "trajectories" / f"step_{step:06d}.jsonl")
        assert len(saved) == 4  # both ranks' trajectories in one file
        # Each trajectory's written-back reward is its own (no mix-up between ranks' slices)...
        assert all(reward.score(t, "413").score == t.reward_breakdown["torl"] for t in saved)
        # ...and advantages are normalised within each 2-sample group, which may span ranks.
        for a, b in zip(saved[0::2], saved[1::2], strict=True):
            assert a.metadata["advantage"] == pytest.approx(-b.metadata["advantage"], abs=1e-5)
    last = load_jsonl(tmp_path / "trajectories" / "step_000001.jsonl")
    local = ranks[0]["local"] + ranks[1]["local"]
    assert [x["reward"] for x in local] == [t.reward_breakdown["torl"] for t in last]
    logs = ranks[0]["logs"]
    assert len(logs) == 2 and all("tir/tool_calls" in h for h in logs)
