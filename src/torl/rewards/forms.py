"""Answer forms read on the strings, before (or instead of) math-verify: no sympy here.

- `number`: a plain number (integer, decimal, thousands separators, fraction, percentage, scientific
  notation, repeating decimal) read exactly as a `Fraction`; `numbers_equal` compares two of them.
- `rewrite`: forms math-verify misreads (`1.\\overline{3}`, `1e3`, `1 000`, `-2 3 5`) put in ones it reads.
- `equations`: a prediction split into `lhs = rhs` parts; `is_name` says whether a left side names a quantity.
- `asked`: the quantities a question asks for; `list_items`: a bracketed reference read as a list of values.
- `choice`: a choice letter with its value, `(b) 0`.
"""

from __future__ import annotations

import re
from fractions import Fraction

Number = tuple[Fraction, bool]
"""A value and whether it was written as a percentage."""

_MAX_LEN = 200  # longer numbers are left to math-verify (and its time limit)
_MAX_EXP = 400

_DIGITS = r"(?:\d{1,3}(?:,\d{3})+|\d{1,3}(?: \d{3})+|\d+)(?:\.\d*)?|\.\d+"
_NUMBER = re.compile(
    r"(?P<sign>[-+]?)(?:\\\$)?(?:"
    r"\\frac\{(?P<fn>-?\d+)\}\{(?P<fd>\d+)\}|\\frac(?P<fn1>\d)(?P<fd1>\d)|(?P<sn>\d+)/(?P<sd>\d+)|"
    r"(?P<ri>\d*)\.(?P<rb>\d*)\\overline\{?(?P<rc>\d+)\}?|"
    rf"(?P<m>{_DIGITS})(?:[eE](?P<e1>[-+]?\d+)|\\(?:times|cdot)10\^\{{?(?P<e2>[-+]?\d+)\}}?)?"
    r")(?P<pct>\\%|%)?"
)


def _repeating(whole: str, fixed: str, cycle: str) -> Fraction:
    """`whole.fixed(cycle)(cycle)...` as a fraction: 1.\\overline{3} = 4/3, 0.1\\overline{6} = 1/6."""
    head = int(whole or 0) + (Fraction(int(fixed), 10 ** len(fixed)) if fixed else 0)
    return head + Fraction(int(cycle), 10 ** len(fixed) * (10 ** len(cycle) - 1))


def number(s: str) -> Number | None:
    """The exact value of `s` (already through `normalize_answer`) if it is a plain number, else None."""
    if len(s) > _MAX_LEN or not s:
        return None
    m = _NUMBER.fullmatch(s)
    if m is None:
        return None
    g = m.groupdict()
    if g["fd"] or g["fd1"] or g["sd"]:
        num, den = int(g["fn"] or g["fn1"] or g["sn"]), int(g["fd"] or g["fd1"] or g["sd"])
        if den == 0:
            return None
        value = Fraction(num, den)
    elif g["rc"]:
        value = _repeating(g["ri"], g["rb"], g["rc"])
    else:
        exp = int(g["e1"] or g["e2"] or 0)
        if abs(exp) > _MAX_EXP:
            return None
        value = Fraction(g["m"].replace(",", "").replace(" ", "")) * Fraction(10) ** exp
    return (-value if g["sign"] == "-" else value), bool(g["pct"])


def _close(a: Fraction, b: Fraction, rel_tol: float | None) -> bool:
    if not rel_tol:
        return a == b
    return abs(a - b) <= Fraction(str(rel_tol)) * max(abs(a), abs(b))


def numbers_equal(a: Number, b: Number, rel_tol: float | None = None) -> bool:
    """Equal values; a percentage on one side only may also be read as its number over 100:
    20% = 20 and 20% = 0.2, but 20% != 0.2%."""
    (x, x_pct), (y, y_pct) = a, b
    if _close(x, y, rel_tol):
        return True
    if x_pct != y_pct:
        return _close(x / 100, y, rel_tol) if x_pct else _close(x, y / 100, rel_tol)
    return False


_OVERLINE = re.compile(r"(?<![\d.])(\d*)\.(\d*)\\overline\s*\{?(\d+)\}?")
_SCI = re.compile(r"\s*([-+]?\d+(?:\.\d+)?)[eE]([-+]?\d{1,3})\s*")
_THOUSANDS = re.compile(r"\s*([-+]?\d{1,3}(?:\s\d{3})+(?:\.\d+)?)\s*")
_SPACED = re.compile(r"\s*[-+]?\d+(?:\.\d+)?(?:\s+[-+]?\d+(?:\.\d+)?)+\s*")


def _overline(m: re.Match) -> str:
    v = _repeating(m[1], m[2], m[3])
    return f"\\frac{{{v.numerator}}}{{{v.denominator}}}"


