"""Rewards end to end on real math-verify: trajectories and plain completions, ToRL's penalty options,
ZERO-TIR's answer tag, shaping blocks, weighted sums, and the TRL reward-function convention."""

from __future__ import annotations

import asyncio
import inspect
import pickle

import pytest
from trl.trainer.utils import get_callable_name, is_async_callable

from torl.core import Reward, RewardOutput, Segment, ToolCall, ToolCallRecord, ToolResult, Trajectory
from torl.rewards import (
    ExecutionPenalty,
    FormatReward,
    MathAnswerReward,
    Sample,
    ToolUseReward,
    ToRLReward,
    WeightedReward,
)


def traj(*parts: tuple[str, str], statuses: tuple[str, ...] = ()) -> Trajectory:
    """A trajectory from ("model"|"tool", text) parts and tool-call statuses."""
    segments = [Segment(kind=k, text=t, start=0, end=0) for k, t in parts]  # type: ignore[arg-type]
    calls = [
        ToolCallRecord(call=ToolCall(code="print(1)"), result=ToolResult(status=s), turn=i)  # type: ignore[arg-type]
        for i, s in enumerate(statuses)
    ]
    return Trajectory(prompt_ids=[1], segments=segments, tool_calls=calls)


CODE = "```python\nprint(1/2)\n```\n```output"
GOOD = traj(
    ("model", CODE),
    ("tool", "\n0.5\n```\n"),
    ("model", r"So the answer is \boxed{\frac{1}{2}}."),
    statuses=("ok",),
)
FAILED = traj(
    ("model", CODE), ("tool", "\nNameError: x\n```\n"), ("model", r"\boxed{0.5}"), statuses=("error",)
)
NO_CODE = traj(("model", r"I think \boxed{1/2}"))
BOX_IN_TOOL = traj(("model", CODE), ("tool", "\n\\boxed{0.5}\n```\n"), ("model", "done"), statuses=("ok",))
WRONG = traj(("model", r"\boxed{2}"))


@pytest.fixture
def torl(pool):
    return ToRLReward(pool=pool)


def test_math_answer_reward_on_trajectories(pool):
    r = MathAnswerReward(pool=pool)
    outs = r.score_batch([GOOD, BOX_IN_TOOL, WRONG, NO_CODE], ["0.5"] * 4)
    assert [o.score for o in outs] == [1.0, 0.0, 0.0, 1.0]
    assert outs[1].breakdown == {
        "correct": 0.0,
        "has_answer": 0.0,
        "unverified": 0.0,
    }  # a box in tool output is no answer
    assert outs[0].breakdown == {"correct": 1.0, "has_answer": 1.0, "unverified": 0.0}
    assert r.score(GOOD, "1/2") == RewardOutput(
        score=1.0,
        breakdown={"correct": 1.0, "has_answer": 1.0, "unverified": 0.0},
        answer="\\frac{1}{2}",
        rule="numeric",
    )
    assert [o.rule for o in outs] == ["numeric", "no_answer", "numeric", "numeric"]


def test_torl_reward_values_and_default_penalty_off(torl):
    outs = torl.score_batch([GOOD, FAILED, NO_CODE, WRONG, BOX_IN_TOOL], ["0.5"] * 5)
    assert [o.score for o in outs] == [1.0, 1.0, 1.0, -1.0, -1.0]
    assert all(o.breakdown["execution_penalty"] == 0.0 for o in outs)


def test_torl_execution_penalty_options(pool):
    paper = ToRLReward(execution_penalty=-0.5, pool=pool)
    code = ToRLReward(execution_penalty=-0.5, penalize_no_code=True, pool=pool)
    batch = [GOOD, FAILED, NO_CODE, WRONG]
    assert [o.score for o in paper.score_batch(batch, ["0.5"] * 4)] == [1.0, 0.5, 1.0, -1.0]
    assert [o.score for o in code.score_batch(batch, ["0.5"] * 4)] == [1.0, 0.5, 0.5, -1.5]
    one_of_two = traj(("model", r"\boxed{0.5}"), statuses=("error", "ok"))
    assert paper.score(one_of_two, "0.5").score == 1.0  # ToRL: penalised only when no execution passed
    strict = ExecutionPenalty(-0.5, when="any_failed")
    assert strict.score(one_of_two, None).score == -0.5


def test_zero_tir_answer_tag(pool):
    r = MathAnswerReward(answer_format="answer_tag", pool=pool)
    completions = [
        "<think>compute</think> <answer>$\\frac{1}{2}$</answer>",
        "<think>..</think> <answer>3</answer>",
        "\\boxed{0.5} but no tag",
        "<answer>\\boxed{0.50}",
    ]
    assert r(prompts=[""] * 4, completions=completions, answer=["0.5"] * 4) == [1.0, 0.0, 0.0, 1.0]


