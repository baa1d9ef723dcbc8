"""The evaluation loop on a scripted engine: scoring, k samples, saving as problems finish, resuming.

The same loop runs on the real vLLM engine in test_eval_vllm.py.
"""

from __future__ import annotations

import json

import pytest
from fakes import ScriptedPolicy

from torl.core import load_jsonl
from torl.eval import EvalError, EvalSettings, Problem, evaluate

PROBLEMS = [Problem("toy", f"p{i}", f"Q{i}", str(i)) for i in range(5)]
RIGHT = {f"Q{i}": [str(i)] for i in range(5)}


def ident(problem: str) -> str:
    return problem


async def test_scores_every_sample_and_saves_them(tmp_path):
    script = {**RIGHT, "Q1": ["1", "9", None]}  # p1: 1 right of 3... over k=4: 1, 9, None, 1
    policy = ScriptedPolicy(script)
    out = tmp_path / "t.jsonl"
    res = await evaluate(policy, PROBLEMS, EvalSettings(k=4), output=out, prompt_fn=ident, progress=False)
    assert {c[1] for c in policy.calls} == {4}
    assert {c[2]["temperature"] for c in policy.calls} == {1.0}  # k > 1: ToRL's temperature 1.0
    assert len(res.trajectories) == 20 and res.generated == 5
    p1 = [t for t in res.trajectories if t.metadata["problem_id"] == "p1"]
    assert [t.metadata["pred"] for t in p1] == ["1", "9", None, "1"]
    assert [t.correct for t in p1] == [True, False, False, True]
    assert [t.reward for t in p1] == [1.0, 0.0, 0.0, 1.0]
    s = res.summary["benchmarks"]["toy"]
    assert s["pass@1"] == pytest.approx((4 * 1.0 + 0.5) / 5)
    assert s["maj@k"] == 1.0 and s["tool_use_rate"] == 1.0
    saved = load_jsonl(out)
    assert len(saved) == 20
    assert saved[0].metadata["eval_settings"]["temperature"] == 1.0


async def test_greedy_by_default_and_seeds_per_problem():
    policy = ScriptedPolicy(RIGHT)
    await evaluate(policy, PROBLEMS[:2], EvalSettings(seed=100), prompt_fn=ident, progress=False)
    assert sorted((c[0], c[2]["temperature"], c[2]["seed"]) for c in policy.calls) == [
        ("Q0", 0.0, 100),
        ("Q1", 0.0, 101),
    ]


async def test_a_crash_loses_only_unfinished_problems_and_a_rerun_resumes(tmp_path):
    out = tmp_path / "t.jsonl"
    settings = EvalSettings(k=2, model="m")
    broken = ScriptedPolicy(RIGHT, fail_on=["Q3"])
    with pytest.raises(EvalError, match="generation failed: RuntimeError: engine died on 'Q3'"):
        await evaluate(broken, PROBLEMS, settings, output=out, prompt_fn=ident, progress=False, concurrency=1)
    saved = {t.metadata["problem_id"] for t in load_jsonl(out)}
    # finished before the crash (p4 may finish while the failure is handled: then it is saved too)
    assert {"p0", "p1", "p2"} <= saved and "p3" not in saved
    assert len(load_jsonl(out)) == 2 * len(saved)  # each with both samples
    fixed = ScriptedPolicy(RIGHT)
    res = await evaluate(fixed, PROBLEMS, settings, output=out, prompt_fn=ident, progress=False)
    assert sorted(c[0] for c in fixed.calls) == sorted(f"Q{p[1:]}" for p in {"p3", "p4"} - saved)
    assert res.generated == 5 - len(saved) and len(res.trajectories) == 10
    assert [t.metadata["problem_id"] for t in res.trajectories[::2]] == ["p0", "p1", "p2", "p3", "p4"]
    again = ScriptedPolicy(RIGHT)
    res = await evaluate(again, PROBLEMS, settings, output=out, prompt_fn=ident, progress=False)
    assert again.calls == [] and res.summary["benchmarks"]["toy"]["pass@1"] == 1.0


async def test_torn_last_line_and_incomplete_problems_are_redone(tmp_path):
    out = tmp_path / "t.jsonl"
    settings = EvalSettings(k=2)
    await evaluate(ScriptedPolicy(RIGHT), PROBLEMS[:3], settings, output=out, prompt_fn=ident, progress=False)
    lines = out.read_text().splitlines(keepends=True)
    # keep p0 whole, p1's first sample only, and half of p2's first line (a write cut short)
    out.write_text(lines[0] + lines[1] + lines[2] + lines[4][:50])
    policy = ScriptedPolicy(RIGHT)
    res = await evaluate(policy, PROBLEMS[:3], settings, output=out, prompt_fn=ident, progress=False)
    assert sorted(c[0] for c in policy.calls) == ["Q1", "Q2"]
    assert len(res.trajectories) == 6 and len(load_jsonl(out)) == 6


