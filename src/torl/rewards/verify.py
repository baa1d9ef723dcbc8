"""Answer equivalence on math-verify, with cheap exact checks first and a string fallback last.

`math_equal` runs in the calling process. For batches, and for a hard time limit, use `VerifyPool`,
whose workers run `check_pair` in their main thread.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Literal

from torl.rewards import forms

logger = logging.getLogger(__name__)

Method = Literal[
    "exact",
    "integer",
    "numeric",
    "percent",
    "math_verify",
    "tolerance",
    "assignment",
    "asked_variable",
    "choice",
    "list",
    "string_fallback",
    "torl_exact",
    "torl_math_verify",
    "torl_string_fallback",
    "zero_tir_numeric",
    "no_answer",
    "timeout",
    "error",
]
"""The rule that decided a comparison (see docs/rewards.md, "Answer rules"; `torl_*` and `zero_tir_*`: the
originals' scorers)."""

Scorer = Literal["default", "torl", "zero_tir"]
"""Whose answer check: torl's rules ("default"), ToRL's ("torl") or AReaL ZERO-TIR-RL's ("zero_tir"); see
`torl.rewards.originals`."""
SCORERS: tuple[str, ...] = ("default", "torl", "zero_tir")


@dataclass(frozen=True)
class Verdict:
    """Outcome of comparing a predicted answer with a reference.

    `correct` is None when the comparison could not be made (timeout, crashed worker, error);
    `method` names the rule that decided; `reason` explains a None.
    """

    correct: bool | None
    method: Method
    reason: str | None = None


_SPACING = re.compile(r"\\(?:[,;:! ]|q?quad(?![A-Za-z]))")
_LEFT_RIGHT = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![A-Za-z])")
_FRAC = re.compile(r"\\[dt]frac(?![A-Za-z])")
_SPACE = re.compile(r"(?<![A-Za-z])\s+|\s+(?![A-Za-z])")
_DIGIT_SPACE = re.compile(r"(?<=\d)\s+(?=\d)")
_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER_IN_TEXT = re.compile(
    r"\\(?:text|mbox|mathrm)\s*\{\s*([-+]?\d[\d,]*(?:\.\d+)?)\s+([A-Za-z][A-Za-z ]*)\}"
)
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_TIMES_LETTER = re.compile(r"(?:\*|\\cdot|\\times)\s*[A-Za-z]")
_TRAILING_UNIT = re.compile(
    r"(?<=\S)\s*\\(?:text|mathrm|mbox)\s*\{\s*~?\s*[A-Za-z][A-Za-z ]*\}(?:\^\{?[23]\}?)?\s*$"
)


def normalize_answer(s: str) -> str:
    """Light, meaning-preserving clean-up of a LaTeX answer, for exact comparison.

    Drops `$` delimiters, `\\left`/`\\right`, spacing commands, a trailing period and whitespace that
    LaTeX ignores (a space between two digits stays one space: `-2 3 5` is not `-235`); turns
    `\\dfrac`/`\\tfrac` into `\\frac`. Two answers equal after this are equal.
    """
    s = s.strip().strip("$").strip()
    s = _SPACING.sub(" ", s)
    s = _LEFT_RIGHT.sub("", s)
    s = _FRAC.sub(r"\\frac", s)
    s = _SPACE.sub("", _DIGIT_SPACE.sub("\x00", s)).replace("\x00", " ").strip()
    return s[:-1] if s.endswith(".") and not s.endswith("\\.") else s


def _loose(s: str) -> str:
    """Looser form for the last-resort string comparison: `\\text{}` wrappers off, no spaces, lower case."""
    s = normalize_answer(s)
    for _ in range(3):
        s2 = _TEXT_WRAP.sub(r"\1", s)
        if s2 == s:
            break
        s = s2
    return re.sub(r"\s+", "", s).lower()


def quick_check(pred: str, ref: str, rel_tol: float | None = None) -> Verdict | None:
    """Decide without sympy when it is safe: equal after `normalize_answer`, or two plain numbers
    (integers, decimals, fractions, percentages, `1e3`, `1.\\overline{3}`) compared exactly, or within
    `rel_tol` of each other when it is given.

    Returns None when more is needed.
    """
    p, r = normalize_answer(pred), normalize_answer(ref)
    if not p:
        return Verdict(False, "no_answer")
    if p == r:
        return Verdict(True, "exact")
    if not rel_tol and _INTEGER.fullmatch(p) and _INTEGER.fullmatch(r) and len(p) + len(r) < 2000:
        return Verdict(int(p) == int(r), "integer")
    a, b = forms.number(p), forms.number(r)
    if a is not None and b is not None:
        return Verdict(forms.numbers_equal(a, b, rel_tol), "percent" if a[1] or b[1] else "numeric")
    return None


