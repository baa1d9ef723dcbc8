"""The originals' answer checks, replayed: ToRL's (`scorer="torl"`) and AReaL ZERO-TIR-RL's (`scorer="zero_tir"`).

torl's own checker (`scorer="default"`, `verify.check_pair`) accepts more equivalent forms. These replay what
the original training code scored, so that numbers can be reported on the originals' scale
(docs/rewards.md, "Scorers"). Pure functions; the rewards run them in a `VerifyPool`.

- ToRL (its verl fork, `math_verifier.py` for the data sources of its own files): the last `\\boxed{}`
  by its pattern (three levels of braces inside at most); then equal when the two strings match
  ignoring case and outer spaces, else `normalize_final_answer` on both (the Minerva normalisation) and
  math-verify's `parse` / `verify` on the results (the prediction as gold); a string comparison
  (Hendrycks' `strip_string`) only when that raises.
- ZERO-TIR (AReaL's example): the last closed `<answer>...</answer>` of the whole text; from it and from
  the reference, the Qwen2.5-Math extraction (a box, "the answer is ...", else the last number); then
  numbers within 1e-4 relative (a reference x also matching x/100 and 100x), else torl's rules at that
  tolerance.
"""

from __future__ import annotations

import re

from torl.rewards.verify import Verdict, _mv, check_pair

__all__ = [
    "hendrycks_strip_string",
    "normalize_final_answer",
    "qwen_extract_answer",
    "torl_check",
    "torl_last_boxed",
    "zero_tir_answer",
    "zero_tir_check",
]


def _group(depth: int) -> str:
    """A brace group with at most `depth` more levels of braces inside; `\\{` and `\\}` are plain text."""
    if depth == 0:
        return r"\{[^{}]*\}"
    return r"\{(?:[^{}]|\\\{|\\\}|" + _group(depth - 1) + r")*\}"


_TORL_BOX = re.compile(r"\\boxed\{((?:[^{}]|\\\{|\\\}|" + _group(2) + r")*)\}")


