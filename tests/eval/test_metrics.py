"""pass@k, maj@k, tool statistics and the ToRL table."""

from __future__ import annotations

import itertools
import math

import pytest
from fakes import solution

from torl.eval import (
    TORL_REPORTED,
    format_details,
    format_table,
    majority_vote,
    pass_at_k,
    summarize,
    summary_row,
    tool_stats,
)


def _brute_pass_at_k(n: int, c: int, k: int) -> float:
    # share of k-subsets of n samples (c correct) with at least one correct
    flags = [1] * c + [0] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(flags[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_pass_at_k_is_the_unbiased_estimator(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert math.isclose(pass_at_k(n, c, k), _brute_pass_at_k(n, c, k))
    assert pass_at_k(4, 1, 1) == 0.25


@pytest.mark.parametrize("args", [(3, 4, 1), (3, 1, 0), (3, 1, 4), (2, -1, 1)])
def test_pass_at_k_rejects_impossible_counts(args):
    with pytest.raises(ValueError, match="pass_at_k needs"):
        pass_at_k(*args)


def test_majority_vote_groups_equal_answers():
    # "0.5", "\frac{1}{2}" and "1/2" are one answer (math_equal); None does not vote
    assert majority_vote(["3", "0.5", None, "\\frac{1}{2}", "3", "1/2"]) == 1
    assert majority_vote(["4", "5"]) == 0  # a tie goes to the first
    assert majority_vote([None, None]) is None


def _scored(bench, pid, sample, answer, correct, cells=1, failed=0, finish="stop"):
    t = solution(answer, cells=cells, failed=failed)
    t.finish_reason = finish
    t.metadata.update(benchmark=bench, problem_id=pid, sample=sample, pred=answer)
    t.reward_breakdown["correct"] = float(correct)
    return t


def test_summarize_counts_per_benchmark():
    ts = [
        # p1: 1 of 4 correct; the majority ("7", 3 votes) is wrong
        _scored("aime24", "p1", 0, "7", False),
        _scored("aime24", "p1", 1, "5", True),
        _scored("aime24", "p1", 2, "7", False, cells=2, failed=1),
        _scored("aime24", "p1", 3, "7.0", False, cells=0),
        # p2: 3 of 4 correct, one without an answer and cut by the token limit
        _scored("aime24", "p2", 0, "2", True),
        _scored("aime24", "p2", 1, "2", True),
        _scored("aime24", "p2", 2, "2", True),
        _scored("aime24", "p2", 3, None, False, cells=0, finish="length"),
        _scored("math500", "m1", 0, "1", True, cells=3, failed=3),
    ]
    s = summarize(ts)
    a = s["benchmarks"]["aime24"]
    assert (a["problems"], a["samples"], a["k"]) == (2, 8, 4)
    assert a["pass@1"] == pytest.approx((0.25 + 0.75) / 2)
    assert a["pass@k"] == {"1": pytest.approx(0.5), "2": pytest.approx((0.5 + 1.0) / 2), "4": 1.0}
    assert a["maj@k"] == 0.5  # p1's majority "7" is wrong, p2's "2" is right
    assert a["cells_per_problem"] == pytest.approx(7 / 8)  # 1+1+2+0 + 1+1+1+0 cells over 8 samples
    assert a["code_error_rate"] == pytest.approx(1 / 7)
    assert a["tool_use_rate"] == pytest.approx(6 / 8)
    assert a["no_answer_rate"] == pytest.approx(1 / 8)
    assert a["truncated_rate"] == pytest.approx(1 / 8)
    m = s["benchmarks"]["math500"]
    assert (m["pass@1"], m["maj@k"], m["code_error_rate"], m["k"]) == (1.0, 1.0, 1.0, 1)
    assert s["average"]["pass@1"] == pytest.approx((0.5 + 1.0) / 2)


def test_table_has_torl_columns_in_order_and_reference_rows():
    row = summary_row(
        {
            "benchmarks": {
                "math500": {"pass@1": 0.5},
                "aime24": {"pass@1": 0.25},
                "gsm8k_test": {"pass@1": 1.0},
            }
        }
    )
    assert row == {"MATH500": 50.0, "AIME24": 25.0, "gsm8k_test": 100.0, "Avg": pytest.approx(175 / 3)}
    text = format_table({"mine": row, **TORL_REPORTED})
    lines = text.splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == [
        "Model",
        "AIME24",
        "AIME25",
        "MATH500",
        "OlympiadBench",
        "AMC23",
        "gsm8k_test",
        "Avg",
    ]
    assert [c.strip() for c in lines[2].strip("|").split("|")] == [
        "mine",
        "25.0",
        "-",
        "50.0",
        "-",
        "-",
        "100.0",
        "58.3",
    ]
    assert "| ToRL-1.5B (reported) |   26.7 |   26.7 |    77.8 |          44.0 |  67.5 |" in text
    assert len({len(x) for x in lines}) == 1  # aligned


def test_details_table_and_unknown_metric():
    s = summarize([_scored("amc23", "a", 0, "1", True)])
    text = format_details(s)
    assert "AMC23" in text and "100.0%" in text
    with pytest.raises(ValueError, match="unknown metric"):
        summary_row(s, metric="bogus")
    assert summary_row(s, "tool_use_rate")["AMC23"] == 100.0


def test_tool_stats_are_shared_by_eval_and_nano():
    from torl.nano import summarize_nano

    ts = [solution("1", cells=0), solution("1", cells=2, failed=1), solution("2", cells=1)]
    assert tool_stats(ts) == {
        "cells": 3,
        "failed_cells": 1,
        "cells_per_problem": 1.0,
        "tool_use_rate": 2 / 3,
        "code_error_rate": 1 / 3,
    }
    assert tool_stats([solution("1", cells=0)])["code_error_rate"] is None  # no cell ran: nothing to rate
    assert tool_stats([])["tool_use_rate"] == 0.0
    nano = summarize_nano(ts)
    assert (nano.tool_use, nano.code_error_rate) == (2 / 3, 1 / 3)