class _Deadline(BaseException):
    """Raised by our alarm; a BaseException so that math-verify's `except Exception` does not swallow it."""


@contextlib.contextmanager
def _alarm(timeout_s: float | None) -> Iterator[None]:
    """Interrupt the block after `timeout_s` seconds (SIGALRM; main thread only, else no limit)."""
    if not timeout_s or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: object) -> None:
        raise _Deadline()

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@functools.cache
def _mv():
    import math_verify
    import math_verify.grader
    import math_verify.parser

    # We time-limit the whole check ourselves (one alarm): silence math-verify's "timeout disabled" note.
    math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    math_verify.parser.TIMEOUT_WARNING_SHOWN = True
    return math_verify


@functools.cache
def _letters_config() -> list:
    """math-verify's parse settings without unit removal: a trailing letter stays a variable (`5m` = 5*m)."""
    from latex2sympy2_extended.latex2sympy2 import NormalizationConfig

    mv = _mv()
    norm = NormalizationConfig(
        basic_latex=True, units=False, malformed_operators=True, nits=True, boxed="all", equations=False
    )
    return [mv.LatexExtractionConfig(normalization_config=norm), mv.ExprExtractionConfig()]


@functools.lru_cache(maxsize=8192)
def _parse(s: str, letters: bool = False) -> tuple:
    mv = _mv()
    s = _NUMBER_IN_TEXT.sub(r"\1\\text{ \2}", s)  # "\text{5 cm}" -> "5\text{ cm}": math-verify drops the unit
    if not letters:
        return tuple(_exact(x) for x in mv.parse("\\boxed{" + s + "}", parsing_timeout=None))
    s = _TRAILING_UNIT.sub("", s)  # a unit in \text{} still goes
    got = mv.parse("\\boxed{" + s + "}", _letters_config(), parsing_timeout=None)
    return tuple(_exact(x) for x in got)


def _exact(x: object) -> object:
    """Decimals as exact rationals (`0.333333` is 333333/1000000, not 1/3 rounded to 6 places)."""
    from sympy import Basic, Float, Rational, evaluate
    from sympy.logic.boolalg import BooleanAtom
    from sympy.matrices import MatrixBase

    if isinstance(x, MatrixBase):
        return x.applyfunc(_exact)
    if not isinstance(x, Basic):
        return x
    floats = x.atoms(Float)
    if not floats:
        return x
    try:
        mapping = {f: Rational(str(f)) for f in floats}
        new = x.xreplace(mapping)
        if isinstance(new, BooleanAtom) and not isinstance(
            x, BooleanAtom
        ):  # Eq(x, {1.5}) must not become False
            with evaluate(False):
                new = x.xreplace(mapping)
        return new
    except (TypeError, ValueError):  # nan, inf
        return x


def _sympy_number(x: object) -> forms.Number | None:
    """A parsed rational number or percentage as (Fraction, is_percent); None for anything else."""
    from sympy import Mul, Rational, UnevaluatedExpr

    pct = False
    if isinstance(x, Mul) and (hundredth := UnevaluatedExpr(Rational(1, 100))) in x.args:
        rest = list(x.args)
        rest.remove(hundredth)
        x, pct = Mul(*rest), True
    if isinstance(x, Rational):
        return Fraction(int(x.p), int(x.q)), pct
    return None


def _close(a: object, b: object, rel_tol: float) -> bool:
    """Numbers (or tuples and sets of numbers) within a relative tolerance of each other."""
    from sympy import Expr, FiniteSet, Tuple

    if isinstance(a, (Tuple, FiniteSet)) and type(a) is type(b) and len(a.args) == len(b.args):
        xs, ys = list(a.args), list(b.args)
        if isinstance(a, FiniteSet):
            xs, ys = sorted(xs, key=_sort_key), sorted(ys, key=_sort_key)
        return all(_close(x, y, rel_tol) for x, y in zip(xs, ys, strict=True))
    if not (isinstance(a, Expr) and isinstance(b, Expr) and a.is_number and b.is_number):
        return False
    try:
        x, y = complex(a.evalf(30)), complex(b.evalf(30))
    except (TypeError, ValueError, OverflowError):
        return False
    return abs(x - y) <= rel_tol * max(abs(x), abs(y))


