"""The answer rules inside the correctness rewards: where the answer is read (prose or whole response),
the question from the dataset's `problem` column, the tolerance option, and the rule in each output."""

from __future__ import annotations

import pytest

from torl.core import Segment, ToolCall, ToolCallRecord, ToolResult, Trajectory
from torl.rewards import MathAnswerReward, ToRLReward


def traj(*parts: tuple[str, str]) -> Trajectory:
    segments = [Segment(kind=k, text=t, start=0, end=0) for k, t in parts]  # type: ignore[arg-type]
    calls = [
        ToolCallRecord(call=ToolCall(code="..."), result=ToolResult(status="ok"), turn=i)
        for i, (k, _) in enumerate(p for p in parts if p[0] == "tool")
    ]
    return Trajectory(prompt_ids=[1], segments=segments, tool_calls=calls)


PRINTS_BOX = "```python\nprint(r'\\boxed{7}')\n```\n```output"
BOX_IN_CELL_AND_OUTPUT = traj(("model", PRINTS_BOX), ("tool", "\n\\boxed{7}\n```\n"), ("model", "Done."))
BOX_IN_CELL_ONLY = traj(("model", "Let me write it:\n```python\nanswer = r'\\boxed{7}'\n```\nThat is all."))
UNCLOSED_CELL = traj(("model", "```python\nprint(r'\\boxed{7}')"))
CODE_TAG = traj(("model", "<code>print(r'\\boxed{7}')</code> so"))
PROSE_BOX = traj(("model", PRINTS_BOX), ("tool", "\n\\boxed{6}\n```\n"), ("model", "So \\boxed{7}."))
BATCH = [BOX_IN_CELL_AND_OUTPUT, BOX_IN_CELL_ONLY, UNCLOSED_CELL, CODE_TAG, PROSE_BOX]


def test_the_answer_is_read_from_the_models_prose_by_default(pool):
    outs = ToRLReward(pool=pool).score_batch(BATCH, ["7"] * len(BATCH))
    assert [o.score for o in outs] == [-1.0, -1.0, -1.0, -1.0, 1.0]
    assert [o.rule for o in outs] == ["no_answer"] * 4 + ["exact"]
    assert [o.breakdown["has_answer"] for o in outs] == [0.0, 0.0, 0.0, 0.0, 1.0]


def test_torl_response_mode_takes_the_last_box_of_everything(pool):
    r = ToRLReward(pool=pool, answer_source="response")
    assert [o.score for o in r.score_batch(BATCH, ["7"] * len(BATCH))] == [1.0, 1.0, 1.0, 1.0, 1.0]
    # the last box of the whole response wins, even when the model's own answer came earlier
    late_output = traj(("model", "So \\boxed{7}. Check:\n" + PRINTS_BOX), ("tool", "\n\\boxed{6}\n```\n"))
    assert r.score(late_output, "7").score == -1.0
    assert ToRLReward(pool=pool).score(late_output, "7").score == 1.0


def test_text_completions_follow_the_same_sources(pool):
    completions = [
        PRINTS_BOX + "\n\\boxed{7}\n```\nDone.",
        "```python\nanswer = r'\\boxed{7}'\n```\nThat is all.",
        PRINTS_BOX + "\n\\boxed{6}\n```\nSo \\boxed{7}.",
    ]
    prose = MathAnswerReward(pool=pool)
    whole = MathAnswerReward(pool=pool, answer_source="response")
    assert prose(prompts=["p"] * 3, completions=completions, answer=["7"] * 3) == [0.0, 0.0, 1.0]
    assert whole(prompts=["p"] * 3, completions=completions, answer=["7"] * 3) == [1.0, 1.0, 1.0]


def test_the_problem_column_reaches_the_asked_variable_rule(pool):
    r = MathAnswerReward(pool=pool)
    completions = ["\\boxed{a = 4, r = 0}", "\\boxed{a = 5, r = 4}"]
    problem = ["What is the value of $a$ if $r = 0$?"] * 2
    assert r(prompts=["p"] * 2, completions=completions, answer=["4"] * 2) == [0.0, 0.0]
    assert r(prompts=["p"] * 2, completions=completions, answer=["4"] * 2, problem=problem) == [1.0, 0.0]
    assert r(prompts=["p"] * 2, completions=completions, answer=["4"] * 2, question=problem) == [1.0, 0.0]
    trajs = [traj(("model", c)) for c in completions]
    assert [o.score for o in r.score_batch(trajs, ["4", "4"], questions=problem)] == [1.0, 0.0]
    # given trajectories, TRL's call records the rule that decided on each one
    r(prompts=["p"] * 2, completions=completions, answer=["4"] * 2, problem=problem, trajectories=trajs)
    assert [t.metadata["rule"] for t in trajs] == ["asked_variable"] * 2 and trajs[0].correct
    with pytest.raises(ValueError, match="2 samples but 1 questions"):
        r(prompts=["p"] * 2, completions=completions, answer=["4"] * 2, problem=problem[:1])


async def test_relative_tolerance_option(pool):
    exact, tol = ToRLReward(pool=pool), ToRLReward(pool=pool, rel_tol=1e-4)
    trajs = [traj(("model", f"\\boxed{{{a}}}")) for a in ("2.4495", "8.062258", "2.45", "\\sqrt{6}")]
    refs = [r"\sqrt{6}", r"\sqrt{65}", r"\sqrt{6}", r"\sqrt{6}"]
    assert [o.score for o in exact.score_batch(trajs, refs)] == [-1.0, -1.0, -1.0, 1.0]
    outs = await tol.ascore_batch(trajs, refs)
    assert [o.score for o in outs] == [1.0, 1.0, -1.0, 1.0]
    assert outs[0].rule == "tolerance"
    with pytest.raises(ValueError, match="rel_tol"):
        MathAnswerReward(rel_tol=-1.0)
    with pytest.raises(ValueError, match="answer_source"):
        MathAnswerReward(answer_source="all")  # type: ignore[arg-type]


def test_rules_are_recorded_for_audit(pool):
    r = MathAnswerReward(pool=pool)
    answers = ["0.5", r"20.0\%", "x = 5", r"\sin^2(x) = 1", r"\sqrt{8}", r"\text{June 1}", "3, 5"]
    refs = [r"\frac12", "20", "5", "5", r"2\sqrt{2}", "June 1", "[5, 3]"]
    outs = r.score_batch([traj(("model", f"\\boxed{{{a}}}")) for a in answers], refs)
    assert [o.rule for o in outs] == [
        "numeric",
        "percent",
        "assignment",
        "assignment",
        "math_verify",
        "string_fallback",
        "list",
    ]
    assert [o.score for o in outs] == [1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