def rewrite(s: str) -> tuple[str, bool]:
    """`s` with forms that math-verify misreads rewritten, and whether it is a space-separated list.

    `1.\\overline{3}` -> `\\frac{4}{3}` (anywhere); whole answers: `1e3` -> `1\\times10^{3}`,
    `1 000` -> `1000` (groups of three digits), `-2 3 5` -> `-2, 3, 5`.
    """
    if "\\overline" in s:
        s = _OVERLINE.sub(_overline, s)
    if m := _SCI.fullmatch(s):
        return f"{m[1]}\\times10^{{{m[2]}}}", False
    if m := _THOUSANDS.fullmatch(s):
        return re.sub(r"\s", "", m[1]), False
    if _SPACED.fullmatch(s):
        return ", ".join(s.split()), True
    return s, False


# -- top-level splitting ----------------------------------------------------------------------------


def split_top(s: str, sep: str) -> list[str]:
    """`s` split at `sep` where no bracket or brace is open (brackets of any kind count alike: `[0, 1)`)."""
    parts, depth, start, i, n = [], 0, 0, 0, len(s)
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n and s[i + 1] in "{}":
            depth += 1 if s[i + 1] == "{" else -1
            i += 2
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and s.startswith(sep, i):
            parts.append(s[start:i])
            start = i = i + len(sep)
            continue
        i += 1
    parts.append(s[start:])
    return [p.strip() for p in parts]


_LIST_WORDS = re.compile(
    r"\\(?:text|mbox|textrm)\s*\{\s*(?:and|or)\s*\}|\\q?quad(?![A-Za-z])|(?<=\s)(?:and|or)(?=\s)|;"
)
_RELATION = re.compile(
    r"[<>]|\\(?:le|ge|leq|geq|leqslant|geqslant|lt|gt|ne|neq|approx|sim|equiv|in|iff|implies|Rightarrow)"
    r"(?![A-Za-z])"
)


def equations(pred: str) -> list[tuple[str, str]] | None:
    """`pred` as `(lhs, rhs)` equations: one (`x = 5`, `x = 2 + 3 = 5` gives `("x", "5")`) or a list of
    them (`a = 4, r = 0`); None when `pred` is not made of equations or also holds another relation."""
    if "=" not in pred or _RELATION.search(pred) or re.search(r"[<>!:=]=|=[<>=]", pred):
        return None
    parts = split_top(_LIST_WORDS.sub(",", pred), ",")
    if len(parts) < 2 or not all(len(split_top(p, "=")) > 1 for p in parts):
        parts = [pred]  # "x = 1,000" or "x = 2, 3": one equation whose right side has a comma
    out = []
    for p in parts:
        sides = split_top(p, "=")
        if len(sides) < 2 or not sides[0] or not sides[-1]:
            return None
        out.append((sides[0], sides[-1]))
    return out


def single_value(ref: str) -> bool:
    """A reference that is one value: no equation, relation, list, tuple, set or interval."""
    r = ref.strip()
    return not ("=" in r or "," in r or ";" in r or _RELATION.search(r) or "\\cup" in r or "\\{" in r)


# -- names and the asked quantity ---------------------------------------------------------------------

_GREEK = (
    r"alpha|beta|gamma|delta|epsilon|varepsilon|zeta|eta|theta|vartheta|iota|kappa|lambda|mu|nu|xi|rho|"
    r"sigma|tau|upsilon|phi|varphi|chi|psi|omega|Gamma|Delta|Theta|Lambda|Xi|Sigma|Phi|Psi|Omega"
)
_LETTER = rf"(?:[A-Za-z]|\\(?:{_GREEK})(?![A-Za-z]))"
_SUB = r"(?:_(?:\{[A-Za-z0-9,+\-\\]+\}|[A-Za-z0-9]))?'{0,3}"
_NAME = re.compile(
    rf"{_LETTER}{_SUB}"  # x, a_1, \theta, x'
    r"|[A-Z]{2,4}"  # AB, ABC: a segment, an angle, an area
    r"|(?:m)?\\angle[A-Z]{1,3}|\|[A-Z]{2}\|"  # \angle ABC, m\angle A, |AB|
    r"|\\(?:overline|overrightarrow|vec|mathbf|bar|hat|widehat)\{[A-Za-z]{1,3}\}"  # \overline{AB}, \mathbf{v}
    r"|\\(?:text|mathrm|operatorname)\{[A-Za-z][A-Za-z ]*\}"  # \text{Area}
    # f(x), P(A), f^{-1}(3)
    rf"|(?:{_LETTER}|\\(?:mathrm|operatorname)\{{[A-Za-z]+\}}){_SUB}(?:\^\{{?-1\}}?)?\([^()=]*\)"
)


