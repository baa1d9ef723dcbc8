"""The answer rules, one class of answer form at a time, on real math-verify (issue 17).

Each row is (prediction, reference, question, expected, rule): the verdict and the rule that decided,
checked with and without the quick checks (both paths must agree), in this process and in the pool.
"""

from __future__ import annotations

import pytest

from torl.rewards import math_equal
from torl.rewards.forms import asked, is_name, list_items
from torl.rewards.verify import check_pair

Row = tuple[str, str, str | None, bool, str]

PERCENT: list[Row] = [
    (r"20.0\%", "20", None, True, "percent"),
    (r"20.00\%", "20", None, True, "percent"),
    (r"20.5\%", "20.5", None, True, "percent"),
    (r"20.5 \%", "20.5", None, True, "percent"),
    (r"20.5\%", "0.205", None, True, "percent"),
    ("20.5", r"20.5\%", None, True, "percent"),
    ("0.205", r"20.5\%", None, True, "percent"),
    (r"\frac{41}{2}\%", "20.5", None, True, "percent"),
    (r"20.6\%", "20.5", None, False, "percent"),
    (r"2.05\%", "20.5", None, False, "percent"),
    (r"0.205\%", r"20.5\%", None, False, "percent"),  # both percentages: compared as written
]

ASK_A = "Let $r$ be the remainder when $a$ is divided by 5. What is the value of $a$ if $r = 0$?"
ASKED: list[Row] = [
    ("a = 4, r = 0", "4", ASK_A, True, "asked_variable"),
    ("r = 0, a = 4", "4", ASK_A, True, "asked_variable"),
    (r"a = 4 \text{ and } r = 0", "4", ASK_A, True, "asked_variable"),
    ("o = 3, y = 3", "3", "Solve for $y$ when $o = 3$.", True, "asked_variable"),
    ("x_1 = 2, x_2 = 5", "5", "Find $x_{2}$.", True, "asked_variable"),
    ("a = 5, r = 4", "4", ASK_A, False, "asked_variable"),  # the other variable holds the value
    ("a = 4, r = 0", "0", ASK_A, False, "asked_variable"),
    ("a = 4, a = 5", "4", ASK_A, False, "asked_variable"),  # two values for the asked variable
    ("b = 4, c = 0", "4", ASK_A, False, "asked_variable"),  # the asked variable is not there
    ("a = 4, r = 0", "4", "Find $a$ and $r$.", False, "asked_variable"),  # two asked: not one value
    ("a = 4, r = 0", "4", "How many apples are left?", False, "asked_variable"),
    ("a = 4, r = 0", "4", None, False, "asked_variable"),  # no question: no way to tell
]

LETTERS: list[Row] = [
    ("-48g", "-48*g", None, True, "math_verify"),
    ("5m", "5*m", None, True, "math_verify"),
    ("5m", r"5 \cdot m", None, True, "math_verify"),
    ("2x+3t", "2x+3t", None, True, "exact"),
    ("-48h", "-48*g", None, False, "math_verify"),
    ("5", "5*m", None, False, "math_verify"),
    ("2x+3", "2x+3t", None, False, "math_verify"),  # t is a variable of the reference, not tons
    (r"5\text{ cm}", "5", None, True, "numeric"),  # no variables in the reference: units go
    (r"5 \text{ m}", "5", None, True, "numeric"),
    (r"2\pi r \text{ cm}", r"2\pi r", None, True, "math_verify"),  # a unit in \text{} still goes
]

EXACT: list[Row] = [  # the default: numbers must be exact, at any number of decimals
    ("8.062258", r"\sqrt{65}", None, False, "math_verify"),
    ("8.0623", r"\sqrt{65}", None, False, "math_verify"),
    ("2.4495", r"\sqrt{6}", None, False, "math_verify"),
    ("2.449490", r"\sqrt{6}", None, False, "math_verify"),
    ("0.333333", r"\frac13", None, False, "numeric"),
    ("3.14159", r"\pi", None, False, "math_verify"),
    ("(2.4495, 1)", r"(\sqrt{6}, 1)", None, False, "math_verify"),
    ("0.125", r"\frac18", None, True, "numeric"),
    (r"2.0\sqrt{6}", r"\sqrt{24}", None, True, "math_verify"),
    ("(0.5, 1)", r"(\frac12, 1)", None, True, "math_verify"),
]

