"""Every reference answer of the benchmark files against itself, equivalent forms and wrong forms.

All the pairs go through the verification pool in one batch (math-verify itself for self-verification:
the exact shortcuts are off there).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

from torl.rewards import ToRLReward, Verdict, extract_answer

FILES = ["aime24", "aime25", "amc23", "gsm8k_test", "math500", "olympiadbench"]
_INT = re.compile(r"-?\d+")
_DEC = re.compile(r"-?\d+\.\d+")
_FRAC = re.compile(r"(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}")

pytestmark = pytest.mark.timeout(300)


def equivalent_forms(a: str, i: int = 0) -> list[str]:
    """Other ways to write the reference `a` that a grader must accept (`i` rotates the integer forms)."""
    if _INT.fullmatch(a):
        n = int(a)
        forms = [f"{n}.0", f"x = {n}", f"{n}\\text{{ units}}", f"\\${n}" if n >= 0 else f"{n}.00"]
        return [forms[i % 4], forms[(i + 1) % 4]] + ([f"{n:,}"] if abs(n) >= 1000 else [])
    if _DEC.fullmatch(a):
        f = Fraction(a)
        return [f"\\frac{{{f.numerator}}}{{{f.denominator}}}", a + "0"]
    if m := _FRAC.fullmatch(a):
        sign, p, q = m.groups()
        f = Fraction(int(p), int(q)) * (-1 if sign else 1)
        forms = [f"{f.numerator}/{f.denominator}", f"\\dfrac{{{f.numerator}}}{{{f.denominator}}}"]
        dec = f"{float(f):.10f}".rstrip("0").rstrip(".")
        return forms + ([dec] if Fraction(dec) == f else [])
    # anything else: spacing and \dfrac, decided by the exact shortcut
    return [f"$ {a.replace(',', ', ')} $", a.replace("\\frac", "\\dfrac")]


def wrong_form(a: str, other: str) -> str:
    """A form that must be rejected: off by one for numbers, else another problem's answer."""
    if _INT.fullmatch(a):
        return str(int(a) + 1)
    if _DEC.fullmatch(a):
        return str(Fraction(a) + 1)
    if m := _FRAC.fullmatch(a):
        sign, p, q = m.groups()
        return f"{sign}\\frac{{{int(p) + 1}}}{{{q}}}"
    return other


def load_answers(data_dir: Path) -> list[tuple[str, str]]:
    rows = []
    for name in FILES:
        with (data_dir / f"{name}.jsonl").open(encoding="utf-8") as f:
            rows += [(name, json.loads(line)["answer"]) for line in f if line.strip()]
    return rows


@pytest.fixture(scope="module")
def table(data_dir, pool):
    answers = load_answers(data_dir)
    assert len(answers) == 2594
    self_pairs = [(a, a) for _, a in answers]
    equiv = [(e, a) for i, (_, a) in enumerate(answers) for e in equivalent_forms(a, i)]
    wrong = []
    for i, (name, a) in enumerate(answers):
        j = i + 1
        while answers[j % len(answers)][1] == a or answers[j % len(answers)][0] != name:
            j += 1
        wrong.append((wrong_form(a, answers[j % len(answers)][1]), a))
    verdicts = pool.verify_many(self_pairs, quick=False)
    n = len(self_pairs)
    rest = pool.verify_many(equiv + wrong)
    return answers, (self_pairs, verdicts), (equiv, rest[: len(equiv)]), (wrong, rest[len(equiv) :]), n


def _failures(pairs: list[tuple[str, str]], verdicts: list[Verdict], expected: bool) -> list:
    return [(p, r, v) for (p, r), v in zip(pairs, verdicts, strict=True) if v.correct is not expected]


def test_every_reference_verifies_against_itself_with_math_verify(table):
    _, (pairs, verdicts), *_ = table
    assert _failures(pairs, verdicts, True) == []
    methods = Counter(v.method for v in verdicts)
    print(f"self-verification: {len(pairs)} answers, by method {dict(methods)}")
    # parsed by math-verify (numbers and percentages then compared as exact fractions), no string shortcut
    assert sum(methods[m] for m in ("math_verify", "numeric", "percent", "string_fallback")) == len(pairs)


def test_equivalent_forms_verify(table):
    _, _, (pairs, verdicts), *_ = table
    assert len(pairs) > 4000
    assert _failures(pairs, verdicts, True) == []
    print(
        f"equivalent forms: {len(pairs)}/{len(pairs)} accepted, by method {dict(Counter(v.method for v in verdicts))}"
    )


def test_wrong_forms_fail(table):
    *_, (pairs, verdicts), _ = table
    assert _failures(pairs, verdicts, False) == []
    print(
        f"wrong forms: {len(pairs)}/{len(pairs)} rejected, by method {dict(Counter(v.method for v in verdicts))}"
    )


def test_boxed_references_score_through_the_reward(table, pool):
    answers = table[0]
    r = ToRLReward(pool=pool)
    texts = [f"Reasoning... so the answer is $\\boxed{{{a}}}$." for _, a in answers]
    assert [extract_answer(t) for t in texts] == [a.strip() for _, a in answers]
    scores = r(prompts=[""] * len(texts), completions=texts, answer=[a for _, a in answers])
    assert scores == [1.0] * len(answers)