def test_trl_text_path_ignores_tool_output(torl):
    completions = [
        "```python\nprint(r'\\boxed{9}')\n```\n```output\n\\boxed{9}\n```\nHence \\boxed{4}.",
        "```python\nprint(4)\n```\n```output\n\\boxed{4}\n```\n",  # truncated before the model boxed
        "<interpreter>\\boxed{4}</interpreter> so \\boxed{4}",
        [{"role": "assistant", "content": "call"}, {"role": "tool", "content": "\\boxed{4}"}],
        [{"role": "assistant", "content": [{"type": "text", "text": "\\boxed{4}"}]}],
    ]
    assert torl(prompts=[""] * 5, completions=completions, answer=["4"] * 5) == [1.0, -1.0, 1.0, -1.0, 1.0]


def test_trl_text_path_guesses_failed_code(pool):
    r = ToRLReward(execution_penalty=-0.5, pool=pool)
    completions = [
        "```python\nprint(x)\n```\n```output\nNameError: name 'x' is not defined\n```\n\\boxed{4}",
        "```python\nprint(4)\n```\n```output\n4\n```\n\\boxed{4}",
    ]
    assert r(prompts=["", ""], completions=completions, answer=["4", "4"]) == [0.5, 1.0]
    assert Sample.from_text(completions[0]).tool_statuses == ("error",)


def test_trl_precise_path_with_trajectories_and_dicts(torl):
    metrics: dict[str, float] = {}
    kwargs = {
        "prompts": ["p"] * 3,
        "completions": [
            "\\boxed{7}",
            "\\boxed{7}",
            "\\boxed{7}",
        ],  # rendered text is not used when segments exist
        "completion_ids": [[1], [2], [3]],
        "answer": ["0.5", "0.5", 0.5],
        "trajectories": [good := GOOD.model_copy(deep=True), BOX_IN_TOOL.model_dump(), FAILED.to_json()],
        "trainer_state": None,
        "log_extra": lambda *a: None,
        "log_metric": lambda k, v: metrics.__setitem__(k, v),
    }
    assert torl(**kwargs) == [1.0, -1.0, 1.0]
    assert metrics == {
        "torl/correct": pytest.approx(2 / 3),
        "torl/execution_penalty": 0.0,
        "torl/has_answer": pytest.approx(2 / 3),
        "torl/unverified": 0.0,
    }
    # the reward writes its verdict onto the Trajectory objects it scored; TRL owns the total
    assert good.reward_breakdown == {
        "torl": 1.0, "torl/correct": 1.0, "torl/has_answer": 1.0, "torl/unverified": 0.0,
        "torl/execution_penalty": 0.0, "correct": 1.0,
    }
    assert good.correct is True and good.metadata["pred"] == "\\frac{1}{2}" and good.reward is None


def test_trl_conventions(torl):
    assert isinstance(torl, Reward) and isinstance(WeightedReward({FormatReward(): 1.0}), Reward)
    assert torl.__name__ == "torl" and get_callable_name(torl) == "torl"
    assert get_callable_name(MathAnswerReward(name="acc")) == "acc"
    assert not is_async_callable(torl)
    params = inspect.signature(torl).parameters
    assert list(params)[:5] == ["prompts", "completions", "completion_ids", "answer", "trajectories"]
    assert torl(prompts=["p"], completions=["\\boxed{1}"], solution=["1"]) == [1.0]


def test_bad_input_is_a_clear_error(torl):
    with pytest.raises(ValueError, match="needs reference answers"):
        torl(prompts=["p"], completions=["\\boxed{1}"])
    with pytest.raises(ValueError, match="2 completions but 1 answers"):
        torl(prompts=["p", "p"], completions=["a", "b"], answer=["1"])
    with pytest.raises(ValueError, match="2 completions but 1 trajectories"):
        torl(prompts=["p", "p"], completions=["a", "b"], answer=["1", "1"], trajectories=[GOOD])
    with pytest.raises(TypeError, match="Trajectory objects or dicts"):
        torl(prompts=["p"], completions=["a"], answer=["1"], trajectories=[3])
    with pytest.raises(ValueError, match="must be its JSON"):
        torl(prompts=["p"], completions=["a"], answer=["1"], trajectories=["oops"])
    with pytest.raises(ValueError, match="not a torl Trajectory dict"):
        torl(prompts=["p"], completions=["a"], answer=["1"], trajectories=[{"segments": [{"text": "x"}]}])
    with pytest.raises(TypeError, match="reference answers must be strings"):
        torl(prompts=["p"], completions=["a"], answer=[["1"]])
    with pytest.raises(ValueError, match="unknown answer_format"):
        MathAnswerReward(answer_format="xml")  # type: ignore[arg-type]
    assert torl(prompts=["p"], completions=["\\boxed{1}"], answer=[""]) == [None]
    assert torl.score(traj(("model", "\\boxed{1}")), "").reason == "no reference answer"


def test_unverifiable_item_scores_on_failure_with_reason(pool):
    slow = (r"\boxed{\frac{x^{40}-1}{x-1}}", r"\sum_{k=0}^{39} x^k")
    r = MathAnswerReward(pool=pool, timeout_s=1e-3)
    out = r.score(traj(("model", slow[0])), slow[1])
    assert out.score is None and out.breakdown["correct"] is None and "timeout" in out.reason
    assert out.breakdown["unverified"] == 1.0
    r0 = ToRLReward(pool=pool, timeout_s=1e-3, on_failure=0.0)
    assert r0.score(traj(("model", slow[0])), slow[1]).score == 0.0