def _sort_key(x: object) -> tuple:
    try:
        return (0, float(x.evalf()))  # type: ignore[attr-defined]
    except (TypeError, ValueError, AttributeError):
        return (1, str(x))


@dataclass(frozen=True)
class _Ctx:
    quick: bool
    question: str | None
    rel_tol: float | None


def _math_verify(pred: str, ref: str, ctx: _Ctx) -> Verdict:
    """math-verify on both answers (`ref` is the gold side), decimals read exactly; numbers and
    percentages compared by `forms.numbers_equal`; then `rel_tol` if given; then the string fallback."""
    rule: Method = "math_verify"
    gold = _parse(ref)
    # A reference with variables (or a letter multiplied in, `5 \cdot m`): a letter is no unit, on both sides
    letters = bool(gold and getattr(gold[0], "free_symbols", None)) or _TIMES_LETTER.search(ref) is not None
    gold, target = (_parse(ref, True) if letters else gold), _parse(pred, letters)
    if gold and target:
        a, b = _sympy_number(gold[0]), _sympy_number(target[0])
        if a is not None and b is not None:
            rule = "percent" if a[1] or b[1] else "numeric"
            if forms.numbers_equal(a, b, ctx.rel_tol):
                return Verdict(True, rule)
        if _mv().verify(list(gold), list(target), timeout_seconds=None):
            return Verdict(True, "math_verify")
        if ctx.rel_tol and _close(gold[0], target[0], ctx.rel_tol):
            return Verdict(True, "tolerance")
    if _loose(pred) == _loose(ref) and _loose(ref):
        return Verdict(True, "string_fallback")
    return Verdict(False, rule)


def _sub(pred: str, ref: str, ctx: _Ctx, rule: Method) -> Verdict:
    """Compare a part of the answer (an assignment's value, a choice's value) under the rule that chose it."""
    v = (quick_check(pred, ref, ctx.rel_tol) if ctx.quick else None) or _check(
        pred, ref, replace(ctx, question=None)
    )
    return Verdict(v.correct, rule, v.reason) if v.correct is not None else v


def _equations(eqs: list[tuple[str, str]], ref: str, ctx: _Ctx) -> Verdict:
    """`name = value` for a one-value reference: see "Equations and assignments" in docs/rewards.md."""
    asked = forms.asked(ctx.question)
    if len(eqs) == 1:
        lhs, rhs = eqs[0]
        if forms.is_name(lhs) or forms.canon(lhs) in asked:
            return _sub(rhs, ref, ctx, "assignment")
        return Verdict(False, "assignment", "the left side is neither a variable nor the asked quantity")
    names = [a for a in asked if forms.is_name(a)]
    if len(names) != 1:
        return Verdict(False, "asked_variable", "several assignments and no one asked variable")
    values = [rhs for lhs, rhs in eqs if forms.canon(lhs) == names[0]]
    if len(values) != 1:
        return Verdict(False, "asked_variable", f"{len(values)} assignments to the asked variable")
    return _sub(values[0], ref, ctx, "asked_variable")


def _choice(pred: str, letter: str, value: str, ctx: _Ctx) -> Verdict:
    got = forms.choice(pred)
    if got is None:
        return Verdict(False, "choice")
    p_letter, p_value = got
    if p_letter is not None and p_letter != letter:
        return Verdict(False, "choice")
    if p_value is None:
        return Verdict(True, "choice")
    return _sub(p_value, value, ctx, "choice")


def _check(pred: str, ref: str, ctx: _Ctx) -> Verdict:
    """The rules after the quick checks, in order: choice, list, equations, math-verify."""
    (p, _), (r, spaced) = forms.rewrite(pred), forms.rewrite(ref)
    if (
        ctx.quick
        and not spaced
        and (p, r) != (pred, ref)
        and (decided := quick_check(p, r, ctx.rel_tol)) is not None
    ):
        return decided
    pred, ref = p, r
    ref_choice = forms.choice(ref)
    if ref_choice is not None and ref_choice[0] is not None and ref_choice[1] is not None:
        return _choice(pred, ref_choice[0], ref_choice[1], ctx)
    items = forms.list_items(ref, ctx.question)
    if items is not None or spaced:
        v = _math_verify(forms.unbracket(pred), ", ".join(items) if items else ref, ctx)
        return Verdict(True, "list") if v.correct else v
    if forms.single_value(ref) and (eqs := forms.equations(pred)) is not None:
        return _equations(eqs, ref, ctx)
    return _math_verify(pred, ref, ctx)