REFERENCE_FORMS: list[Row] = [
    ("[3, 5]", "[3, 5]", None, True, "exact"),
    ("3, 5", "[3, 5]", None, False, "math_verify"),  # two increasing values: an interval
    ("3, 5", "[3, 5]", "Find all $x$. Enter all the solutions, separated by commas.", True, "list"),
    ("5, 3", "[3, 5]", "Enter all the solutions, separated by commas.", True, "list"),
    ("[5, 3]", "[3, 5]", "Enter all the solutions, separated by commas.", True, "list"),
    ("x = 3, x = 5", "[3, 5]", "Enter all the solutions, separated by commas.", True, "list"),
    ("3, 4", "[3, 5]", "Enter all the solutions, separated by commas.", False, "math_verify"),
    ("3", "[3, 5]", "Enter all the solutions, separated by commas.", False, "math_verify"),
    ("3, 5", "[5, 3]", None, True, "list"),  # not increasing: no interval
    (r"\{1, 2, 3\}", "[1, 2, 3]", None, True, "list"),
    ("1, 2", "[1, 2, 3]", None, False, "math_verify"),
    ("-2, 3, 5", "-2 3 5", None, True, "list"),
    ("5, 3, -2", "-2 3 5", None, True, "list"),
    ("-2, 3", "-2 3 5", None, False, "math_verify"),
    ("-235", "-2 3 5", None, False, "math_verify"),
    ("-30", "-2 3 5", None, False, "math_verify"),
    ("1000", "1 000", None, True, "numeric"),  # groups of three digits: one number
    ("(b) 0", r"\text{(b) 0}", None, True, "choice"),
    (r"\text{(B) } 0", r"\text{(b) 0}", None, True, "choice"),
    ("B", r"\text{(b) 0}", None, True, "choice"),
    ("0", r"\text{(b) 0}", None, True, "choice"),
    ("(b) 1", r"\text{(b) 0}", None, False, "choice"),
    ("(c) 0", r"\text{(b) 0}", None, False, "choice"),
    ("1", r"\text{(b) 0}", None, False, "choice"),
    ("1e3", "1000", None, True, "numeric"),
    ("1.5e-3", "0.0015", None, True, "numeric"),
    ("1e3", "10^3", None, True, "math_verify"),
    ("1e4", "1000", None, False, "numeric"),
    (r"1.\overline{3}", r"\frac43", None, True, "numeric"),
    (r"0.1\overline{6}", r"\frac16", None, True, "numeric"),
    (r"-0.\overline{142857}", r"-\frac17", None, True, "numeric"),
    (r"\{0.\overline{3}, 1\}", r"\{\frac13, 1\}", None, True, "math_verify"),
    (r"1.\overline{3}", "1.33", None, False, "numeric"),
]

COS = r"Given $\sin x + \sin^2 x = 1$, find $\cos^3 x + \cos^2 x$."
EQUATIONS: list[Row] = [
    (r"\sin^2(x) = 1", "1", COS, False, "assignment"),
    (r"\sin^2(x) = 1", "1", None, False, "assignment"),
    (r"\cos^3 x + \cos^2 x = 1", "1", COS, True, "assignment"),  # the asked quantity
    ("x + y = 5", "5", None, False, "assignment"),
    ("2x = 10", "5", None, False, "assignment"),
    ("x^2 = 25", "25", None, False, "assignment"),
    ("x^2 = 25", "25", "What is $x^2$?", True, "assignment"),
    (r"\frac{1}{2} = 0.5", "0.5", None, False, "assignment"),
    ("x = 5", "5", None, True, "assignment"),
    ("y = 5", "5", None, True, "assignment"),
    ("x = 2 + 3 = 5", "5", None, True, "assignment"),
    ("x = 6", "5", None, False, "assignment"),
    ("AB = 5", "5", None, True, "assignment"),
    (r"\angle ABC = 30^\circ", "30", None, True, "assignment"),
    ("f(3) = 7", "7", None, True, "assignment"),
    (r"\theta = \frac{\pi}{2}", r"\frac{\pi}{2}", None, True, "assignment"),
    ("f(x) = 2x+3", "2x+3", None, True, "assignment"),
    ("x=2, y=3", "(2,3)", None, True, "math_verify"),  # a tuple reference: math-verify's own reading
]

CASES = {
    "percent": PERCENT,
    "asked": ASKED,
    "letters": LETTERS,
    "exact": EXACT,
    "reference": REFERENCE_FORMS,
    "equation": EQUATIONS,
}
ALL = [(k, *row) for k, rows in CASES.items() for row in rows]
IDS = [f"{k}:{p}|{r}|{'q' if q else '-'}" for k, p, r, q, *_ in ALL]


@pytest.mark.parametrize(("kind", "pred", "ref", "question", "expected", "rule"), ALL, ids=IDS)
def test_answer_rule(kind, pred, ref, question, expected, rule):
    v = check_pair(pred, ref, question=question)
    assert (v.correct, v.method) == (expected, rule)
    slow = check_pair(pred, ref, question=question, quick=False)
    assert slow.correct is expected  # without the quick checks: the same verdict
    assert math_equal(pred, ref, question=question) is expected