async def test_other_settings_or_changed_answers_are_refused(tmp_path):
    out = tmp_path / "t.jsonl"
    await evaluate(
        ScriptedPolicy(RIGHT), PROBLEMS[:2], EvalSettings(k=1), output=out, prompt_fn=ident, progress=False
    )
    before = out.read_bytes()
    with pytest.raises(
        EvalError, match=r"other settings: k=1 \(now 2\), temperature=0\.0 \(now 1\.0\).*--overwrite"
    ):
        await evaluate(ScriptedPolicy(RIGHT), PROBLEMS[:2], EvalSettings(k=2), output=out, prompt_fn=ident)
    changed = [Problem("toy", "p0", "Q0", "42")]
    with pytest.raises(EvalError, match="toy/p0 have reference answer '0' but the data says '42'"):
        await evaluate(ScriptedPolicy(RIGHT), changed, EvalSettings(k=1), output=out, prompt_fn=ident)
    assert out.read_bytes() == before  # nothing lost


async def test_a_corrupt_line_in_the_middle_is_reported_not_dropped(tmp_path):
    out = tmp_path / "t.jsonl"
    await evaluate(
        ScriptedPolicy(RIGHT), PROBLEMS[:2], EvalSettings(), output=out, prompt_fn=ident, progress=False
    )
    lines = out.read_text().splitlines(keepends=True)
    out.write_text(json.dumps({"not": "a trajectory"}) + "\n" + lines[1])
    with pytest.raises(EvalError, match=r"t\.jsonl:1: not a trajectory"):
        await evaluate(ScriptedPolicy(RIGHT), PROBLEMS[:2], EvalSettings(), output=out, prompt_fn=ident)


async def test_failed_rollouts_are_kept_unless_retried(tmp_path):
    out = tmp_path / "t.jsonl"

    class Erroring(ScriptedPolicy):
        async def generate(self, prompts, n=1, **sampling):
            ts = await super().generate(prompts, n, **sampling)
            for t in ts:
                t.finish_reason, t.error = "error", "sandbox crashed"
            return ts

    res = await evaluate(
        Erroring(RIGHT), PROBLEMS[:2], EvalSettings(), output=out, prompt_fn=ident, progress=False
    )
    s = res.summary["benchmarks"]["toy"]
    assert s["error_count"] == 2 and s["pass@1"] == 0.0  # a failed rollout scores nothing
    policy = ScriptedPolicy(RIGHT)
    await evaluate(policy, PROBLEMS[:2], EvalSettings(), output=out, prompt_fn=ident, progress=False)
    assert policy.calls == []
    res = await evaluate(
        policy, PROBLEMS[:2], EvalSettings(), output=out, prompt_fn=ident, progress=False, retry_errors=True
    )
    assert len(policy.calls) == 2 and res.summary["benchmarks"]["toy"]["pass@1"] == 1.0
    assert len(load_jsonl(out)) == 2


async def test_wrong_number_of_samples_is_an_error():
    class Short(ScriptedPolicy):
        async def generate(self, prompts, n=1, **sampling):
            return (await super().generate(prompts, n, **sampling))[:1]

    with pytest.raises(EvalError, match="returned 1 samples for toy/p0, expected 3"):
        await evaluate(Short(RIGHT), PROBLEMS[:1], EvalSettings(k=3), prompt_fn=ident, progress=False)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="k must be at least 1"):
        EvalSettings(k=0)
    with pytest.raises(ValueError, match="top_p"):
        EvalSettings(top_p=0)
    assert EvalSettings(k=8, temperature=0.6).sampling() == {"temperature": 0.6}


async def test_scoring_reads_the_answer_format_and_ignores_tool_output():
    from fakes import make_trajectory

    from torl.eval import EvalSettings, default_reward, score_trajectories

    t = make_trajectory([("model", "<think>x</think> <answer>\\frac{1}{2}</answer>")])
    t.metadata["answer"] = "0.5"
    await score_trajectories([t], default_reward(EvalSettings(answer_format="answer_tag")))
    assert (t.metadata["pred"], t.correct, t.reward) == ("\\frac{1}{2}", True, 1.0)
    # a box printed by the tool is not the model's answer
    t = make_trajectory([("model", "```python\nprint(1)\n```\n```output"), ("tool", "\n\\boxed{7}\n```\n")])
    t.metadata["answer"] = "7"
    await score_trajectories([t], default_reward(EvalSettings()))
    assert (t.metadata["pred"], t.correct, t.reward) == (None, False, 0.0)
