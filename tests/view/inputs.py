"""Report inputs: eval-style trajectories (cells, outputs, errors, truncation, hostile text), a trainer
run folder (trajectories/step_*.jsonl) and its trainer_state.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

from fakes import make_trajectory, solution

from torl.core import ToolResult, save_jsonl

HOSTILE = '</script><script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> & <b>bold</b>'


def eval_trajectories() -> list:
    good = make_trajectory(
        [
            (
                "model",
                "I will compute it with Python.\n```python\nprint(12 * 34 + 5)  # the sum\n```\n```output",
            ),
            ("tool", "\n413\n```\n"),
            ("model", "So the answer is \\boxed{413}."),
        ]
    )
    good.metadata.update(
        benchmark="math500", problem_id="toy-1", sample=0, answer="413", pred="413", rule="integer"
    )
    good.reward_breakdown["correct"] = float(True)
    failed = solution("7", cells=2, failed=1)
    failed.metadata.update(
        benchmark="math500", problem_id="toy-2", sample=0, answer="8", pred="7"
    )
    failed.reward_breakdown["correct"] = float(False)
    truncated = make_trajectory(
        [
            ("model", "```python\nfor i in range(10**6): print(i)\n```\n```output"),
            ("tool", "\n0\n1\n...\n999999\n```\n", ToolResult(output="0\n1 ...", truncated=True)),
            ("model", "Too long."),
        ],
        finish_reason="length",
    )
    truncated.metadata.update(
        benchmark="aime24", problem_id="a1", sample=0, answer="5", pred=None
    )
    truncated.reward_breakdown["correct"] = float(False)
    hostile = make_trajectory([("model", f"No code here. {HOSTILE} \\boxed{{{HOSTILE}}}")])
    hostile.metadata.update(
        benchmark="aime24", problem_id="a2", sample=0, answer="1", pred=HOSTILE
    )
    hostile.reward_breakdown["correct"] = float(False)
    many = []
    for i in range(56):
        t = solution(str(i % 3), cells=i % 2)
        t.metadata.update(
            benchmark="amc23", problem_id=f"m{i}", sample=0, answer="0", pred=str(i % 3)
        )
        t.reward_breakdown["correct"] = float(i % 3 == 0)
        many.append(t)
    return [good, failed, truncated, hostile, *many]


def write_eval(folder: Path) -> Path:
    f = folder / "my-model" / "trajectories.jsonl"
    save_jsonl(eval_trajectories(), f)
    return f


def write_training_run(folder: Path, steps: int = 5) -> tuple[Path, Path]:
    """A trainer output folder: trajectories/step_*.jsonl (steps from the names) and trainer_state.json."""
    run = folder / "run"
    for s in range(1, steps + 1):
        ts = []
        for j in range(4):
            ok = j < s * 4 // steps  # accuracy rises with the step
            t = solution("1" if ok else "2", cells=1 + (j + s) % 2, failed=int(j == 0 and s < 3))
            t.reward = 1.0 if ok else -1.0
            t.reward_breakdown = {"torl/correct": float(ok), "torl": t.reward, "correct": float(ok)}
            ts.append(t)
        save_jsonl(ts, run / "trajectories" / f"step_{s:06d}.jsonl")
    history = [
        {
            "step": s,
            "reward": -1 + s / 2.5,
            "tir/accuracy": s / steps,
            "tir/tool_calls": 1 + s / 10,
            "tir/frac_with_tool_call": 0.5 + s / 10,
            "tir/code_error_rate": 0.3 / s,
            "completions/mean_length": 300.0 + 10 * s,
            "loss": math.nan if s == 2 else 0.1 * s,
        }
        for s in range(1, steps + 1)
    ] + [{"step": steps, "eval_tir/accuracy": 0.4}, {"step": 1, "eval_tir/accuracy": 0.2}]
    state = run / "trainer_state.json"
    state.write_text(json.dumps({"global_step": steps, "log_history": history}))
    return run / "trajectories", state
