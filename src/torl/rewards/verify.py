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
from dataclasses import dataclass
from typing import Literal

logger = logging.getLogger(__name__)

Method = Literal["exact", "integer", "math_verify", "string_fallback", "no_answer", "timeout", "error"]


@dataclass(frozen=True)
class Verdict:
    """Outcome of comparing a predicted answer with a reference.

    `correct` is None when the comparison could not be made (timeout, crashed worker, error);
    `method` says which check decided; `reason` explains a None.
    """

    correct: bool | None
    method: Method
    reason: str | None = None


_SPACING = re.compile(r"\\(?:[,;:! ]|q?quad(?![A-Za-z]))")
_LEFT_RIGHT = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![A-Za-z])")
_FRAC = re.compile(r"\\[dt]frac(?![A-Za-z])")
_SPACE = re.compile(r"(?<![A-Za-z])\s+|\s+(?![A-Za-z])")
_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER_IN_TEXT = re.compile(
    r"\\(?:text|mbox|mathrm)\s*\{\s*([-+]?\d[\d,]*(?:\.\d+)?)\s+([A-Za-z][A-Za-z ]*)\}"
)
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")


def normalize_answer(s: str) -> str:
    """Light, meaning-preserving clean-up of a LaTeX answer, for exact comparison.

    Drops `$` delimiters, `\\left`/`\\right`, spacing commands, a trailing period and whitespace that
    LaTeX ignores; turns `\\dfrac`/`\\tfrac` into `\\frac`. Two answers equal after this are equal.
    """
    s = s.strip().strip("$").strip()
    s = _SPACING.sub(" ", s)
    s = _LEFT_RIGHT.sub("", s)
    s = _FRAC.sub(r"\\frac", s)
    s = _SPACE.sub("", s).strip()
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


def quick_check(pred: str, ref: str) -> Verdict | None:
    """Decide without sympy when it is safe: equal after `normalize_answer`, or two plain integers.

    Returns None when math-verify is needed.
    """
    p, r = normalize_answer(pred), normalize_answer(ref)
    if not p:
        return Verdict(False, "no_answer")
    if p == r:
        return Verdict(True, "exact")
    if _INTEGER.fullmatch(p) and _INTEGER.fullmatch(r):
        return Verdict(int(p) == int(r), "integer")
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


@functools.lru_cache(maxsize=8192)
def _parse(s: str) -> tuple:
    mv = _mv()
    s = _NUMBER_IN_TEXT.sub(r"\1\\text{ \2}", s)  # "\text{5 cm}" -> "5\text{ cm}": math-verify drops the unit
    return tuple(mv.parse("\\boxed{" + s + "}", parsing_timeout=None))


def check_pair(pred: str, ref: str, timeout_s: float | None = 5.0, quick: bool = True) -> Verdict:
    """Compare `pred` with the reference `ref` (both bare answers, no `\\boxed`): exact checks (unless
    `quick=False`), then math-verify (`ref` is the gold side), then a loose string comparison.

    A run over `timeout_s` gives `Verdict(None, "timeout")`; the limit needs the main thread (elsewhere
    it is not enforced: use `VerifyPool`). Never raises for a failed comparison.
    """
    if not pred.strip():
        return Verdict(False, "no_answer")
    if quick and (decided := quick_check(pred, ref)) is not None:
        return decided
    try:
        with _alarm(timeout_s):
            mv = _mv()
            gold, target = _parse(ref), _parse(pred)
            if gold and target and mv.verify(list(gold), list(target), timeout_seconds=None):
                return Verdict(True, "math_verify")
    except _Deadline:
        return Verdict(None, "timeout", f"verification took over {timeout_s:g} s")
    except Exception as e:
        logger.debug("verification failed", exc_info=True)
        return Verdict(None, "error", f"{type(e).__name__}: {e}"[:300])
    if _loose(pred) == _loose(ref) and _loose(ref):
        return Verdict(True, "string_fallback")
    return Verdict(False, "math_verify")


def _as_answer(x: object, what: str) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return str(x)
    raise TypeError(f"{what} must be a str (or a number), got {type(x).__name__}")


def math_equal(pred: str, ref: str, timeout_s: float | None = 5.0) -> bool:
    """True when the answer `pred` is mathematically equal to the reference `ref`.

    Both are bare answers (`"\\frac{1}{2}"`, `"0.5"`, `"x=5"`, `"[0, 1)"`, `"5\\text{ cm}"`), not
    whole responses: use `extract_answer` first. Runs in this process; a comparison that times out
    (only enforced in the main thread) or fails counts as not equal and is logged.

    Raises:
        TypeError: an argument is not a string or a number.
    """
    verdict = check_pair(_as_answer(pred, "pred"), _as_answer(ref, "ref"), timeout_s)
    if verdict.correct is None:
        logger.warning("math_equal(%.60r, %.60r): %s", pred, ref, verdict.reason)
        return False
    return verdict.correct