def test_every_class_has_accepted_and_rejected_forms():
    for kind, rows in CASES.items():
        assert {e for *_, e, _ in rows} == {True, False}, kind


TOLERANCE: list[tuple[str, str, bool]] = [  # rel_tol=1e-4, the same at every number of decimals
    ("8.062258", r"\sqrt{65}", True),
    ("8.0623", r"\sqrt{65}", True),
    ("2.4495", r"\sqrt{6}", True),
    ("3.1416", r"\pi", True),
    ("0.3333", r"\frac13", True),
    ("x = 2.4495", r"\sqrt{6}", True),
    ("(2.4495, 1)", r"(\sqrt{6}, 1)", True),
    (r"33.33\%", r"\frac13", True),
    ("8.06", r"\sqrt{65}", False),
    ("2.45", r"\sqrt{6}", False),
    ("0.333", r"\frac13", False),
    ("3.14", r"\pi", False),
    ("(2.45, 1)", r"(\sqrt{6}, 1)", False),
]


@pytest.mark.parametrize(("pred", "ref", "expected"), TOLERANCE)
def test_relative_tolerance_option(pred, ref, expected):
    assert check_pair(pred, ref, rel_tol=1e-4).correct is expected
    assert check_pair(pred, ref, rel_tol=1e-4, quick=False).correct is expected
    assert math_equal(pred, ref, rel_tol=1e-4) is expected
    if expected and "=" not in pred:
        assert math_equal(pred, ref) is False  # inexact: only with the option


def test_rules_through_the_pool(pool):
    pairs = [(p, r) for _, p, r, *_ in ALL]
    questions = [q for _, _, _, q, *_ in ALL]
    got = pool.verify_many(pairs, questions=questions)
    assert [(v.correct, v.method) for v in got] == [(e, rule) for *_, e, rule in ALL]
    assert [v.correct for v in pool.verify_many(pairs, quick=False, questions=questions)] == [
        e for *_, e, _ in ALL
    ]
    tol = pool.verify_many([(p, r) for p, r, _ in TOLERANCE], rel_tol=1e-4)
    assert [v.correct for v in tol] == [e for *_, e in TOLERANCE]
    # the question and the tolerance are part of the cached key: no verdict leaks across settings
    assert pool.verify("a = 4, r = 0", "4").result().correct is False
    assert pool.verify("a = 4, r = 0", "4", question=ASK_A).result().correct is True
    assert pool.verify("2.4495", r"\sqrt{6}").result().correct is False
    with pytest.raises(ValueError, match="2 pairs but 1 questions"):
        pool.verify_many([("1", "1"), ("2", "2")], questions=["q"])


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        (ASK_A, ["a"]),
        (COS, [r"\cos^3x+\cos^2x"]),
        ("Find $x_{2}$ such that $x_1 = 3$.", ["x_2"]),
        (r"What is $f(3)$?  Express your answer as \(\frac{a}{b}\).", ["f(3)", r"\frac{a}{b}"]),
        ("If $x + y = 3$, compute $xy$.", ["xy"]),
        ("How many integers $n$ satisfy $n^2 < 10$?", ["n"]),
        ("Let $n = 5$. The sum is $S$.", []),
        (None, []),
    ],
)
def test_asked_quantities(question, expected):
    assert asked(question) == expected


def test_names():
    names = [
        "x",
        "a_1",
        "a_{10}",
        r"\theta",
        "x'",
        "AB",
        r"\angle ABC",
        r"m\angle A",
        r"\overline{AB}",
        "f(3)",
    ]
    names += [r"\mathbf{v}", "P(A)", r"\text{Area}", "f^{-1}(2)", r"x_{\max}", "S_{n+1}"]
    assert all(is_name(n) for n in names), [n for n in names if not is_name(n)]
    not_names = [r"\sin^2(x)", "2x", "x+y", "x^2", "ab", r"\frac{1}{2}", "3", r"\cos x", "f(f(2))"]
    assert not any(is_name(n) for n in not_names), [n for n in not_names if is_name(n)]


def test_bracketed_reference_readings():
    assert list_items("[3, 5]", None) is None  # an interval
    assert list_items("[3, 5]", "Express your answer in interval notation.") is None
    assert list_items("[3, 5]", "List the solutions, separated by commas.") == ["3", "5"]
    assert list_items("[5, 3]", None) == ["5", "3"]
    assert list_items(r"[\frac{1}{2}, 8]", None) is None
    assert list_items("[1, 2, 3]", None) == ["1", "2", "3"]
    assert list_items(r"[3,7] \cup [8,9)", None) is None
    assert list_items("[a, b] , [c, d]", None) is None  # not one bracket