def torl_last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` that ToRL's pattern matches, or None. No `\\fbox`, no
    `\\boxed 5`, no box nested more than three levels deep; an unclosed last box leaves an earlier one."""
    found = _TORL_BOX.findall(text)
    return found[-1] if found else None


# The Minerva normalisation (Lewkowycz et al. 2022, appendix D) with ToRL's changes: "\\(" and "\\["
# delimiters dropped at both ends, "a " not removed, more unit words, Unicode symbols mapped.
_SUBSTITUTIONS = (
    ("an ", ""), (".$", "$"), ("\\$", ""), (r"\ ", ""), (" ", ""), ("mbox", "text"),
    (",\\text{and}", ","), ("\\text{and}", ","), ("\\text{m}", "\\text{}"), ("\\left", ""), ("\\right", ""),
    ("∶", ":"), ("，", ","), ("$", ""), ("\\approx", "="), ("\\simeq", "="), ("\\sim", "="),
    ("^\\prime", "'"), ("^{\\prime}", "'"), ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("^\\circ", ""),
    ("%", ""), ("\u221a", "\\sqrt"), ("\u221e", "\\infty"), ("\u222a", "\\cup"),
)
_REMOVED = (
    "square", "ways", "integers", "dollars", "mph", "inches", "hours", "km", "units", "\\ldots", "sue",
    "points", "feet", "minutes", "digits", "cents", "degrees", "cm", "gm", "pounds", "meters", "meals",
    "edges", "students", "childrentickets", "multiples", "\\text{s}", "\\text{.}", "\\text{\ns}",
    "\\text{}^2", "\\text{}^3", "\\text{\n}", "\\text{}", r"\mathrm{th}", r"^\circ", r"^{\circ}", r"\;",
    r",\!", "{,}", '"', "\\dots",
)
_WRAPPERS = [re.compile(r"\\" + w + r"\{(.*?)\}") for w in ("text", "textbf", "overline")]


def _drop_delims(s: str) -> str:
    if s[:2] in ("\\(", "\\["):
        s = s[2:]
    if s[-2:] in ("\\)", "\\]"):
        s = s[:-2]
    return s


def normalize_final_answer(answer: str) -> str:
    """ToRL's `normalize_final_answer`: the Minerva answer normalisation as its verl fork applies it.

    `\\dfrac` to `\\frac`, units and words such as "degrees" or "cm" dropped (inside other words too:
    "cm" goes from any string), spaces and `$` dropped, the last `$...$` span kept, `\\text{}`,
    `\\textbf{}`, `\\overline{}` and `\\boxed{}` unwrapped, `\\frac12` to `\\frac{1}{2}`, `\\sqrt2` to
    `\\sqrt{2}`, `100,000` to `100000`."""
    s = _drop_delims(answer.strip())
    for before, after in _SUBSTITUTIONS:
        s = s.replace(before, after)
    for word in _REMOVED:
        s = s.replace(word, "")
    s = re.sub(r"(.*?)(\$)(.*?)(\$)(.*)", "$\\3$", s)
    for wrapper in _WRAPPERS:
        s = wrapper.sub(r"\1", s)
    s = re.sub(r"\\boxed\{(.*)\}", r"\1", s)
    s = re.sub(r"(frac)([^{])(.)", "frac{\\2}{\\3}", s)
    s = re.sub(r"(sqrt)([^{])", "sqrt{\\2}", s)
    s = s.replace("$", "")
    if s.replace(",", "").isdigit():
        s = s.replace(",", "")
    return _drop_delims(s).strip()


def _fix_fracs(s: str) -> str:
    parts = s.split("\\frac")
    out = parts[0]
    for part in parts[1:]:
        out += "\\frac"
        if part[0] == "{":  # an empty part raises, as in the original
            out += part
        elif len(part) < 2:
            return s
        elif part[1] != "{":
            out += "{" + part[0] + "}{" + part[1] + "}" + part[2:]
        else:
            out += "{" + part[0] + "}" + part[1:]
    return out


def _fix_slash(s: str) -> str:
    parts = s.split("/")
    if len(parts) != 2:
        return s
    a, b = int(parts[0]), int(parts[1])  # "x/2" raises, as in the original
    return f"\\frac{{{a}}}{{{b}}}" if s == f"{a}/{b}" else s


def _fix_sqrt(s: str) -> str:
    parts = s.split("\\sqrt")
    # an empty part (a trailing \sqrt) raises, as in the original
    return parts[0] + "".join("\\sqrt" + (p if p[0] == "{" else "{" + p[0] + "}" + p[1:]) for p in parts[1:])


def hendrycks_strip_string(s: str) -> str:
    """The MATH dataset's answer clean-up (Hendrycks et al.), ToRL's fallback when math-verify raised."""
    for a, b in (("\n", ""), ("\\!", ""), ("\\\\", "\\"), ("tfrac", "frac"), ("dfrac", "frac"),
                 ("\\left", ""), ("\\right", ""), ("^{\\circ}", ""), ("^\\circ", ""), ("\\$", "")):
        s = s.replace(a, b)
    if "\\text{ " in s:  # a unit on the right
        parts = s.split("\\text{ ")
        if len(parts) != 2:
            raise ValueError("two units")
        s = parts[0]
    s = s.replace("\\%", "").replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    if len(s.split("=")) == 2 and len(s.split("=")[0]) <= 2:
        s = s.split("=")[1]
    s = _fix_fracs(_fix_sqrt(s).replace(" ", ""))
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _fix_slash(s)


def torl_check(pred: str, ref: str) -> Verdict:
    """ToRL's `is_equiv(pred, ref)`. Slow comparisons are the caller's to time-limit (math-verify's own
    limits are off here, as everywhere in torl; in ToRL a timed-out comparison is False, i.e. -1)."""
    if pred.strip().lower() == ref.strip().lower():
        return Verdict(True, "torl_exact")
    mv = _mv()
    a, b = pred, ref
    try:
        a = normalize_final_answer(a)
        b = normalize_final_answer(b)
        return Verdict(bool(mv.verify(mv.parse(a, parsing_timeout=None), mv.parse(b, parsing_timeout=None),
                                      timeout_seconds=None)), "torl_math_verify")
    except Exception:  # noqa: BLE001 - ToRL falls back on any error (math-verify 0.9 itself does not raise)
        try:
            return Verdict(hendrycks_strip_string(a) == hendrycks_strip_string(b), "torl_string_fallback")
        except Exception:  # noqa: BLE001
            return Verdict(a == b, "torl_string_fallback")


_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_LAST_NUMBER = re.compile(r"-?\d*\.?\d+")


def zero_tir_answer(text: str) -> str | None:
    """The content of the last closed `<answer>...</answer>` as AReaL's regex finds it (matches do not
    overlap, each from its first `<answer>`), or None."""
    found = _ANSWER_TAG.findall(text)
    return found[-1] if found else None


def _box_content(rest: str) -> str:
    """After "boxed": the brace group's content (unclosed: the rest), or the text before a `$`."""
    if not rest:
        return ""
    if rest[0] != "{":
        return rest.split("$")[0].strip()
    depth, out = 1, []
    for c in rest[1:]:
        depth += (c == "{") - (c == "}")
        if depth == 0:
            break
        out.append(c)
    return "".join(out)


def qwen_extract_answer(text: str) -> str:
    """The Qwen2.5-Math extraction (`extract_answer(text, "math", use_last_number=True)`), without its
    final `strip_string`: the final `$...$` of "final answer is $...$. I hope", else the last box, else what
    follows the last "he answer is" or "final answer is", else the last number; "" when nothing is found.
    A reference goes through it too: "\\frac{1}{2}" reads as "2"."""
    s = text.replace("\u043a\u0438", "")
    if "final answer is $" in s and "$. I hope" in s:
        pred = s.split("final answer is $", 1)[1].split("$. I hope", 1)[0].strip()
    elif "boxed" in s:
        pred = _box_content(s.split("boxed")[-1])
    elif "he answer is" in s:
        pred = s.split("he answer is")[-1].strip()
    elif "final answer is" in s:
        pred = s.split("final answer is")[-1].strip()
    elif "答案是" in s:
        pred = s.split("答案是")[1].strip().split("\n\n")[0].strip()
    else:
        numbers = _LAST_NUMBER.findall(s.replace(",", ""))
        pred = numbers[-1] if numbers else ""
    pred = re.sub(r"\n\s*", "", pred)
    if pred[:1] == ":":
        pred = pred[1:]
    for tail in (".", "/"):
        if pred[-1:] == tail:
            pred = pred[:-1]
    return pred


def _digits(s: str) -> float | None:
    s = s.replace(",", "")
    try:
        return float(s)
    except ValueError:
        if s.endswith("%"):
            s = s[:-1].removesuffix("\\")
            try:
                return float(s) / 100
            except ValueError:
                return None
    return None


def zero_tir_check(pred: str, ref: str, timeout_s: float | None = 5.0) -> Verdict:
    """AReaL ZERO-TIR-RL's reward check on an `<answer>` content `pred` and the raw reference `ref`: both
    through `qwen_extract_answer`; two numbers equal within 1e-4 relative, the reference also read as a
    percentage (x/100, 100x); anything else by torl's rules (`check_pair`) at that tolerance."""
    p, r = qwen_extract_answer(pred), qwen_extract_answer(ref)
    if p.strip() in ("", "None", "none") or r.strip() in ("", "None", "none"):
        return Verdict(False, "no_answer")
    a, b = _digits(p), _digits(r)
    if a is not None and b is not None:
        ok = any(abs(a - x) <= 1e-4 * max(abs(a), abs(x)) for x in (b / 100, b, b * 100))
        return Verdict(ok, "zero_tir_numeric")
    return check_pair(p, r, timeout_s, rel_tol=1e-4)