def test_shaping_blocks():
    assert [o.score for o in ToolUseReward().score_batch([GOOD, NO_CODE, FAILED], [None] * 3)] == [
        1.0,
        0.0,
        1.0,
    ]
    ok_only = ToolUseReward(successful_only=True)
    assert [o.score for o in ok_only.score_batch([GOOD, FAILED], [None] * 2)] == [1.0, 0.0]
    fmt = FormatReward(penalty=-1.0)
    unclosed = traj(("model", "```python\nprint(1)\n\\boxed{1}"))
    outs = fmt.score_batch([GOOD, BOX_IN_TOOL, unclosed], [None] * 3)
    assert [o.score for o in outs] == [1.0, -1.0, -1.0]
    assert outs[2].breakdown == {"has_answer": 0.0, "code_closed": 0.0}  # a box inside a code cell is code
    assert FormatReward()(prompts=["p"], completions=["<answer>1</answer>"]) == [0.0]
    assert FormatReward(answer_format="answer_tag")(prompts=["p"], completions=["<answer>1</answer>"]) == [
        1.0
    ]


def test_weighted_reward(torl):
    w = WeightedReward({torl: 1.0, FormatReward(): 0.5, ToolUseReward(): 0.25})
    outs = w.score_batch([GOOD, NO_CODE, WRONG], ["0.5"] * 3)
    assert [o.score for o in outs] == [1.75, 1.5, -0.5]
    assert outs[0].breakdown["torl"] == 1.0 and outs[0].breakdown["torl/correct"] == 1.0
    assert outs[0].breakdown["tool_use/tool_calls"] == 1.0
    assert w(prompts=["p"], completions=["\\boxed{0.5}"], answer=["1/2"]) == [1.5]
    none_part = w.score(GOOD, "")  # the correctness part cannot score: the sum is None
    assert none_part.score is None and "torl: no reference answer" in none_part.reason
    ignore = WeightedReward([(torl, 0.0), (ToolUseReward(), 1.0)])
    assert ignore.score(GOOD, "").score == 1.0
    assert not WeightedReward({FormatReward(): 1.0}).needs_answer
    with pytest.raises(ValueError, match="distinct"):
        WeightedReward({FormatReward(): 1.0, FormatReward(reward=2.0): 1.0})


async def test_async_scoring(torl):
    w = WeightedReward({torl: 1.0, FormatReward(): 0.5})
    a, b = await asyncio.gather(
        torl.ascore_batch([GOOD, WRONG], ["0.5", "0.5"]), w.ascore_batch([GOOD, WRONG], ["0.5", "0.5"])
    )
    assert [o.score for o in a] == [1.0, -1.0]
    assert [o.score for o in b] == [1.5, -0.5]


def test_pickle_drops_the_pool(torl):
    torl(prompts=["p"], completions=["\\boxed{1}"], answer=["1"])
    clone = pickle.loads(pickle.dumps(torl))
    assert clone.__name__ == "torl" and clone._pool is None


async def test_async_scoring_does_not_block_the_event_loop(pool):
    r = MathAnswerReward(pool=pool)
    trajs = [traj(("model", f"\\boxed{{{i}/7}}")) for i in range(1, 60)]
    refs = [f"\\frac{{{i}}}{{7}}" for i in range(1, 60)]
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    outs = await r.ascore_batch(trajs, refs)
    done.set()
    await task
    assert [o.score for o in outs] == [1.0] * len(trajs)
    assert ticks > 1  # the loop kept running while the pool verified


async def test_score_trajectories_is_the_one_scoring_path(pool):
    """Evaluation and the nano run score through the reward object: it writes reward, the one
    `correct` (read as `Trajectory.correct`) and the answer it read onto each trajectory."""
    r = ToRLReward(pool=pool)
    ts = [GOOD.model_copy(deep=True), WRONG.model_copy(deep=True), BOX_IN_TOOL.model_copy(deep=True)]
    for t in ts:
        t.metadata["answer"] = "0.5"
    await r.ascore_trajectories(ts)
    assert [t.reward for t in ts] == [1.0, -1.0, -1.0]
    assert [t.correct for t in ts] == [True, False, False]
    assert [t.metadata["pred"] for t in ts] == ["\\frac{1}{2}", "2", None]
    assert ts[0].reward_breakdown["torl/correct"] == 1.0
    # a weighted reward: the total is the weighted sum, the verdict is the correctness part's
    w = WeightedReward({ToRLReward(pool=pool): 1.0, FormatReward(): 0.5})
    t = GOOD.model_copy(deep=True)
    w.score_trajectories([t], ["0.5"])
    assert t.reward == 1.5 and t.correct is True and t.metadata["pred"] == "\\frac{1}{2}"