def canon(s: str) -> str:
    """A spelling of a (small) expression for comparing names: no spaces, `_{1}` -> `_1`, no `\\left`."""
    s = re.sub(r"\\(?:left|right|displaystyle)(?![A-Za-z])|\\[,;:! ]|\s+", "", s.strip().strip("$"))
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = re.sub(r"(?<=[_^])\{([A-Za-z0-9])\}", r"\1", s)
    return s.rstrip(".,")


def is_name(lhs: str) -> bool:
    """Whether the left side of `lhs = value` names a quantity (`x`, `a_1`, `AB`, `f(3)`, `\\angle A`)
    rather than computing one (`\\sin^2(x)`, `2x`, `x + y`)."""
    return _NAME.fullmatch(canon(lhs)) is not None


_MATH = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
_CUE = re.compile(
    r"\b(?:find|what|compute|determine|evaluate|calculate|solve for|value of|values of|how many|how much"
    r"|express|give|enter)\b",
    re.IGNORECASE,
)
_STOP = re.compile(
    r"\b(?:if|such that|so that|given|where|when|whenever|for which|in terms of|satisf\w*|with|for all"
    r"|for every)\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.?!;](?:\s|$)|\n\s*\n")


def asked(question: str | None) -> list[str]:
    """The math spans a question asks for, as `canon` spells them: `$a$` in "... what is $a$?".

    A span counts when it follows an asking word (find, what, compute, determine, value of, ...) in the
    same sentence, before any condition (if, such that, given, where, ...).
    """
    if not question:
        return []
    spans: list[str] = []

    def hide(m: re.Match) -> str:
        spans.append(next(g for g in m.groups() if g is not None))
        return f" \x00{len(spans) - 1}\x00 "

    prose = _MATH.sub(hide, question)
    found = []
    for sentence in _SENTENCE_END.split(prose):
        if (cue := _CUE.search(sentence)) is None:
            continue
        tail = sentence[cue.end() :]
        if stop := _STOP.search(tail):
            tail = tail[: stop.start()]
        found += [canon(spans[int(i)]) for i in re.findall(r"\x00(\d+)\x00", tail)]
    return list(dict.fromkeys(f for f in found if f))


def asks_list(question: str | None) -> bool:
    """The question asks for several values listed (MATH's "separated by commas", "list ...")."""
    return (
        bool(question)
        and re.search(r"\bcommas?\b|comma-separated|\blist\b", question, re.IGNORECASE) is not None
    )


def _balanced(s: str) -> bool:
    depth = 0
    for c in s:
        depth += (c in "([{") - (c in ")]}")
        if depth < 0:
            return False
    return depth == 0


def list_items(ref: str, question: str | None) -> list[str] | None:
    """The values of a bracketed reference read as a list, or None when it reads as an interval.

    `[a, b, c, ...]` (three or more) is a list; `[a, b]` is an interval unless `b <= a` (no interval
    is written so) or the question asks for values separated by commas.
    """
    m = re.fullmatch(r"\s*(?:\\left)?\[(.*?)(?:\\right)?\]\s*", ref, re.DOTALL)
    if m is None or not _balanced(m[1]):
        return None
    items = split_top(m[1], ",")
    if len(items) < 2 or not all(items):
        return None
    if len(items) >= 3 or asks_list(question):
        return items
    a, b = number(canon(items[0])), number(canon(items[1]))
    return items if a is not None and b is not None and b[0] <= a[0] else None


def unbracket(s: str) -> str:
    """`[5, 3]` -> `5, 3` (a list written in brackets, read as the values it lists); anything else as is."""
    m = re.fullmatch(r"\s*(?:\\left)?\[(.*?)(?:\\right)?\]\s*", s, re.DOTALL)
    return m[1] if m is not None and _balanced(m[1]) else s


# -- choices --------------------------------------------------------------------------------------------

_UNWRAP = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")


def choice(s: str) -> tuple[str | None, str | None] | None:
    """A multiple-choice answer as (letter, value): `(b) 0` -> ("b", "0"), `(B)` or `B` -> ("b", None);
    anything else -> (None, s) when `s` could be a value, None when it is empty."""
    u = _UNWRAP.sub(r"\1", s).strip().strip("$").strip()
    if not u:
        return None
    if m := re.fullmatch(r"\(([A-Za-z])\)\s*[:.]?\s*(.*)", u, re.DOTALL):
        return m[1].lower(), (m[2].strip() or None)
    if re.fullmatch(r"[A-Za-z]", u):
        return u.lower(), None
    return None, s


def needs_question(pred: str, ref: str) -> bool:
    """Whether the question can change the verdict (an equation in `pred`, a bracketed `ref`)."""
    return "=" in pred or "[" in ref
