"""The nano task generator: problems, answers, and worked solutions in ToRL's exact format."""

from __future__ import annotations

import random
import re

import pytest

from torl.nano.tasks import TaskConfig, make_problems, pretraining_examples, solution_segments
from torl.rollout import ToRLFormat, torl_prompt


def test_problems_are_seeded_and_answers_exact():
    a = make_problems(200, seed=3)
    assert a == make_problems(200, seed=3)
    assert a != make_problems(200, seed=4)
    for p in a:
        assert int(p.answer) == {"+": p.a + p.b, "-": p.a - p.b, "*": p.a * p.b}[p.op]
        assert int(p.answer) >= 0
        assert str(p.a) in p.text and str(p.b) in p.text
        assert p.prompt == torl_prompt(p.text)


def test_sizes_and_share():
    ps = make_problems(400, seed=0, large_share=0.25)
    assert sum(p.size == "large" for p in ps) == 100
    for p in ps:
        if p.size == "small":
            assert 2 <= p.a <= 9 and 2 <= p.b <= 9
        else:
            assert 100 <= p.a <= 9999 and 100 <= p.b <= 9999


def test_mix_of_styles_follows_the_config():
    cfg = TaskConfig(tool_share=0.25, buggy_share=0.2)
    ex = pretraining_examples(4000, seed=1, cfg=cfg)
    tool = sum(e.style != "hand" for e in ex) / len(ex)
    buggy = sum(e.style == "buggy_tool" for e in ex) / max(1, sum(e.style != "hand" for e in ex))
    assert 0.22 < tool < 0.28
    assert 0.15 < buggy < 0.25

    # Hand arithmetic is exact on small numbers and often wrong on large ones (as configured).
    def boxed(e):
        return re.findall(r"\\boxed\{(\d+)\}", e.segments[-1][1])[-1]

    small = [e for e in ex if e.style == "hand" and e.problem.size == "small"]
    large = [e for e in ex if e.style == "hand" and e.problem.size == "large"]
    assert all(boxed(e) == e.problem.answer for e in small)
    wrong = sum(boxed(e) != e.problem.answer for e in large) / len(large)
    assert 0.6 < wrong < 0.8
    # Noisy results keep their length (a slipped digit, not garbage).
    assert all(len(boxed(e)) == len(e.problem.answer) for e in large)


def test_solutions_follow_the_torl_format():
    rng = random.Random(0)
    p = make_problems(1, seed=5, large_share=1.0)[0]
    fmt = ToRLFormat()
    for style in ("tool", "buggy_tool"):
        segs = solution_segments(p, style, rng)
        kinds = [k for k, _ in segs]
        assert kinds == ["model", "tool", "model"]
        first = segs[0][1]
        assert first.endswith("```output")  # ToRL's stop string, written by the model
        calls = fmt.parse_calls(first, stopped=True)
        assert len(calls) == 1 and str(p.a) in calls[0].code
        assert segs[1][1].startswith("\n") and segs[1][1].endswith("\n```\n")
        assert segs[2][1].endswith("<|endoftext|>") and "\\boxed{" in segs[2][1]
    hand = solution_segments(p, "hand", rng)
    assert [k for k, _ in hand] == ["model"] and "```" not in hand[0][1]
    with pytest.raises(ValueError, match="unknown style"):
        solution_segments(p, "magic", rng)  # type: ignore[arg-type]


async def test_tool_segments_are_what_the_engine_renders():
    """The observation text in the pretraining data is exactly what the rollout engine appends
    after running the cell in the real sandbox, for a working cell and for the buggy one."""
    from torl.tools import LocalSandbox, PythonTool

    rng = random.Random(1)
    fmt = ToRLFormat()
    problems = make_problems(4, seed=9, large_share=0.5)
    async with PythonTool(LocalSandbox(timeout_s=5, workers=1, preload=())) as tool:
        for p in problems:
            for style in ("tool", "buggy_tool"):
                segs = solution_segments(p, style, rng)
                call = fmt.parse_calls(segs[0][1], stopped=True)[0]
                result = await tool.run(call)
                assert fmt.render(segs[0][1], [call], [result]) == segs[1][1]
                assert result.ok == (style == "tool")


@pytest.mark.parametrize(
    "kw",
    [
        {"tool_share": 1.5},
        {"buggy_share": -0.1},
        {"large_digits": (1, 3)},
        {"large_digits": (5, 4)},
        {"small_max": 12},
        {"ops": ("/",)},
        {"ops": ()},
    ],
)
def test_bad_config_is_refused(kw):
    with pytest.raises(ValueError, match="TaskConfig"):
        TaskConfig(**kw)


def test_config_key_tracks_every_field():
    assert TaskConfig().key() == TaskConfig().key()
    assert TaskConfig(tool_share=0.4).key() != TaskConfig().key()
    with pytest.raises(ValueError):
        make_problems(-1, seed=0)