def check_pair(
    pred: str,
    ref: str,
    timeout_s: float | None = 5.0,
    quick: bool = True,
    *,
    question: str | None = None,
    rel_tol: float | None = None,
    scorer: Scorer = "default",
) -> Verdict:
    """Compare `pred` with the reference `ref` (both bare answers, no `\\boxed`): the quick checks (unless
    `quick=False`), then the answer rules (a choice letter, a list, `name = value`), then math-verify (`ref`
    is the gold side), then a loose string comparison. See "Answer rules" in docs/rewards.md.

    `question` (the problem text) tells which variable is asked for: `a = 4, r = 0` counts for the
    reference 4 only when the question asks for `a`. `rel_tol` (e.g. 1e-4, the Qwen2.5-Math grader's)
    accepts numbers within that relative error; by default numbers must be exactly equal.

    `scorer="torl"` or `"zero_tir"` replays the originals' checks instead (`torl.rewards.originals`:
    `question`, `rel_tol` and `quick` do not apply; for "zero_tir", `pred` is an `<answer>` content).

    A run over `timeout_s` gives `Verdict(None, "timeout")`; the limit needs the main thread (elsewhere
    it is not enforced: use `VerifyPool`). Never raises for a failed comparison.
    """
    if scorer != "default":
        return _original(pred, ref, timeout_s, scorer)
    if not pred.strip():
        return Verdict(False, "no_answer")
    if quick and (decided := quick_check(pred, ref, rel_tol)) is not None:
        return decided
    try:
        with _alarm(timeout_s):
            return _check(pred, ref, _Ctx(quick, question, rel_tol))
    except _Deadline:
        return Verdict(None, "timeout", f"verification took over {timeout_s:g} s")
    except Exception as e:
        logger.debug("verification failed", exc_info=True)
        return Verdict(None, "error", f"{type(e).__name__}: {e}"[:300])


def _original(pred: str, ref: str, timeout_s: float | None, scorer: str) -> Verdict:
    from torl.rewards import originals

    if scorer not in SCORERS:
        raise ValueError(f"unknown scorer {scorer!r}: use one of {', '.join(SCORERS)}")
    try:
        with _alarm(timeout_s):
            if scorer == "torl":
                return originals.torl_check(pred, ref)
            return originals.zero_tir_check(pred, ref, None)
    except _Deadline:
        return Verdict(None, "timeout", f"verification took over {timeout_s:g} s")
    except Exception as e:
        logger.debug("verification failed", exc_info=True)
        return Verdict(None, "error", f"{type(e).__name__}: {e}"[:300])


def _as_answer(x: object, what: str) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return str(x)
    raise TypeError(f"{what} must be a str (or a number), got {type(x).__name__}")


def math_equal(
    pred: str,
    ref: str,
    timeout_s: float | None = 5.0,
    *,
    question: str | None = None,
    rel_tol: float | None = None,
    scorer: Scorer = "default",
) -> bool:
    """True when the answer `pred` is mathematically equal to the reference `ref`.

    Both are bare answers (`"\\frac{1}{2}"`, `"0.5"`, `"x=5"`, `"[0, 1)"`, `"5\\text{ cm}"`), not
    whole responses: use `extract_answer` first. `question`, `rel_tol` and `scorer` as in `check_pair`. Runs in
    this process; a comparison that times out (only enforced in the main thread) or fails counts as not
    equal and is logged.

    Raises:
        TypeError: an argument is not a string or a number.
    """
    verdict = check_pair(
        _as_answer(pred, "pred"), _as_answer(ref, "ref"), timeout_s, question=question, rel_tol=rel_tol,
        scorer=scorer,
    )
    if verdict.correct is None:
        logger.warning("math_equal(%.60r, %.60r): %s", pred, ref, verdict.reason)
        return False
    return verdict.correct
